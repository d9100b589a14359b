"""A sos report as --root: the sos-shaped copies of two lab snapshots (fixtures/sos) give
triage the same verdict and findings as the snapshots themselves, the same PCI devices,
and say what a sos report does not hold."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from kdumptool.sources.system import read_system
from tests.cliutil import run
from tests.conftest import FIXTURES

RUNS = ["live_legacy_drv", "live_sm_mismatch"]


@pytest.mark.parametrize("name", RUNS)
def test_triage_same_verdict_as_snapshot(capsys: pytest.CaptureFixture, name: str) -> None:
    c1, snap, _ = run(capsys, "triage", "--root", str(FIXTURES / "snapshots" / name), "-f", "json")
    c2, sos, _ = run(capsys, "triage", "--root", str(FIXTURES / "sos" / f"sos_{name}"), "-f", "json")
    a, b = json.loads(snap), json.loads(sos)
    assert c1 == c2 and a["verdict"] == b["verdict"] and a["scenario"]["case"] == b["scenario"]["case"]
    ids = lambda doc: sorted(f["id"] for f in doc["findings"] if f["id"] != "input-warning")  # noqa: E731
    assert ids(a) == ids(b)
    said = " ".join(f["title"] for f in b["findings"])
    assert "a sos report; not in it" in said and "VT-d registers" in said
    assert any("sos_commands/kernel/dmesg" in json.dumps(f) for f in b["findings"])


@pytest.mark.parametrize("name", RUNS)
def test_pci_same_devices(name: str) -> None:
    a = read_system(FIXTURES / "snapshots" / name)
    b = read_system(FIXTURES / "sos" / f"sos_{name}")
    assert set(a.devices) == set(b.devices)
    for bdf, d in a.devices.items():
        e = b.devices[bdf]
        assert (e.vendor_id, e.device_id, e.command, e.driver, e.iommu_group, e.upstream, e.kdump_risk) == \
            (d.vendor_id, d.device_id, d.command, d.driver, d.iommu_group, d.upstream, d.kdump_risk), bdf
        assert e.config is not None and e.config_size == d.config_size
    assert set(b.groups) == set(a.groups) and all(g.type is None for g in b.groups.values())


def test_tarball_and_source_name(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    tgz = tmp_path / "sosreport-host-2026-12-06.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(FIXTURES / "sos/sos_live_legacy_drv", arcname="sosreport-host-2026-12-06")
    code, out, _ = run(capsys, "triage", "--root", str(tgz), "-f", "text")
    assert code == 3 and f"source:       {tgz}\n" in out and "kdumptool-root-" not in out
    code, out, _ = run(capsys, "pci", "--root", str(tgz), "-f", "json")
    assert json.loads(out)["source"] == str(tgz)


def test_without_lspci_drivers_are_unknown(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    sos = tmp_path / "sos"
    shutil.copytree(FIXTURES / "sos/sos_live_legacy_drv", sos)
    (sos / "sos_commands/pci/lspci_-nnvv").unlink()
    s = read_system(sos)
    assert s.devices and all(not d.driver_known and not d.kdump_risk for d in s.devices.values())
    code, out, _ = run(capsys, "pci", "--root", str(sos), "-f", "text")
    assert "driver=? (unknown)" in out and "lspci -nnvv" in out
