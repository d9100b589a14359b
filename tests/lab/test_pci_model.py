"""kdumptool's PCI/IOMMU model (its library, run in the guest: guest/kdt_probe.py) against
the guest's own view: Debian's lspci (-n, -vvv), sysfs links (driver, iommu_group, the
device path) and /sys/kernel/iommu_groups."""

from __future__ import annotations

import json
import re
from typing import Any, Dict

import pytest

from tests.lab.labrun import Run

pytestmark = pytest.mark.lab
MODES = ["live", "kdump"]


def lspci_n(run: Run, mode: str) -> Dict[str, Dict[str, int]]:
    """``lspci -n``: ``BB:DD.F CCCC: VVVV:DDDD (rev RR)``."""
    out = {}
    for ln in run.text(mode, "lspci_n.txt").splitlines():
        m = re.match(r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ([0-9a-f]{4}): ([0-9a-f]{4}):([0-9a-f]{4})"
                     r"(?: \(rev ([0-9a-f]{2})\))?(?: \(prog-if ([0-9a-f]{2})\))?", ln)
        if m:
            bdf = f"{m.group(1) or '0000'}:{m.group(2)}"
            out[bdf] = {"class": int(m.group(3), 16), "vendor": int(m.group(4), 16),
                        "device": int(m.group(5), 16), "rev": int(m.group(6) or "0", 16)}
    assert out, f"{run.name}: no devices in {mode}/lspci_n.txt"
    return out


def sysfs(run: Run, mode: str) -> Dict[str, Dict[str, str]]:
    out = {}
    for ln in run.text(mode, "pci_sysfs.txt").splitlines():
        words = ln.split()
        out[words[0]] = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return out


