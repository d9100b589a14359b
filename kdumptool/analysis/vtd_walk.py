"""Walk a crashed kernel's VT-d translation tables from the root-table address.

Starting at a root table (legacy or scalable mode, VT-d spec rev. 4.1 chapter 3 and 9),
this decodes, per requester ID: the context entry (and in scalable mode the PASID
directory and the RID_PASID entry of the PASID table), the translation type, address
width, domain id and page-table root; then walks the page table (second-stage, or
first-stage for PGTT=1) into merged IOVA -> physical extents with R/W, counting 4 KiB and
large pages. Devices that share a page table (one domain) are walked once.

Memory is anything with ``read(paddr, size) -> bytes`` raising ``NotMapped`` (a Dump, or
the in-memory builder of the tests). A table page that cannot be read becomes an
``Unreadable(paddr, what, why)`` record and the walk goes on (drgn's FaultError idea).
Every walk has a depth bound (the level count) and a visited set (looped or shared
tables are reported, not followed twice).

The page-table walk is the hot path: it unpacks a whole 4 KiB table with one
``struct.unpack`` and skips empty entries without building records; the entry layouts
are the construct specs in ``kdumptool.formats.vtd_tables`` (cross-checked by a test).
"""

from __future__ import annotations

import gc
import struct
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

from kdumptool.analysis.pagereader import PageReader
from kdumptool.errors import NotMapped
from kdumptool.formats.frozen import dataclass, field  # records made without dataclasses: start-up
from kdumptool.formats.klog import LogEvent, parse_log
from kdumptool.formats.vtd_tables import (
    ADDR_MASK,
    AW_BITS,
    AW_LEVELS,
    CONTEXT_ENTRY_SIZE,
    CONTEXT_TT_NAMES,
    PASID_DIR_ENTRY_SIZE,
    PASID_ENTRY_SIZE,
    PGTT_NAMES,
    ROOT_ENTRY_SIZE,
    SM_CONTEXT_ENTRY_SIZE,
    VTD_PAGE_MASK,
    VTD_PAGE_SIZE,
    context_entry_from_qwords,
    pasid_dir_entry_from_qword,
    pasid_entry_from_qwords,
    root_entry_from_qwords,
    sm_context_entry_from_qwords,
    sm_root_entry_from_qwords,
)

_UNPACK_PAGE = struct.Struct("<512Q").unpack
_UNPACK_2Q = struct.Struct("<2Q").unpack_from
_UNPACK_4Q = struct.Struct("<4Q").unpack_from
_UNPACK_8Q = struct.Struct("<8Q").unpack_from
_UNPACK_Q = struct.Struct("<Q").unpack_from
MAX_LEVELS = 6


class PhysMemory(Protocol):
    def read(self, paddr: int, size: int) -> bytes: ...


ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Unreadable:
    """A table page the walk needed but the memory source does not hold."""

    paddr: int
    what: str
    why: str

    def to_json(self) -> dict:
        return {"paddr": self.paddr, "what": self.what, "why": self.why}


class Extent(NamedTuple):
    """A run of IOVA pages mapped to contiguous physical memory with the same rights.

    A NamedTuple rather than a frozen dataclass: a big page table has a million of these
    and a tuple is built several times faster."""

    iova: int
    phys: int
    size: int
    read: bool
    write: bool

    def to_json(self) -> dict:
        return {"iova": self.iova, "phys": self.phys, "size": self.size, "read": self.read, "write": self.write}


@dataclass(frozen=True)
class PageTableWalk:
    """One page table (a domain), walked once however many devices use it."""

    kind: str  # "second-level" or "first-level"
    pt_root: int
    levels: int
    extents: Tuple[Extent, ...]
    mapped_4k_pages: int
    mapped_large_pages: int
    table_pages: int
    unreadable: Tuple[Unreadable, ...]
    problems: Tuple[str, ...]
    truncated: bool = False  # extents past MAX_EXTENTS not listed (counts still whole)


@dataclass(frozen=True)
class PasidTranslation:
    """A present PASID table entry of a scalable-mode device other than its RID_PASID."""

    pasid: int
    entry_paddr: int
    translation_type: str
    address_width: Optional[int]
    levels: Optional[int]
    domain_id: int
    pt_root: Optional[int]
    walk: Optional[PageTableWalk]
    problems: Tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceTranslation:
    """What the tables say one requester ID (bus, devfn) gets."""

    segment: int
    bus: int
    devfn: int
    context_paddr: int
    present: bool
    fpd: bool
    translation_type: str
    address_width: Optional[int]  # bits (39, 48, 57)
    aw: Optional[int]  # raw AW field
    levels: Optional[int]
    domain_id: Optional[int]
    pt_root: Optional[int]
    walk: Optional[PageTableWalk]
    pasid: Optional[int] = None  # scalable mode: RID_PASID
    pasid_dir: Optional[int] = None
    pasid_entry_paddr: Optional[int] = None
    unreadable: Tuple[Unreadable, ...] = ()
    problems: Tuple[str, ...] = ()
    other_pasids: Tuple[PasidTranslation, ...] = ()
    pasids_truncated: bool = False  # PASID directory past MAX_PASID_TABLES/MAX_PASIDS not decoded
    #: tables the entry names that were not decoded (AMD-Vi GV: the GCR3 guest tables), each
    #: a sentence: what the device reaches through them is UNKNOWN (exposure: incomplete)
    not_walked: Tuple[str, ...] = ()

    @property
    def bdf(self) -> str:
        return f"{self.segment:04x}:{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7:x}"

    @property
    def passthrough(self) -> bool:
        return self.present and self.translation_type == "pass-through"

    @property
    def all_unreadable(self) -> Tuple[Unreadable, ...]:
        out = self.unreadable + (self.walk.unreadable if self.walk else ())
        for p in self.other_pasids:
            out += p.walk.unreadable if p.walk else ()
        return out

    @property
    def walks(self) -> Tuple[PageTableWalk, ...]:
        """Every page table this device can use: RID_PASID's and other PASIDs'."""
        out = (self.walk,) if self.walk else ()
        return out + tuple(p.walk for p in self.other_pasids if p.walk)


