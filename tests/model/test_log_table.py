"""One reading of a kernel-log line: triage's scenario markers (model/log.scan_log_text)
and ``kdumptool log`` (formats/klog.parse_log) both classify lines through klog's pattern
table, so every line of a real log gets the same kind from both (MARKER_OF_EVENT only
renames). Checked on every log under fixtures/ (default tier) and on every log of
../shared's corpus and lab captures (corpus tier)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Set, Tuple

import pytest

from kdumptool.formats.klog import parse_log
from kdumptool.model.log import MARKER_OF_EVENT, scan_log_text

REPO = Path(__file__).resolve().parent.parent.parent

Key = Tuple[int, str, str]


def _both(data: bytes, name: str) -> Tuple[Set[Key], Set[Key]]:
    """(line, marker kind, unit or device) as triage reads the log, and as `log` does."""
    scen = {(m.evidence.line, m.kind, m.get("bdf") or m.get("unit") or "")
            for m in scan_log_text(data, name).markers if m.kind != "fault"}
    klog: Set[Key] = set()
    for ev in parse_log(data.decode("utf-8", "replace").split("\n")):
        if ev.kind == "driver" and ev.bdf is not None and ev.bdf.startswith("0000:"):
            klog.add((ev.line, "probe", ev.bdf))  # triage reads segment 0 by default
        elif ev.kind in MARKER_OF_EVENT:
            klog.add((ev.line, MARKER_OF_EVENT[ev.kind], ev.unit or ev.bdf or ""))
    return scen, klog


def _logs(base: Path) -> List[Path]:
    out = []
    for p in sorted(base.rglob("*")):
        if not p.is_file() or p.suffix in (".json", ".md", ".tsv", ".gz", ".xz", ".dat", ".bin"):
            continue
        head = p.read_bytes()[:65536]
        if b"\0" in head:  # binary (a dump, a table)
            continue
        out.append(p)
    return out


def _check(files: List[Path]) -> int:
    lines = 0
    bad: List[str] = []
    for p in files:
        data = p.read_bytes()
        scen, klog = _both(data, p.name)
        text = data.decode("utf-8", "replace").split("\n")
        for line, kind, what in sorted(scen ^ klog)[:3]:
            side = "triage only" if (line, kind, what) in scen else "log only"
            bad.append(f"{p}:{line}: {kind} {what} ({side}): {text[line - 1][:120]!r}")
        lines += len(scen)
    assert not bad, "\n".join(bad)
    return lines


def test_every_fixture_log_line_is_read_the_same_way():
    files = _logs(REPO / "fixtures")
    assert len(files) > 50
    assert _check(files) > 500  # markers compared (810 today), not an empty agreement


def test_the_comparison_sees_a_disagreement():
    """A pattern only one side knew (the old scenario table's ``DMAR: IOMMU enabled$``
    missed a CRLF line that klog reads) would be reported: the two readings are compared
    line by line, not counted."""
    scen, klog = _both(b"[    0.058421] DMAR: IOMMU enabled\r\n", "x")
    assert scen == klog == {(1, "param_on", "")}
    scen.discard((1, "param_on", ""))
    assert scen ^ klog


def test_context_kinds_are_read_once_and_not_listed_by_log():
    """Command line, x2apic and the opt-in/sm_on words are read from the one table for
    triage; ``kdumptool log`` neither counts nor lists them."""
    from kdumptool.analysis.log import analyse_log

    lines = ["[    0.000000] Kernel command line: BOOT_IMAGE=/vmlinuz intel_iommu=on elfcorehdr=0x7d000000",
             "[    0.010000] x2apic enabled",
             "[    0.020000] DMAR: Intel-IOMMU force enabled due to platform opt in",
             "[    0.030000] DMAR: IOMMU enabled"]
    m = scan_log_text("\n".join(lines))
    assert [k.kind for k in m.markers] == ["cmdline", "x2apic", "optin_forced", "param_on"]
    assert m.first("cmdline").get("cmdline").endswith("elfcorehdr=0x7d000000")
    rep = analyse_log(lines)
    assert rep.counts == {"kdump_kernel": 1, "iommu_enabled": 1}


@pytest.mark.corpus
def test_every_corpus_and_lab_log_line_is_read_the_same_way(shared: Path):
    files = _logs(shared / "corpus" / "dmesg") + _logs(shared / "lab-captures")
    assert len(files) > 300
    assert _check(files) > 1500  # 2,052 today
