"""Compact triage text: findings of one kind and cause in one line with counts and device
classes, evidence capped, risky devices ranked and capped; nothing of it lost in -v."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kdumptool.render.grouping import group_findings, rank_devices
from tests.cliutil import run
from tests.conftest import FIXTURES

RUNS = ["kdump_legacy_on", "kdump_sm_mismatch", "live_legacy_drv"]


@pytest.mark.parametrize("name", RUNS)
def test_compact_keeps_every_kind_and_device(capsys: pytest.CaptureFixture, name: str) -> None:
    root = str(FIXTURES / "snapshots" / name)
    _, full, _ = run(capsys, "triage", "--root", root, "-f", "text", "-v")
    _, compact, _ = run(capsys, "triage", "--root", root, "-f", "text")
    assert len(compact.splitlines()) <= len(full.splitlines())
    ids = lambda t: {m for m in re.findall(r"^\[[A-Za-z ]+\] ([a-z0-9-]+)", t, re.M)}  # noqa: E731
    assert ids(full) == ids(compact)
    assert compact.splitlines()[0] == full.splitlines()[0]  # the verdict


def test_group_line_counts_devices_and_classes(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    # the lab snapshot with three more functions of its nvme device (copies of 00:03.0's
    # sysfs directory)
    snap = tmp_path / "snap"
    shutil.copytree(FIXTURES / "snapshots/kdump_legacy_on", snap, symlinks=True)
    top = snap / "sys/devices/pci0000:00"
    for fn in (1, 2, 3):
        shutil.copytree(top / "0000:00:03.0", top / f"0000:00:03.{fn}", symlinks=True)
        (snap / f"sys/bus/pci/devices/0000:00:03.{fn}").symlink_to(f"../../../devices/pci0000:00/0000:00:03.{fn}")
    _, out, _ = run(capsys, "triage", "--root", str(snap), "-f", "text")
    _, full, _ = run(capsys, "triage", "--root", str(snap), "-f", "text", "-v")
    assert len(out.splitlines()) < len(full.splitlines())
    m = re.search(r"^\[WARN \] driverless-bus-master x(\d+): (\d+) devices \(([^)]*)\); e\.g\. ", out, re.M)
    assert m, out
    assert m.group(1) == m.group(2)
    assert sum(int(x.split()[0]) for x in m.group(3).split(", ")) == int(m.group(2))
    # the copies have no module known (lspci -k names 00:03.0 only): one group of three,
    # 00:03.0 (nvme: a different remedy) stays a finding of its own
    assert m.group(2) == "3" and m.group(3) == "3 Non-Volatile memory controller"
    assert "    devices:  00:03.1, 00:03.2, 00:03.3\n" in out
    assert "driverless-bus-master: 00:03.0 [1b36:0010] (nvme)" in out


def test_grouping_and_ranking_units() -> None:
    from kdumptool.analysis.triage import DeviceRisk
    from kdumptool.model.evidence import Evidence
    from kdumptool.model.finding import Finding

    fs = [Finding("a", "warning", "t", remedy="r1"), Finding("a", "warning", "t", remedy="r2"),
          Finding("a", "warning", "t", remedy="r1"), Finding("b", "error", "t")]
    assert [len(g) for g in group_findings(fs)] == [2, 1, 1]

    def risk(bdf: str, reasons: tuple, faults: tuple = ()) -> DeviceRisk:
        return DeviceRisk(bdf, "8086:10d3", 0x020000, None, (), None, reasons, (), faults=faults)

    fault = Evidence("log", "DMAR: [DMA Read] Request device [00:03.0] fault addr 0x1000")
    ds = [risk("0000:00:02.0", ("x",)), risk("0000:00:01.0", ("x", "y")), risk("0000:00:03.0", ("x",), (fault,))]
    assert [d.bdf[-4:] for d in rank_devices(ds)] == ["03.0", "01.0", "02.0"]
