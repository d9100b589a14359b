"""The memory map of a triage or an exposure (:class:`~kdumptool.model.memmap.MemoryMap`):
which record says where the crashed kernel's RAM, the crashkernel reservation, the dumped
pages and each device's DMA reach are, in a fixed order of trust; what no record says is
marked unknown with the reason, never drawn as empty."""

from __future__ import annotations

import bisect
from typing import Dict, List, Optional, Tuple

from kdumptool.analysis.exposure import Exposure
from kdumptool.analysis.triage import TriageReport
from kdumptool.model.memmap import DeviceReach, DumpLayout, Layer, MemoryMap, Ranges, merge
from kdumptool.model.system import System
from kdumptool.model.triage import TriageInput

_MiB = 1 << 20


def _iomem(system: System, name: str, top_only: bool) -> Optional[Ranges]:
    """``/proc/iomem`` entries called ``name`` (None: no /proc/iomem, or addresses hidden
    from an unprivileged reader, which shows every address as 0)."""
    if not system.iomem or all(r.start == 0 and r.end == 0 for r in system.iomem):
        return None
    return merge((r.start, r.end + 1) for r in system.iomem
                  if r.name.lower() == name.lower() and (r.depth == 0 or not top_only))


def _first_kernel(inp: TriageInput) -> Optional[System]:
    """The record of the kernel that crashed (or will): a saved first-kernel snapshot, or
    the system read when it is not a kdump kernel."""
    c = inp.crashed
    if c is not None and c.first_system is not None:
        return c.first_system
    return None if inp.system.in_kdump_kernel else inp.system


def _ram(inp: TriageInput, layout: Optional[DumpLayout]) -> Layer:
    first = _first_kernel(inp)
    if first is not None:
        ram = _iomem(first, "System RAM", True)
        if ram:
            return Layer("RAM", ram, f"'System RAM' in /proc/iomem of {_where(first)}")
    if layout is not None and layout.ram:
        return Layer("RAM", layout.ram, f"the RAM map of the dump {layout.path}")
    if inp.system.in_kdump_kernel:
        return Layer("RAM", None, "not known: this is the kdump kernel's snapshot (its RAM is only the crashkernel "
                                  "reservation); give the vmcore (triage --offline --vmcore) for the crashed kernel's RAM")
    return Layer("RAM", None, f"not known: /proc/iomem of {_where(inp.system)} is missing or shows no addresses "
                              "(read as root)")


def _where(system: System) -> str:
    return "this host" if system.source == "live" else system.source


def _crashkernel(inp: TriageInput, layout: Optional[DumpLayout]) -> Layer:
    first = _first_kernel(inp)
    if first is not None:
        ck = _iomem(first, "Crash kernel", False)
        if ck is not None:
            if ck:
                return Layer("crashkernel", ck, f"'Crash kernel' in /proc/iomem of {_where(first)}")
            if layout is None or not layout.crashkernel:
                return Layer("crashkernel", (), f"none: no 'Crash kernel' entry in /proc/iomem of {_where(first)} "
                                                "(no crashkernel= reservation)")
    if layout is not None and layout.crashkernel:
        return Layer("crashkernel", layout.crashkernel, layout.crashkernel_basis or layout.path)
    if inp.system.in_kdump_kernel:
        own = _iomem(inp.system, "System RAM", True)
        if own:
            above = tuple((s, e) for s, e in own if s >= _MiB)
            if above:
                return Layer("crashkernel", above, f"the kdump kernel's own RAM ('System RAM' above 1 MiB in /proc/iomem "
                                                   f"of {_where(inp.system)}): it runs inside the reservation")
    return Layer("crashkernel", None, "not known: no /proc/iomem of the first kernel and no crashkernel line in a log")


