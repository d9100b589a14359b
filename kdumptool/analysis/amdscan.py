"""Find the crashed kernel's AMD-Vi device table(s) in a dump with no hint, by structure
alone (``vmcore scan``'s AMD-Vi listing; analysis/rtscan.py does the same for VT-d root
tables).

What a device table is (AMD IOMMU spec #48882 rev 3.08, 2.2.2; Linux
drivers/iommu/amd/init.c and amd_iommu_types.h): an array of 32-byte DTEs indexed by
requester ID, one per PCI segment, allocated as one zeroed, naturally aligned 2^order
block below 4 GiB (``iommu_alloc_pages(GFP_KERNEL | GFP_DMA32, get_order(size))``; the
kdump kernel refuses an old table above 4 GiB: "The address of old device table is above
4G, not trustworthy!"), of ``tbl_size(32, last_bdf)`` bytes: (last_bdf + 1) x 32 rounded
up to a power-of-two number of pages, at most 2 MiB. ``init_device_table_dma`` sets V|TV
on every entry up to last_bdf (DMA blocked), so the table is mostly ``03 00 ...``
entries, the rest zero; attached devices have TV, a Mode of 1-6 levels, a page-table root
and a DomainID (never 0: Linux reserves domain 0); identity domains have Mode 0 with
IR/IW; IV/IntTabLen/the interrupt-table root for remapped interrupts.

Every dumped page below 4 GiB goes through a byte prefilter (bytes operations, no Python
loop per entry): byte 0 of every entry has its reserved bits 6:2 clear, at least one entry
has V set, bytes 1-7 of the last qword are zero (only the attribute override byte is
used), bit 63 of the first qword (reserved) is clear. The few pages that pass are checked
entry by entry (V=0 entries blank, reserved bits clear, Mode 7 never with TV, a root
pointer on every translated entry and none, nor a Mode, on any other: v1 page-table
pages, whose entries also have bit 0 set, fail here), grouped into runs of consecutive pages, and each run
validated as a table: aligned to its power-of-two size, every translated entry's DomainID
non-zero and one page-table root per domain, each root page in the dump and its present
entries' NextLevel below the DTE's Mode (0 and 7 are leaves), interrupt-table roots in
the dump. Candidates are ranked by a score (evidence minus violations); the output says
why. Bounded: pages below 4 GiB only, at most ``MAX_RUNS`` runs validated, at most 2 MiB
(one segment's 65536 entries) per run, each page-table root read once.
"""

from __future__ import annotations

import struct
import time

from kdumptool.analysis.pagereader import PageReader
from kdumptool.analysis.rtscan import walk_pages
from kdumptool.errors import NotMapped
from kdumptool.formats.frozen import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

    from kdumptool.analysis.vtd_walk import PhysMemory

PAGE = 4096
DTE_SIZE = 32
BELOW = 1 << 32  # GFP_DMA32
DEV_TABLE_MAX = 2 << 20  # 65536 entries: one PCI segment
MAX_RUNS = 64  # runs of DTE pages validated as tables (the largest first)
PM_ADDR_MASK = 0x000F_FFFF_FFFF_F000  # DTE_HOST_TRP / PM_ADDR_MASK 51:12
_UNPACK_PAGE = struct.Struct("<512Q").unpack
# byte 0 of a DTE: V (0), TV (1), HAD (8:7, bit 7 here); bits 6:2 reserved
_Q0_LOW_OK = bytes(b for b in range(256) if not b & 0x7C)
_EVEN = bytes(range(0, 256, 2))
_LOW_HALF = bytes(range(128))
_HEAD = 256  # bytes decompressed first in a kdump-compressed dump: 8 entries


def dte_head_ok(head: bytes) -> bool:
    """The byte rules on a page prefix (whole entries only; no V test): a necessary
    condition, so a page failing it is never a device-table page."""
    n = len(head) - len(head) % DTE_SIZE
    head = head[:n]
    if head[0::DTE_SIZE].translate(None, _Q0_LOW_OK) or head[7::DTE_SIZE].translate(None, _LOW_HALF):
        return False
    return all(not head[k::DTE_SIZE].strip(b"\x00") for k in range(25, 32))