@dataclass(frozen=True)
class BusEntry:
    bus: int
    ctp: Optional[int]  # legacy, or scalable lower table
    uctp: Optional[int] = None  # scalable upper table


@dataclass(frozen=True)
class VtdTables:
    root_address: int
    mode: str  # "legacy" or "scalable"
    segment: int
    buses: Tuple[BusEntry, ...]
    devices: Tuple[DeviceTranslation, ...]
    domains: Tuple[PageTableWalk, ...]
    unreadable: Tuple[Unreadable, ...]  # root and context table pages
    problems: Tuple[str, ...]
    pages_read: frozenset = field(default=frozenset(), compare=False)

    def device(self, bus: int, devfn: int) -> Optional[DeviceTranslation]:
        for d in self.devices:
            if d.bus == bus and d.devfn == devfn:
                return d
        return None


# --- page-table walk (hot path) ------------------------------------------------------------

# Bounds of one root table's walk (all its domains together), each named in the output
# when hit: extents listed (pages past it are still counted), leaf runs kept in the
# table-page memo, distinct table pages read, problem lines kept per page table.
MAX_EXTENTS = 1 << 18
MAX_MEMO_RUNS = 1 << 20
MAX_TABLE_PAGES = 1 << 18
MAX_PROBLEMS = 64
# PASID tables and PASID entries decoded per scalable-mode device (besides RID_PASID).
MAX_PASID_TABLES = 256
MAX_PASIDS = 4096


class _Sub:
    """One table page decoded at one level (a subtree), IOVAs relative to its base.

    Leaf tables keep their merged runs in arrays (``runs``); upper tables keep their items
    in IOVA order: ``(rel_iova, phys, size, rw)`` for a large page, ``(rel_iova, _Sub, rw)``
    for a next-level table. Counts include every subtree, once per reference, as the
    hardware would translate them."""

    __slots__ = ("paddr", "level", "runs", "items", "n4k", "nlarge", "missing", "problems", "dropped")

    def __init__(self, paddr: int, level: int) -> None:
        self.paddr = paddr
        self.level = level
        self.runs: Optional[Tuple[Any, Any, Any, bytes]] = None
        self.items: List[tuple] = []
        self.n4k = 0
        self.nlarge = 0
        self.missing: Optional[Unreadable] = None
        self.problems: List[str] = []
        self.dropped = False  # runs not kept (memo limit): counted, not listed


class WalkContext:
    """What the walks of one root table share: the table-page memo (a table page is
    decoded once however many domains or entries reach it) and the limits' budgets."""

    def __init__(self, reader: PageReader) -> None:
        self.reader = reader
        self.memo: Dict[Tuple[str, int, int], _Sub] = {}
        self.extents_left = MAX_EXTENTS
        self.memo_runs_left = MAX_MEMO_RUNS


