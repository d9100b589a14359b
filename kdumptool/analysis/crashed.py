"""The crashed kernel's VT-d tables, decoded from its vmcore: which root table it used
(from the RTADDR a record or a saved snapshot kept, one left behind in the registers, or a
scan of the dump), the context entries and mappings under it, and the kdump kernel's DMA
faults looked up in them.

Given records only (:class:`kdumptool.model.triage.CrashedKernel` with the open dump as a
memory reader); nothing here opens a file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from kdumptool.analysis.exposure import merge_ranges
from kdumptool.analysis.rtscan import (
    RootTableCandidate,
    ScanResult,
    check_root_table,
    find_root_tables,
)
from kdumptool.analysis.scenario import DMA_GSTS_RTPS, DMA_GSTS_TES
from kdumptool.analysis.vtd_walk import FaultEvent, check_faults, walk_root_table
from kdumptool.errors import KdumptoolError, SourceMissing, UnreadablePages
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.formats.vtd_tables import decode_rtaddr
from kdumptool.model.log import LogMarkers
from kdumptool.model.roottable import RootTable, RtaddrCandidate
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


@dataclass(frozen=True)
class Resolution:
    """The root tables picked (one, or one per unit), what was tried and why it was not
    used, and the scan's result when it came to a scan."""

    roots: Tuple[RootTable, ...]
    warnings: Tuple[str, ...]
    scan: Optional[ScanResult] = None
    #: those of ``warnings`` that say a root table the registers name could not be read
    unread: Tuple[str, ...] = ()


def _check(
    dump: DumpMemory, cand: RtaddrCandidate, mode: str, limit: Optional[int], warnings: List[str],
    use_unreadable: bool = True, unread: Optional[List[str]] = None,
) -> Optional[RootTable]:
    """The candidate as a root table, when the page it names validates as one (in the
    mode RTADDR's TTM bits give; both modes for a legacy/bare value unless ``mode``
    says); None (and why, in ``warnings``) when it does not."""
    what = cand.detail
    rt = decode_rtaddr(cand.value)
    if rt.ttm == 3:
        warnings.append(f"{what}: RTADDR 0x{cand.value:x} has TTM=11 (abort DMA mode): no tables")
        return None
    modes = [mode] if mode != "auto" else (["scalable"] if rt.ttm == 1 else ["legacy", "scalable"])
    cands = [check_root_table(dump, rt.address, m, limit) for m in modes]
    cands.sort(key=lambda c: (not c.valid, -c.score))
    best = cands[0]
    unreadable = [c for c in cands if c.unreadable]
    if use_unreadable and len(unreadable) == len(cands):
        # Not garbage but unknown: the page the register names is not in the dump (or does
        # not decompress). The register is the evidence; the walk reports the page as
        # unreadable and the result as incomplete.
        note = (f"{what}: root table 0x{rt.address:x} could not be read or checked ({unreadable[0].unreadable}): used "
                "unchecked, as the registers give it")
        warnings.append(note)
        if unread is not None:
            unread.append(note)
        tmode = mode if mode != "auto" else ("scalable" if rt.ttm == 1 else "legacy")
        return RootTable(rt.address, tmode, cand.source, cand.detail, cand.unit, cand.segment)
    if best.valid or cand.trusted:
        if not best.valid:
            warnings.append(f"{what}: 0x{rt.address:x} does not look like a {best.mode} root table: "
                            + "; ".join(best.violations))
        return RootTable(rt.address, best.mode, cand.source, cand.detail, cand.unit, cand.segment)
    if not best.violations and best.unreadable:
        warnings.append(f"{what}: root table 0x{rt.address:x} could not be checked ({best.unreadable}): "
                        "trying the next source")
        return None
    warnings.append(f"{what}: 0x{rt.address:x} does not look like a root table ("
                    + "; ".join(best.violations) + "): trying the next source")
    return None


