"""Offline triage: a kdump-kernel snapshot plus what the crashed kernel left (its vmcore:
printk ring and VT-d tables; a saved first-kernel snapshot). Oracle for the tables:
``roottable_check.txt``, an independent decode of the same vmcores made in the lab
(fixtures/vmcore/vtd/<run>/), and the live kernel's RTADDR read with devmem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdumptool.analysis.triage import triage
from kdumptool.sources.root import Root
from kdumptool.sources.triage import open_triage_input
from tests.conftest import FIXTURES

SNAP = FIXTURES / "snapshots"
VTD = FIXTURES / "vmcore" / "vtd"
RUNS = ["legacy_on", "sm_mismatch_vmcore"]


def oracle(run: str):
    """bdf -> (DID, mapped 4K) and the LOOKUP lines of roottable_check.txt."""
    text = (VTD / run / "roottable_check.txt").read_text()
    root = re.search(r"root table @ (0x[0-9a-f]+) \((legacy|scalable) mode\)", text)
    devs = {}
    lookups = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) P=1", line)
        if m:
            cur = "0000:" + m.group(1)
        m = re.search(r"DID=(\d+) .*mapped 4K=(\d+) large=(\d+)", line)
        if m and cur:
            devs[cur] = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = re.search(r"LOOKUP iova (0x[0-9a-f]+) -> pte (0x[0-9a-f]+)", line)
        if m and cur:
            lookups[(cur, int(m.group(1), 16))] = int(m.group(2), 16) & ~0xFFF
    return int(root.group(1), 16), root.group(2), devs, lookups


def offline(run: str, vmcore=True, saved=True):
    """(the triage input, the report): the crashed kernel's tables are decoded by triage
    from the open vmcore, and come back on the report."""
    with open_triage_input(
        Root(SNAP / f"kdump_{run}"),
        vmcore=str(VTD / f"{run}.trim.kdump") if vmcore else None,
        saved=str(SNAP / f"live_{run}") if saved else None,
        use_tools=False,
    ) as inp:
        return inp, triage(inp)


@pytest.mark.parametrize("run", RUNS)
def test_tables_from_the_vmcore_match_roottable_check(run):
    inp, r = offline(run)
    addr, mode, devs, _ = oracle(run)
    t = r.crashed_tables
    assert (t.root_address, t.mode) == (addr, mode)
    assert "saved first-kernel snapshot" in t.found_by
    got = {d.bdf: (d.domain_id, d.mapped_4k, d.mapped_large) for d in t.devices if d.present}
    for bdf, want in devs.items():
        assert got[bdf] == want, bdf
    f = [f for f in r.findings if f.id == "crashed-kernel-tables"][0]
    assert any("0000:00:02.0" in e.text and f"{devs['0000:00:02.0'][1]} mapped 4 KiB" in e.text for e in f.evidence)
    assert r.scenario.first.scalable == (mode == "scalable")


def test_fault_iova_translated_with_the_crashed_kernels_tables():
    inp, r = offline("sm_mismatch_vmcore")
    _, _, _, lookups = oracle("sm_mismatch_vmcore")
    fl = r.crashed_tables.fault_lookups
    assert [(x.bdf, x.iova) for x in fl] == [("0000:00:02.0", 0xFFFFC000)]
    assert fl[0].phys == lookups[("0000:00:02.0", 0xFFFFC000)] and fl[0].read and fl[0].write
    fault = [f for f in r.findings if f.id == "dmar-fault"][0]
    assert any(f"maps to phys 0x{fl[0].phys:x}" in e.text for e in fault.evidence)
    assert r.scenario.case == "sm-mismatch" and r.verdict == "error"


def test_crashed_kernel_log_and_drivers():
    inp, r = offline("legacy_on")
    c = inp.crashed
    assert c.source.endswith("(printk ring)")
    assert "lab.run=legacy_on" in c.cmdline and "lab.mode=live" in c.cmdline
    assert c.drivers["0000:00:02.0"] == "e1000e"  # from the saved first-kernel snapshot
    assert r.scenario.first.x2apic is False  # "Enabled IRQ remapping in xapic mode" in the crashed log


def test_saved_snapshot_without_vmcore():
    inp, r = offline("legacy_on", vmcore=False)
    c = inp.crashed
    assert c.tables is None and c.vmcore is None
    assert c.source.endswith("_kdumptool/dmesg.txt") and c.drivers["0000:03:01.0"] == "e1000"
    assert r.scenario.case == "copied"


def test_vmcore_without_saved_snapshot_finds_the_table_by_scanning():
    inp, r = offline("sm_mismatch_vmcore", saved=False)
    addr, mode, _, _ = oracle("sm_mismatch_vmcore")
    t = r.crashed_tables
    assert (t.root_address, t.mode) == (addr, mode) and t.found_by.startswith("scan of the vmcore")
    # drivers now come from the crashed kernel's own probe lines
    assert inp.crashed.drivers.get("0000:00:02.0") == "e1000e"


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_full_lab_vmcore_scan_finds_the_live_rtaddr(shared: Path, run):
    regs = (shared / "lab-captures/live" / run / "drhd_regs.txt").read_text()
    rtaddr = int(re.search(r"^RTADDR\s+off=0x020 w=64 (0x[0-9A-F]+)", regs, re.M).group(1), 16)
    with open_triage_input(Root(SNAP / f"kdump_{run}"),
                           vmcore=str(shared / "lab-captures/kdump" / run / "vmcore.d31.zlib.kdump"),
                           use_tools=False) as inp:
        r = triage(inp)
    t = r.crashed_tables
    assert t.root_address == rtaddr & ~0xFFF and t.mode == ("scalable" if rtaddr & 0x400 else "legacy")
    assert r.verdict in ("warning", "error")


def _crash_dir(tmp_path: Path, run: str) -> Path:
    """A crash folder as kdump + `kdumptool record --publish` leave it: the vmcore, and
    kdumptool/ with the record (boot-time RTADDR of the first kernel) and the kdump
    kernel's snapshot as .tar.gz."""
    import json
    import shutil
    import tarfile

    d = tmp_path / "127.0.0.1-2026-11-21-07:51:10"
    (d / "kdumptool").mkdir(parents=True)
    shutil.copy(VTD / f"{run}.trim.kdump", d / "vmcore")
    live_rt = re.search(r"^RTADDR\s+off=0x020 w=64 (0x[0-9A-F]+)", (VTD / run / "drhd_regs.txt").read_text(), re.M)
    record = {"in_kdump_kernel": True, "rtaddr": {"dmar0": "0x1d836000"},
              "boot_record": {"path": "/sysroot/var/lib/kdumptool/boot", "rtaddr": {"dmar0": live_rt.group(1)}}}
    (d / "kdumptool/kdumptool-record.json").write_text(json.dumps(record))
    with tarfile.open(d / "kdumptool/kdumptool-snapshot.tar.gz", "w:gz") as tar:
        tar.add(SNAP / f"kdump_{run}", arcname="snapshot")
    return d


