"""Build VT-d translation tables in an in-memory physical memory, for edge cases.

Like drgn's tests/elfwriter.py: the real layouts (VT-d spec rev. 4.1 chapter 9) written
bit by bit from the spec, independently of the decoders under test. Pages are 4 KiB
bytearrays keyed by physical address; ``read`` raises ``NotMapped`` for pages never
written or explicitly dropped, like a dump filtered by makedumpfile.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

from kdumptool.errors import NotMapped

PAGE = 4096


class VtdMemory:
    def __init__(self, base: int = 0x100000) -> None:
        self.pages: Dict[int, bytearray] = {}
        self.next = base
        self.dropped: set = set()
        self.page_size = PAGE

    # --- memory protocol ---
    def read(self, paddr: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            page = paddr & ~0xFFF
            if page in self.dropped or page not in self.pages:
                raise NotMapped(paddr, "filtered" if page in self.dropped else "not in the dump")
            off = paddr - page
            n = min(size, PAGE - off)
            out += self.pages[page][off : off + n]
            paddr += n
            size -= n
        return bytes(out)

    def is_dumped(self, paddr: int) -> bool:
        page = paddr & ~0xFFF
        return page in self.pages and page not in self.dropped

    def iter_dumped_ranges(self) -> Iterator[Tuple[int, int]]:
        start = end = None
        for p in sorted(p for p in self.pages if p not in self.dropped):
            if start is not None and p == end:
                end = p + PAGE
                continue
            if start is not None:
                yield (start, end)
            start, end = p, p + PAGE
        if start is not None:
            yield (start, end)

    # --- building ---
    def alloc(self, paddr: Optional[int] = None) -> int:
        if paddr is None:
            paddr = self.next
            self.next += PAGE
        self.pages.setdefault(paddr, bytearray(PAGE))
        return paddr

    def drop(self, paddr: int) -> None:
        self.dropped.add(paddr & ~0xFFF)

    def put_q(self, paddr: int, value: int) -> None:
        page = self.alloc(paddr & ~0xFFF)
        off = paddr & 0xFFF
        self.pages[page][off : off + 8] = value.to_bytes(8, "little")

    def get_q(self, paddr: int) -> int:
        return int.from_bytes(self.read(paddr, 8), "little")


class LegacyTables:
    """A legacy-mode root table with context entries and second-stage page tables."""

    def __init__(self, mem: VtdMemory) -> None:
        self.mem = mem
        self.root = mem.alloc()
        self.ctx: Dict[int, int] = {}

    def context_table(self, bus: int) -> int:
        if bus not in self.ctx:
            self.ctx[bus] = self.mem.alloc()
            self.mem.put_q(self.root + bus * 16, self.ctx[bus] | 1)  # P, CTP 63:12
        return self.ctx[bus]

    def device(self, bus: int, devfn: int, pt: int, did: int, aw: int = 1, tt: int = 0, fpd: bool = False) -> None:
        ct = self.context_table(bus)
        lo = pt | (tt << 2) | (2 if fpd else 0) | 1
        hi = (did << 8) | aw
        self.mem.put_q(ct + devfn * 16, lo)
        self.mem.put_q(ct + devfn * 16 + 8, hi)


class ScalableTables:
    """A scalable-mode root table: lower/upper context tables, PASID dir and tables."""

    def __init__(self, mem: VtdMemory) -> None:
        self.mem = mem
        self.root = mem.alloc()
        self.ctx: Dict[Tuple[int, int], int] = {}

    def context_table(self, bus: int, upper: bool) -> int:
        key = (bus, int(upper))
        if key not in self.ctx:
            self.ctx[key] = self.mem.alloc()
            self.mem.put_q(self.root + bus * 16 + (8 if upper else 0), self.ctx[key] | 1)
        return self.ctx[key]

    def device(
        self, bus: int, devfn: int, pt: int, did: int, aw: int = 1, pgtt: int = 2, pasid: int = 0,
        pdts: int = 0, flpm: int = 0,
    ) -> Tuple[int, int]:
        ct = self.context_table(bus, devfn >= 128)
        pdir = self.mem.alloc()
        ptab = self.mem.alloc()
        e = ct + (devfn & 0x7F) * 32
        self.mem.put_q(e, pdir | (pdts << 9) | 1)  # P, PDTS 11:9, PASIDDIRPTR 63:12
        self.mem.put_q(e + 8, pasid)  # RID_PASID 83:64
        self.mem.put_q(pdir + (pasid >> 6) * 8, ptab | 1)
        pe = ptab + (pasid & 0x3F) * 64
        q0 = 1 | (aw << 2) | (pgtt << 6)
        q2 = 0
        if pgtt == 1:
            q2 = pt | (flpm << 2)
        else:
            q0 |= pt
        self.mem.put_q(pe, q0)
        self.mem.put_q(pe + 8, did)  # DID 79:64
        self.mem.put_q(pe + 16, q2)
        return pdir, ptab


class PageTable:
    """A second-stage (or first-stage) page table of ``levels`` levels."""

    def __init__(self, mem: VtdMemory, levels: int, first_level: bool = False) -> None:
        self.mem = mem
        self.levels = levels
        self.first = first_level
        self.root = mem.alloc()

    def _nonleaf(self) -> int:
        return 3  # R|W (second-stage) or P|RW (first-stage)

    def map(self, iova: int, phys: int, size: int = PAGE, read: bool = True, write: bool = True) -> None:
        leaf_level = {PAGE: 1, 2 << 20: 2, 1 << 30: 3}[size]
        table = self.root
        for level in range(self.levels, leaf_level, -1):
            idx = (iova >> (12 + 9 * (level - 1))) & 0x1FF
            ep = table + idx * 8
            v = self.mem.get_q(ep)
            if not v & 3:
                nxt = self.mem.alloc()
                self.mem.put_q(ep, nxt | self._nonleaf())
                v = nxt
            table = v & 0x000F_FFFF_FFFF_F000
        idx = (iova >> (12 + 9 * (leaf_level - 1))) & 0x1FF
        if self.first:
            v = phys | 1 | (2 if write else 0)
        else:
            v = phys | (1 if read else 0) | (2 if write else 0)
        if leaf_level > 1:
            v |= 0x80
        self.mem.put_q(table + idx * 8, v)

    def entry_addr(self, iova: int, level: int) -> int:
        """Physical address of the entry that translates ``iova`` at ``level``."""
        table = self.root
        for lv in range(self.levels, level, -1):
            idx = (iova >> (12 + 9 * (lv - 1))) & 0x1FF
            table = self.mem.get_q(table + idx * 8) & 0x000F_FFFF_FFFF_F000
        return table + ((iova >> (12 + 9 * (level - 1))) & 0x1FF) * 8


def fuzz_memory():  # type: ignore[no-untyped-def]
    """A hypothesis strategy: up to 5 pages at 0x1000.. with arbitrary qwords that often
    point at each other (present bits, superpages, loops), and maybe a dropped page."""
    from hypothesis import strategies as st

    qword = st.one_of(
        st.integers(0, 2**64 - 1),
        st.builds(lambda page, low: (page << 12) | low, st.integers(0, 6), st.sampled_from([0, 1, 2, 3, 0x83, 0x401, 0x281])),
    )
    page = st.dictionaries(st.integers(0, 511), qword, max_size=12)

    def build(pages, drop):  # type: ignore[no-untyped-def]
        mem = VtdMemory()
        for i, entries in enumerate(pages):
            p = mem.alloc(0x1000 * (i + 1))
            for idx, v in entries.items():
                mem.put_q(p + idx * 8, v)
        if drop is not None:
            mem.drop(0x1000 * drop)
        return mem

    return st.builds(build, st.lists(page, min_size=1, max_size=5), st.none() | st.integers(2, 5))