def resolve_root_tables(
    dump: DumpMemory,
    groups: Iterable[Sequence[RtaddrCandidate]],
    mode: str = "auto",
    all_units: bool = False,
    scan: bool = True,
    progress: Optional[Callable[[int], None]] = None,
    warnings: Optional[List[str]] = None,
    use_unreadable: bool = True,
) -> Resolution:
    """The one root-table resolver (triage, record, ``vmcore iommu/exposure/scan``).

    ``groups`` are the candidate sources in the callers' fixed order (argument, saved
    snapshot or record, registers), read lazily (a source that is not needed is never
    read); every candidate is checked with :func:`check_root_table` against the dump,
    and one that does not validate is reported and the next is tried. The first source
    that yields a valid table wins (every valid unit of it with ``all_units``). Failing
    all, a scan of the dump (``scan``) ranks candidates; no root at all is an empty
    ``roots``. ``warnings`` (appended to) says what was tried and why it was not used.
    A candidate whose page is not in the dump cannot be checked: with ``use_unreadable``
    (triage) it is used as the registers give it, and the walk reports the result as
    incomplete; without (``vmcore iommu``), the next source is tried.
    """
    if mode not in ("auto", "legacy", "scalable"):
        raise ValueError(f"mode {mode!r}")
    warnings = [] if warnings is None else warnings
    unread: List[str] = []
    limit = max((e for _, e in dump.iter_dumped_ranges()), default=None)
    for group in groups:
        found: List[RootTable] = []
        for cand in group:
            got = _check(dump, cand, mode, limit, warnings, use_unreadable, unread)
            if got is not None:
                found.append(got)
                if not all_units:
                    break
        if found:
            return Resolution(tuple(found), tuple(warnings), None, tuple(unread))
    if not scan:
        return Resolution((), tuple(warnings), None, tuple(unread))
    res = find_root_tables(dump, list(dump.iter_dumped_ranges()), progress=progress)
    valid: List[RootTableCandidate] = []
    for c in res.candidates:
        if c.valid and c.address not in {v.address for v in valid}:
            valid.append(c)
    if len(valid) > 1 and not all_units:
        warnings.append("the scan found other valid root tables: " + ", ".join(f"0x{c.address:x}" for c in valid[1:])
                        + " (--all-units to decode every one)")
    picked = valid if all_units else valid[:1]
    roots = tuple(RootTable(c.address, c.mode, "scan", f"scan candidate {i + 1} of {len(valid)} valid",
                            f"dmar{i}" if all_units and len(valid) > 1 else "dmar")
                  for i, c in enumerate(picked))
    return Resolution(roots, tuple(warnings), res, tuple(unread))


def no_root_table(what: str, res: Resolution) -> KdumptoolError:
    """The error for a resolution that found nothing: never a plain "none" when pages of
    the dump could not be read."""
    why = "".join(f"; {w}" for w in res.warnings)
    scan = res.scan
    if scan is not None and scan.unreadable_pages:
        return UnreadablePages(f"{what}: no valid VT-d root table found: {scan.unreadable_pages:,} of "
                               f"{scan.pages_scanned:,} pages could not be read or decompressed{why}")
    pages = scan.pages_scanned if scan is not None else 0
    return SourceMissing(f"{what}: no root-table address given or saved, and the scan of "
                         f"{pages} pages found no valid VT-d root table{why}")


def triage_candidates(
    first_sys: Optional[System], current: Optional[System], recorded: Optional[RecordedRtaddr] = None
) -> List[List[RtaddrCandidate]]:
    """Where triage looks for the crashed kernel's root table, in this order: the RTADDR
    ``kdumptool record`` kept at boot, the saved first-kernel snapshot's registers (with
    translation on), and, inside the kdump kernel with translation off, RTADDR left
    behind by the crashed kernel (RTPS set, TES clear: this kernel never wrote it)."""
    rec: List[RtaddrCandidate] = []
    snap: List[RtaddrCandidate] = []
    left: List[RtaddrCandidate] = []
    if recorded is not None:
        for name, rt in sorted(recorded.values.items()):
            if rt & ~0xFFF:
                rec.append(RtaddrCandidate(name, rt, "record",
                                           f"{name} RTADDR=0x{rt:x} recorded at boot ({recorded.where})"))
    if first_sys is not None:
        for u in first_sys.units:
            regs = u.registers
            if regs is not None and regs.get("RTADDR") and (regs.get("GSTS") or 0) & DMA_GSTS_TES:
                rt = regs.get("RTADDR") or 0
                snap.append(RtaddrCandidate(u.name, rt, "snapshot",
                                           f"{u.name} RTADDR=0x{rt:x} of the saved first-kernel snapshot", u.segment))
    if current is not None and current.in_kdump_kernel:
        for u in current.units:
            regs = u.registers
            if regs is None:
                continue
            gsts, rt = regs.get("GSTS") or 0, regs.get("RTADDR") or 0
            if rt and not gsts & DMA_GSTS_TES and gsts & DMA_GSTS_RTPS:
                left.append(RtaddrCandidate(
                    u.name, rt, "left-behind",
                    f"{u.name} RTADDR=0x{rt:x} left by the crashed kernel (translation is off in this kernel)",
                    u.segment))
    return [rec, snap, left]


