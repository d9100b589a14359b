"""Hostile kernel logs (issue 14): distinct DMA faults without end must not grow the fault
groups without bound (262,144 distinct device/reason pairs took 490 MB); the cap is said
in the report and the faults past it are still counted."""

from __future__ import annotations

import json
import tracemalloc

from kdumptool.analysis import log as log_analysis
from kdumptool.analysis.log import analyse_log
from tests.cliutil import run


def _faults(n: int):  # type: ignore[no-untyped-def]
    """n faults, each from another (device, reason) pair: no two group together (the
    kernel prints no segment, so 65,536 devices times the reason codes)."""
    for i in range(n):
        reason, rest = divmod(i, 65536)
        bus, df = divmod(rest, 256)
        yield (f"[{i // 1000:5d}.{i % 1000:03d}000] DMAR: [DMA Read NO_PASID] Request device "
               f"[{bus:02x}:{df >> 3:02x}.{df & 7}] fault addr 0x{i:x}000 [fault reason "
               f"0x{1 + reason:02x}] PTE Read access is not set")


def test_fault_groups_are_capped_and_the_cap_is_said(monkeypatch):
    monkeypatch.setattr(log_analysis, "MAX_FAULT_GROUPS", 50)
    r = analyse_log(list(_faults(400)))
    assert len(r.faults) == 50 and r.faults_ungrouped == 350
    assert r.counts["dma_fault"] == 400
    assert "fault groups truncated" in r.warnings[0] and "MAX_FAULT_GROUPS" in r.warnings[0]
    assert r.summary_json()["faults_ungrouped"] == 350
    assert r.verdict_level == "fault"


def test_distinct_faults_past_the_cap_cost_no_memory(monkeypatch):
    monkeypatch.setattr(log_analysis, "MAX_FAULT_GROUPS", 100)
    tracemalloc.start()
    try:
        small = analyse_log(_faults(150), max_events=10)
        peak_small = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        r = analyse_log(_faults(1500), max_events=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(small.faults) == len(r.faults) == 100
    assert r.faults_ungrouped == 1400
    assert peak < 2 * peak_small + (1 << 20), f"peak {peak >> 10} KiB vs {peak_small >> 10} KiB"


def test_log_cli_says_truncated(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(log_analysis, "MAX_FAULT_GROUPS", 10)
    p = tmp_path / "dmesg.txt"
    p.write_text("\n".join(_faults(30)) + "\n")
    code, out, err = run(capsys, "log", str(p), "-f", "text")
    assert "fault groups truncated: 20 faults" in out + err
    code, out, err = run(capsys, "log", str(p), "-f", "json")
    assert json.loads(out)["summary"]["faults_ungrouped"] == 20
