"""Walk a crashed kernel's AMD-Vi device table and v1 page tables out of a dump.

The device table is an array of 256-bit DTEs indexed by requester ID (bus << 8 | devfn),
one per PCI segment, at the address of the Device Table Base register (MMIO 0000h).
Per DTE (formats/amdvi_tables.py): V/TV/Mode/IR/IW decide what DMA from that requester
ID gets (untranslated, blocked, pass-through, translated); a translated entry points to
a v1 page table of Mode levels (1-6), walked here into merged IOVA -> physical extents
with read/write rights, the same :class:`~kdumptool.analysis.vtd_walk.PageTableWalk`
and :class:`~kdumptool.analysis.vtd_walk.DeviceTranslation` records the VT-d walker
gives, so the exposure map and the renderers are shared.

v1 page-table rules (AMD IOMMU spec 2.2.3; Linux io_pgtable.c): an entry is present
when PR (bit 0) is set; NextLevel 0 is a leaf of the level's page size, 7 a leaf whose
size the address encodes (replicated over the entries it covers), 1..L-1 the level of
the next table, so levels may be skipped (the skipped IOVA bits must then be zero: the
child table covers only the low part of the entry's range); anything else is reported.
Rights are the AND of IR/IW down the path and the DTE's.

Bounded: the level count bounds the depth, a visited set stops shared or looped tables
being walked twice, unreadable pages become ``Unreadable`` and the walk goes on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from kdumptool.analysis.vtd_walk import (
    DeviceTranslation,
    Extent,
    FaultCheck,
    FaultEvent,
    IovaLookup,
    LookupStep,
    PageReader,
    PageTableWalk,
    PhysMemory,
    Unreadable,
    VtdTables,
    check_faults,
)
from kdumptool.errors import NotMapped
from kdumptool.formats.amdvi_tables import (
    DTE_SIZE,
    PAGE_MODE_7_LEVEL,
    PM_ADDR_MASK,
    Dte,
    dte_from_qwords,
    level_page_size,
    mode7_page_size,
)
from kdumptool.formats.klog import LogEvent, parse_log

_UNPACK_PAGE = struct.Struct("<512Q").unpack
MAX_EXTENTS = 1 << 20
MAX_TABLE_PAGES = 1 << 16
MAX_PROBLEMS = 64
DEV_TABLE_MAX = 2 << 20  # 65536 entries of 32 bytes: one PCI segment


@dataclass(frozen=True)
class AmdViTables:
    """A decoded device table: the devices that get anything but "blocked"."""

    base: int
    size: int
    segment: int
    devices: Tuple[DeviceTranslation, ...]
    dtes: Dict[int, Dte]  # requester ID -> DTE of every listed device
    domains: Tuple[PageTableWalk, ...]
    blocked: int  # entries with V=1 and no access (Linux's default for unused IDs)
    untranslated: Tuple[Tuple[int, int], ...]  # requester-ID runs with V=0 (not checked)
    invalid: int
    unreadable: Tuple[Unreadable, ...]
    problems: Tuple[str, ...]

    @property
    def entries(self) -> int:
        return self.size // DTE_SIZE

    def as_vtd_tables(self) -> VtdTables:
        """The shared record the exposure map and renderers take."""
        return VtdTables(self.base, "amd-vi", self.segment, (), self.devices, self.domains,
                         self.unreadable, self.problems)


def walk_v1(reader: PageReader, root: int, levels: int, dte_rw: int = 3,
            progress: Optional[Callable[[int], None]] = None) -> PageTableWalk:
    """Walk one v1 page table of ``levels`` levels from ``root`` into merged extents."""
    runs: List[List[int]] = []  # [iova, phys, size, rw]
    unreadable: List[Unreadable] = []
    problems: List[str] = []
    n4k = nlarge = pages = 0
    truncated = False
    visited: set = set()
    # explicit stack: (table paddr, level, iova base, rights so far)
    stack: List[Tuple[int, int, int, int]] = [(root & PM_ADDR_MASK, levels, 0, dte_rw)]

    def emit(iova: int, phys: int, size: int, rw: int) -> None:
        nonlocal truncated
        if runs:
            last = runs[-1]
            if last[0] + last[2] == iova and last[1] + last[2] == phys and last[3] == rw:
                last[2] += size
                return
        if len(runs) >= MAX_EXTENTS:
            truncated = True
            return
        runs.append([iova, phys, size, rw])

    def problem(text: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)

    while stack:
        paddr, level, base, rw_in = stack.pop()
        key = (paddr, level, base)
        if key in visited:
            problem(f"level-{level} table 0x{paddr:x} reached twice at IOVA 0x{base:x}: not walked again")
            continue
        visited.add(key)
        if len(visited) > MAX_TABLE_PAGES:
            unreadable.append(Unreadable(paddr, f"level-{level} page table",
                                         f"not read: more than {MAX_TABLE_PAGES} table pages"))
            continue
        try:
            data = reader.page(paddr)
        except NotMapped as err:
            unreadable.append(Unreadable(paddr, f"level-{level} page table", err.why))
            continue
        pages += 1
        if progress is not None:
            progress(1)
        qs = _UNPACK_PAGE(data)
        esize = level_page_size(level)
        children: List[Tuple[int, int, int, int]] = []
        for i, v in enumerate(qs):
            if not v & 1:
                continue
            rw = rw_in & ((1 if v >> 61 & 1 else 0) | (2 if v >> 62 & 1 else 0))
            iova = base + i * esize
            nl = (v >> 9) & 7
            addr = v & PM_ADDR_MASK
            if nl == 0:
                if rw:
                    emit(iova, addr, esize, rw)
                if level == 1:
                    n4k += 1
                else:
                    nlarge += 1
                continue
            if nl == PAGE_MODE_7_LEVEL:
                psize = mode7_page_size(v)
                if psize is None or psize < esize:
                    problem(f"level-{level} entry {i} of table 0x{paddr:x}: NextLevel 7 with no valid "
                            "page size: ignored")
                    continue
                if rw:
                    emit(iova, (addr & ~(psize - 1)) + (iova % psize), esize, rw)
                if level == 1:
                    n4k += 1
                else:
                    nlarge += 1
                continue
            if nl >= level:
                problem(f"level-{level} entry {i} of table 0x{paddr:x}: NextLevel {nl} does not "
                        "decrease: ignored (the IOMMU reports a page-table error)")
                continue
            children.append((addr, nl, iova, rw))
        # push in reverse so the lowest IOVA is walked first (extents come out sorted)
        stack.extend(reversed(children))
    extents = tuple(Extent(r[0], r[1], r[2], bool(r[3] & 1), bool(r[3] & 2)) for r in runs)
    if truncated:
        problem(f"more than {MAX_EXTENTS} extents: the rest counted, not listed")
    return PageTableWalk("amd-v1", root & PM_ADDR_MASK, levels, extents, n4k, nlarge, pages,
                         tuple(unreadable), tuple(problems), truncated)


def read_device_table(mem: Union[PhysMemory, PageReader], base: int, size: int) -> Tuple[List[Optional[bytes]], List[Unreadable]]:
    """The table's pages (None where unreadable)."""
    reader = mem if isinstance(mem, PageReader) else PageReader(mem)
    pages: List[Optional[bytes]] = []
    bad: List[Unreadable] = []
    for off in range(0, size, 4096):
        try:
            pages.append(reader.page(base + off))
        except NotMapped as err:
            pages.append(None)
            bad.append(Unreadable(base + off, "device table page", err.why))
    return pages, bad


