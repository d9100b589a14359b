"""The fast page-table walk (struct + bit masks) against a slow reference walk that
decodes every entry with the construct spec ``SlPteStruct`` (formats/vtd_tables.py), and
the fast root/context decode against ``RootEntryStruct``/``ContextEntryStruct`` and the
scalable-mode specs: on the real trimmed lab dumps and on synthetic superpage tables."""

from __future__ import annotations

import pytest

from kdumptool.analysis.vtd_walk import walk_page_table, walk_root_table
from kdumptool.errors import NotMapped
from kdumptool.formats import vtd_tables as vt
from kdumptool.formats.vtd_tables import decode_rtaddr, parse_drhd_regs_text
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES
from tests.vtd_memory import PageTable, VtdMemory

FIX = FIXTURES / "vmcore" / "vtd"


def reference_walk(mem, root: int, levels: int):
    """Leaves as (iova, phys, size, r, w) with construct-decoded entries; merged like the walk."""
    leaves = []

    def table(paddr, level, base, r_, w_):
        try:
            page = mem.read(paddr, 4096)
        except NotMapped:
            return
        for i in range(512):
            e = vt.parse_sl_pte(page[i * 8 : i * 8 + 8])
            if not (e.r or e.w):
                continue
            r, w = r_ and e.r, w_ and e.w
            iova = base + (i << (12 + 9 * (level - 1)))
            if level == 1 or (e.ps and level in (2, 3)):
                size = 1 << (12 + 9 * (level - 1))
                leaves.append((iova, e.addr & ~(size - 1), size, r, w, level))
            elif not e.ps:
                table(e.addr, level - 1, iova, r, w)

    table(root, levels, 0, True, True)
    merged = []
    for iova, phys, size, r, w, _ in leaves:
        if merged and merged[-1][0] + merged[-1][2] == iova and merged[-1][1] + merged[-1][2] == phys \
                and merged[-1][3:] == (r, w):
            merged[-1] = (merged[-1][0], merged[-1][1], merged[-1][2] + size, r, w)
        else:
            merged.append((iova, phys, size, r, w))
    n4k = sum(1 for x in leaves if x[5] == 1)
    return merged, n4k, len(leaves) - n4k


def _as_tuples(walk):
    return [(x.iova, x.phys, x.size, x.read, x.write) for x in walk.extents]


@pytest.mark.parametrize("run", ["legacy_on", "sm_mismatch_vmcore"])
def test_fast_walk_equals_construct_walk_on_lab_tables(run):
    rt = decode_rtaddr(parse_drhd_regs_text((FIX / run / "drhd_regs.txt").read_text())[0].rtaddr)
    with open_dump(str(FIX / f"{run}.trim.kdump")) as dump:
        tables = walk_root_table(dump, rt.address, rt.mode)
        assert tables.domains
        for w in tables.domains:
            ext, n4k, nl = reference_walk(dump, w.pt_root, w.levels)
            assert (_as_tuples(w), w.mapped_4k_pages, w.mapped_large_pages) == (ext, n4k, nl)
        # root and context entries through the construct specs give the same devices
        root = dump.read(rt.address, 4096)
        for d in tables.devices:
            if rt.mode == "legacy":
                re_ = vt.parse_root_entry(root[d.bus * 16 : d.bus * 16 + 16])
                ce = vt.parse_context_entry(dump.read(re_.ctp + d.devfn * 16, 16))
                assert (ce.did, ce.aw, ce.slptptr, ce.translation_type) == (
                    d.domain_id, d.aw, d.pt_root, d.translation_type)
            else:
                sm = vt.parse_sm_root_entry(root[d.bus * 16 : d.bus * 16 + 16])
                ctp = sm.lctp if d.devfn < 128 else sm.uctp
                ce = vt.parse_sm_context_entry(dump.read(ctp + (d.devfn & 0x7F) * 32, 32))
                de = vt.parse_pasid_dir_entry(dump.read(ce.pasid_dir_ptr + (ce.rid_pasid >> 6) * 8, 8))
                pe = vt.parse_pasid_entry(dump.read(de.smptblptr + (ce.rid_pasid & 63) * 64, 64))
                assert (pe.did, pe.aw, pe.slptptr, pe.translation_type) == (
                    d.domain_id, d.aw, d.pt_root, d.translation_type)


@pytest.mark.parametrize("levels", [3, 4, 5])
def test_fast_walk_equals_construct_walk_synthetic(levels):
    mem = VtdMemory()
    pt = PageTable(mem, levels)
    pt.map(0, 0x40000000, 1 << 30)
    pt.map(1 << 30, 0x200000, 2 << 20, write=False)
    for i in range(40):
        pt.map(0x80000000 + i * 4096, 0x1000000 + (i // 3) * 4096, write=bool(i % 5))
    for i in range(512):  # a full linear leaf table (the walk's fast case)
        pt.map(0xC0000000 + i * 4096, 0x3000000 + i * 4096)
    w = walk_page_table(mem, pt.root, levels)
    ext, n4k, nl = reference_walk(mem, pt.root, levels)
    assert (_as_tuples(w), w.mapped_4k_pages, w.mapped_large_pages) == (ext, n4k, nl)
    assert n4k == 40 + 512 and nl == 2
