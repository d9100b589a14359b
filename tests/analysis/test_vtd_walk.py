"""The VT-d walk on tables built in code (tests/vtd_memory.py): every edge case."""

from __future__ import annotations

import pytest

from kdumptool.analysis.vtd_walk import Extent, lookup_iova, walk_page_table, walk_root_table
from tests.vtd_memory import LegacyTables, PageTable, ScalableTables, VtdMemory

M2 = 2 << 20
G1 = 1 << 30


def test_legacy_basic_merge_and_counts():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    # three contiguous pages -> one extent; a gap; a read-only page; a remap to same phys
    for i in range(3):
        pt.map(0xFFE00000 + i * 4096, 0x4000000 + i * 4096)
    pt.map(0xFFE10000, 0x5000000, write=False)
    pt.map(0xFFE11000, 0x5000000)
    lt = LegacyTables(mem)
    lt.device(0, 0x10, pt.root, did=4)
    t = walk_root_table(mem, lt.root, "legacy")
    assert [d.bdf for d in t.devices] == ["0000:00:02.0"]
    d = t.devices[0]
    assert (d.present, d.translation_type, d.address_width, d.levels, d.domain_id, d.pt_root) == (
        True, "multi-level", 39, 3, 4, pt.root)
    assert d.walk is not None
    assert d.walk.mapped_4k_pages == 5 and d.walk.mapped_large_pages == 0
    assert d.walk.extents == (
        Extent(0xFFE00000, 0x4000000, 3 * 4096, True, True),
        Extent(0xFFE10000, 0x5000000, 4096, True, False),
        Extent(0xFFE11000, 0x5000000, 4096, True, True),
    )


@pytest.mark.parametrize("levels,aw", [(3, 1), (4, 2), (5, 3)])
def test_levels_and_superpages(levels, aw):
    mem = VtdMemory()
    pt = PageTable(mem, levels)
    high = (1 << (12 + 9 * levels)) - G1  # the last 1 GiB of the address space
    pt.map(0, 0, G1)
    pt.map(G1, 0x80000000, M2, write=False)
    pt.map(G1 + M2, 0x80000000 + M2, M2, write=False)  # merges with the previous
    pt.map(high, 0x40000000, G1)
    lt = LegacyTables(mem)
    lt.device(3, 0, pt.root, did=7, aw=aw)
    d = walk_root_table(mem, lt.root, "legacy").devices[0]
    assert d.levels == levels and d.address_width == {3: 39, 4: 48, 5: 57}[levels]
    assert d.walk.mapped_large_pages == 4 and d.walk.mapped_4k_pages == 0
    assert d.walk.extents == (
        Extent(0, 0, G1, True, True),
        Extent(G1, 0x80000000, 2 * M2, True, False),
        Extent(high, 0x40000000, G1, True, True),
    )


def test_shared_domain_walked_once_and_passthrough():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    pt.map(0x1000, 0x1000)
    lt = LegacyTables(mem)
    lt.device(0, 0xF8, pt.root, did=9)
    lt.device(0, 0xFA, pt.root, did=9)
    lt.device(3, 0x08, pt.root, did=9)
    lt.device(1, 0, 0, did=1, tt=2)
    t = walk_root_table(mem, lt.root, "legacy")
    assert len(t.domains) == 1
    walks = {d.bdf: d.walk for d in t.devices}
    assert walks["0000:00:1f.0"] is walks["0000:00:1f.2"] is walks["0000:03:01.0"]
    pt_dev = t.device(1, 0)
    assert pt_dev.passthrough and pt_dev.walk is None and pt_dev.pt_root is None


def test_nonleaf_rights_are_anded():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    pt.map(0x200000, 0x300000)
    top = pt.entry_addr(0x200000, 3)
    mem.put_q(top, mem.get_q(top) & ~2)  # clear W in the level-3 entry
    w = walk_page_table(mem, pt.root, 3)
    assert w.extents == (Extent(0x200000, 0x300000, 4096, True, False),)


def test_missing_pages_are_unreadable_and_walk_continues():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    pt.map(0x1000, 0xA000)
    pt.map(0x40000000, 0xB000)  # other level-2 table
    lt = LegacyTables(mem)
    lt.device(0, 8, pt.root, did=2)
    lt.device(5, 0, pt.root, did=2)
    missing_l1 = pt.entry_addr(0x1000, 1) & ~0xFFF
    mem.drop(missing_l1)
    mem.drop(lt.ctx[5])
    t = walk_root_table(mem, lt.root, "legacy")
    assert [(u.paddr, u.what, u.why) for u in t.unreadable] == [(lt.ctx[5], "context table bus 05", "filtered")]
    d = t.devices[0]
    assert [(u.paddr, u.what) for u in d.walk.unreadable] == [(missing_l1, "level-1 page table")]
    assert d.walk.extents == (Extent(0x40000000, 0xB000, 4096, True, True),)
    missing_root = walk_root_table(mem, 0xDEAD000, "legacy")
    assert missing_root.devices == () and missing_root.unreadable[0].what == "root table"