def bus_master(run: Run, mode: str) -> Dict[str, bool]:
    """``lspci -vvv``: the Control: line's BusMaster+/-."""
    out = {}
    cur = None
    for ln in run.text(mode, "lspci_vvv.txt").splitlines():
        m = re.match(r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", ln)
        if m:
            cur = f"{m.group(1) or '0000'}:{m.group(2)}"
        elif cur and ln.startswith("\tControl:") and cur not in out:
            # The command register's line (one tab); capability lines nest deeper
            # (SltCtl's "Control: AttnInd ...").
            out[cur] = "BusMaster+" in ln
    return out


def model(run: Run, mode: str) -> Dict[str, Any]:
    return run.probe_part(mode, "system")  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", MODES)
def test_devices_match_lspci(run: Run, mode: str) -> None:
    want = lspci_n(run, mode)
    got = model(run, mode)["devices"]
    assert sorted(got) == sorted(want), f"{run.name} ({mode}): kdumptool devices {sorted(got)} != lspci {sorted(want)}"
    for bdf, w in want.items():
        d = got[bdf]
        assert (d["vendor_id"], d["device_id"]) == (w["vendor"], w["device"]), f"{run.name} ({mode}) {bdf}: ids"
        assert d["class_code"] >> 8 == w["class"], f"{run.name} ({mode}) {bdf}: class {d['class_code']:#x} vs lspci {w['class']:#x}"
        assert d["revision"] == w["rev"], f"{run.name} ({mode}) {bdf}: revision {d['revision']} vs lspci {w['rev']}"


@pytest.mark.parametrize("mode", MODES)
def test_bus_master_matches_lspci(run: Run, mode: str) -> None:
    want = bus_master(run, mode)
    got = model(run, mode)["devices"]
    for bdf, bm in want.items():
        assert got[bdf]["bus_master"] == bm, f"{run.name} ({mode}) {bdf}: kdumptool bus_master={got[bdf]['bus_master']}, lspci BusMaster{'+' if bm else '-'}"


@pytest.mark.parametrize("mode", MODES)
def test_drivers_and_groups_match_sysfs(run: Run, mode: str) -> None:
    want = sysfs(run, mode)
    got = model(run, mode)["devices"]
    for bdf, w in want.items():
        drv = None if w["driver"] == "-" else w["driver"]
        grp = None if w["group"] == "-" else int(w["group"])
        assert got[bdf]["driver"] == drv, f"{run.name} ({mode}) {bdf}: driver {got[bdf]['driver']!r}, sysfs {drv!r}"
        assert got[bdf]["iommu_group"] == grp, f"{run.name} ({mode}) {bdf}: group {got[bdf]['iommu_group']!r}, sysfs {grp!r}"


@pytest.mark.parametrize("mode", MODES)
def test_groups_match_sysfs_listing(run: Run, mode: str) -> None:
    want = {}
    for ln in run.text(mode, "iommu_groups.txt").splitlines():
        m = re.match(r"group (\d+) type=(\S*) devices=(.*)", ln)
        if m:
            want[int(m.group(1))] = (m.group(2) or None, sorted(m.group(3).split()))
    groups = model(run, mode)["groups"]
    got = {int(k): (g["type"], sorted(g["devices"])) for k, g in groups.items()}
    assert got == want, f"{run.name} ({mode}): kdumptool groups {got} != sysfs {want}"


@pytest.mark.parametrize("mode", MODES)
def test_upstream_bridges_match_sysfs_paths(run: Run, mode: str) -> None:
    want = sysfs(run, mode)
    got = model(run, mode)["devices"]
    for bdf, w in want.items():
        if "path" not in w:
            pytest.skip("this run's pci_sysfs.txt has no device paths")
        chain = [p for p in w["path"].split("/") if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", p)]
        upstream = list(reversed(chain[:-1]))
        assert list(got[bdf]["upstream"]) == upstream, f"{run.name} ({mode}) {bdf}: upstream {got[bdf]['upstream']} != sysfs path {upstream}"


def test_kdump_risk_devices(run: Run) -> None:
    """In the kdump kernel, a device mastering the bus (lspci BusMaster+) with no driver
    (sysfs) is what kdumptool must flag: the e1000e at least (it was receiving at the crash)."""
    bm = bus_master(run, "kdump")
    sf = sysfs(run, "kdump")
    got = model(run, "kdump")["devices"]
    want = {b for b, on in bm.items() if on and sf[b]["driver"] == "-" and not got[b]["is_host_bridge"]
            and not got[b]["is_bridge"]}
    flagged = {b for b, d in got.items() if d["kdump_risk"]}
    assert "0000:00:02.0" in want, f"{run.name}: the e1000e is not a driverless bus master in kdump: {sorted(want)}"
    assert want <= flagged, f"{run.name}: kdumptool kdump_risk {sorted(flagged)} misses {sorted(want - flagged)}"


@pytest.mark.parametrize("mode", MODES)
def test_kdumptool_pci_command_in_guest(run: Run, mode: str) -> None:
    res = run.kdt(mode, "pci")
    if res is None:
        pytest.skip("kdumptool pci is not in this tree")
    rc, out, err = res
    assert rc == 0, f"{run.name} ({mode}): kdumptool pci rc={rc}: {err[-1500:]}"
    text = json.dumps(json.loads(out))
    for bdf in lspci_n(run, mode):
        assert bdf[5:] in text, f"{run.name} ({mode}): kdumptool pci -f json does not mention {bdf}"


def test_kdump_drivers_loaded(run: Run) -> None:
    """legacy_drv: e1000e and nvme bind in the kdump kernel (sysfs), take over bus
    mastering (lspci), and no DMAR fault follows (the copied tables stay valid until each
    driver's device is attached to a new domain)."""
    from tests.lab.expect import expect

    want = expect(run.name).get("drivers_after")
    if not want:
        pytest.skip(f"{run.name} loads no drivers in the kdump kernel")
    before = sysfs(run, "kdump")
    after = sysfs(run, "kdump/after_drivers")
    bm = bus_master(run, "kdump/after_drivers")
    for bdf, drv in want.items():
        assert before[bdf]["driver"] == "-", f"{run.name} {bdf}: already bound before modprobe"
        assert after[bdf]["driver"] == drv, f"{run.name} {bdf}: driver {after[bdf]['driver']} after modprobe, want {drv}"
        assert bm[bdf], f"{run.name} {bdf}: BusMaster- after {drv} probed"
    assert "DMAR: DRHD: handling fault" not in run.text("kdump", "dmesg_final.txt"), f"{run.name}: DMAR fault after the drivers loaded"


def test_io_bar_sizes_match_lspci(run: Run) -> None:
    """``pci -v``'s I/O BAR lines, ``[size=...]`` included (from the snapshot's sysfs
    ``resource`` files), equal lspci -vvv's in the same live guest, which reads the same
    files. (Memory BARs and ROMs, sized from /proc/iomem, are compared on the fixture
    snapshots: tests/render/test_pci_vv_lspci.py.)"""
    from kdumptool.render.names import NUMERIC
    from kdumptool.render.pci import render_config_lines
    from kdumptool.sources.system import read_system

    snap = run.path("live", "snapshot")
    if not snap.is_dir():
        pytest.skip(f"{run.name}: no live snapshot (collect not run in this scenario)")
    system = read_system(str(snap), use_udev=False)
    theirs: Dict[str, set] = {}
    cur = ""
    for ln in run.text("live", "lspci_vvv.txt").splitlines():
        if ln and not ln[0].isspace():
            cur = "0000:" + ln.split()[0]
        elif ln.strip().startswith("Region ") and "I/O ports at" in ln:
            theirs.setdefault(cur, set()).add(" ".join(ln.split()))
    io_sized = 0
    for d in system.devices.values():
        ours = {" ".join(x.split()) for x in render_config_lines(d, NUMERIC, 1, system.resource_sizes(d.bdf))
                if x.strip().startswith("Region ") and "I/O ports at" in x}
        assert ours == theirs.get(d.bdf, set()), d.bdf
        io_sized += sum(1 for x in ours if "[size=" in x)
    assert io_sized == sum(len(x) for x in theirs.values()) > 0, run.name
