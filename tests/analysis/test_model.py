"""The system model of the lab's legacy_on snapshot against the capture's own oracles:
lspci -vvv, lspci -tv and the iommu_groups listing (parsed here, not hard-coded)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))
from lspci_oracle import parse_groups_listing, parse_tree, parse_vvv  # noqa: E402

SNAPSHOTS = FIXTURES / "snapshots"
ALL_RUNS = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())


@pytest.fixture(scope="module", params=ALL_RUNS)
def run(request):
    snap = SNAPSHOTS / request.param
    return snap, read_system(snap)


def _extra(snap: Path, name: str) -> str:
    return (snap / "_kdumptool" / name).read_text()


def test_every_lab_run_has_a_snapshot():
    kinds = {n.split("_", 1)[0] for n in ALL_RUNS}
    assert kinds == {"live", "kdump"}
    assert len(ALL_RUNS) == 11


def test_devices_and_bus_master_agree_with_lspci_vvv(run):
    snap, system = run
    vvv = parse_vvv(_extra(snap, "lspci_vvv.txt"))
    assert set(vvv) == set(system.devices)
    for bdf, o in vvv.items():
        d = system.devices[bdf]
        assert d.bus_master == o.control["BusMaster"], bdf
        assert (d.command & 0x2 != 0) == o.control["Mem"], bdf
        assert (d.command & 0x400 != 0) == o.control["DisINTx"], bdf
        assert d.driver == o.driver, bdf
        assert d.iommu_group == o.iommu_group, bdf
        assert d.port_type == o.port_type, bdf


def test_topology_agrees_with_lspci_tree(run):
    snap, system = run
    tree = parse_tree(_extra(snap, "lspci_tree.txt"))
    assert set(tree) == set(system.devices)
    for bdf, parent in tree.items():
        ups = system.devices[bdf].upstream
        assert (ups[0] if ups else None) == parent, bdf


def test_groups_agree_with_listing(run):
    snap, system = run
    listing = parse_groups_listing(_extra(snap, "iommu_groups.txt"))
    assert set(listing) == set(system.groups)
    for n, g in listing.items():
        mg = system.groups[n]
        assert mg.type == g.type
        assert set(mg.devices) == {b for b, _ in g.devices}
        assert [(r.start, r.end, r.type) for r in mg.reserved_regions] == g.reserved


def test_legacy_on_specifics():
    system = read_system(SNAPSHOTS / "live_legacy_on")
    bridge = system.devices["0000:02:00.0"]
    e1000 = system.devices["0000:03:01.0"]
    assert bridge.port_type == "PCI-Express to PCI/PCI-X Bridge"
    assert (bridge.secondary_bus, bridge.subordinate_bus) == (3, 3)
    assert e1000.upstream == ("0000:02:00.0", "0000:00:05.0")
    assert e1000.iommu_group == bridge.iommu_group
    ich9 = system.groups[system.devices["0000:00:1f.0"].iommu_group]
    assert any(r.type == "direct-relaxable" and r.start == 0 for r in ich9.reserved_regions)
    assert not system.in_kdump_kernel
    assert system.kexec_crash_size == 256 << 20


def test_kdump_runs_are_marked():
    for name in ALL_RUNS:
        system = read_system(SNAPSHOTS / name)
        assert system.in_kdump_kernel == name.startswith("kdump_"), name


def test_kdump_risk_is_bus_master_without_driver():
    # legacy_on kdump kernel: no network/storage drivers loaded, devices still master.
    system = read_system(SNAPSHOTS / "kdump_legacy_on")
    vvv = parse_vvv(_extra(SNAPSHOTS / "kdump_legacy_on", "lspci_vvv.txt"))
    expected = {
        b for b, o in vvv.items()
        if o.control.get("BusMaster") and o.driver is None and not system.devices[b].is_bridge
    }
    assert expected  # the run has such devices (e1000e at 00:02.0)
    assert {b for b, d in system.devices.items() if d.kdump_risk} == expected