def _build(ctx: WalkContext, kind: str, paddr: int, level: int, progress: Optional[ProgressFn]) -> _Sub:
    """The memoised subtree of table ``paddr`` read at ``level`` (iterative, no recursion)."""
    memo = ctx.memo
    key = (kind, paddr, level)
    got = memo.get(key)
    if got is not None:
        return got
    first = kind == "first-level"
    present_mask = 1 if first else 3
    # explicit stack of (sub, qs, next index) so a deep or wide walk never recurses
    stack: List[list] = []

    def open_table(p: int, lvl: int) -> Optional[_Sub]:
        """A new _Sub for (p, lvl): finished at once (leaf, unreadable) or pushed."""
        sub = _Sub(p, lvl)
        memo[(kind, p, lvl)] = sub
        if len(memo) > MAX_TABLE_PAGES:
            sub.missing = Unreadable(p, f"level-{lvl} page table", f"not read: more than {MAX_TABLE_PAGES} table pages "
                                     "(MAX_TABLE_PAGES)")
            return sub
        try:
            data = ctx.reader.page(p)
        except NotMapped as err:
            sub.missing = Unreadable(p, f"level-{lvl} page table", err.why)
            return sub
        if progress is not None:
            progress(1)
        qs = _UNPACK_PAGE(data)
        if lvl == 1:
            _leaf(ctx, sub, qs, first, present_mask)
            return sub
        stack.append([sub, qs, 0])
        return None

    top = open_table(paddr, level)
    if top is not None:
        return top
    while stack:
        frame = stack[-1]
        sub, qs, i = frame
        lvl = sub.level
        shift = 12 + 9 * (lvl - 1)
        pushed = False
        while i < 512:
            v = qs[i]
            i += 1
            if not v & present_mask:
                continue
            rw = (3 if v & 2 else 1) if first else (v & 3)
            rel = (i - 1) << shift
            if v & 0x80:
                if lvl > 3:
                    sub.problems.append(f"PS set in level-{lvl} entry {i - 1} of table 0x{sub.paddr:x}: ignored")
                    continue
                size = 1 << shift
                sub.nlarge += 1
                sub.items.append((rel, v & ADDR_MASK & ~(size - 1), size, rw))
                continue
            child_key = (kind, v & ADDR_MASK, lvl - 1)
            child = memo.get(child_key)
            if child is None:
                child = open_table(v & ADDR_MASK, lvl - 1)
                if child is None:  # pushed: come back to this entry when it is done
                    frame[2] = i - 1
                    pushed = True
                    break
            elif child.n4k < 0:
                # still open further up the stack: cannot happen (levels strictly decrease)
                continue  # pragma: no cover
            sub.items.append((rel, child, rw))
            sub.n4k += child.n4k
            sub.nlarge += child.nlarge
        if pushed:
            continue
        frame[2] = i
        stack.pop()
    return memo[key]


def _leaf(ctx: WalkContext, sub: _Sub, qs: Tuple[int, ...], first: bool, present_mask: int) -> None:
    from array import array

    v0 = qs[0]
    if v0 & present_mask and qs == tuple(range(v0, v0 + (512 << 12), 4096)):
        # a whole table of contiguous pages with equal bits (identity and other linear maps):
        # one 2 MiB run, without a Python step per entry
        sub.n4k = 512
        sub.runs = (array("Q", [0]), array("Q", [v0 & ADDR_MASK]), array("Q", [512 << 12]),
                    bytes([(3 if v0 & 2 else 1) if first else (v0 & 3)]))
        ctx.memo_runs_left -= 1
        return
    r_iova: List[int] = []
    r_phys: List[int] = []
    r_size: List[int] = []
    r_rw = bytearray()
    c_end_iova = c_end_phys = c_rw = -1
    n = 0
    for i, v in enumerate(qs):
        if not v & present_mask:
            continue
        n += 1
        rw = (3 if v & 2 else 1) if first else (v & 3)
        iova = i << 12
        phys = v & ADDR_MASK
        if iova == c_end_iova and phys == c_end_phys and rw == c_rw:
            r_size[-1] += 4096
        else:
            r_iova.append(iova)
            r_phys.append(phys)
            r_size.append(4096)
            r_rw.append(rw)
            c_rw = rw
        c_end_iova = iova + 4096
        c_end_phys = phys + 4096
    sub.n4k = n
    if ctx.memo_runs_left < len(r_iova):
        sub.dropped = True
        return
    ctx.memo_runs_left -= len(r_iova)
    sub.runs = (array("Q", r_iova), array("Q", r_phys), array("Q", r_size), bytes(r_rw))


