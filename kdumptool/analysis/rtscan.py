"""Find VT-d root tables in a dump with no hint, by structure alone.

A root table is one 4 KiB page of 256 16-byte entries (VT-d spec rev. 4.1 sections 9.1
and 9.2). Every dumped page goes through a prefilter made of C-speed bytes operations
(no Python loop per entry):

* the low byte of every lower qword (``page[0::16]``) is 0 or 1: bits 7:1 are reserved
  in both root-entry formats, so any other byte rules the page out;
* bits 11:8 (low nibble of ``page[1::16]``) are reserved too;
* at least one entry is present;
* legacy mode: every upper qword is zero; scalable mode: the upper qword follows the
  same two byte rules.

The few pages that pass are validated structurally (``check_root_table``): reserved
bits clear in root and context entries; context-table pointers inside the dump that
decode; PASID directory and table entries (scalable mode) that decode; address widths
that are valid and consistent; page tables whose top level reads and points inside the
dump. Candidates are ranked by a score (evidence minus violations) and returned best
first; the output says why.
"""

from __future__ import annotations

import struct
import time

from kdumptool.analysis.pagereader import PageReader
from kdumptool.errors import KdumptoolError, NotMapped
from kdumptool.formats.frozen import dataclass  # dataclasses costs ~10 ms of start-up
from kdumptool.formats.vtd_tables import (
    ADDR_MASK,
    AW_LEVELS,
    PASID_DIR_ENTRY_SIZE,
    PASID_ENTRY_SIZE,
    context_entry_from_qwords,
    pasid_dir_entry_from_qword,
    pasid_entry_from_qwords,
    root_entry_from_qwords,
    sm_context_entry_from_qwords,
    sm_root_entry_from_qwords,
)

# typing is only read by type checkers here (annotations are strings): importing it
# costs start-up time of `vmcore scan` (bench/bench_ratios.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator, List, Optional, Protocol, Tuple, Union

    from kdumptool.analysis.vtd_walk import PhysMemory
    from kdumptool.formats.vtd_tables import ScalableContextEntry

    class StoredPages(Protocol):
        """What a dump reader's ``iter_pages(ranges)`` gives (sources/vmcore.StoredPages)."""

        pages: int
        unreadable: int

        def __iter__(self) -> Iterator[Tuple[int, int, bytes]]: ...