def dte_prefilter(page: bytes) -> bool:
    """Could this 4 KiB page be part of a device table (bytes operations only)?"""
    return dte_head_ok(page) and bool(page[0::DTE_SIZE].translate(None, _EVEN))


def check_dte_page(page: bytes) -> Tuple[bool, int, int]:
    """(every entry plausible, V=1 entries, translating or pass-through entries) of one
    page, entry by entry: a V=0 entry is blank (Linux zeroes the table), reserved bits
    (q0 6:2 and 63, q2 55:52 and 59) clear, no Mode 7 with TV, a root pointer on every
    entry with TV and a Mode and neither root nor Mode on the others (Linux's
    set_dte_entry), the last qword's upper bytes zero."""
    qs = _UNPACK_PAGE(page)
    valid = used = 0
    for j in range(0, 512, 4):
        q0, q1, q2, q3 = qs[j], qs[j + 1], qs[j + 2], qs[j + 3]
        if not q0 & 1:
            if q0 or q1 or q2 or q3:
                return False, 0, 0
            continue
        if q0 & 0x7C or q0 >> 63 or q2 & (0xF << 52) or q2 >> 59 & 1 or q3 >> 8:
            return False, 0, 0
        mode = (q0 >> 9) & 7
        valid += 1
        if q0 & 2 and mode:
            if mode == 7 or not q0 & PM_ADDR_MASK:
                return False, 0, 0
            used += 1
        elif q0 & (PM_ADDR_MASK | 0xE00):
            # a root or a Mode without translation: Linux writes both only with TV and a
            # Mode (set_dte_entry); a page-table page (PDEs: address | level | PR) reads so
            return False, 0, 0
        elif q0 >> 61 & 3:  # no translation with IR/IW: pass-through (identity domain)
            used += 1
    return True, valid, used


@dataclass(frozen=True)
class DevTableCandidate:
    address: int
    size: int  # bytes: the power-of-two block the run fits
    entries: int  # size // 32
    last_valid: int  # highest requester ID with V=1 (the kernel's last_bdf at least)
    valid: int  # V=1 entries
    blocked: int  # V=1, no translation, neither IR nor IW (Linux's default)
    translated: int  # TV=1, Mode 1-6
    passthrough: int  # no translation with IR or IW
    domains: int  # distinct DomainIDs of translated and pass-through entries
    page_tables_ok: int  # translated entries whose root page is in the dump and reads as a v1 table
    irq_tables: int  # distinct interrupt remapping tables (IV and a table root) in the dump
    guest: int  # entries with GV (v2 / guest page tables through GCR3: not walked)
    score: int
    violations: Tuple[str, ...]
    evidence: Tuple[str, ...]

    @property
    def valid_table(self) -> bool:
        """No violation, and more than a page of blocked entries: a device with a domain,
        or a whole page of V=1 entries (a table of only blocked IDs is weak evidence)."""
        return not self.violations and (self.translated + self.passthrough > 0 or self.valid >= 128)

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "size": self.size,
            "entries": self.entries,
            "last_valid_devid": self.last_valid,
            "valid": self.valid_table,
            "score": self.score,
            "valid_entries": self.valid,
            "blocked_entries": self.blocked,
            "translated_entries": self.translated,
            "passthrough_entries": self.passthrough,
            "domains": self.domains,
            "page_tables_ok": self.page_tables_ok,
            "irq_tables": self.irq_tables,
            "guest_translation_entries": self.guest,
            "violations": list(self.violations),
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class DevTableScan:
    candidates: Tuple[DevTableCandidate, ...]  # best first; valid ones before the rest
    pages_scanned: int  # pages below 4 GiB looked at
    bytes_scanned: int
    prefilter_passed: int
    unreadable_pages: int
    seconds: float
    above_4g_bytes: int  # dumped bytes not scanned (a device table is never there)
    fast_path: bool = False
    runs: int = 0  # runs of DTE pages found (at most MAX_RUNS validated)

    @property
    def best(self) -> Optional[DevTableCandidate]:
        return self.candidates[0] if self.candidates and self.candidates[0].valid_table else None