def walk_page_table(
    mem: Union[PhysMemory, PageReader],
    pt_root: int,
    levels: int,
    kind: str = "second-level",
    progress: Optional[ProgressFn] = None,
    context: Optional[WalkContext] = None,
) -> PageTableWalk:
    """Walk one page table of ``levels`` levels into merged extents.

    Second-stage entries: present when R or W is set (kernel ``dma_pte_present``); the
    rights of a mapping are the AND of R and W down the path. First-stage entries (x86
    layout): present bit 0, writable bit 1. PS (bit 7) makes a 2 MiB leaf at level 2 and a
    1 GiB leaf at level 3; set anywhere else it is reported as a problem.

    A table page is decoded once per level it is read at (``context`` shares that memo
    between the domains of a root table). A page reached again, at another IOVA or at
    another level (a loop: levels strictly decrease, so a loop ends at level 1), is
    translated there again, as the hardware would: its mappings count every time and are
    listed up to ``MAX_EXTENTS`` (then ``truncated``, said in ``problems``).
    """
    ctx = context
    if ctx is None:
        ctx = WalkContext(mem if isinstance(mem, PageReader) else PageReader(mem))
    if not 1 <= levels <= MAX_LEVELS:
        return PageTableWalk(kind, pt_root, levels, (), 0, 0, 0, (), (f"unsupported level count {levels}",))
    top = _build(ctx, kind, pt_root, levels, progress)

    # distinct subtrees of this walk: unreadable pages, problems, table pages, loops, sharing
    seen: Dict[Tuple[int, int], int] = {}
    levels_of: Dict[int, set] = {}
    unreadable: List[Unreadable] = []
    problems: List[str] = []
    todo = [top]
    seen[(top.paddr, top.level)] = 1
    while todo:
        s = todo.pop()
        levels_of.setdefault(s.paddr, set()).add(s.level)
        if s.missing is not None:
            unreadable.append(s.missing)
        problems.extend(s.problems)
        for it in s.items:
            c = it[1]
            if type(c) is _Sub:
                k = (c.paddr, c.level)
                if k in seen:
                    seen[k] += 1
                else:
                    seen[k] = 1
                    todo.append(c)
    for paddr, lv in levels_of.items():
        if len(lv) > 1:
            problems.append(f"table 0x{paddr:x} is read at levels {', '.join(str(x) for x in sorted(lv, reverse=True))} "
                            "(a loop): translated at each level, as the hardware reads it")
    shared = sum(1 for n in seen.values() if n > 1)
    if shared:
        problems.append(f"{shared} table page(s) reached twice or more (shared tables or a loop): their mappings "
                        "repeat at each IOVA that reaches them")

    # flatten into merged extents, within the root table's extent budget
    r_iova: List[int] = []
    r_phys: List[int] = []
    r_size: List[int] = []
    r_rw: List[int] = []
    truncated = [False]
    steps = [4 * MAX_EXTENTS]

    def emit(base: int, phys: int, size: int, rw: int) -> bool:
        if r_size and r_iova[-1] + r_size[-1] == base and r_phys[-1] + r_size[-1] == phys and r_rw[-1] == rw:
            r_size[-1] += size
            return True
        if ctx.extents_left <= 0:
            truncated[0] = True
            return False
        ctx.extents_left -= 1
        r_iova.append(base)
        r_phys.append(phys)
        r_size.append(size)
        r_rw.append(rw)
        return True

    def flatten(s: _Sub, base: int, rights: int) -> bool:
        """Emit the extents of ``s`` at ``base``; False once the budget is spent."""
        steps[0] -= 1
        if steps[0] < 0:
            truncated[0] = True
            return False
        if s.dropped:
            truncated[0] = True
            return s.n4k == 0 or ctx.extents_left > 0
        if s.runs is not None:
            ri, rp, rs, rr = s.runs
            for k in range(len(ri)):
                if not emit(base | ri[k], rp[k], rs[k], rr[k] & rights):
                    return False
            return True
        for it in s.items:
            c = it[1]
            if type(c) is _Sub:
                if not flatten(c, base | it[0], rights & it[2]):
                    return False
            elif not emit(base | it[0], c, it[2], it[3] & rights):
                return False
        return True

    flatten(top, 0, 3)
    if truncated[0]:
        problems.append(f"extents truncated: {len(r_iova):,} listed, the rest past MAX_EXTENTS ({MAX_EXTENTS:,} "
                        "per root table) or MAX_MEMO_RUNS; page counts still include every mapping")
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS + 1
        problems = problems[:MAX_PROBLEMS - 1] + [f"... {more:,} more problems not listed (truncated at MAX_PROBLEMS "
                                                  f"{MAX_PROBLEMS})"]
    rwb = ((False, False), (True, False), (False, True), (True, True))
    gc_was = gc.isenabled()
    gc.disable()  # a million small immutable records: tracing them is pure overhead
    try:
        extents = tuple(Extent(a, b, c, *rwb[r]) for a, b, c, r in zip(r_iova, r_phys, r_size, r_rw))
    finally:
        if gc_was:
            gc.enable()
    return PageTableWalk(
        kind, pt_root, levels, extents, top.n4k, top.nlarge, len(seen) - len(unreadable), tuple(unreadable),
        tuple(problems), truncated[0],
    )


# --- root / context / PASID tables -------------------------------------------------------------


