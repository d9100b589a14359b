"""The crashed kernel's log records from a dump's printk buffer, for ``vmcore info``'s
panic line (sources read, formats decode: cli stays out of both)."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple


def read_crash_log(dump: Any) -> Tuple[List[Tuple[float, str]], Optional[str]]:
    """((seconds since boot, text) per record, None) or ([], why it could not be read)."""
    from kdumptool.errors import KdumptoolError
    from kdumptool.formats.printk import decode_printk

    try:
        klog = decode_printk(dump.vmcoreinfo, dump.read_virt)
    except KdumptoolError as err:
        return [], f"kernel log unreadable: {err}"
    return [(r.ts_nsec / 1e9, r.text) for r in klog.records], None
