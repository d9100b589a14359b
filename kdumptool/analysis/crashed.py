"""The crashed kernel's VT-d tables, decoded from its vmcore: which root table it used
(from the RTADDR a record or a saved snapshot kept, one left behind in the registers, or a
scan of the dump), the context entries and mappings under it, and the kdump kernel's DMA
faults looked up in them.

Given records only (:class:`kdumptool.model.triage.CrashedKernel` with the open dump as a
memory reader); nothing here opens a file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Tuple

from kdumptool.analysis.rtscan import find_root_tables
from kdumptool.analysis.scenario import DMA_GSTS_RTPS, DMA_GSTS_TES, DMA_RTADDR_SMT
from kdumptool.analysis.vtd_walk import lookup_iova, walk_root_table
from kdumptool.errors import KdumptoolError
from kdumptool.model.log import LogMarkers
from kdumptool.model.system import System
from kdumptool.model.triage import (
    CrashedKernel,
    CrashedTables,
    DumpMemory,
    FaultLookup,
    RecordedRtaddr,
    TableDevice,
    TriageInput,
)


def _mode(rt: int) -> str:
    return "scalable" if rt & DMA_RTADDR_SMT else "legacy"


def old_root_table(
    first_sys: Optional[System], current: Optional[System], recorded: Optional[RecordedRtaddr] = None
) -> Optional[Tuple[int, str, str]]:
    """(address, mode, how) of the crashed kernel's root table, from registers."""
    if recorded is not None:
        for name, rt in sorted(recorded.values.items()):
            if rt & ~0xFFF:
                return rt & ~0xFFF, _mode(rt), f"{name} RTADDR=0x{rt:x} recorded at boot ({recorded.where})"
    if first_sys is not None:
        for u in first_sys.units:
            regs = u.registers
            if regs is not None and regs.get("RTADDR") and (regs.get("GSTS") or 0) & DMA_GSTS_TES:
                rt = regs.get("RTADDR") or 0
                return rt & ~0xFFF, _mode(rt), f"{u.name} RTADDR=0x{rt:x} of the saved first-kernel snapshot"
    if current is not None and current.in_kdump_kernel:
        for u in current.units:
            regs = u.registers
            if regs is None:
                continue
            gsts, rt = regs.get("GSTS") or 0, regs.get("RTADDR") or 0
            if rt and not gsts & DMA_GSTS_TES and gsts & DMA_GSTS_RTPS:
                return rt & ~0xFFF, _mode(rt), \
                    f"{u.name} RTADDR=0x{rt:x} left by the crashed kernel (translation is off in this kernel)"
    return None


def decode_tables(
    dump: DumpMemory, first_sys: Optional[System], current: Optional[System], warnings: List[str],
    current_log: Optional[LogMarkers] = None, recorded: Optional[RecordedRtaddr] = None,
    scan: bool = True,
) -> Optional[CrashedTables]:
    """The crashed kernel's tables: the root table, every context entry, and the kdump
    kernel's logged faults looked up in them. ``scan``: look for the root table in the
    whole dump when no register names it."""
    where = old_root_table(first_sys, current, recorded)
    if where is None and not scan:
        warnings.append("the crashed kernel's VT-d root table was not located: no register names it and the "
                        "whole-memory scan is skipped inside the kdump kernel (`kdumptool vmcore iommu` scans)")
        return None
    if where is None:
        res = find_root_tables(dump, list(dump.iter_dumped_ranges()))
        best = res.best
        if best is None and res.unreadable_pages:
            warnings.append(f"no VT-d root table found among the readable pages of the vmcore: "
                            f"{res.unreadable_pages} of {res.pages_scanned} pages could not be read or decompressed")
            return None
        if best is None:
            warnings.append("no VT-d root table found in the vmcore (translation off in the crashed kernel, or the "
                            "table pages were filtered out)")
            return None
        where = (best.address, best.mode, f"scan of the vmcore ({res.pages_scanned} pages, best of "
                 f"{len(res.candidates)} candidates, score {best.score})")
    addr, mode, how = where
    vt = walk_root_table(dump, addr, mode)
    devs = tuple(
        TableDevice(
            d.bdf, d.present, d.translation_type, d.domain_id,
            d.walk.mapped_4k_pages if d.walk else 0, d.walk.mapped_large_pages if d.walk else 0,
        )
        for d in vt.devices
    )
    lookups = []
    seen = set()
    for m in (current_log.all("fault") if current_log is not None else [])[:64]:
        b, a = m.get("bdf") or "", m.get("addr") or ""
        try:
            bus, dev, fn = int(b[-7:-5], 16), int(b[-4:-2], 16), int(b[-1:], 16)
            iova = int(a, 16)
        except ValueError:
            continue
        full = b if len(b) > 8 else f"0000:{b}"
        if (full, iova) in seen:
            continue
        seen.add((full, iova))
        lk = lookup_iova(dump, addr, mode, bus, (dev << 3) | fn, iova)
        lookups.append(FaultLookup(full, iova, lk.phys, lk.read, lk.write, lk.reason))
    unreadable = tuple(f"{u.what} at 0x{u.paddr:x}: {u.why}"
                       for u in vt.unreadable + tuple(x for d in vt.devices for x in d.all_unreadable))
    return CrashedTables(addr, mode, how, devs, tuple(vt.problems), tuple(lookups), unreadable)


def with_crashed_tables(inp: TriageInput) -> TriageInput:
    """``inp`` with the crashed kernel's tables decoded from its open vmcore (when there is
    one and the tables are not decoded yet); what went wrong is added to its warnings."""
    c = inp.crashed
    if c is None or c.memory is None or c.tables is not None:
        return inp
    warnings: List[str] = []
    tables = None
    try:
        tables = decode_tables(c.memory, c.first_system, inp.system, warnings, inp.log, c.recorded,
                               c.scan_tables)
    except KdumptoolError as exc:
        warnings.append(f"{c.vmcore}: VT-d tables not decoded: {exc}")
    crashed: CrashedKernel = replace(c, tables=tables, warnings=c.warnings + tuple(warnings))
    return replace(inp, crashed=crashed)
