"""The kernel-behaviour table and the verdicts that depend on it, on real lab data of
kernels other than 6.1: Debian 11's 5.10.0-32 (5.10.223) with scalable-mode tables, and
6.12 with iommu=pt (fixtures/lab/*@*, cut by lab/make-fixtures; PROVENANCE.md there).

The oracle is the kdump kernel's own log in each fixture (kdump_dmar_lines.txt): what it
printed about the copy and the fault reasons it logged."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdumptool.analysis.scenario import KernelState, check_verdict, classify
from kdumptool.analysis.triage import triage
from kdumptool.model.kernel_table import (
    COPY_ECS,
    COPY_SMT,
    KERNEL_TABLE,
    kernel_row,
    kernel_table_markdown,
    parse_version,
    translation_meaning,
)
from kdumptool.model.log import LogMarkers, scan_log
from kdumptool.sources.root import open_root
from kdumptool.sources.triage import open_triage_input
from tests.conftest import FIXTURES

LAB = FIXTURES / "lab"


@pytest.mark.parametrize("release,banner,row", [
    ("5.10.0-32-amd64", "Linux version 5.10.0-32-amd64 (...) #1 SMP Debian 5.10.223-1 (2024-08-10)", COPY_ECS),
    ("6.1.0-57-amd64", None, COPY_SMT),
    ("6.12.95+deb12-amd64", None, COPY_SMT),
    ("4.18.0-553.el8_10.x86_64", None, COPY_ECS),
    ("5.14.0-427.13.1.el9_4.x86_64", None, COPY_ECS),
    ("5.15.0-91-generic", None, COPY_ECS),
    ("5.15.69", None, COPY_SMT),        # the September 2022 stable backport
    ("4.1.0", None, "none"),
])
def test_rows(release, banner, row):
    r = kernel_row(release, banner)
    assert r is not None and r.table_copy == row


def test_version_and_table():
    assert parse_version("5.10.0-32-amd64", "#1 SMP Debian 5.10.223-1") == (5, 10, 223)
    assert parse_version("5.10.0-32-amd64", "#1 SMP Debian 6.1.1-1") == (5, 10, 0)
    assert parse_version(None) is None and parse_version("garbage") is None
    assert kernel_row("x") is None
    # Rows tile the version line without gaps or overlaps, each with a source.
    for a, b in zip(KERNEL_TABLE, KERNEL_TABLE[1:]):
        assert a.until == b.since
    assert all(r.source for r in KERNEL_TABLE)
    md = kernel_table_markdown()
    assert md.count("\n") == len(KERNEL_TABLE) + 2 and "`ecs-bit`" in md


def test_translation_meanings():
    assert not translation_meaning("pass-through").bounded
    assert all(translation_meaning(t).bounded for t in ("multi-level", "dev-iotlb", "second-level",
                                                          "first-level", "nested"))
    assert translation_meaning("reserved") is None


def _kdump_triage(name: str, with_vmcore: bool = True):
    d = LAB / name
    with open_root(d / "kdump_snapshot.tar.gz") as root, \
            open_triage_input(root, str(d / "vmcore.trim.kdump") if with_vmcore else None) as inp:
        return triage(inp)


def _oracle(name: str) -> str:
    return (LAB / name / "kdump_dmar_lines.txt").read_text()


def test_510_sm_mismatch_is_the_mismatch_with_the_intel_iommu_remedy():
    name = "sm_mismatch@5.10"
    lines = _oracle(name)
    # The kernel's own words: it "copied" (no failure) and then faulted on the misread entries.
    assert "DMAR: Copied translation tables from previous kernel for dmar0" in lines
    assert "Failed to copy" not in lines and "[fault reason 11] non-zero reserved fields in CTP" in lines
    rep = _kdump_triage(name)
    s = rep.scenario
    assert (s.case, s.table_copy) == ("sm-mismatch", "misread"), s.title
    assert s.first.scalable is True and s.kdump.scalable is False
    assert s.kernel_row is not None and s.kernel_row.id == "ecs-bit"
    assert "5.10.0-32-amd64" in (s.kernel_basis or "")
    f = next(f for f in rep.findings if f.id == "scalable-mode-mismatch")
    assert f.severity == "error" and "intel_iommu=on" in (f.remedy or "")
    assert any("crashed kernel 5.10.0-32-amd64 (VMCOREINFO OSRELEASE)" in e.text for e in s.first.evidence)
    assert not s.contradictions and rep.verdict == "error"
    # The fault the kernel logged is tied to the e1000e.
    assert any(f.id == "dmar-fault" and "00:02.0" in f.title for f in rep.findings)


def test_510_sm_on_both_is_a_misread_copy_too():
    name = "sm_on@5.10"
    lines = _oracle(name)
    assert "DMAR: Copied translation tables from previous kernel for dmar0" in lines
    assert "SM: Error attempting to access PASID Table Entry" in lines
    rep = _kdump_triage(name)
    s = rep.scenario
    assert (s.case, s.table_copy) == ("copy-misread", "misread"), s.title
    assert s.first.scalable is True and s.kdump.scalable is True
    f = next(f for f in rep.findings if f.id == "copy-misread")
    assert f.severity == "error" and "without sm_on" in (f.remedy or "")


def test_612_passthrough_reports_unrestricted_dma_for_every_driverless_device():
    name = "passthrough@6.12"
    assert "DMAR: Copied translation tables from previous kernel for dmar0" in _oracle(name)
    rep = _kdump_triage(name)
    assert rep.scenario.case == "copied" and rep.scenario.kernel_row.id == "rtaddr-smt"  # type: ignore[union-attr]
    driverless = [f for f in rep.findings if f.id == "driverless-bus-master"]
    assert driverless
    for f in driverless:
        assert "pass-through" in f.title and "unrestricted DMA" in f.title, f.title
    tables = next(f for f in rep.findings if f.id == "crashed-kernel-tables")
    assert tables.severity == "warning" and "pass-through" in tables.title
    assert "still had mapped pages" not in tables.title.split(";")[0]
    tt = next(f for f in rep.findings if f.id == "tables-copied")
    assert "iommu=pt" in tt.title


def _state(role: str, vtd, scalable) -> KernelState:
    return KernelState(role, "observed", None, vtd, scalable)


def test_consistency_check_withholds_a_contradicted_verdict():
    copied_log: LogMarkers = scan_log(["DMAR: Translation already enabled - trying to copy translation structures",
                                       "DMAR: Copied translation tables from previous kernel for dmar0"])
    ecs = kernel_row("5.10.0-32-amd64")
    smt = kernel_row("6.1.0-57-amd64")
    # A kernel of the ECS row "copies" whatever it finds: unknown first mode stays unknown,
    # and the verdict does not claim a mode.
    s = classify(_state("first", True, None), _state("kdump", True, False), True, True, copied_log, ecs)
    assert s.case == "copied" and not s.contradictions
    # With the first kernel's mode known to differ, the "Copied" line is a misread.
    s = classify(_state("first", True, True), _state("kdump", True, False), True, True, copied_log, ecs)
    assert (s.case, s.table_copy) == ("sm-mismatch", "misread")
    # Predicted on an ECS-row kernel: the copy will be misread, not refused.
    s = classify(_state("first", True, True), _state("kdump", True, False), False, True, None, ecs)
    assert s.table_copy == "expected-misread"
    s = classify(_state("first", True, True), _state("kdump", True, False), False, True, None, smt)
    assert s.table_copy == "expected-to-fail"
    # A "same mode" verdict the tables contradict is withheld, never reported.
    s = classify(_state("first", True, False), _state("kdump", True, False), True, True, copied_log, smt)
    assert s.case == "copied"
    bad = check_verdict(s, tables_mode="scalable")
    assert bad.case == "unknown" and bad.severity == "warning" and bad.contradictions
    forged = replace(s, first=_state("first", True, True))
    assert check_verdict(forged).case == "unknown"
    off = replace(s, case="on-off", kdump=_state("kdump", True, False))
    assert "translation off in the kdump kernel" in check_verdict(off).contradictions[0]


def test_docs_show_the_table_of_the_code():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "triage.md").read_text()
    start, end = "<!-- kernel-table:start -->\n", "<!-- kernel-table:end -->"
    assert doc[doc.index(start) + len(start):doc.index(end)] == kernel_table_markdown()


@given(st.text(max_size=60), st.one_of(st.none(), st.text(max_size=80)))
def test_fuzz_release_strings(release, banner):
    # Whatever a snapshot or a vmcore claims, a row or None, never an exception.
    r = kernel_row(release, banner)
    assert r is None or r in KERNEL_TABLE