def walk_root_table(
    mem: PhysMemory,
    root_address: int,
    mode: str,
    segment: int = 0,
    walk_mappings: bool = True,
    progress: Optional[ProgressFn] = None,
) -> VtdTables:
    """Decode every bus and device of the root table at ``root_address``."""
    if mode not in ("legacy", "scalable"):
        raise ValueError(f"mode must be legacy or scalable, not {mode!r}")
    reader = PageReader(mem)
    walk_ctx = WalkContext(reader)
    root_address &= ADDR_MASK
    unreadable: List[Unreadable] = []
    problems: List[str] = []
    buses: List[BusEntry] = []
    devices: List[DeviceTranslation] = []
    domains: Dict[Tuple[str, int, int], PageTableWalk] = {}
    try:
        root = reader.page(root_address)
    except NotMapped as err:
        unreadable.append(Unreadable(root_address, "root table", err.why))
        return VtdTables(root_address, mode, segment, (), (), (), tuple(unreadable), (), frozenset(reader.touched))

    def domain(kind: str, pt_root: int, levels: int) -> Optional[PageTableWalk]:
        if not walk_mappings:
            return None
        key = (kind, pt_root, levels)
        if key not in domains:
            domains[key] = walk_page_table(reader, pt_root, levels, kind, progress, walk_ctx)
        return domains[key]

    for bus in range(256):
        lo, hi = _UNPACK_2Q(root, bus * ROOT_ENTRY_SIZE)
        if not lo and not hi:
            continue
        if mode == "legacy":
            re_ = root_entry_from_qwords(lo, hi)
            if re_.reserved:
                problems.append(f"root entry {bus:02x}: reserved bits 0x{re_.reserved:x} set")
            if not re_.present:
                continue
            buses.append(BusEntry(bus, re_.ctp))
            tables = [(re_.ctp, 0)]
        else:
            sm = sm_root_entry_from_qwords(lo, hi)
            if sm.reserved:
                problems.append(f"root entry {bus:02x}: reserved bits 0x{sm.reserved:x} set")
            if not (sm.lp or sm.up):
                continue
            buses.append(BusEntry(bus, sm.lctp if sm.lp else None, sm.uctp if sm.up else None))
            tables = ([(sm.lctp, 0)] if sm.lp else []) + ([(sm.uctp, 128)] if sm.up else [])
        for ctp, first_devfn in tables:
            try:
                ctx = reader.page(ctp)
            except NotMapped as err:
                unreadable.append(Unreadable(ctp, f"context table bus {bus:02x}", err.why))
                continue
            if mode == "legacy":
                for devfn in range(256):
                    d = _legacy_device(ctx, ctp, segment, bus, devfn, domain)
                    if d is not None:
                        devices.append(d)
            else:
                for i in range(128):
                    d = _sm_device(reader, ctx, ctp, segment, bus, first_devfn + i, i, domain)
                    if d is not None:
                        devices.append(d)
    return VtdTables(
        root_address, mode, segment, tuple(buses), tuple(devices), tuple(domains.values()), tuple(unreadable),
        tuple(problems), frozenset(reader.touched),
    )


def _legacy_device(
    ctx: bytes, ctp: int, segment: int, bus: int, devfn: int,
    domain: Callable[[str, int, int], Optional[PageTableWalk]],
) -> Optional[DeviceTranslation]:
    lo, hi = _UNPACK_2Q(ctx, devfn * CONTEXT_ENTRY_SIZE)
    if not lo and not hi:
        return None
    ce = context_entry_from_qwords(lo, hi)
    problems = [f"context entry reserved bits 0x{ce.reserved:x} set"] if ce.reserved else []
    tt = CONTEXT_TT_NAMES[ce.tt]
    walk = None
    levels = AW_LEVELS.get(ce.aw)
    if ce.present and ce.tt in (0, 1):
        if levels is None:
            problems.append(f"AW {ce.aw} is reserved: page table not walked")
        else:
            walk = domain("second-level", ce.slptptr, levels)
    elif ce.present and ce.tt == 3:
        problems.append("TT 3 is reserved")
    return DeviceTranslation(
        segment, bus, devfn, ctp + devfn * CONTEXT_ENTRY_SIZE, ce.present, ce.fpd, tt,
        AW_BITS.get(ce.aw), ce.aw, levels, ce.did,
        ce.slptptr if ce.tt != 2 else None, walk, problems=tuple(problems),
    )


def _sm_device(
    reader: PageReader, ctx: bytes, ctp: int, segment: int, bus: int, devfn: int, index: int,
    domain: Callable[[str, int, int], Optional[PageTableWalk]],
) -> Optional[DeviceTranslation]:
    q = _UNPACK_4Q(ctx, index * SM_CONTEXT_ENTRY_SIZE)
    if not any(q):
        return None
    ce = sm_context_entry_from_qwords(*q)
    cpaddr = ctp + index * SM_CONTEXT_ENTRY_SIZE
    problems: List[str] = [f"context entry reserved bits 0x{ce.reserved:x} set"] if ce.reserved else []
    base: Dict[str, Any] = dict(segment=segment, bus=bus, devfn=devfn, context_paddr=cpaddr, fpd=ce.fpd, pasid=ce.rid_pasid,
                pasid_dir=ce.pasid_dir_ptr)
    if not ce.present:
        return DeviceTranslation(present=False, translation_type="none", address_width=None, aw=None, levels=None,
                                 domain_id=None, pt_root=None, walk=None, problems=tuple(problems), **base)
    pasid = ce.rid_pasid
    dir_index = pasid >> 6
    if dir_index >= ce.pasid_dir_entries:
        problems.append(f"RID_PASID {pasid} is past the PASID directory ({ce.pasid_dir_entries} entries)")
    unreadable: List[Unreadable] = []
    pe = None
    pe_paddr = None
    dir_paddr = ce.pasid_dir_ptr + dir_index * PASID_DIR_ENTRY_SIZE
    try:
        dpage = reader.page(dir_paddr & ~0xFFF)
        de = pasid_dir_entry_from_qword(_UNPACK_Q(dpage, dir_paddr & 0xFFF)[0])
        if not de.present:
            problems.append(f"PASID directory entry {dir_index} not present")
        else:
            pe_paddr = de.smptblptr + (pasid & 0x3F) * PASID_ENTRY_SIZE
            tpage = reader.page(pe_paddr & ~0xFFF)
            pe = pasid_entry_from_qwords(*_UNPACK_8Q(tpage, pe_paddr & 0xFFF)[:3])
    except NotMapped as err:
        unreadable.append(Unreadable(err.paddr, "PASID directory" if pe_paddr is None else "PASID table", err.why))
    if pe is None or not pe.present:
        if pe is not None:
            problems.append(f"PASID {pasid} entry not present")
        return DeviceTranslation(present=True, translation_type="none", address_width=None, aw=None, levels=None,
                                 domain_id=None, pt_root=None, walk=None, pasid_entry_paddr=pe_paddr,
                                 unreadable=tuple(unreadable), problems=tuple(problems), **base)
    tt = PGTT_NAMES[pe.pgtt]
    walk = None
    aw_bits: Optional[int] = AW_BITS.get(pe.aw)
    levels: Optional[int] = AW_LEVELS.get(pe.aw)
    pt_root: Optional[int] = pe.slptptr
    if pe.pgtt in (2, 3):
        if levels is None:
            problems.append(f"AW {pe.aw} is reserved: page table not walked")
        else:
            walk = domain("second-level", pe.slptptr, levels)
    elif pe.pgtt == 1:
        levels = 5 if pe.flpm == 1 else 4
        aw_bits = 57 if levels == 5 else 48
        pt_root = pe.flptptr
        walk = domain("first-level", pe.flptptr, levels)
    elif pe.pgtt == 4:
        pt_root = None
    else:
        problems.append(f"PGTT {pe.pgtt} is reserved")
    others, cut = _other_pasids(reader, ce.pasid_dir_ptr, ce.pasid_dir_entries, pasid, domain, unreadable, problems)
    return DeviceTranslation(present=True, translation_type=tt, address_width=aw_bits, aw=pe.aw, levels=levels,
                             domain_id=pe.did, pt_root=pt_root, walk=walk, pasid_entry_paddr=pe_paddr,
                             unreadable=tuple(unreadable), problems=tuple(problems), other_pasids=others,
                             pasids_truncated=cut, **base)