def _v1_top_ok(reader: PageReader, root: int, mode: int, cache: Dict[Tuple[int, int], Optional[str]]) -> Optional[str]:
    """None when the page-table root at ``root`` reads and each present entry's NextLevel
    is a leaf (0, 7) or a level below ``mode``; else why not."""
    key = (root, mode)
    if key in cache:
        return cache[key]
    why: Optional[str] = None
    try:
        page = reader.page(root)
    except NotMapped as err:
        why = f"page-table root 0x{root:x} not in the dump ({err.why})"
    else:
        for q in _UNPACK_PAGE(page):
            if not q & 1:
                continue
            nl = (q >> 9) & 7
            if 0 < nl < 7 and nl >= mode:
                why = f"page-table root 0x{root:x}: an entry's NextLevel {nl} is not below Mode {mode}"
                break
            if nl and nl != 7 and not q & PM_ADDR_MASK:
                why = f"page-table root 0x{root:x}: a directory entry without an address"
                break
    if len(cache) < 1 << 16:
        cache[key] = why
    return why


def check_device_table(reader: PageReader, base: int, npages: int, limit: int,
                       cache: Dict[Tuple[int, int], Optional[str]]) -> DevTableCandidate:
    """Validate ``npages`` pages at ``base`` as one device table (``limit``: the top of
    the dumped address space, for pointers)."""
    size = PAGE
    while size < npages * PAGE:
        size *= 2
    violations: List[str] = []
    evidence: List[str] = []
    valid = blocked = translated = passthrough = pt_ok = irq = guest = 0
    last = -1
    roots: Dict[int, Set[int]] = {}
    pt_bad: List[str] = []
    irq_missing = 0
    irts: Set[int] = set()
    for i in range(npages):
        try:
            qs = _UNPACK_PAGE(reader.page(base + i * PAGE))
        except NotMapped:
            continue
        for j in range(0, 512, 4):
            q0, q1, q2 = qs[j], qs[j + 1], qs[j + 2]
            if not q0 & 1:
                continue
            devid = i * 128 + j // 4
            valid += 1
            last = devid
            mode = (q0 >> 9) & 7
            rw = (q0 >> 61) & 3
            dom = q1 & 0xFFFF
            if q0 >> 55 & 1:
                guest += 1
            if q0 & 2 and mode:
                translated += 1
                root = q0 & PM_ADDR_MASK
                roots.setdefault(dom, set()).add(root)
                if dom == 0 and len(violations) < 8:
                    violations.append(f"requester ID {devid:04x} translates in domain 0 (Linux never uses it)")
                if root >= limit:
                    if len(pt_bad) < 4:
                        pt_bad.append(f"page-table root 0x{root:x} of {devid:04x} beyond the dumped memory")
                else:
                    why = _v1_top_ok(reader, root, mode, cache)
                    if why is None:
                        pt_ok += 1
                    elif len(pt_bad) < 4:
                        pt_bad.append(why)
            elif rw:
                passthrough += 1
                roots.setdefault(dom, set())
            else:
                blocked += 1
            irt = q2 & 0x000F_FFFF_FFFF_FFC0
            if q2 & 1 and irt and irt not in irts:  # IV with a table (without: interrupts blocked)
                irts.add(irt)
                try:
                    reader.page(irt & ~0xFFF)
                    irq += 1
                except NotMapped:
                    irq_missing += 1
    if base % size:
        violations.append(f"not aligned to its size ({size // 1024} KiB): Linux allocates the table as one "
                          "naturally aligned 2^order block")
    shared = [d for d, r in roots.items() if len(r) > 1]
    if shared:
        violations.append(f"domain {shared[0]} has {len(roots[shared[0]])} page-table roots (one domain, one "
                          f"page table){f' (+{len(shared) - 1} more domains)' if len(shared) > 1 else ''}")
    if pt_bad and not pt_ok:
        violations.append(pt_bad[0])
    elif pt_bad:
        evidence.append(f"{len(pt_bad)} page-table root(s) unreadable or odd, e.g. {pt_bad[0]}")
    if translated:
        evidence.append(f"{translated} translated entries in {len(roots)} domain(s), {pt_ok} page-table roots "
                        "read as v1 tables")
    if passthrough:
        evidence.append(f"{passthrough} pass-through (identity) entries")
    evidence.append(f"{valid} valid entr{'y' if valid == 1 else 'ies'} (last requester ID {last:04x}), {blocked} "
                    "blocked (V=1 without access: Linux's default for unused IDs)")
    if irq:
        evidence.append(f"{irq} interrupt remapping table(s) in the dump")
    if irq_missing:
        evidence.append(f"{irq_missing} interrupt remapping table(s) not in the dump")
    if guest:
        evidence.append(f"{guest} entries with GV (guest page tables through GCR3): not walked")
    score = 4 * pt_ok + 2 * passthrough + irq + valid // 128 + 2 * len(roots) - 20 * len(violations) - 2 * len(pt_bad)
    return DevTableCandidate(base, size, size // DTE_SIZE, last, valid, blocked, translated, passthrough,
                             len(roots), pt_ok, irq, guest, score, tuple(violations), tuple(evidence))