def walk_device_table(mem: PhysMemory, base: int, size: int = DEV_TABLE_MAX, segment: int = 0,
                      progress: Optional[Callable[[int], None]] = None,
                      only: Optional[Iterable[int]] = None) -> AmdViTables:
    """Decode the device table at ``base`` (``size`` bytes) and walk every page table it
    points to (each once, however many devices share it)."""
    base &= PM_ADDR_MASK
    size = max(4096, min(size, DEV_TABLE_MAX))
    reader = mem if isinstance(mem, PageReader) else PageReader(mem)
    pages, unreadable = read_device_table(reader, base, size)
    wanted = set(only) if only is not None else None
    walks: Dict[Tuple[int, int, int], PageTableWalk] = {}
    devices: List[DeviceTranslation] = []
    dtes: Dict[int, Dte] = {}
    blocked = invalid = 0
    untranslated: List[List[int]] = []
    problems: List[str] = []
    for pi, page in enumerate(pages):
        if page is None:
            continue
        qs = _UNPACK_PAGE(page)
        for j in range(128):
            devid = pi * 128 + j
            if wanted is not None and devid not in wanted:
                continue
            q0 = qs[4 * j]
            if q0 & 1 and not q0 & (3 << 61) and (not q0 & 2 or not (q0 >> 9) & 7):
                blocked += 1  # the fast path for Linux's default entry: V, no access
                continue
            q = qs[4 * j : 4 * j + 4]
            if not q0 & 1:
                if untranslated and untranslated[-1][1] == devid - 1:
                    untranslated[-1][1] = devid
                else:
                    untranslated.append([devid, devid])
                continue
            d = dte_from_qwords(*q)
            kind = d.translation
            if kind == "blocked":
                blocked += 1
                continue
            paddr = base + devid * DTE_SIZE
            bus, devfn = devid >> 8, devid & 0xFF
            dprob: List[str] = []
            if d.reserved_bits:
                dprob.append(f"reserved DTE bits set (0x{d.reserved_bits:x}): the IOMMU reports "
                             "ILLEGAL_DEV_TABLE_ENTRY")
            walk = None
            levels = None
            if kind == "invalid":
                invalid += 1
                dprob.append("Mode 7 is reserved: the IOMMU reports ILLEGAL_DEV_TABLE_ENTRY")
            elif kind == "translated":
                levels = d.mode
                rw = (1 if d.ir else 0) | (2 if d.iw else 0)
                wkey = (d.pt_root, levels, rw)
                walk = walks.get(wkey)
                if walk is None:
                    walk = walks[wkey] = walk_v1(reader, d.pt_root, levels, rw, progress)
                if not rw:
                    dprob.append("DTE has neither IR nor IW: every DMA is refused despite the page table")
            not_walked: Tuple[str, ...] = ()
            if d.gv:
                # GV=1: DMA with a PASID is translated by the guest (v2) tables of the GCR3
                # table (spec 2.2.2, "Guest Translation"); not decoded here: UNKNOWN, said
                not_walked = (f"UNKNOWN: guest translation (GV=1, GLX {d.glx}, GIoV={int(d.giov)}): the GCR3 "
                              f"table at 0x{d.gcr3:x} and its v2 page tables are not walked, so DMA with a "
                              "PASID may reach memory not listed here",)
            devices.append(DeviceTranslation(
                segment=segment, bus=bus, devfn=devfn, context_paddr=paddr, present=True,
                fpd=d.sa, translation_type=kind,
                address_width=min(64, 12 + 9 * levels) if levels else None, aw=d.mode,
                levels=levels, domain_id=d.domain_id, pt_root=d.pt_root if kind == "translated" else None,
                walk=walk, problems=tuple(dprob), not_walked=not_walked))
            dtes[devid] = d
    if not devices and not blocked and not untranslated and not unreadable:
        problems.append("no DTE decoded")
    return AmdViTables(base, size, segment, tuple(devices), dtes, tuple(walks.values()), blocked,
                       tuple((a, b) for a, b in untranslated), invalid, tuple(unreadable), tuple(problems))


