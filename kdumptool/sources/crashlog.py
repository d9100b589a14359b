"""The crashed kernel's log records from a dump's printk buffer (sources read, formats
decode: cli stays out of both)."""

from __future__ import annotations

# typing is only read by type checkers here (annotations are strings): importing it
# costs start-up time of `vmcore log` (bench/bench_ratios.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

    from kdumptool.formats.printk import PrintkLog
    from kdumptool.sources.vmcore import Dump


def read_printk(dump: Dump, name: Optional[str] = None) -> PrintkLog:
    """The crashed kernel's log from the printk buffer VMCOREINFO describes. With
    ``name`` (the dump's path), an error names the dump as every other error does: a
    DecodeError carries it as its source, anything else becomes UnsupportedFormat."""
    from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
    from kdumptool.formats.printk import decode_printk

    if name is None:
        return decode_printk(dump.vmcoreinfo, dump.read_virt)
    try:
        return decode_printk(dump.vmcoreinfo, dump.read_virt)
    except KdumptoolError as err:
        if isinstance(err, DecodeError):
            raise err.with_source(name) from None
        raise UnsupportedFormat(f"{name}: {err}") from None


def read_crash_log(dump: Dump) -> Tuple[List[Tuple[float, str]], Optional[str]]:
    """((seconds since boot, text) per record, None) or ([], why it could not be read)."""
    from kdumptool.errors import KdumptoolError

    try:
        klog = read_printk(dump)
    except KdumptoolError as err:
        return [], f"kernel log unreadable: {err}"
    return [(r.ts_nsec / 1e9, r.text) for r in klog.records], None


def iommu_vendor_from_dump(dump: Dump) -> Optional[Tuple[str, str]]:
    """("AMD-Vi" | "Intel VT-d", the log line that says so) from the crashed kernel's own
    log in the dump (its printk buffer, found through VMCOREINFO); None when the log
    cannot be read or names neither."""
    from kdumptool.errors import KdumptoolError

    try:
        klog = read_printk(dump)
    except KdumptoolError:
        return None
    for line in klog.dmesg_lines():
        if "AMD-Vi:" in line:
            return "AMD-Vi", line.strip()
        if "DMAR:" in line and ("DRHD" in line or "IOMMU enabled" in line or "Host address width" in line):
            return "Intel VT-d", line.strip()
    return None