def _runs(pages: Sequence[int]) -> List[Tuple[int, int]]:
    """(first page address, page count) of each run of consecutive pages, cut at 2 MiB
    (one segment's table) and at a 2 MiB boundary (a table never crosses its own
    alignment)."""
    out: List[Tuple[int, int]] = []
    start = prev = -1
    for a in sorted(pages):
        if start >= 0 and a == prev + PAGE and a - start < DEV_TABLE_MAX and a % DEV_TABLE_MAX:
            prev = a
            continue
        if start >= 0:
            out.append((start, (prev - start) // PAGE + 1))
        start = prev = a
    if start >= 0:
        out.append((start, (prev - start) // PAGE + 1))
    return out


def find_device_tables(
    mem: PhysMemory,
    ranges: Iterable[Tuple[int, int]],
    progress: Optional[Callable[[int], None]] = None,
    keep: int = 10,
    below: int = BELOW,
    chunk_pages: int = 64,
    use_fast: bool = True,
) -> DevTableScan:
    """Scan every dumped page below ``below`` (start, end-exclusive ranges) and rank
    device-table candidates. ``progress(n)``: bytes scanned since the last call."""
    t0 = time.perf_counter()
    all_ranges = [(s, e) for s, e in ranges if e > s]
    limit = max((e for _, e in all_ranges), default=0)
    above = sum(e - max(s, below) for s, e in all_ranges if e > below)
    low = [(s, min(e, below)) for s, e in all_ranges if s < below]
    reader = PageReader(mem)
    hits: Dict[int, Tuple[int, int]] = {}
    passed = 0

    def consider(addr: int, page: bytes) -> None:
        nonlocal passed
        if not dte_prefilter(page):
            return
        passed += 1
        ok, valid, used = check_dte_page(page)
        if ok:
            hits[addr] = (valid, used)
            if len(reader.cache) < 4096:
                reader.cache[addr] = page

    fast, scanned, unreadable, _ = walk_pages(
        mem, low, consider, progress=progress, chunk_pages=chunk_pages, use_fast=use_fast,
        head_ok=dte_head_ok, head_bytes=_HEAD)
    runs = _runs(list(hits))
    # the runs with the most valid entries first; each validated once
    runs.sort(key=lambda r: -sum(hits[r[0] + i * PAGE][0] for i in range(r[1])))
    cache: Dict[Tuple[int, int], Optional[str]] = {}
    cands = [check_device_table(reader, a, n, limit, cache) for a, n in runs[:MAX_RUNS]]
    cands.sort(key=lambda c: (not c.valid_table, -c.score, c.address))
    return DevTableScan(tuple(cands[:keep]), scanned, scanned * PAGE, passed, unreadable,
                        time.perf_counter() - t0, above, fast, len(runs))