def test_loop_is_reported_and_translated_as_the_hardware_reads_it():
    """A level-3 entry pointing back at the level-4 table: the hardware then reads that
    page as a level-2 table, and so on down to level 1 (levels strictly decrease, so the
    loop ends). The walk does the same, says so, and agrees with lookup_iova."""
    mem = VtdMemory()
    pt = PageTable(mem, 4)
    pt.map(0x1000, 0x2000)
    l3 = pt.entry_addr(0x1000, 3)
    mem.put_q(l3 + 8, pt.root | 3)  # level-3 entry 1 points back at the level-4 table
    w = walk_page_table(mem, pt.root, 4)
    assert any("a loop" in p and f"0x{pt.root:x}" in p for p in w.problems)
    assert w.mapped_4k_pages == 3 and not w.truncated
    lt = LegacyTables(mem)
    lt.device(0, 8, pt.root, did=1, aw=2)
    for x in w.extents:
        r = lookup_iova(mem, lt.root, "legacy", 0, 8, x.iova)
        assert (r.phys, r.read, r.write) == (x.phys, x.read, x.write)


def test_ps_at_level4_is_a_problem():
    mem = VtdMemory()
    pt = PageTable(mem, 4)
    mem.put_q(pt.root, 0x80000000 | 0x83)
    w = walk_page_table(mem, pt.root, 4)
    assert w.extents == () and "PS set in level-4" in w.problems[0]


def test_scalable_mode_lower_upper_and_pgtt():
    mem = VtdMemory()
    sl = PageTable(mem, 4)
    sl.map(0xFFFFC000, 0x3B6B000)
    fl = PageTable(mem, 4, first_level=True)
    fl.map(0x7000, 0x9000, write=False)
    st = ScalableTables(mem)
    st.device(0, 0x10, sl.root, did=4, aw=2)
    st.device(0, 0x90, fl.root, did=5, pgtt=1)  # upper context table
    st.device(1, 0, 0, did=6, pgtt=4)
    st.device(2, 0, sl.root, did=4, aw=2, pasid=70, pdts=1)  # RID_PASID in dir entry 1
    t = walk_root_table(mem, st.root | 0x400, "scalable")
    by = {d.bdf: d for d in t.devices}
    a = by["0000:00:02.0"]
    assert (a.translation_type, a.domain_id, a.levels, a.address_width, a.pt_root) == (
        "second-level", 4, 4, 48, sl.root)
    assert a.walk.extents == (Extent(0xFFFFC000, 0x3B6B000, 4096, True, True),)
    b = by["0000:00:12.0"]
    assert b.translation_type == "first-level" and b.domain_id == 5
    assert b.walk.extents == (Extent(0x7000, 0x9000, 4096, True, False),)
    assert by["0000:01:00.0"].passthrough
    c = by["0000:02:00.0"]
    assert c.pasid == 70 and c.walk is a.walk
    assert [(x.bus, x.ctp is not None, x.uctp is not None) for x in t.buses] == [
        (0, True, True), (1, True, False), (2, True, False)]


def test_scalable_missing_pasid_table():
    mem = VtdMemory()
    sl = PageTable(mem, 3)
    st = ScalableTables(mem)
    _, ptab = st.device(0, 8, sl.root, did=3)
    mem.drop(ptab)
    d = walk_root_table(mem, st.root, "scalable").devices[0]
    assert d.present and d.walk is None
    assert [(u.paddr, u.what) for u in d.unreadable] == [(ptab, "PASID table")]


def test_lookup_iova_legacy_and_scalable():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    pt.map(0xFFFFC000, 0x3B6B000)
    pt.map(0x40000000, 0x80000000, M2, write=False)
    lt = LegacyTables(mem)
    lt.device(0, 0x10, pt.root, did=4)
    r = lookup_iova(mem, lt.root, "legacy", 0, 0x10, 0xFFFFC123)
    assert (r.phys, r.read, r.write, r.page_size, r.reason) == (0x3B6B123, True, True, 4096, None)
    assert [s.name for s in r.steps] == ["root entry", "context entry", "pte", "pte", "pte"]
    assert r.steps[-1].values[0] == 0x3B6B003
    r2 = lookup_iova(mem, lt.root, "legacy", 0, 0x10, 0x40012345)
    assert (r2.phys, r2.write, r2.page_size) == (0x80012345, False, M2)
    r3 = lookup_iova(mem, lt.root, "legacy", 0, 0x10, 0x1000)
    assert r3.phys is None and r3.reason == "level-3 entry not present"

    st = ScalableTables(mem)
    st.device(0, 0x10, pt.root, did=4)
    s = lookup_iova(mem, st.root, "scalable", 0, 0x10, 0xFFFFC000)
    assert s.phys == 0x3B6B000 and s.read and s.write
    assert [x.name for x in s.steps] == [
        "root entry", "context entry", "pasid dir entry", "pasid table entry", "pte", "pte", "pte"]
    none = lookup_iova(mem, st.root, "scalable", 0, 0x18, 0xFFFFC000)
    assert none.phys is None and none.reason == "context entry not present"