# --- one IOVA, and the kdump kernel's IO_PAGE_FAULTs, against the crashed kernel's tables -----

def lookup_iova_amd(mem: PhysMemory, dev_table: int, devid: int, iova: int,
                    size: int = DEV_TABLE_MAX) -> IovaLookup:
    """Translate one IOVA for one requester ID through the device table at ``dev_table``
    (``size`` bytes) and the DTE's v1 page table, keeping every entry read on the way
    (the shape :func:`~kdumptool.analysis.vtd_walk.lookup_iova` gives for VT-d: mode
    ``amd-v1``, steps "device table entry" and "pte").

    The hardware's rules (AMD IOMMU spec 2.2.2-2.2.3): V=0 is not checked (the address
    goes out untranslated); no translation (TV=0 or Mode 0) takes IR/IW from the DTE;
    Mode 1-6 is the level count: IOVA bits above it must be zero, NextLevel 0 is a leaf
    of the level's page size, 7 a leaf whose size the address encodes, 1..L-1 the next
    level (the skipped IOVA bits must be zero); rights are the AND of IR/IW down the path."""
    reader = mem if isinstance(mem, PageReader) else PageReader(mem)
    dev_table &= PM_ADDR_MASK
    bus, devfn = devid >> 8, devid & 0xFF
    steps: List[LookupStep] = []

    def done(reason: Optional[str], phys: Optional[int] = None, psize: Optional[int] = None,
             rw: int = 0) -> IovaLookup:
        return IovaLookup(dev_table, "amd-v1", bus, devfn, iova, tuple(steps), phys, psize,
                          bool(rw & 1), bool(rw & 2), reason)

    read = reader.qwords

    if not 0 <= devid <= 0xFFFF or devid * DTE_SIZE >= size:
        return done(f"requester ID {devid:04x} is beyond the device table ({size // DTE_SIZE} entries)")
    dp = dev_table + devid * DTE_SIZE
    dv = read(dp, 4)
    if dv is None:
        return done(f"device table page 0x{dp & ~0xFFF:x} is not in the dump")
    steps.append(LookupStep("device table entry", dp, dv))
    d = dte_from_qwords(*dv)
    kind = d.translation
    dte_rw = (1 if d.ir else 0) | (2 if d.iw else 0)
    if kind == "untranslated":
        return done(None, iova, None, 3)  # V=0: DMA is not checked at all
    if kind == "blocked":
        return done("the DTE blocks DMA (V=1, no translation, neither IR nor IW)")
    if kind == "invalid":
        return done("DTE Mode 7 is reserved (ILLEGAL_DEV_TABLE_ENTRY)")
    if kind == "pass-through":
        return done(None, iova, None, dte_rw)
    level = d.mode
    if level < 6 and iova >> (12 + 9 * level):
        return done(f"IOVA above the {level}-level table's {12 + 9 * level}-bit range")
    table, rights = d.pt_root, dte_rw
    for _ in range(7):  # at most 6 levels; the bound stops a malformed chain
        shift = 12 + 9 * (level - 1)
        ep = table + ((iova >> shift) & 0x1FF) * 8
        ev = read(ep, 1)
        if ev is None:
            return done(f"level-{level} page table 0x{table:x} is not in the dump")
        steps.append(LookupStep("pte", ep, ev, level))
        v = ev[0]
        if not v & 1:
            return done(f"level-{level} entry not present")
        rights &= (1 if v >> 61 & 1 else 0) | (2 if v >> 62 & 1 else 0)
        nl = (v >> 9) & 7
        if nl == 0 or nl == PAGE_MODE_7_LEVEL:
            psize = level_page_size(level) if nl == 0 else mode7_page_size(v)
            if psize is None or psize < level_page_size(level):
                return done(f"level-{level} entry: NextLevel 7 with no valid page size")
            return done(None, (v & PM_ADDR_MASK & ~(psize - 1)) + (iova & (psize - 1)), psize, rights)
        if nl >= level:
            return done(f"level-{level} entry: NextLevel {nl} does not decrease (page-table error)")
        if (iova & (level_page_size(level) - 1)) >> (12 + 9 * nl):
            return done(f"level-{level} entry skips to level {nl}: the skipped IOVA bits are not zero")
        table, level = v & PM_ADDR_MASK, nl
    return done("walk ended without a leaf")  # pragma: no cover - levels strictly decrease