def _pasid_translation(
    q0: int, q1: int, q2: int, pasid: int, paddr: int,
    domain: Callable[[str, int, int], Optional[PageTableWalk]],
) -> PasidTranslation:
    pe = pasid_entry_from_qwords(q0, q1, q2)
    tt = PGTT_NAMES[pe.pgtt]
    if pe.pgtt in (2, 3):
        levels = AW_LEVELS.get(pe.aw)
        walk = domain("second-level", pe.slptptr, levels) if levels else None
        probs = () if levels else (f"AW {pe.aw} is reserved",)
        return PasidTranslation(pasid, paddr, tt, AW_BITS.get(pe.aw), levels, pe.did, pe.slptptr, walk, probs)
    if pe.pgtt == 1:
        levels = 5 if pe.flpm == 1 else 4
        return PasidTranslation(pasid, paddr, tt, 57 if levels == 5 else 48, levels, pe.did, pe.flptptr,
                                domain("first-level", pe.flptptr, levels))
    if pe.pgtt == 4:
        return PasidTranslation(pasid, paddr, tt, None, None, pe.did, None, None)
    return PasidTranslation(pasid, paddr, tt, None, None, pe.did, None, None, (f"PGTT {pe.pgtt} is reserved",))


def _other_pasids(
    reader: PageReader, pdir: int, entries: int, rid_pasid: int,
    domain: Callable[[str, int, int], Optional[PageTableWalk]],
    unreadable: List[Unreadable], problems: List[str],
) -> Tuple[Tuple[PasidTranslation, ...], bool]:
    """Every present PASID entry reachable from the PASID directory, except RID_PASID, up to
    MAX_PASID_TABLES tables and MAX_PASIDS entries per device (then said in ``problems``),
    and whether it stopped at one of those limits."""
    out: List[PasidTranslation] = []
    seen_tables: set = set()
    shared = 0
    cut = False
    for dpage_index in range((entries * PASID_DIR_ENTRY_SIZE + VTD_PAGE_SIZE - 1) // VTD_PAGE_SIZE):
        if cut:
            break
        dpaddr = pdir + dpage_index * VTD_PAGE_SIZE
        try:
            dq = _UNPACK_PAGE(reader.page(dpaddr))
        except NotMapped as err:
            if dpage_index:  # the first page was already reported for RID_PASID, if missing
                unreadable.append(Unreadable(dpaddr, "PASID directory", err.why))
            continue
        for i, v in enumerate(dq):
            if not v & 1:
                continue
            dir_index = dpage_index * 512 + i
            if dir_index >= entries:
                break
            table = v & VTD_PAGE_MASK
            if table in seen_tables:
                shared += 1
                continue
            if len(seen_tables) >= MAX_PASID_TABLES or len(out) >= MAX_PASIDS:
                cut = True
                break
            seen_tables.add(table)
            try:
                tq = _UNPACK_PAGE(reader.page(table))
            except NotMapped as err:
                if dir_index != rid_pasid >> 6:
                    unreadable.append(Unreadable(table, "PASID table", err.why))
                continue
            for j in range(64):
                q0 = tq[8 * j]
                pasid = (dir_index << 6) | j
                if not q0 & 1 or pasid == rid_pasid:
                    continue
                out.append(_pasid_translation(q0, tq[8 * j + 1], tq[8 * j + 2], pasid,
                                              table + j * PASID_ENTRY_SIZE, domain))
    if shared:
        problems.append(f"{shared} PASID directory entr{'y' if shared == 1 else 'ies'} share a table with an "
                        "earlier entry: not decoded twice")
    if cut:
        problems.append(f"PASIDs truncated: {len(out):,} entries of {len(seen_tables):,} PASID tables decoded, "
                        f"the rest of the directory not (MAX_PASID_TABLES {MAX_PASID_TABLES}, MAX_PASIDS "
                        f"{MAX_PASIDS} per device)")
    return tuple(out), cut


# --- one IOVA, as the kernel's fault dump prints it ---------------------------------------------


@dataclass(frozen=True)
class LookupStep:
    name: str  # "root entry", "context entry", "pasid dir entry", "pasid table entry", "pte"
    paddr: int
    values: Tuple[int, ...]  # qwords, low first
    level: Optional[int] = None


@dataclass(frozen=True)
class IovaLookup:
    root_address: int
    mode: str
    bus: int
    devfn: int
    iova: int
    steps: Tuple[LookupStep, ...]
    phys: Optional[int]
    page_size: Optional[int]
    read: bool
    write: bool
    reason: Optional[str]  # why there is no translation, when there is none


def lookup_iova(mem: PhysMemory, root_address: int, mode: str, bus: int, devfn: int, iova: int) -> IovaLookup:
    """Translate one IOVA for one requester ID, keeping every entry read on the way."""
    reader = PageReader(mem)
    root_address &= ADDR_MASK
    steps: List[LookupStep] = []

    def done(reason: Optional[str], phys: Optional[int] = None, size: Optional[int] = None, rw: int = 0) -> IovaLookup:
        return IovaLookup(root_address, mode, bus, devfn, iova, tuple(steps), phys, size, bool(rw & 1), bool(rw & 2),
                          reason)

    read = reader.qwords

    rp = root_address + bus * ROOT_ENTRY_SIZE
    rv = read(rp, 2)
    if rv is None:
        return done(f"root table page 0x{root_address:x} is not in the dump")
    steps.append(LookupStep("root entry", rp, rv))
    kind = "second-level"
    if mode == "legacy":
        re_ = root_entry_from_qwords(*rv)
        if not re_.present:
            return done("root entry not present")
        cp = re_.ctp + devfn * CONTEXT_ENTRY_SIZE
        cv = read(cp, 2)
        if cv is None:
            return done(f"context table 0x{re_.ctp:x} is not in the dump")
        steps.append(LookupStep("context entry", cp, cv))
        ce = context_entry_from_qwords(*cv)
        if not ce.present:
            return done("context entry not present")
        if ce.tt == 2:
            return done(None, iova, None, 3)
        levels = AW_LEVELS.get(ce.aw)
        pt = ce.slptptr
    else:
        sm = sm_root_entry_from_qwords(*rv)
        present, ctp = (sm.lp, sm.lctp) if devfn < 128 else (sm.up, sm.uctp)
        if not present:
            return done("root entry not present")
        cp = ctp + (devfn & 0x7F) * SM_CONTEXT_ENTRY_SIZE
        cv = read(cp, 4)
        if cv is None:
            return done(f"context table 0x{ctp:x} is not in the dump")
        steps.append(LookupStep("context entry", cp, cv))
        sce = sm_context_entry_from_qwords(*cv)
        if not sce.present:
            return done("context entry not present")
        pasid = sce.rid_pasid
        dp = sce.pasid_dir_ptr + (pasid >> 6) * PASID_DIR_ENTRY_SIZE
        dv = read(dp, 1)
        if dv is None:
            return done(f"PASID directory 0x{sce.pasid_dir_ptr:x} is not in the dump")
        steps.append(LookupStep("pasid dir entry", dp, dv))
        de = pasid_dir_entry_from_qword(dv[0])
        if not de.present:
            return done("PASID directory entry not present")
        pp = de.smptblptr + (pasid & 0x3F) * PASID_ENTRY_SIZE
        pv = read(pp, 8)
        if pv is None:
            return done(f"PASID table 0x{de.smptblptr:x} is not in the dump")
        steps.append(LookupStep("pasid table entry", pp, pv))
        pe = pasid_entry_from_qwords(*pv[:3])
        if not pe.present:
            return done("PASID table entry not present")
        if pe.pgtt == 4:
            return done(None, iova, None, 3)
        if pe.pgtt == 1:
            kind, levels, pt = "first-level", (5 if pe.flpm == 1 else 4), pe.flptptr
        else:
            levels, pt = AW_LEVELS.get(pe.aw), pe.slptptr
    if levels is None:
        return done("reserved AW value")
    rights = 3
    first = kind == "first-level"
    for level in range(levels, 0, -1):
        shift = 12 + 9 * (level - 1)
        idx = (iova >> shift) & 0x1FF
        ep = pt + idx * 8
        ev = read(ep, 1)
        if ev is None:
            return done(f"level-{level} page table 0x{pt:x} is not in the dump")
        steps.append(LookupStep("pte", ep, ev, level))
        v = ev[0]
        if not v & (1 if first else 3):
            return done(f"level-{level} entry not present")
        rights &= (3 if v & 2 else 1) if first else (v & 3)
        if level == 1 or (v & 0x80 and level in (2, 3)):
            size = 1 << shift
            base = v & ADDR_MASK & ~(size - 1)
            return done(None, base + (iova & (size - 1)), size, rights)
        pt = v & ADDR_MASK
    return done("walk ended without a leaf")  # pragma: no cover - loop always returns


# --- DMA faults of the kdump kernel against the crashed kernel's tables -----------------------


@dataclass(frozen=True)
class FaultCheck:
    """One distinct DMA fault (device, address, access) from a kernel log, looked up in the
    crashed kernel's tables: was the device using a mapping the old kernel had set up?"""

    bdf: str
    address: int
    access: Optional[str]  # "read" / "write" / None when the log did not say
    count: int
    first_line: int
    reason: Optional[str]
    lookup: Optional[IovaLookup]  # None when the BDF is outside this table's segment
    verdict: str


@dataclass(frozen=True)
class FaultEvent:
    """One DMA fault record of a kernel log: the device (``SSSS:BB:DD.F``), the faulting
    address, the access (``read``/``write``, None when the log does not say), its line."""

    bdf: str
    address: int
    access: Optional[str]
    line: int
    reason: Optional[str] = None


def fault_events(events: Iterable[LogEvent]) -> List[FaultEvent]:
    """The DMA faults among the kernel-log parser's events."""
    return [FaultEvent(ev.bdf, ev.address, ev.access, ev.line, ev.reason) for ev in events
            if ev.kind == "dma_fault" and ev.bdf is not None and ev.address is not None]


def fault_events_in_lines(lines: Iterable[str]) -> List[FaultEvent]:
    """The DMA faults of a kernel log's lines (decoded by the kernel-log parser)."""
    return fault_events(parse_log(lines))


MAX_FAULT_CHECKS = 4096  # distinct (device, address, access) faults looked up; the rest counted


def check_faults(
    mem: PhysMemory, root_address: int, mode: str, events: Sequence[FaultEvent], segment: int = 0,
    unchecked: Optional[List[int]] = None,
    lookup: Optional[Callable[[int, int, int], IovaLookup]] = None,
) -> List[FaultCheck]:
    """The one fault lookup (triage and ``vmcore iommu --faults``): every distinct DMA
    fault (device, address, access) of ``events`` looked up in the old tables. A fault
    from another PCI segment than the table's is not looked up (its bus/devfn would
    name another device), and a mapping counts only with the faulting access allowed.

    A fault in the kdump kernel at an IOVA that the crashed kernel's tables map with the
    faulting access allowed means the device kept doing DMA the crashed kernel had set up
    (in-flight DMA across the crash), and that the new kernel's tables did not carry the
    mapping over (translation tables not copied, or the domain torn down).
    ``lookup(bus, devfn, iova)``: another vendor's table walk (AMD-Vi's device table);
    VT-d's :func:`lookup_iova` by default."""
    groups: Dict[Tuple[str, int, Optional[str]], List[FaultEvent]] = {}
    skipped = 0
    for ev in events:
        key = (ev.bdf, ev.address, ev.access)
        if key not in groups and len(groups) >= MAX_FAULT_CHECKS:
            skipped += 1   # past MAX_FAULT_CHECKS distinct faults: counted, not looked up
            continue
        groups.setdefault(key, []).append(ev)
    if unchecked is not None:
        unchecked[:] = [skipped]
    out: List[FaultCheck] = []
    for (bdf, address, access), evs in groups.items():
        first = evs[0]
        seg, bus, df = bdf.split(":")
        dev, fn = df.split(".")
        if int(seg, 16) != segment:
            out.append(FaultCheck(bdf, address, access, len(evs), first.line, first.reason, None,
                                  f"segment {seg} is not this {'device' if lookup else 'root'} table's"))
            continue
        args = (int(bus, 16), (int(dev, 16) << 3) | int(fn, 16), address)
        r = lookup(*args) if lookup is not None else lookup_iova(mem, root_address, mode, *args)
        if r.phys is None:
            verdict = f"not mapped in the crashed kernel's tables either ({r.reason})"
        else:
            allowed = {"read": r.read, "write": r.write}.get(access or "", r.read or r.write)
            rights = ("R" if r.read else "-") + ("W" if r.write else "-")
            if allowed:
                verdict = (f"mapped {rights} to phys 0x{r.phys:x} in the crashed kernel's tables: "
                           "in-flight DMA set up before the crash, not carried over to this kernel's tables")
            else:
                verdict = f"mapped {rights} to phys 0x{r.phys:x} in the crashed kernel's tables, but without {access} access"
        out.append(FaultCheck(bdf, address, access, len(evs), first.line, first.reason, r, verdict))
    return out