PAGE = 4096
_ZERO_HALF = bytes(PAGE // 2)
# bytes whose bits 3:0 are all zero (allowed values for byte 1 of a root entry qword)
_NIBBLE_ZERO = bytes(b for b in range(256) if not b & 0x0F)
_UNPACK_512 = struct.Struct("<512Q").unpack
_UNPACK_4Q = struct.Struct("<4Q").unpack_from
_UNPACK_8Q = struct.Struct("<8Q").unpack_from
MAX_DOMAINS_CHECKED = 16
# Verdicts on context tables and page-table tops kept per scan (a few hundred bytes each).
MAX_CHECK_CACHE = 1 << 16


def prefilter(page: bytes) -> Tuple[bool, bool]:
    """(could be legacy, could be scalable) for one 4 KiB page, using bytes ops only."""
    lo0 = page[0::16]
    if lo0.translate(None, b"\x00\x01") or page[1::16].translate(None, _NIBBLE_ZERO):
        return False, False
    if memoryview(page).cast("Q")[1::2].tobytes() == _ZERO_HALF:
        present = b"\x01" in lo0
        return present, present
    hi0 = page[8::16]
    scalable = (
        not hi0.translate(None, b"\x00\x01")
        and not page[9::16].translate(None, _NIBBLE_ZERO)
        and (b"\x01" in lo0 or b"\x01" in hi0)
    )
    return False, scalable


@dataclass(frozen=True)
class RootTableCandidate:
    address: int
    mode: str
    score: int
    buses: int
    context_tables: int
    devices: int
    domains: int
    page_tables_ok: int
    violations: Tuple[str, ...]
    evidence: Tuple[str, ...]
    #: why the table could not be checked ("" when it was): the page itself, or every
    #: context table it points to, could not be read
    unreadable: str = ""

    @property
    def valid(self) -> bool:
        return not self.violations and self.devices > 0

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "mode": self.mode,
            "score": self.score,
            "valid": self.valid,
            "buses": self.buses,
            "context_tables": self.context_tables,
            "devices": self.devices,
            "domains": self.domains,
            "page_tables_ok": self.page_tables_ok,
            "violations": list(self.violations),
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class ScanResult:
    candidates: Tuple[RootTableCandidate, ...]  # best first; valid ones before the rest
    pages_scanned: int
    bytes_scanned: int
    prefilter_passed: int
    unreadable_pages: int
    seconds: float
    fast_path: bool = False
    skipped_raw_pages: int = 0

    @property
    def best(self) -> Optional[RootTableCandidate]:
        return self.candidates[0] if self.candidates and self.candidates[0].valid else None


def check_root_table(
    mem: Union[PhysMemory, PageReader],
    address: int,
    mode: str,
    max_paddr: Optional[int] = None,
    page: Optional[bytes] = None,
    cache: Optional[dict] = None,
) -> RootTableCandidate:
    """Validate the page at ``address`` as a root table of ``mode`` and score it.

    ``cache`` (one dict per scan) keeps the verdict on each context table and page-table
    top: root-like pages that share them (copies, stale tables) are checked once."""
    reader = mem if isinstance(mem, PageReader) else PageReader(mem)
    if cache is None:
        cache = {}
    limit = max_paddr if max_paddr is not None else 1 << 52
    bad: List[str] = []
    buses = ctables = devices = 0
    aws: set = set()
    roots: dict = {}  # (kind, pt_root, levels) -> did
    ctx_unread: List[str] = []  # why each context table not in the dump could not be read

    def ptr_ok(p: int, what: str) -> bool:
        if p == 0 or p >= limit:
            bad.append(f"{what} 0x{p:x} outside memory")
            return False
        return True

    if page is None:
        try:
            page = reader.page(address)
        except NotMapped as err:
            return RootTableCandidate(address, mode, -100, 0, 0, 0, 0, 0, (f"root table unreadable: {err.why}",), (),
                                      err.why)
    q = _UNPACK_512(page)
    for bus in range(256):
        lo, hi = q[2 * bus], q[2 * bus + 1]
        if not lo and not hi:
            continue
        if mode == "legacy":
            re_ = root_entry_from_qwords(lo, hi)
            if re_.reserved:
                bad.append(f"bus {bus:02x}: root entry reserved bits set")
                continue
            if not re_.present:
                bad.append(f"bus {bus:02x}: non-zero entry without P")
                continue
            tables = [re_.ctp]
        else:
            sm = sm_root_entry_from_qwords(lo, hi)
            if sm.reserved or (lo and not sm.lp) or (hi and not sm.up):
                bad.append(f"bus {bus:02x}: root entry reserved bits set or P clear")
                continue
            tables = ([sm.lctp] if sm.lp else []) + ([sm.uctp] if sm.up else [])
        buses += 1
        for ctp in tables:
            if not ptr_ok(ctp, f"bus {bus:02x} context table"):
                continue
            if ctp == address:
                bad.append(f"bus {bus:02x}: context table is the root table")
                continue
            ckey = ("ctx", mode, ctp, bus, limit)
            hit = cache.get(ckey)
            if hit is not None:
                c_bad, c_present, c_aws, c_roots = hit
                bad.extend(c_bad)
                aws.update(c_aws)
                for k, v in c_roots:
                    roots.setdefault(k, v)
                if not c_bad:
                    ctables += 1
                    devices += c_present
                continue
            try:
                ctx = reader.page(ctp)
            except NotMapped as err:
                ctx_unread.append(err.why)
                continue  # not in the dump (filtered, truncated): neither evidence nor violation
            outer_bad, outer_aws, outer_roots = bad, aws, roots
            bad, aws, roots = [], set(), {}
            present_here = 0
            if mode == "legacy":
                cq = _UNPACK_512(ctx)
                for devfn in range(256):
                    clo, chi = cq[2 * devfn], cq[2 * devfn + 1]
                    if not clo and not chi:
                        continue
                    ce = context_entry_from_qwords(clo, chi)
                    if ce.reserved or ce.tt == 3 or (ce.present and ce.tt != 2 and ce.aw not in AW_LEVELS):
                        bad.append(f"bus {bus:02x} devfn {devfn:02x}: context entry malformed")
                        break
                    if not ce.present:
                        continue
                    present_here += 1
                    if ce.tt != 2:
                        aws.add(ce.aw)
                        if ptr_ok(ce.slptptr, f"{bus:02x}:{devfn:02x} page table"):
                            roots.setdefault(("second-level", ce.slptptr, AW_LEVELS[ce.aw]), ce.did)
            else:
                for i in range(128):
                    cq4 = _UNPACK_4Q(ctx, i * 32)
                    if not any(cq4):
                        continue
                    sce = sm_context_entry_from_qwords(*cq4)
                    if sce.reserved:
                        bad.append(f"bus {bus:02x} entry {i}: scalable context entry reserved bits set")
                        break
                    if not sce.present:
                        continue
                    if not ptr_ok(sce.pasid_dir_ptr, f"bus {bus:02x} entry {i} PASID directory"):
                        break
                    present_here += 1
                    _check_pasid(reader, sce, limit, bad, aws, roots)
            if len(cache) < MAX_CHECK_CACHE:
                cache[ckey] = (tuple(bad), present_here, frozenset(aws), tuple(roots.items()))
            if not bad:
                ctables += 1
                devices += present_here
            outer_bad.extend(bad)
            outer_aws.update(aws)
            for k, v in roots.items():
                outer_roots.setdefault(k, v)
            bad, aws, roots = outer_bad, outer_aws, outer_roots
    if buses == 0:
        bad.append("no present root entry")
    if len(aws) > 1:
        bad.append(f"inconsistent address widths {sorted(aws)}")
    pt_ok = pt_unread = 0
    for (kind, root, levels) in list(roots)[:MAX_DOMAINS_CHECKED]:
        tkey = ("top", kind, root, levels, limit)
        ok = cache.get(tkey, _UNSET)
        if ok is _UNSET:
            ok = _top_level_ok(reader, root, levels, kind, limit)
            if len(cache) < MAX_CHECK_CACHE:
                cache[tkey] = ok
        if ok is None:
            pt_unread += 1
        elif ok:
            pt_ok += 1
    checked = min(len(roots), MAX_DOMAINS_CHECKED) - pt_unread
    if checked and pt_ok < checked:
        bad.append(f"{checked - pt_ok} of {checked} page tables do not decode")
    evidence = [f"{buses} present root entries", f"{ctables} context tables decode",
                f"{devices} present devices", f"{len(roots)} page tables, {pt_ok} checked ok"
                + (f", {pt_unread} not in the dump" if pt_unread else "")]
    if aws:
        evidence.append("AW " + ",".join(str(a) for a in sorted(aws)))
    if ctx_unread:
        evidence.append(f"{len(ctx_unread)} context tables not in the dump")
    # Present root entries whose context tables are all missing (a truncated file): the
    # page cannot be checked, which is not the same as failing the check.
    unchecked = (f"its {len(ctx_unread)} context table(s) are not in the dump: {ctx_unread[0]}"
                 if ctx_unread and not ctables and not bad else "")
    score = 2 * ctables + devices + 3 * pt_ok - 20 * len(bad)
    return RootTableCandidate(address, mode, score, buses, ctables, devices, len(roots), pt_ok, tuple(bad[:8]),
                              tuple(evidence), unchecked)


def _check_pasid(reader: PageReader, sce: ScalableContextEntry, limit: int, bad: List[str], aws: set, roots: dict) -> None:
    pasid = sce.rid_pasid
    try:
        dpage = reader.page(sce.pasid_dir_ptr)
    except NotMapped:
        return
    off = (pasid >> 6) * PASID_DIR_ENTRY_SIZE
    if off >= PAGE:
        return
    de = pasid_dir_entry_from_qword(int.from_bytes(dpage[off : off + 8], "little"))
    if de.reserved:
        bad.append("PASID directory entry reserved bits set")
        return
    if not de.present:
        return
    if de.smptblptr == 0 or de.smptblptr >= limit:
        bad.append(f"PASID table 0x{de.smptblptr:x} outside memory")
        return
    try:
        tpage = reader.page(de.smptblptr)
    except NotMapped:
        return
    pe = pasid_entry_from_qwords(*_UNPACK_8Q(tpage, (pasid & 0x3F) * PASID_ENTRY_SIZE)[:3])
    if not pe.present:
        return
    if pe.pgtt in (0, 5, 6, 7):
        bad.append(f"PASID entry PGTT {pe.pgtt} reserved")
        return
    if pe.pgtt in (2, 3):
        if pe.aw not in AW_LEVELS:
            bad.append(f"PASID entry AW {pe.aw} reserved")
            return
        aws.add(pe.aw)
        if pe.slptptr == 0 or pe.slptptr >= limit:
            bad.append(f"PASID entry page table 0x{pe.slptptr:x} outside memory")
            return
        roots.setdefault(("second-level", pe.slptptr, AW_LEVELS[pe.aw]), pe.did)
    elif pe.pgtt == 1 and pe.flptptr and pe.flptptr < limit:
        roots.setdefault(("first-level", pe.flptptr, 5 if pe.flpm == 1 else 4), pe.did)


_UNSET = object()


def _top_level_ok(reader: PageReader, root: int, levels: int, kind: str, limit: int) -> Optional[bool]:
    """The top page-table page's present entries point inside memory; None when the page
    is not in the dump (filtered, past a truncated end): neither evidence nor violation,
    as for a context table."""
    try:
        q = _UNPACK_512(reader.page(root))
    except NotMapped:
        return None
    mask = 1 if kind == "first-level" else 3
    for v in q:
        if v & mask:
            target = v & ADDR_MASK
            if target == 0 and levels > 1 and not v & 0x80:
                return False
            if target >= limit:
                return False
    return True


# translate table: 0 for an allowed byte 0 of a qword (0 or 1), 1 for any other
_BAD01 = bytes(0 if b in (0, 1) else 1 for b in range(256))
_GOOD_PAGE = bytes(PAGE // 8)   # a page's byte-0 flags, all allowed


def chunk_prefilter(blob: bytes, n: int) -> List[int]:
    """Indices of the pages of ``blob`` (n whole 4 KiB pages) that could be root tables:
    byte 0 of every qword is 0 or 1 and at least one is 1. Both root-entry formats
    reserve bits 7:1 of each qword (legacy: the upper qword is all zero; scalable: both
    qwords have the same layout), so this holds for every page ``prefilter`` passes.

    The work is C-speed bytes operations over the whole chunk: one strided slice takes
    byte 0 of every qword, one ``translate`` marks the disallowed ones, and ``find`` of a
    page's worth of zero marks jumps to the next page-aligned run with none; within it,
    ``find`` of a 1 skips the all-zero pages. Python only loops over the few pages that
    survive (``consider`` then applies ``prefilter``)."""
    size = n * PAGE
    if len(blob) != size:
        blob = blob[:size]
    flags = blob[0::8]              # byte 0 of every qword: 512 per page
    bad = flags.translate(_BAD01)   # 1 where that byte is neither 0 nor 1
    end_all = n * 512
    out: List[int] = []
    find_run, find_bad, find_one = bad.find, bad.find, flags.find
    pos = 0
    while pos < end_all:
        i = find_run(_GOOD_PAGE, pos)
        if i < 0:
            break
        p = (i + 511) & ~511                    # first page starting inside the run
        end = find_bad(b"\x01", p)
        if end < 0:
            end = end_all
        stop = end & ~511                       # pages wholly before the next bad byte
        while p < stop:
            j = find_one(b"\x01", p, stop)      # a page with an entry present
            if j < 0:
                break
            k = j >> 9
            out.append(k)
            p = (k + 1) << 9
        pos = end + 1
    return out


def partial_prefilter(head: bytes) -> bool:
    """The byte rules of ``prefilter`` on the first bytes of a page (no presence test):
    a necessary condition, so a page failing it is never a root table."""
    n = len(head) & ~15
    head = head[:n]
    if head[0::16].translate(None, b"\x00\x01") or head[1::16].translate(None, _NIBBLE_ZERO):
        return False
    return not (head[8::16].translate(None, b"\x00\x01") or head[9::16].translate(None, _NIBBLE_ZERO))


_PARTIAL = 1024  # bytes decompressed first: root entries of buses 0-63
_ZLIB = 0x1


def _kdump_pages(dump: PhysMemory, ranges: List[Tuple[int, int]], counts: List[int],
                 head_ok: Callable[[bytes], bool] = partial_prefilter, head_bytes: int = _PARTIAL,
                 ) -> Optional[Tuple[StoredPages, Iterable[Tuple[int, bytes]]]]:
    """Pages of a kdump-compressed dump that pass ``partial_prefilter``, fully decompressed,
    from the dump reader's :meth:`~kdumptool.sources.vmcore.KdumpDump.iter_pages` (its pages
    as stored, read in bulk). zlib pages are decompressed only up to 1 KiB unless that prefix
    could belong to a root table. ``counts``: [pages that did not decompress, raw pages
    skipped]. None (use the generic path) when the memory has no stored pages to offer.
    ``head_ok``/``head_bytes``: the prefix test (default: the root-table byte rules on
    1 KiB; analysis/amdscan.py passes its device-table rules).
    """
    iter_pages = getattr(dump, "iter_pages", None)
    stored = iter_pages(ranges) if iter_pages is not None else None
    if stored is None:
        return None
    import zlib

    from kdumptool.formats import diskdump as dd

    compressed_dump = bool(getattr(dump, "compressed", False))

    def gen() -> Iterable[Tuple[int, bytes]]:
        for paddr, flags, data in stored:
            comp = flags & dd.COMPRESSION_MASK   # zstd is 0x20: not in the low nibble
            try:
                if comp == 0:
                    if compressed_dump:
                        # makedumpfile stores a page raw only when compressing it does
                        # not shrink it; a root table (half zeros at least) always
                        # shrinks, so a raw page in a compressed dump is not one.
                        counts[1] += 1
                        continue
                    page = data
                elif comp == _ZLIB:
                    d = zlib.decompressobj()
                    if not head_ok(d.decompress(data, head_bytes)):
                        continue
                    page = dd.decompress_page(data, flags, PAGE)
                else:
                    page = dd.decompress_page(data, flags, PAGE)
            except (KdumptoolError, zlib.error):
                counts[0] += 1
                continue
            if len(page) == PAGE:
                yield paddr, page

    return stored, gen()


def walk_pages(
    mem: PhysMemory,
    ranges: List[Tuple[int, int]],
    consider: Callable[[int, bytes], None],
    *,
    progress: Optional[Callable[[int], None]],
    chunk_pages: int,
    use_fast: bool,
    head_ok: Callable[[bytes], bool] = partial_prefilter,
    head_bytes: int = _PARTIAL,
    select: Optional[Callable[[bytes, int], Iterable[int]]] = None,
) -> Tuple[bool, int, int, int]:
    """Hand every whole page of ``ranges`` to ``consider(addr, page)``: the root-table and
    the AMD-Vi device-table scans share this walk.

    A kdump-compressed dump is read as stored (:func:`_kdump_pages`, with ``head_ok`` on the
    first ``head_bytes`` of zlib pages); any other memory in chunks of ``chunk_pages``,
    of which ``select(blob, n)`` picks the page indexes worth a look (all when None), page
    by page where a chunk is not all readable. ``progress(n)``: bytes since the last call.
    Returns (the stored-page path was used, pages scanned, pages unreadable, raw pages
    skipped).
    """
    counts = [0, 0]
    fast = _kdump_pages(mem, ranges, counts, head_ok, head_bytes) if use_fast else None
    if fast is not None:
        stored, pages_ = fast
        last = 0
        for addr, page in pages_:
            consider(addr, page)
            if progress is not None and stored.pages - last >= 1024:
                progress((stored.pages - last) * PAGE)
                last = stored.pages
        if progress is not None:
            progress((stored.pages - last) * PAGE)
        return True, stored.pages, stored.unreadable + counts[0], counts[1]
    scanned = unreadable = 0
    for start, end in ranges:
        p = (start + PAGE - 1) & ~0xFFF
        while p + PAGE <= end:
            n = min(chunk_pages, (end - p) // PAGE)
            try:
                blob = bytes(mem.read(p, n * PAGE))
                picked = select(blob, n) if select is not None else range(n)
                pages = [(p + i * PAGE, blob[i * PAGE : (i + 1) * PAGE]) for i in picked]
            except NotMapped:
                pages = []
                for i in range(n):
                    try:
                        pages.append((p + i * PAGE, bytes(mem.read(p + i * PAGE, PAGE))))
                    except NotMapped:
                        unreadable += 1
            for addr, page in pages:
                consider(addr, page)
            scanned += n
            if progress is not None:
                progress(n * PAGE)
            p += n * PAGE
    return False, scanned, unreadable, 0


def find_root_tables(
    mem: PhysMemory,
    ranges: Iterable[Tuple[int, int]],
    progress: Optional[Callable[[int], None]] = None,
    chunk_pages: int = 64,   # 256 KiB: the chunk stays in the CPU cache between read and prefilter
    keep: int = 10,
    use_fast: bool = True,
) -> ScanResult:
    """Scan every page of ``ranges`` (start, end-exclusive) and rank root-table candidates.

    ``progress(n)`` is called with the number of bytes scanned since the last call.
    """
    t0 = time.perf_counter()
    ranges = [(s, e) for s, e in ranges if e > s]
    limit = max((e for _, e in ranges), default=0)
    reader = PageReader(mem)
    passed = 0
    cands: List[RootTableCandidate] = []

    def consider(addr: int, page: bytes) -> None:
        nonlocal passed
        legacy, scalable = prefilter(page)
        if not (legacy or scalable):
            return
        passed += 1
        for mode, ok in (("legacy", legacy), ("scalable", scalable)):
            if ok:
                cands.append(check_root_table(reader, addr, mode, limit, page, check_cache))

    check_cache: dict = {}
    fast, scanned, unreadable, skipped_raw = walk_pages(
        mem, ranges, consider, progress=progress, chunk_pages=chunk_pages, use_fast=use_fast,
        select=chunk_prefilter)
    cands.sort(key=lambda c: (not c.valid, -c.score, c.address))
    return ScanResult(tuple(cands[:keep]), scanned, scanned * PAGE, passed, unreadable, time.perf_counter() - t0,
                      fast, skipped_raw)