def _dumped(layout: Optional[DumpLayout]) -> Layer:
    if layout is None:
        return Layer("in the dump", None, "no vmcore given: nothing dumped yet (triage --offline --vmcore shows it)")
    total = sum(e - s for s, e in layout.dumped)
    return Layer("in the dump", layout.dumped, f"the pages {layout.path} holds ({total:,} bytes in "
                                               f"{len(layout.dumped):,} ranges)")


def crash_facts(layout: Optional[DumpLayout]) -> Tuple[Tuple[str, str], ...]:
    """(label, value) of the crash a dump holds: its kernel, when, and why (the panic line
    of its own log, as ``vmcore info`` and crash's ``sys`` give them)."""
    if layout is None:
        return ()
    from kdumptool.analysis.panic import find_panic

    out = [("dump", layout.path)]
    if layout.release:
        out.append(("crashed kernel", layout.release))
    out.append(("crash date", layout.crash_date or "unknown (no CRASHTIME in VMCOREINFO)"))
    found = find_panic(layout.log) if layout.log else None
    if found is not None:
        out.append(("panic", found[2] + (f" (at {found[1]:.6f} s)" if found[1] is not None else "")))
    else:
        out.append(("panic", "unknown: " + ("no panic, sysrq crash or oops line in its log" if layout.log
                                            else "its log could not be read")))
    return tuple(out)


def _end(*layers: Optional[Ranges]) -> int:
    return max((r[-1][1] for r in layers if r), default=0)


def _split_dumped(ranges: Ranges, dumped: Optional[Ranges]) -> Optional[bool]:
    """True: every byte of ``ranges`` is in the dump; False: none; None: part, or no dump."""
    if dumped is None or not ranges:
        return None
    some, every = False, True
    starts = [s for s, _ in dumped]
    for s, e in ranges:
        i = max(0, bisect.bisect_right(starts, s) - 1)
        covered = 0
        while i < len(dumped) and dumped[i][0] < e:
            a, b = max(s, dumped[i][0]), min(e, dumped[i][1])
            if b > a:
                covered += b - a
            i += 1
        some = some or covered > 0
        every = every and covered == e - s
    return True if every else (False if not some else None)


def find_triage_memory_map(inp: TriageInput, report: TriageReport, layout: Optional[DumpLayout] = None) -> MemoryMap:
    """The map of a triage: the crashed (or running) kernel's RAM, the reservation, the
    dump's pages when a vmcore is given, and per device what DMA could reach."""
    ram, ck, dumped = _ram(inp, layout), _crashkernel(inp, layout), _dumped(layout)
    risky = {d.bdf: d for d in report.devices}
    tables = report.crashed_tables
    reach: List[DeviceReach] = []
    notes: List[str] = []
    end = _end(ram.ranges, ck.ranges, dumped.ranges)
    if tables is not None:
        end = max(end, max((x[1] for t in tables.devices for x in t.extents), default=0))
    end = end or 1 << 32
    label: Dict[str, str] = {}
    for d in report.devices:
        label[d.bdf] = d.driver or ",".join(d.modules) or ""
    if tables is not None:
        basis = (f"the crashed kernel's AMD-Vi tables (device table 0x{tables.root_address:x}, v1 page tables)"
                 if tables.mode == "v1" else
                 f"the crashed kernel's VT-d tables (root table 0x{tables.root_address:x}, {tables.mode} mode)")
        for t in tables.devices:
            if not t.present:
                continue
            if t.passthrough:
                all_mem = ((0, end),)
                reach.append(DeviceReach(t.bdf, "passthrough", all_mem, all_mem, basis + ": pass-through, all of memory",
                                         t.bdf in risky, label.get(t.bdf, ""), _split_dumped(all_mem, dumped.ranges)))
                continue
            if not t.extents and t.bdf not in risky:
                continue
            rs = merge((s, e) for s, e, _ in t.extents)
            ws = merge((s, e) for s, e, rw in t.extents if rw & 2)
            reach.append(DeviceReach(t.bdf, "mapped", rs, ws, basis, t.bdf in risky, label.get(t.bdf, ""),
                                     _split_dumped(rs, dumped.ranges)))
        if tables.unreadable:
            notes.append(f"{len(tables.unreadable)} table page(s) unreadable: the reach drawn may be smaller than the "
                         "real one")
    else:
        first = _first_kernel(inp)
        vtd = report.scenario.first.vtd
        for bdf in sorted(set(risky) | set(_unconfined(first))):
            group = _group_type(first, bdf)
            if vtd is False:
                all_mem = ((0, end),)
                reach.append(DeviceReach(bdf, "untranslated", all_mem, all_mem,
                                         "no DMA translation in the first kernel: all of memory", bdf in risky,
                                         label.get(bdf, ""), _split_dumped(all_mem, dumped.ranges)))
            elif group == "identity":
                all_mem = ((0, end),)
                reach.append(DeviceReach(bdf, "passthrough", all_mem, all_mem,
                                         "IOMMU group type identity (pass-through): all of memory", bdf in risky,
                                         label.get(bdf, ""), _split_dumped(all_mem, dumped.ranges)))
            else:
                why = ("translated by the IOMMU: the pages it may reach are in the crashed kernel's page tables, "
                       "read from the vmcore (triage --offline --vmcore)")
                if vtd is None:
                    why = "not known: whether the first kernel translated DMA is not known"
                reach.append(DeviceReach(bdf, "unknown", None, None, why, bdf in risky, label.get(bdf, "")))
    if layout is not None:
        notes.extend(layout.warnings)
    return MemoryMap(ram, ck, dumped, tuple(reach), end, tuple(notes), crash_facts(layout))


