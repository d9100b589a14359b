"""Must show (issue 6): on both lab vmcores, from the live RTADDR, every device, domain
id and mapped page count equals the lab's roottable_check oracle; 0xffffc000 of 00:02.0
resolves R/W in sm_mismatch_vmcore; the scan finds the same root table unprompted."""

from __future__ import annotations

import pytest

from kdumptool.analysis.vtd_walk import lookup_iova
from kdumptool.formats.vtd_tables import decode_rtaddr, parse_drhd_regs_text
from kdumptool.sources.vmcore import open_dump
from tests.analysis.vtd_corpus_checks import check_scan_finds, check_walk_matches_oracle
from tests.vtd_oracle import parse_roottable_check

RUNS = ["legacy_on", "sm_mismatch_vmcore"]


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_walk_equals_oracle(shared, run):
    lab = shared / "lab-captures"
    oracles = sorted((lab / "kdump" / run).glob("roottable_check*.txt"))
    assert oracles
    n = check_walk_matches_oracle(lab / "kdump" / run / "vmcore.d31.zlib.kdump", lab / "live" / run / "drhd_regs.txt",
                                  oracles)
    assert n == sum(len(parse_roottable_check(f.read_text()).devices) for f in oracles) > 0


@pytest.mark.corpus
def test_sm_mismatch_iova_read_write(shared):
    lab = shared / "lab-captures"
    rt = decode_rtaddr(parse_drhd_regs_text((lab / "live/sm_mismatch_vmcore/drhd_regs.txt").read_text())[0].rtaddr)
    with open_dump(str(lab / "kdump/sm_mismatch_vmcore/vmcore.d31.zlib.kdump")) as dump:
        r = lookup_iova(dump, rt.address, rt.mode, 0, 0x10, 0xFFFFC000)
    assert r.phys is not None and r.read and r.write


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_scan_finds_root_table(shared, run):
    lab = shared / "lab-captures"
    check_scan_finds(lab / "kdump" / run / "vmcore.d31.zlib.kdump", lab / "live" / run / "drhd_regs.txt")


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_scan_fast_path_equals_generic_path(shared, run):
    from kdumptool.analysis.rtscan import find_root_tables

    with open_dump(str(shared / "lab-captures" / "kdump" / run / "vmcore.d31.zlib.kdump")) as dump:
        ranges = list(dump.iter_dumped_ranges())
        fast = find_root_tables(dump, ranges)
        slow = find_root_tables(dump, ranges, use_fast=False)
    assert fast.fast_path and fast.skipped_raw_pages > 0
    assert fast.candidates == slow.candidates and fast.pages_scanned == slow.pages_scanned
