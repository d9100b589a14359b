"""Build a crashed kernel's AMD-Vi state in memory, laid out as Linux writes it, and read
it back with a few lines of our own (the tests' oracle).

Layouts from Linux drivers/iommu/amd/amd_iommu_types.h and io_pgtable.c (6.12):
- device table: 32-byte DTEs indexed by requester ID; every ID up to last_bdf starts as
  V|TV (init_device_table_dma: DMA blocked); an attached device gets
  DTE[0] = pt_root | (mode & 7) << 9 | IR | IW | TV | V and DTE[1] = domain ID
  (set_dte_entry); an identity-domain device V|TV|IR|IW with mode 0;
- v1 page tables: a PDE is next-table | PM_LEVEL_ENC(level - 1) | PR | IR | IW
  (IOMMU_PTE_PR bit 0, level in bits 11:9, IR bit 61, IW bit 62); a leaf is
  paddr | PR | FC (bit 60) | IR/IW by prot, level 0 in bits 11:9 for the level's own
  page size; a smaller large page is PAGE_SIZE_PTE(paddr, size) | PM_LEVEL_ENC(7),
  written into each of the size/level-size entries it covers (iommu_v1_map_pages).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

PR, FC, IR, IW = 1, 1 << 60, 1 << 61, 1 << 62
V, TV = 1, 2


def pm_level_enc(x: int) -> int:
    return (x & 7) << 9


def page_size_pte(paddr: int, size: int) -> int:
    return ((paddr | (size - 1)) & ~(size >> 1)) & 0x000FFFFFFFFFF000


@dataclass
class AmdViMemory:
    """Physical pages (pfn -> bytearray) holding a device table and page tables."""

    pages: Dict[int, bytearray] = field(default_factory=dict)
    next_free: int = 0x0200_0000  # page-table pages are taken from here up

    def page(self, paddr: int) -> bytearray:
        return self.pages.setdefault(paddr >> 12, bytearray(4096))

    def put_q(self, paddr: int, value: int) -> None:
        struct.pack_into("<Q", self.page(paddr & ~0xFFF), paddr & 0xFFF, value)

    def alloc(self) -> int:
        a = self.next_free
        self.next_free += 4096
        self.page(a)
        return a

    # --- device table -----------------------------------------------------------
    def device_table(self, base: int, last_bdf: int = 0xFFFF) -> None:
        for devid in range(last_bdf + 1):
            self.put_q(base + 32 * devid, V | TV)

    def attach(self, base: int, devid: int, root: int, mode: int, domain: int,
               rw: int = IR | IW, q2: int = 0) -> None:
        self.put_q(base + 32 * devid, root | pm_level_enc(mode) | rw | TV | V)
        self.put_q(base + 32 * devid + 8, domain)
        self.put_q(base + 32 * devid + 16, q2)

    # --- v1 page table ----------------------------------------------------------
    def new_table(self) -> int:
        return self.alloc()

    def map(self, root: int, mode: int, iova: int, paddr: int, size: int = 4096,
            prot: int = IR | IW) -> None:
        """Map like iommu_v1_map_pages: the entry level is the smallest whose page size
        is >= size; a size below that level's page size is a replicated mode-7 entry."""
        level = 1
        while level < mode and (1 << (12 + 9 * level)) <= size:
            level += 1
        table = root
        for lv in range(mode, level, -1):
            idx = (iova >> (12 + 9 * (lv - 1))) & 0x1FF
            slot = table + 8 * idx
            cur = struct.unpack_from("<Q", self.page(slot & ~0xFFF), slot & 0xFFF)[0]
            if not cur & PR:
                child = self.new_table()
                self.put_q(slot, child | pm_level_enc(lv - 1) | PR | IR | IW)
                table = child
            else:
                table = cur & 0x000FFFFFFFFFF000
        lsize = 1 << (12 + 9 * (level - 1))
        if size == lsize:
            self.put_q(table + 8 * ((iova >> (12 + 9 * (level - 1))) & 0x1FF), paddr | PR | FC | prot)
            return
        pte = page_size_pte(paddr, size) | pm_level_enc(7) | PR | FC | prot
        for k in range(size // lsize):
            a = iova + k * lsize
            self.put_q(table + 8 * ((a >> (12 + 9 * (level - 1))) & 0x1FF), pte)

    def skip_to(self, root: int, mode: int, index: int, child_level: int) -> int:
        """A level-skipping PDE in the root: entry ``index`` points straight at a new
        level-``child_level`` table (hardware allows it; Linux does not build it)."""
        child = self.new_table()
        self.put_q(root + 8 * index, child | pm_level_enc(child_level) | PR | IR | IW)
        return child


# --- the tests' own decoder, on the raw ELF file ----------------------------------------

def elf_reader(path: str):  # type: ignore[no-untyped-def]
    """read(paddr, n) over an ELF core's PT_LOADs, from nothing but the ELF header."""
    data = open(path, "rb").read()
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    loads: List[Tuple[int, int, int]] = []
    for i in range(phnum):
        ptype, _f, off, _va, pa, filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
        if ptype == 1:
            loads.append((pa, filesz, off))

    def read(paddr: int, n: int) -> bytes:
        for pa, sz, off in loads:
            if pa <= paddr and paddr + n <= pa + sz:
                return data[off + paddr - pa : off + paddr - pa + n]
        raise KeyError(hex(paddr))
    return read


def oracle_device(read, base: int, devid: int) -> Tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """(domain ID, mode, 4 KiB slots mapped, large slots) of one DTE, by a plain recursive
    walk: the hardware rule, not the walker's code."""
    q0, q1 = struct.unpack("<2Q", read(base + 32 * devid, 16))
    mode, root = (q0 >> 9) & 7, q0 & 0x000FFFFFFFFFF000

    def walk(table: int, level: int) -> Tuple[int, int]:
        small = large = 0
        for v in struct.unpack("<512Q", read(table, 4096)):
            nl = (v >> 9) & 7
            if not v & 1:
                continue
            if nl in (0, 7):
                small, large = (small + 1, large) if level == 1 else (small, large + 1)
            else:
                s, g = walk(v & 0x000FFFFFFFFFF000, nl)
                small, large = small + s, large + g
        return small, large

    s, g = walk(root, mode) if (q0 & 3) == 3 and mode else (0, 0)
    return q1 & 0xFFFF, mode, s, g


def oracle_translate(read, base: int, devid: int, iova: int):  # type: ignore[no-untyped-def]
    """(phys, rw) of one IOVA, or None: the hardware rule in a few lines (V/TV/Mode of the
    DTE, then index by level, NextLevel 0/7 leaves, skipped levels), no walker code."""
    q0, = struct.unpack("<Q", read(base + 32 * devid, 8))
    if not q0 & V:
        return iova, 3
    rw = (q0 >> 61) & 3
    mode = (q0 >> 9) & 7
    if not q0 & TV or mode == 0:
        return (iova, rw) if rw else None
    table, level = q0 & 0x000FFFFFFFFFF000, mode
    while True:
        shift = 12 + 9 * (level - 1)
        v, = struct.unpack("<Q", read(table + 8 * ((iova >> shift) & 0x1FF), 8))
        if not v & PR:
            return None
        rw &= (v >> 61) & 3
        nl = (v >> 9) & 7
        if nl in (0, 7):
            size = 1 << shift
            if nl == 7:  # the first zero address bit at or above bit 12 gives the size
                n = 12
                while v >> n & 1:
                    n += 1
                size = 1 << (n + 1)
            return (v & 0x000FFFFFFFFFF000 & ~(size - 1)) + (iova & (size - 1)), rw
        table, level = v & 0x000FFFFFFFFFF000, nl
