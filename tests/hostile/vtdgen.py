"""Generators of hostile VT-d tables in an in-memory physical memory (tests/vtd_memory.py
layouts): shared leaf tables, fully fanned-out domains, wide PASID directories,
self-referencing page tables."""

from __future__ import annotations

from typing import Tuple

from tests.vtd_memory import LegacyTables, ScalableTables, VtdMemory

PAGE = 4096


def shared_leaves(domains: int = 16, leaves: int = 512) -> Tuple[VtdMemory, int]:
    """``domains`` 3-level (AW 39-bit) domains, each with its own top and level-2 tables,
    all pointing at the same ``leaves`` leaf tables whose 512 entries map scattered pages
    (no two merge): domains x leaves x 512 extents if each domain is walked on its own."""
    mem = VtdMemory(base=0x100000)
    lt = LegacyTables(mem)
    leaf_tables = []
    for k in range(leaves):
        t = mem.alloc()
        page = mem.pages[t]
        for i in range(512):
            phys = (0x40000000 + ((k * 512 + i) * 2) * PAGE)   # every other page: no merging
            page[i * 8:i * 8 + 8] = (phys | 3).to_bytes(8, "little")
        leaf_tables.append(t)
    for d in range(domains):
        top = mem.alloc()
        for j in range(0, leaves, 512):
            l2 = mem.alloc()
            mem.put_q(top + (j // 512) * 8, l2 | 3)
            for i, t in enumerate(leaf_tables[j:j + 512]):
                mem.put_q(l2 + i * 8, t | 3)
        lt.device(0, d, top, did=d + 1, aw=1)
    return mem, lt.root


def self_referencing(levels: int = 3) -> Tuple[VtdMemory, int, int]:
    """One domain whose top table's entry 0 points at the top table itself: IOVA 0 then
    resolves, level after level, to the table page itself. Returns (mem, root, top)."""
    mem = VtdMemory(base=0x100000)
    lt = LegacyTables(mem)
    top = mem.alloc()
    mem.put_q(top, top | 3)
    lt.device(0, 0x08, top, did=1, aw=levels - 2)
    return mem, lt.root, top


def fanned_out(levels: int = 3) -> Tuple[VtdMemory, int]:
    """One domain whose every non-leaf entry points at the same next table, and whose
    leaf table maps scattered pages: 512^(levels-1) identical subtrees."""
    mem = VtdMemory(base=0x100000)
    lt = LegacyTables(mem)
    tables = [mem.alloc() for _ in range(levels)]
    for lvl in range(levels - 1):
        for i in range(512):
            mem.put_q(tables[lvl] + i * 8, tables[lvl + 1] | 3)
    leaf = tables[-1]
    for i in range(512):
        mem.put_q(leaf + i * 8, (0x40000000 + i * 2 * PAGE) | 3)
    lt.device(0, 0x08, tables[0], did=1, aw=levels - 2)
    return mem, lt.root


def wide_pasid_directory(tables: int = 16384) -> Tuple[VtdMemory, int]:
    """A scalable-mode device 00:01.0 whose PASID directory (PDTS 7: 2^(7+7) = 16,384
    entries, 32 pages) points at ``tables`` distinct PASID tables of 64 present entries
    each (PGTT 2, one shared second-stage table). RID_PASID 0 is in the first table."""
    mem = VtdMemory(base=0x100000)
    st = ScalableTables(mem)
    pt = mem.alloc()
    pdir = mem.alloc()
    for _ in range(31):
        mem.alloc()          # the directory's 32 contiguous pages
    ct = st.context_table(0, False)
    mem.put_q(ct + 8 * 32, pdir | (7 << 9) | 1)     # devfn 8: P, PDTS 7, PASIDDIRPTR
    mem.put_q(ct + 8 * 32 + 8, 0)                    # RID_PASID 0
    template = bytearray(PAGE)
    for j in range(64):
        q0 = 1 | (1 << 2) | (2 << 6) | pt
        template[j * 64:j * 64 + 8] = q0.to_bytes(8, "little")
        template[j * 64 + 8:j * 64 + 16] = (j + 2).to_bytes(8, "little")
    for i in range(tables):
        t = mem.alloc()
        mem.pages[t][:] = template
        mem.put_q(pdir + i * 8, t | 1)
    return mem, st.root


def root_like_pages(copies: int = 64, buses: int = 64) -> Tuple[VtdMemory, int]:
    """``copies`` identical legacy root tables whose ``buses`` entries point at the same
    context tables, each with 256 present devices in one domain: every copy passes the
    scan's prefilter and costs a full structural check unless those are cached."""
    mem = VtdMemory(base=0x100000)
    lt = LegacyTables(mem)
    pt = mem.alloc()
    mem.put_q(pt, mem.alloc() | 3)
    for bus in range(buses):
        for devfn in range(256):
            lt.device(bus, devfn, pt, did=1, aw=1)
    src = mem.pages[lt.root]
    for _ in range(copies - 1):
        mem.pages[mem.alloc()][:] = src
    return mem, lt.root