def fault_events(log: Optional[LogMarkers], limit: int = 64) -> List[FaultEvent]:
    """The DMA faults of a kernel log's markers, as the fault lookup takes them."""
    out: List[FaultEvent] = []
    for m in (log.all("fault") if log is not None else [])[:limit]:
        b, a = m.get("bdf") or "", m.get("addr")
        if m.get("kind") not in (None, "dma_fault") or a is None:
            continue
        try:
            full = b if len(b) > 8 else f"0000:{b}"
            int(full[0:4], 16), int(full[5:7], 16), int(full[8:10], 16), int(full[11:], 16)
            out.append(FaultEvent(full, int(a, 16), m.get("access"), m.evidence.line or 0, m.get("why")))
        except ValueError:
            continue
    return out


def decode_tables(
    dump: DumpMemory, first_sys: Optional[System], current: Optional[System], warnings: List[str],
    current_log: Optional[LogMarkers] = None, recorded: Optional[RecordedRtaddr] = None,
    scan: bool = True, unread: Optional[List[str]] = None, moot_if_off: Optional[List[str]] = None,
) -> Optional[CrashedTables]:
    """The crashed kernel's tables: the root table (:func:`resolve_root_tables` over
    :func:`triage_candidates`), every context entry, and the kdump kernel's logged faults
    looked up in them (:func:`check_faults`: same PCI segment and access only).
    ``scan``: look for the root table in the whole dump when no register names one.
    ``warnings`` is appended to; ``unread`` gets those of them that say evidence could not be
    read, ``moot_if_off`` those that do not matter when the crashed kernel had translation off."""
    unread = [] if unread is None else unread
    moot_if_off = [] if moot_if_off is None else moot_if_off
    res = resolve_root_tables(dump, triage_candidates(first_sys, current, recorded), scan=scan)
    warnings.extend(res.warnings)
    unread.extend(res.unread)
    if not res.roots:
        if not scan:
            note = ("the crashed kernel's VT-d root table was not located: no register names it and the "
                    "whole-memory scan is skipped inside the kdump kernel (`kdumptool vmcore iommu` scans)")
            warnings.append(note)
            moot_if_off.append(note)
        elif res.scan is not None and res.scan.unreadable_pages:
            note = (f"no VT-d root table found among the readable pages of the vmcore: "
                    f"{res.scan.unreadable_pages} of {res.scan.pages_scanned} pages could not be read or "
                    "decompressed")
            warnings.append(note)
            unread.append(note)
        else:
            warnings.append("no VT-d root table found in the vmcore (translation off in the crashed kernel, or the "
                            "table pages were filtered out)")
        return None
    root = res.roots[0]
    how = root.detail
    if root.source == "scan" and res.scan is not None:
        best = res.scan.best
        how = (f"scan of the vmcore ({res.scan.pages_scanned} pages, best of {len(res.scan.candidates)} candidates, "
               f"score {best.score if best is not None else 0})")
    addr, mode = root.address, root.mode
    vt = walk_root_table(dump, addr, mode, segment=root.segment)
    devs = tuple(
        TableDevice(
            d.bdf, d.present, d.translation_type, d.domain_id,
            d.walk.mapped_4k_pages if d.walk else 0, d.walk.mapped_large_pages if d.walk else 0,
            d.passthrough or any(p.translation_type == "pass-through" for p in d.other_pasids),
            tuple(merge_ranges((x.phys, x.phys + x.size, (1 if x.read else 0) | (2 if x.write else 0))
                               for w in d.walks for x in w.extents)),
        )
        for d in vt.devices
    )
    lookups = []
    seen = set()
    for fc in check_faults(dump, addr, mode, fault_events(current_log), segment=root.segment):
        if fc.lookup is None or (fc.bdf, fc.address) in seen:
            continue  # another segment's device: not this table's
        seen.add((fc.bdf, fc.address))
        lk = fc.lookup
        lookups.append(FaultLookup(fc.bdf, fc.address, lk.phys, lk.read, lk.write, lk.reason))
    unreadable = tuple(f"{u.what} at 0x{u.paddr:x}: {u.why}"
                       for u in vt.unreadable + tuple(x for d in vt.devices for x in d.all_unreadable))
    return CrashedTables(addr, mode, how, devs, tuple(vt.problems), tuple(lookups), unreadable)


def amdvi_dev_table_of(inp: TriageInput) -> Optional[Tuple[int, int, str]]:
    """(base, size, where) of the crashed kernel's AMD-Vi device table from the registers
    triage has: a first-kernel snapshot's (offline), or, inside a kdump kernel booted with
    amd_iommu=off (IommuEn still set by the crashed kernel), the live register. None
    otherwise (a kdump kernel that set AMD-Vi up runs on its own copy)."""
    from kdumptool.errors import DecodeError
    from kdumptool.formats.amdvi_regs import decode_amdvi_registers

    if inp.system.in_kdump_kernel and not any(a in ("amd_iommu=off", "iommu=off")
                                               for a in (inp.system.cmdline or "").split()):
        return None
    for r in inp.amdvi_registers:
        if r.values is None or "DEV_TABLE" not in r.values or "CONTROL" not in r.values:
            continue
        try:
            regs = decode_amdvi_registers(r.values, r.where)
        except DecodeError:
            continue
        if regs.iommu_en and regs.dev_table_base:
            return (regs.dev_table_base, regs.dev_table_size,
                    f"{r.where} {r.name} DEV_TABLE=0x{r.values['DEV_TABLE']:x}")
    return None