def _group_type(system: Optional[System], bdf: str) -> Optional[str]:
    if system is None:
        return None
    d = system.devices.get(bdf)
    if d is None or d.iommu_group is None:
        return None
    g = system.groups.get(d.iommu_group)
    return g.type if g is not None else None


def _unconfined(system: Optional[System]) -> List[str]:
    """Bus masters of the first kernel in a pass-through (identity) group: they reach all
    of memory whatever their driver."""
    if system is None:
        return []
    return [b for b, d in system.devices.items() if d.bus_master and _group_type(system, b) == "identity"]


def find_exposure_memory_map(ex: Exposure, layout: DumpLayout) -> MemoryMap:
    """The map of ``vmcore exposure``: the dump's RAM map and pages, the crashkernel range
    its log names, and each device's reach from the walked tables."""
    ram = (Layer("RAM", layout.ram, f"the RAM map of the dump {layout.path}") if layout.ram
           else Layer("RAM", None, f"not known: {layout.path} has no RAM map"))
    ck = (Layer("crashkernel", layout.crashkernel, layout.crashkernel_basis or layout.path) if layout.crashkernel
          else Layer("crashkernel", None, "not known: the crashed kernel's log in the dump has no crashkernel line"))
    dumped = _dumped(layout)
    end = _end(ram.ranges, ck.ranges, dumped.ranges, tuple((r.start, r.end) for r in ex.union)) or 1 << 32
    reach: List[DeviceReach] = []
    for d in ex.devices:
        if d.passthrough:
            all_mem = ((0, end),)
            reach.append(DeviceReach(d.bdf, "passthrough", all_mem, all_mem, "pass-through: all of memory",
                                     dumped=_split_dumped(all_mem, dumped.ranges)))
            continue
        if not d.ranges:
            continue
        rs = merge((r.start, r.end) for r in d.ranges)
        ws = merge((r.start, r.end) for r in d.ranges if r.write)
        reach.append(DeviceReach(d.bdf, "mapped", rs, ws, f"its page table (domain {d.domain_id})",
                                 dumped=_split_dumped(rs, dumped.ranges)))
    notes = list(layout.warnings)
    if ex.incomplete:
        notes.append("incomplete: some table pages were unreadable or a walk stopped at a limit; the exposure may be "
                     "larger")
    return MemoryMap(ram, ck, dumped, tuple(reach), end, tuple(notes), crash_facts(layout))
