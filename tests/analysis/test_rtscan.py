"""Root-table scan on tables built in code: finds them, ranks them, rejects look-alikes."""

from __future__ import annotations

import os
import random

from hypothesis import given, settings

from kdumptool.analysis.rtscan import check_root_table, find_root_tables, prefilter
from kdumptool.analysis.vtd_walk import lookup_iova, walk_root_table
from tests.vtd_memory import LegacyTables, PageTable, ScalableTables, VtdMemory, fuzz_memory


def _legacy(mem: VtdMemory) -> LegacyTables:
    pt = PageTable(mem, 3)
    pt.map(0xFFFFC000, 0x200000)
    lt = LegacyTables(mem)
    lt.device(0, 0x10, pt.root, did=4)
    lt.device(0, 0x18, pt.root, did=4)
    lt.device(1, 0, 0, did=5, tt=2)
    return lt


def _noise(mem: VtdMemory, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    for _ in range(n):
        p = mem.alloc()
        mem.pages[p][:] = bytes(rnd.getrandbits(8) for _ in range(4096))


def test_prefilter_bytes_rules():
    page = bytearray(4096)
    assert prefilter(bytes(page)) == (False, False)  # nothing present
    page[0] = 1
    page[1:8] = (0x25D5000 >> 8).to_bytes(7, "little")
    assert prefilter(bytes(page)) == (True, True)
    page[8] = 1  # upper present: scalable only
    assert prefilter(bytes(page)) == (False, True)
    page[16] = 3  # reserved bit 1
    assert prefilter(bytes(page)) == (False, False)
    page[16] = 0
    page[17] = 0x01  # reserved bit 8
    assert prefilter(bytes(page)) == (False, False)


def test_finds_legacy_table_among_noise_and_decoys():
    mem = VtdMemory()
    _noise(mem, 20)
    lt = _legacy(mem)
    decoy = mem.alloc()  # looks like a root table, points at garbage
    mem.put_q(decoy, 0x7FFFF000 | 1)
    mem.put_q(decoy + 16, mem.alloc() | 1)
    _noise(mem, 5, seed=2)
    res = find_root_tables(mem, mem.iter_dumped_ranges())
    assert res.best is not None and res.best.address == lt.root and res.best.mode == "legacy"
    assert res.best.devices == 3 and res.best.page_tables_ok == 1
    assert res.pages_scanned == len(mem.pages)
    assert all(c.address != decoy or not c.valid for c in res.candidates)


def test_finds_scalable_table():
    mem = VtdMemory()
    _noise(mem, 10)
    pt = PageTable(mem, 4)
    pt.map(0x1000, 0x300000, 2 << 20)
    st_ = ScalableTables(mem)
    st_.device(0, 0x10, pt.root, did=4, aw=2)
    st_.device(0, 0xF8, pt.root, did=4, aw=2)
    res = find_root_tables(mem, mem.iter_dumped_ranges())
    assert res.best is not None and (res.best.address, res.best.mode) == (st_.root, "scalable")
    assert res.best.devices == 2


def test_inconsistent_aw_and_reserved_bits_are_violations():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    lt = LegacyTables(mem)
    lt.device(0, 8, pt.root, did=1, aw=1)
    lt.device(0, 16, pt.root, did=2, aw=2)
    c = check_root_table(mem, lt.root, "legacy", 1 << 32)
    assert not c.valid and any("inconsistent address widths" in v for v in c.violations)
    mem.put_q(lt.ctx[0] + 8 * 16 + 8, (1 << 40) | 1)  # reserved bit 104 of devfn 8
    assert not check_root_table(mem, lt.root, "legacy", 1 << 32).valid


def test_missing_root_page_is_invalid_candidate():
    mem = VtdMemory()
    c = check_root_table(mem, 0x1000, "legacy")
    assert not c.valid and "unreadable" in c.violations[0]


@settings(max_examples=80, deadline=None)
@given(fuzz_memory())
def test_fuzz_check_and_walk(mem):
    """Arbitrary entries pointing at each other: only KdumptoolError may escape (none expected)."""
    for mode in ("legacy", "scalable"):
        check_root_table(mem, 0x1000, mode, 0x6000)
        t = walk_root_table(mem, 0x1000, mode)
        for d in t.devices[:4]:
            lookup_iova(mem, 0x1000, mode, d.bus, d.devfn, 0xFFFFC000)
    find_root_tables(mem, mem.iter_dumped_ranges())


def test_random_pages_never_pass_prefilter():
    rnd = os.urandom(4096 * 200)
    assert not any(any(prefilter(rnd[i : i + 4096])) for i in range(0, len(rnd), 4096))


@settings(max_examples=60, deadline=None)
@given(fuzz_memory())
def test_chunk_prefilter_keeps_every_page_prefilter_keeps(mem):
    from kdumptool.analysis.rtscan import chunk_prefilter

    pages = [bytes(mem.pages[p]) for p in sorted(mem.pages)]
    blob = b"".join(pages)
    kept = set(chunk_prefilter(blob, len(pages)))
    assert {i for i, pg in enumerate(pages) if any(prefilter(pg))} <= kept
    for i in kept:  # and chunk_prefilter is exactly its rule: byte 0 of every qword 0 or 1, one 1
        flags = pages[i][0::8]
        assert not flags.translate(None, b"\x00\x01") and b"\x01" in flags