def test_saved_crash_folder_of_kdumptool_record(tmp_path):
    from kdumptool.sources.triage import find_kdump_snapshot

    d = _crash_dir(tmp_path, "legacy_on")
    snap = find_kdump_snapshot(str(d))
    assert snap is not None and snap.endswith("kdumptool/kdumptool-snapshot.tar.gz")
    from kdumptool.sources.root import open_root

    with open_root(snap) as r, open_triage_input(r, saved=str(d), use_tools=False, use_udev=False) as inp:
        rep = triage(inp)
    t = rep.crashed_tables
    addr, mode, devs, _ = oracle("legacy_on")
    assert (t.root_address, t.mode) == (addr, mode) and "recorded at boot" in t.found_by
    assert inp.crashed.vmcore == str(d / "vmcore")
    r = rep
    assert r.scenario.case == "copied" and any(f.id == "crashed-kernel-tables" for f in r.findings)


def test_cli_offline_with_only_a_saved_folder(tmp_path):
    import json

    from tests.cli.test_triage_cli import kt

    d = _crash_dir(tmp_path, "sm_mismatch_vmcore")
    p = kt("--offline", "--saved", str(d), "-f", "json")
    assert p.returncode == 4, p.stderr
    j = json.loads(p.stdout)
    assert j["scenario"]["case"] == "sm-mismatch"
    fault = [f for f in j["findings"] if f["id"] == "dmar-fault"][0]
    assert any("maps to phys 0x3b6b000" in e["text"] for e in fault["evidence"])
    assert kt("--offline", "--saved", str(tmp_path)).returncode == 2  # no kdump snapshot there
