"""Default tier: the Must-show checks of issue 6 on the real lab vmcores trimmed to the
pages the VT-d walk reads (fixtures/vmcore/vtd, see its PROVENANCE.md), against the
copied oracle files. Same checks as the corpus tier runs on the full dumps."""

from __future__ import annotations

import pytest

from kdumptool.analysis.vtd_walk import lookup_iova, walk_root_table
from kdumptool.formats.vtd_tables import decode_rtaddr, parse_drhd_regs_text
from kdumptool.sources.vmcore import open_dump
from tests.analysis.vtd_corpus_checks import check_scan_finds, check_walk_matches_oracle
from tests.conftest import FIXTURES
from tests.vtd_oracle import parse_roottable_check

FIX = FIXTURES / "vmcore" / "vtd"
RUNS = ["legacy_on", "sm_mismatch_vmcore"]
KINDS = ["trim.kdump", "trim.elf"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("run", RUNS)
def test_walk_equals_oracle(run, kind):
    oracles = sorted((FIX / run).glob("roottable_check*.txt"))
    n = check_walk_matches_oracle(FIX / f"{run}.{kind}", FIX / run / "drhd_regs.txt", oracles)
    assert n == sum(len(parse_roottable_check(f.read_text()).devices) for f in oracles) > 0


@pytest.mark.parametrize("run", RUNS)
def test_scan_finds_root_table(run):
    check_scan_finds(FIX / f"{run}.trim.kdump", FIX / run / "drhd_regs.txt")


def test_sm_mismatch_fault_iova_is_read_write():
    rt = decode_rtaddr(parse_drhd_regs_text((FIX / "sm_mismatch_vmcore/drhd_regs.txt").read_text())[0].rtaddr)
    with open_dump(str(FIX / "sm_mismatch_vmcore.trim.kdump")) as dump:
        r = lookup_iova(dump, rt.address, rt.mode, 0, 0x10, 0xFFFFC000)
    assert r.phys is not None and r.read and r.write


@pytest.mark.parametrize("run", RUNS)
def test_elf_and_kdump_give_the_same_tables(run):
    rt = decode_rtaddr(parse_drhd_regs_text((FIX / run / "drhd_regs.txt").read_text())[0].rtaddr)
    got = []
    for kind in KINDS:
        with open_dump(str(FIX / f"{run}.{kind}")) as dump:
            got.append(walk_root_table(dump, rt.address, rt.mode))
    assert got[0].devices == got[1].devices and got[0].domains == got[1].domains


@pytest.mark.parametrize("run", RUNS)
def test_page_list_is_what_the_walk_reads(run):
    lines = (FIX / run / "vtd_pages.txt").read_text().splitlines()
    listed = {int(x, 16) for x in lines if x and not x.startswith("#")}
    rt = decode_rtaddr(parse_drhd_regs_text((FIX / run / "drhd_regs.txt").read_text())[0].rtaddr)
    with open_dump(str(FIX / f"{run}.trim.kdump")) as dump:
        t = walk_root_table(dump, rt.address, rt.mode)
        assert set(t.pages_read) == listed
        assert all(dump.is_dumped(p) for p in listed)


@pytest.mark.parametrize("run", RUNS)
def test_scan_fast_path_equals_generic_path(run):
    from kdumptool.analysis.rtscan import find_root_tables

    with open_dump(str(FIX / f"{run}.trim.kdump")) as dump:
        ranges = list(dump.iter_dumped_ranges())
        fast = find_root_tables(dump, ranges)
        slow = find_root_tables(dump, ranges, use_fast=False)
    assert fast.fast_path and not slow.fast_path
    assert fast.candidates == slow.candidates
    assert fast.pages_scanned == slow.pages_scanned == sum(e - s for s, e in ranges) // 4096
