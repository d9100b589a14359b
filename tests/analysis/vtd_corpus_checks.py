"""Shared checks of our walk against the lab oracle, used on the full lab dumps
(corpus tier) and on the trimmed fixtures (default tier)."""

from __future__ import annotations

from pathlib import Path

from kdumptool.analysis.rtscan import find_root_tables
from kdumptool.analysis.vtd_walk import lookup_iova, walk_root_table
from kdumptool.formats.vtd_tables import decode_rtaddr, parse_drhd_regs_text
from kdumptool.sources.vmcore import open_dump
from tests.vtd_oracle import parse_roottable_check


def check_walk_matches_oracle(dump_path: Path, drhd_regs: Path, oracle_files: list) -> int:
    """Walk from the live RTADDR and compare with every oracle file; returns devices compared."""
    units = parse_drhd_regs_text(drhd_regs.read_text())
    rt = decode_rtaddr(units[0].rtaddr)
    compared = 0
    with open_dump(str(dump_path)) as dump:
        tables = walk_root_table(dump, rt.address, rt.mode)
        ours = {d.bdf.split(":", 1)[1]: d for d in tables.devices}
        assert not tables.unreadable and not tables.problems
        for f in oracle_files:
            oracle = parse_roottable_check(f.read_text())
            assert (oracle.root, oracle.mode) == (rt.address, rt.mode)
            assert sorted(ours) == sorted(oracle.devices), f
            for bdf, od in oracle.devices.items():
                d = ours[bdf]
                assert d.present == od.present, bdf
                assert d.domain_id == od.fields["DID"], bdf
                assert d.aw == od.fields["AW"], bdf
                assert d.pt_root == od.fields["SLPTPTR"], bdf
                if rt.mode == "legacy":
                    assert d.translation_type == {0: "multi-level", 1: "dev-iotlb", 2: "pass-through"}[od.fields["TT"]]
                else:
                    assert d.translation_type == {1: "first-level", 2: "second-level", 3: "nested",
                                                  4: "pass-through"}[od.fields["PGTT"]]
                    assert d.pasid == od.fields["RID_PASID"]
                assert d.walk is not None and not d.walk.unreadable
                assert (d.walk.mapped_4k_pages, d.walk.mapped_large_pages) == (od.mapped_4k, od.mapped_large), bdf
                for iova, phys in od.first:
                    r = lookup_iova(dump, rt.address, rt.mode, d.bus, d.devfn, iova)
                    assert r.phys == phys, (bdf, hex(iova))
                    assert any(x.iova <= iova < x.iova + x.size and x.phys + iova - x.iova == phys
                               for x in d.walk.extents), (bdf, hex(iova))
                for iova, pte, rd, wr in od.lookups:
                    r = lookup_iova(dump, rt.address, rt.mode, d.bus, d.devfn, iova)
                    assert r.steps[-1].name == "pte" and r.steps[-1].values[0] == pte, (bdf, hex(iova))
                    assert (r.read, r.write) == (rd, wr)
                compared += 1
    return compared


def check_scan_finds(dump_path: Path, drhd_regs: Path) -> None:
    rt = decode_rtaddr(parse_drhd_regs_text(drhd_regs.read_text())[0].rtaddr)
    with open_dump(str(dump_path)) as dump:
        res = find_root_tables(dump, dump.iter_dumped_ranges())
    assert res.best is not None
    assert (res.best.address, res.best.mode) == (rt.address, rt.mode)
    assert [c for c in res.candidates if c.valid][1:] == [], "only one valid root table expected"