def decode_amdvi_tables(dump: DumpMemory, inp: TriageInput, warnings: List[str]) -> Optional[CrashedTables]:
    """The crashed kernel's AMD-Vi device table and v1 page tables (from the saved Device
    Table Base register, else a scan of the dump), as the same CrashedTables record as
    VT-d's (mode ``v1``), with the IO_PAGE_FAULTs of this kernel's log looked up in them."""
    from kdumptool.analysis.amdscan import find_device_tables
    from kdumptool.analysis.amdvi_walk import check_faults_amd, walk_device_table

    got = amdvi_dev_table_of(inp)
    if got is not None:
        base, size, how = got
    elif inp.crashed is not None and inp.crashed.scan_tables:
        res = find_device_tables(dump, list(dump.iter_dumped_ranges()))
        best = res.best
        if best is None:
            warnings.append("no AMD-Vi device table named by a saved register, and the scan of the vmcore found none"
                            + (f" ({res.unreadable_pages} page(s) below 4 GiB unreadable)" if res.unreadable_pages
                               else ""))
            return None
        base, size = best.address, best.size
        others = sum(1 for c in res.candidates[1:] if c.valid_table)
        how = (f"scan of the vmcore ({best.translated + best.passthrough} translating entries, score {best.score}"
               + (f"; {others} other valid candidate(s)" if others else "") + ")")
    else:
        warnings.append("the crashed kernel's AMD-Vi device table was not located: no saved register names it")
        return None
    t = walk_device_table(dump, base, size)
    devs = tuple(
        TableDevice(d.bdf, d.present, d.translation_type, d.domain_id,
                    d.walk.mapped_4k_pages if d.walk else 0, d.walk.mapped_large_pages if d.walk else 0,
                    passthrough=d.translation_type == "pass-through", not_walked=bool(d.not_walked))
        for d in t.devices)
    events = [FaultEvent(m.get("bdf") or "", int(m.get("addr") or "0", 16), m.get("access"), m.evidence.line or 0,
                         m.get("why")) for m in (inp.log.all("fault") if inp.log is not None else [])
              if m.get("kind") == "amd_vi_fault" and m.get("addr") and (m.get("event") or "IO_PAGE_FAULT") == "IO_PAGE_FAULT"]
    lookups = []
    for fc in check_faults_amd(dump, base, events, size=size):
        if fc.lookup is not None:
            lk = fc.lookup
            lookups.append(FaultLookup(fc.bdf, fc.address, lk.phys, lk.read, lk.write, lk.reason))
    unreadable = tuple(f"{u.what} at 0x{u.paddr:x}: {u.why}"
                       for u in t.unreadable + tuple(x for d in t.devices for x in d.all_unreadable))
    # guest (GCR3) tables are named, not walked: said, never counted as "no pages"
    guest = tuple(f"{d.bdf}: {w}" for d in t.devices for w in d.not_walked)
    return CrashedTables(base, "v1", how, devs, t.problems + guest, tuple(lookups), unreadable)


def with_crashed_tables(inp: TriageInput) -> TriageInput:
    """``inp`` with the crashed kernel's tables decoded from its open vmcore (when there is
    one and the tables are not decoded yet); what went wrong is added to its warnings."""
    c = inp.crashed
    if c is None or c.memory is None or c.tables is not None:
        return inp
    warnings: List[str] = []
    unread: List[str] = []
    moot: List[str] = []
    tables = None
    amd = inp.amd_iommu is not None and not inp.system.units
    try:
        if amd:
            tables = decode_amdvi_tables(c.memory, inp, warnings)
        else:
            tables = decode_tables(c.memory, c.first_system, inp.system, warnings, inp.log, c.recorded,
                                   c.scan_tables, unread, moot)
    except KdumptoolError as exc:
        warnings.append(f"{c.vmcore}: {'AMD-Vi' if amd else 'VT-d'} tables not decoded: {exc}")
        unread.append(warnings[-1])
    crashed: CrashedKernel = replace(c, tables=tables, warnings=c.warnings + tuple(warnings),
                                     unread=c.unread + tuple(unread), moot_if_off=c.moot_if_off + tuple(moot))
    return replace(inp, crashed=crashed)
