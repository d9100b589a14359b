"""kdumptool's library, run inside the lab guest: what it sees of this kernel (and, in the
kdump kernel, of /proc/vmcore), as JSON for the host-side tests to compare with the
oracle files that guest/lib.sh writes beside it.

Usage (guest): python3 kdt_probe.py OUT.json
Every part is independent: an exception in one is recorded as that part's ``error`` and
the others still run, so one missing or broken module does not hide the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict


def plain(obj: Any, depth: int = 0) -> Any:
    """JSON-able view of kdumptool's records (dataclasses, mappings, tuples, ints)."""
    if depth > 12:
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, bytes):
        return {"bytes": len(obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            if f.name in ("config", "raw"):
                continue
            out[f.name] = plain(getattr(obj, f.name), depth + 1)
        return out
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {str(k): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1) for v in obj]
    return repr(obj)


def part(out: Dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    t0 = time.monotonic()
    try:
        out[name] = {"result": fn()}
    except BaseException as err:  # noqa: B036 - the probe must report, not stop
        out[name] = {"error": f"{type(err).__name__}: {err}",
                     "traceback": traceback.format_exc(limit=6)}
    out[name]["seconds"] = round(time.monotonic() - t0, 3)


def system() -> Any:
    from kdumptool.sources.system import read_system

    s = read_system(None)
    units = []
    for u in s.units:
        d = plain(u)
        regs = u.registers
        d["registers"] = dict(regs.values) if regs is not None else None
        units.append(d)
    devices = {}
    for bdf, dev in s.devices.items():
        devices[bdf] = {k: plain(getattr(dev, k)) for k in (
            "vendor_id", "device_id", "class_code", "revision", "header_type", "command",
            "bus_master", "is_bridge", "is_host_bridge", "secondary_bus", "subordinate_bus",
            "port_type", "driver", "iommu_group", "upstream", "drhd", "rmrrs", "kdump_risk")
            if hasattr(dev, k)}
    return {"devices": devices, "groups": plain(s.groups), "units": units,
            "cmdline": s.cmdline, "in_kdump_kernel": s.in_kdump_kernel,
            "kexec_crash_loaded": s.kexec_crash_loaded, "kexec_crash_size": s.kexec_crash_size,
            "warnings": list(s.warnings)}


def vmcore() -> Any:
    from kdumptool.formats.printk import decode_printk
    from kdumptool.sources.vmcore import open_dump

    with open_dump("/proc/vmcore") as d:
        vi = d.vmcoreinfo
        log = decode_printk(vi, d.read_virt)
        lines = log.dmesg_lines()
        return {"describe": plain(d.describe()), "osrelease": getattr(vi, "osrelease", None),
                "page_size": d.page_size, "log_kind": log.kind if hasattr(log, "kind") else None,
                "log_lines": len(lines), "log_tail": lines[-80:],
                "ranges": [[a, b] for a, b in d.iter_dumped_ranges()]}


def main() -> int:
    out_path = sys.argv[1]
    out: Dict[str, Any] = {"argv": sys.argv, "python": sys.version}
    part(out, "system", system)
    if os.path.exists("/proc/vmcore"):
        part(out, "vmcore", vmcore)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, default=repr)
    print(" ".join(f"{k}={'error' if 'error' in v else 'ok'}({v['seconds']}s)"
                   for k, v in out.items() if isinstance(v, dict)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