def amd_fault_events(events: Iterable[LogEvent]) -> List[FaultEvent]:
    """The IO_PAGE_FAULT events (device, address, access) among the kernel-log parser's
    events: the AMD-Vi faults a device's DMA raises (interrupt-request faults, flag I,
    are not DMA to memory and are left out)."""
    out = []
    for ev in events:
        if ev.kind != "amd_vi_fault" or ev.bdf is None or ev.address is None:
            continue
        flags = ev.details.get("flags")
        if ev.details.get("event") != "IO_PAGE_FAULT" or (isinstance(flags, int) and flags & 0x008):
            continue
        out.append(FaultEvent(ev.bdf, ev.address, ev.access, ev.line, ev.reason))
    return out


def amd_fault_events_in_lines(lines: Iterable[str]) -> List[FaultEvent]:
    """The IO_PAGE_FAULTs of a kernel log's lines (decoded by the kernel-log parser)."""
    return amd_fault_events(parse_log(lines))


def check_faults_amd(mem: PhysMemory, dev_table: int, events: Sequence[FaultEvent], segment: int = 0,
                     size: int = DEV_TABLE_MAX, unchecked: Optional[List[int]] = None) -> List[FaultCheck]:
    """VT-d's one fault lookup (:func:`~kdumptool.analysis.vtd_walk.check_faults`) with
    the AMD-Vi device table and v1 tables as the table to look in."""

    def lookup(bus: int, devfn: int, iova: int) -> IovaLookup:
        return lookup_iova_amd(mem, dev_table, (bus << 8) | devfn, iova, size)

    return check_faults(mem, dev_table, "amd-v1", events, segment, unchecked, lookup=lookup)