def test_scalable_other_pasids_enumerated_and_exposed():
    from kdumptool.analysis.exposure import find_exposure

    mem = VtdMemory()
    sl = PageTable(mem, 3)
    sl.map(0x1000, 0x100000)
    fl = PageTable(mem, 4, first_level=True)
    fl.map(0x7000, 0x200000, write=False)
    st = ScalableTables(mem)
    pdir, ptab = st.device(0, 0x10, sl.root, did=4, pdts=1)
    # PASID 5 (same table as RID_PASID 0): first-level; PASID 70 (dir entry 1): pass-through
    pe5 = ptab + 5 * 64
    mem.put_q(pe5, 1 | (1 << 6))
    mem.put_q(pe5 + 8, 7)
    mem.put_q(pe5 + 16, fl.root)
    t70 = mem.alloc()
    mem.put_q(pdir + 8, t70 | 1)
    mem.put_q(t70 + 6 * 64, 1 | (4 << 6))
    mem.put_q(t70 + 6 * 64 + 8, 8)
    d = walk_root_table(mem, st.root, "scalable").devices[0]
    assert [(p.pasid, p.translation_type, p.domain_id) for p in d.other_pasids] == [
        (5, "first-level", 7), (70, "pass-through", 8)]
    assert d.other_pasids[0].walk.extents == (Extent(0x7000, 0x200000, 4096, True, False),)
    ex = find_exposure(walk_root_table(mem, st.root, "scalable"), memory_end=1 << 30)
    assert ex.devices[0].passthrough  # a pass-through PASID reaches everything
    mem.put_q(t70 + 6 * 64, 0)
    ex = find_exposure(walk_root_table(mem, st.root, "scalable"))
    assert [(r.start, r.end, r.write) for r in ex.devices[0].ranges] == [
        (0x100000, 0x101000, True), (0x200000, 0x201000, False)]
    mem.drop(t70)
    d = walk_root_table(mem, st.root, "scalable").devices[0]
    assert [(u.paddr, u.what) for u in d.unreadable] == [(t70, "PASID table")]


def test_full_linear_leaf_table_fast_case_matches_entry_by_entry():
    mem = VtdMemory()
    pt = PageTable(mem, 3)
    for i in range(512):  # one full level-1 table, linear
        pt.map(0x200000 + i * 4096, 0x40000000 + i * 4096)
    for i in range(512):  # a second one, linear but one page read-only in the middle
        pt.map(0x400000 + i * 4096, 0x40200000 + i * 4096, write=(i != 100))
    w = walk_page_table(mem, pt.root, 3)
    assert w.mapped_4k_pages == 1024
    assert w.extents == (
        Extent(0x200000, 0x40000000, 0x200000 + 100 * 4096, True, True),
        Extent(0x400000 + 100 * 4096, 0x40200000 + 100 * 4096, 4096, True, False),
        Extent(0x400000 + 101 * 4096, 0x40200000 + 101 * 4096, 411 * 4096, True, True),
    )


def test_check_faults_verdicts():
    from kdumptool.analysis.vtd_walk import check_faults, fault_events
    from kdumptool.formats.klog import parse_log

    mem = VtdMemory()
    pt = PageTable(mem, 3)
    pt.map(0xFFFFC000, 0x3B6B000)
    pt.map(0xFFFFD000, 0x3B6C000, write=False)
    lt = LegacyTables(mem)
    lt.device(0, 0x10, pt.root, did=4)
    log = [
        "[    1.3] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x06] PTE Read access is not set",
        "[    1.4] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x06] PTE Read access is not set",
        "[    1.5] DMAR: [DMA Write NO_PASID] Request device [00:02.0] fault addr 0xffffd000 [fault reason 0x05] PTE Write access is not set",
        "[    1.6] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set",
    ]
    got = check_faults(mem, lt.root, "legacy", fault_events(parse_log(log)))
    assert [(c.address, c.access, c.count) for c in got] == [(0xFFFFC000, "read", 2), (0xFFFFD000, "write", 1),
                                                            (0x1000, "read", 1)]
    assert "in-flight DMA set up before the crash" in got[0].verdict and got[0].lookup.phys == 0x3B6B000
    assert got[1].verdict.endswith("but without write access")
    assert got[2].verdict.startswith("not mapped in the crashed kernel's tables either")
