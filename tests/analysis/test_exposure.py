"""DMA exposure from tables built in code, against the dump's own page map."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.analysis.exposure import DumpMap, find_exposure, merge_ranges
from kdumptool.analysis.vtd_walk import walk_root_table
from tests.vtd_memory import LegacyTables, PageTable, VtdMemory


def test_merge_overlaps_or_rights():
    assert merge_ranges([(0, 10, 1), (5, 20, 2), (20, 30, 3), (40, 50, 1)]) == [
        (0, 5, 1), (5, 10, 3), (10, 20, 2), (20, 30, 3), (40, 50, 1)]
    assert merge_ranges([(0, 4, 3), (4, 8, 3), (8, 8, 3), (9, 10, 0)]) == [(0, 8, 3)]


def test_dumpmap_split():
    m = DumpMap([(0x1000, 0x3000), (0x5000, 0x6000)])
    assert m.split(0, 0x7000) == [
        (0, 0x1000, False), (0x1000, 0x3000, True), (0x3000, 0x5000, False),
        (0x5000, 0x6000, True), (0x6000, 0x7000, False)]
    assert m.dumped_bytes(0x2000, 0x5800) == 0x1800


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 64), st.integers(0, 3)), max_size=12))
def test_merge_matches_bruteforce(items):
    items = [(s, s + n, rw) for s, n, rw in items]
    got = merge_ranges(items)
    want = {}
    for s, e, rw in items:
        for x in range(s, e):
            want[x] = want.get(x, 0) | rw
    flat = {x: rw for s, e, rw in got for x in range(s, e)}
    assert flat == {x: rw for x, rw in want.items() if rw}
    assert all(a[1] < b[0] or a[2] != b[2] for a, b in zip(got, got[1:]))


def test_exposure_per_device_union_and_dumped():
    mem = VtdMemory()
    a = PageTable(mem, 3)
    a.map(0x10000, 0x200000)
    a.map(0x11000, 0x201000)
    a.map(0x12000, 0x200000, write=False)  # same phys again, read-only: rights OR
    b = PageTable(mem, 3)
    b.map(0x0, 0x201000, write=False)
    b.map(0x40000000, 0x400000, 2 << 20)
    lt = LegacyTables(mem)
    lt.device(0, 0x10, a.root, did=4)
    lt.device(0, 0x18, b.root, did=5)
    lt.device(0, 0x20, 0, did=6, tt=2)
    t = walk_root_table(mem, lt.root, "legacy")
    dumped = [(0x200000, 0x201000), (0x500000, 0x600000)]
    ex = find_exposure(t, dumped, memory_end=0x800000)
    by = {d.bdf: d for d in ex.devices}
    da = by["0000:00:02.0"]
    assert [(r.start, r.end, r.read, r.write, r.dumped) for r in da.ranges] == [
        (0x200000, 0x201000, True, True, True), (0x201000, 0x202000, True, True, False)]
    assert (da.readable_bytes, da.writable_bytes, da.not_dumped_bytes) == (0x2000, 0x2000, 0x1000)
    db = by["0000:00:03.0"]
    assert db.writable_bytes == 2 << 20 and db.readable_bytes == (2 << 20) + 0x1000
    assert by["0000:00:04.0"].passthrough and ex.passthrough_devices == ("0000:00:04.0",)
    # the union names every device reaching a range; pass-through covers everything
    r0 = [r for r in ex.union if r.start <= 0x201000 < r.end][0]
    assert r0.devices == ("0000:00:02.0", "0000:00:03.0", "0000:00:04.0")
    assert ex.writable_bytes == 0x800000
    assert ex.not_dumped_bytes == 0x800000 - 0x1000 - 0x100000


def test_exposure_without_dump_map_and_incomplete():
    mem = VtdMemory()
    a = PageTable(mem, 3)
    a.map(0x10000, 0x200000)
    a.map(0x40000000, 0x300000)
    lt = LegacyTables(mem)
    lt.device(0, 0x10, a.root, did=4)
    mem.drop(a.entry_addr(0x40000000, 1) & ~0xFFF)
    ex = find_exposure(walk_root_table(mem, lt.root, "legacy"))
    assert ex.incomplete and ex.devices[0].unreadable_tables == 1
    assert [(r.start, r.end, r.dumped) for r in ex.union] == [(0x200000, 0x201000, None)]
    assert ex.not_dumped_bytes is None
