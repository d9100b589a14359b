"""Triage of the snapshots made from every lab run (fixtures/snapshots: real kernels under
QEMU with an emulated VT-d), the verdicts the issue asks for, and golden text/JSON.

Regenerate the golden files with ``KDUMPTOOL_REGEN_GOLDEN=1 pytest tests/analysis/test_triage_lab.py``
and read the diff.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kdumptool.analysis.triage import triage
from kdumptool.cli.names import naming
from kdumptool.render.triage import render_triage_json, render_triage_prometheus, render_triage_text
from kdumptool.sources.root import Root
from kdumptool.sources.triage import read_triage_input
from tests.conftest import FIXTURES, REPO

SNAP = FIXTURES / "snapshots"
GOLDEN = REPO / "tests" / "golden" / "triage"
RUNS = sorted(p.name for p in SNAP.iterdir() if p.is_dir()) if SNAP.is_dir() else []


def run(path: Path):
    return triage(read_triage_input(Root(path), use_tools=False))


def _rel(text: str) -> str:
    return text.replace(str(REPO) + "/", "")


def by_id(report, fid):
    return [f for f in report.findings if f.id == fid]


def test_every_lab_run_has_a_snapshot():
    assert {"kdump_legacy_on", "kdump_legacy_off", "kdump_sm_mismatch", "kdump_legacy_drv",
            "kdump_sm_mismatch_vmcore", "live_legacy_on", "live_smoke"} <= set(RUNS)


def test_legacy_on_tables_copied_driverless_listed_with_bridges():
    r = run(SNAP / "kdump_legacy_on")
    assert r.scenario.case == "copied" and r.scenario.table_copy == "copied"
    assert r.scenario.first.vtd and r.scenario.kdump.vtd and r.scenario.kdump.scalable is False
    copied = by_id(r, "tables-copied")[0]
    assert any("Copied translation tables from previous kernel for dmar0" in e.text for e in copied.evidence)
    driverless = {f.devices[0]: f for f in by_id(r, "driverless-bus-master")}
    assert set(driverless) == {"0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:03:01.0"}
    assert "below 02:00.0 -> 00:05.0" in driverless["0000:03:01.0"].title
    bridges = by_id(r, "bridge-shutdown-order")[0]
    assert bridges.devices == ("0000:00:05.0", "0000:02:00.0")
    e1000 = next(d for d in r.devices if d.bdf == "0000:03:01.0")
    assert e1000.upstream == ("0000:02:00.0", "0000:00:05.0") and e1000.modules == ("e1000",)
    assert r.verdict == "warning" and r.exit_code == 3


def test_legacy_off_translation_off_in_kdump_is_an_error():
    r = run(SNAP / "kdump_legacy_off")
    assert r.scenario.case == "on-off"
    assert r.scenario.first.vtd is True and r.scenario.kdump.vtd is False
    f = by_id(r, "translation-off-in-kdump")[0]
    assert f.severity == "error"
    texts = [str(e) for e in f.evidence]
    assert any("GSTS=0x47000000" in t and "TES=0" in t for t in texts)
    assert any("RTADDR=0x00000000025DC000" in t for t in texts)
    assert any("DMAR: IOMMU disabled" in t for t in texts)
    assert "intel_iommu=on" in f.remedy
    assert r.verdict == "error" and r.exit_code == 4


def test_sm_mismatch_copy_failed_fault_tied_to_e1000e():
    for name in ("kdump_sm_mismatch", "kdump_sm_mismatch_vmcore"):
        r = run(SNAP / name)
        assert r.scenario.case == "sm-mismatch" and r.scenario.table_copy == "failed"
        assert (r.scenario.first.scalable, r.scenario.kdump.scalable) == (True, False)
        sm = by_id(r, "scalable-mode-mismatch")[0]
        assert sm.severity == "error"
        assert any("Failed to copy translation tables" in e.text for e in sm.evidence)
        assert "intel_iommu=on,sm_on" in sm.remedy and "intel_iommu=on,sm_off" in sm.remedy
        fault = by_id(r, "dmar-fault")[0]
        assert fault.devices == ("0000:00:02.0",) and fault.severity == "error"
        assert "e1000e" in fault.title
        assert "Request device [00:02.0] fault addr 0xffffc000" in fault.evidence[0].text
        assert fault.evidence[0].line is not None
        assert r.verdict == "error"


def test_legacy_drv_copied_tables_torn_down_where_drivers_loaded():
    r = run(SNAP / "kdump_legacy_drv")
    assert r.scenario.case == "copied" and r.scenario.table_copy == "copied"
    f = by_id(r, "copied-tables-replaced")[0]
    for bdf in ("0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:03:01.0"):
        assert bdf in f.devices
    ev = {e.text.split()[2] if "[" in e.text else "": e for e in f.evidence}
    assert any("e1000e 0000:00:02.0" in e.text for e in f.evidence)  # the probe line in the log
    assert not by_id(r, "driverless-bus-master")  # every bus master got its driver
    del ev
    # legacy_on's kdump kernel bound no e1000e/nvme: those entries stayed copied.
    on = by_id(run(SNAP / "kdump_legacy_on"), "copied-tables-replaced")[0]
    assert "0000:00:02.0" not in on.devices


def test_live_snapshots_predict_copy_and_flag_missing_config():
    r = run(SNAP / "live_legacy_on")
    assert r.scenario.case == "copied" and r.scenario.table_copy == "expected"
    assert r.scenario.kdump.basis == "predicted"
    assert by_id(r, "no-kdump-config") and by_id(r, "kdump-initramfs-missing")
    assert not by_id(r, "kdump-not-loaded")
    smoke = run(SNAP / "live_smoke")
    assert by_id(smoke, "kdump-not-loaded")[0].severity == "error"


def _with_files(tmp_path: Path, snap: str, files: dict) -> Path:
    dest = tmp_path / snap
    shutil.copytree(SNAP / snap, dest, symlinks=True)
    for rel, src in files.items():
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path):
            shutil.copy(src, p)
        else:
            p.write_text(src)
    return dest


def test_live_sm_mismatch_predicted_from_debian_config(tmp_path):
    """The live kernel of the sm_mismatch run plus the kdump-tools setting the lab used
    for its kdump kernel: triage predicts, before any crash, what the kdump run showed."""
    conf = (FIXTURES / "kdumpconf/debian-kdump-tools").read_text().replace(
        '#KDUMP_CMDLINE_APPEND="irqpoll maxcpus=1 nousb"',
        'KDUMP_CMDLINE_APPEND="irqpoll nr_cpus=1 reset_devices intel_iommu=on,sm_off"',
    ).replace("USE_KDUMP=0", "USE_KDUMP=1")
    root = _with_files(tmp_path, "live_sm_mismatch", {
        "etc/default/kdump-tools": conf,
        "etc/os-release": 'ID=debian\n',
        "var/lib/kdump/initrd.img-6.1.0-56-amd64": FIXTURES / "initramfs/initrd-early-zstd.img",
        "proc/sys/kernel/osrelease": "6.1.0-56-amd64\n",
    })
    r = run(root)
    assert r.scenario.case == "sm-mismatch" and r.scenario.table_copy == "expected-to-fail"
    assert (r.scenario.first.scalable, r.scenario.kdump.scalable) == (True, False)
    sm = by_id(r, "scalable-mode-mismatch")[0]
    assert sm.severity == "error"
    assert 'KDUMP_CMDLINE_APPEND="irqpoll nr_cpus=1 reset_devices intel_iommu=on,sm_on"' in sm.remedy
    assert "/etc/default/kdump-tools" in sm.remedy
    assert any(e.source == "/etc/default/kdump-tools" and e.line for e in sm.evidence)
    # The fixture initramfs holds e1000e, nvme, virtio_blk: ahci, e1000 and virtio_pci are missing.
    missing = {f.devices[0] for f in by_id(r, "driverless-bus-master")}
    assert "0000:00:02.0" not in missing and "0000:00:03.0" not in missing
    assert {"0000:00:1f.2", "0000:03:01.0"} <= missing
    e1000 = next(f for f in by_id(r, "driverless-bus-master") if f.devices == ("0000:03:01.0",))
    assert "/etc/initramfs-tools/modules" in e1000.remedy


def test_live_legacy_off_predicted_from_rhel_config(tmp_path):
    sysconfig = (FIXTURES / "kdumpconf/rhel-sysconfig-kdump").read_text().replace(
        "hugetlb_cma=0 pcie_ports=compat", "hugetlb_cma=0 pcie_ports=compat intel_iommu=off")
    root = _with_files(tmp_path, "live_legacy_off", {
        "etc/kdump.conf": FIXTURES / "kdumpconf/rhel-kdump.conf",
        "etc/sysconfig/kdump": sysconfig,
        "etc/os-release": 'ID="rhel"\nID_LIKE="fedora"\n',
    })
    r = run(root)
    assert r.scenario.case == "on-off"
    f = by_id(r, "translation-off-in-kdump")[0]
    assert f.severity == "error"
    assert any(e.source == "/etc/sysconfig/kdump" and e.line == 24 for e in f.evidence)
    assert "KDUMP_COMMANDLINE_APPEND=" in f.remedy and "intel_iommu=off" not in f.remedy.split("KDUMP_COMMANDLINE_APPEND=")[1].split('"')[1]


def test_no_vtd_root_has_nothing_to_triage(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("root=/dev/vda1 quiet\n")
    r = run(tmp_path)
    assert r.verdict == "nothing" and r.exit_code == 0 and r.scenario.case == "no-vtd"


@pytest.mark.parametrize("name", RUNS)
def test_json_and_text_agree(name):
    r = run(SNAP / name)
    text = render_triage_text(r)
    j = json.loads(json.dumps(render_triage_json(r)))
    assert text.splitlines()[0].startswith("VERDICT: ")
    assert f"(exit {j['exit_code']})" in text.splitlines()[0]
    assert f"scenario:     {j['scenario']['case']}" in text
    for f in j["findings"]:
        assert f"{f['id']}: {f['title']}" in text
    prom = render_triage_prometheus(r)
    assert f'scenario="{j["scenario"]["case"]}"' in prom


@pytest.mark.parametrize("name", RUNS)
def test_golden(name):
    r = run(SNAP / name)
    names = naming(False)  # the pinned fixtures/pciids/pci.ids (tests/conftest.py)
    got_text = _rel(render_triage_text(r, names, verbose=True))  # every finding and evidence line
    got_json = _rel(json.dumps(render_triage_json(r, names), indent=2) + "\n")
    gt, gj = GOLDEN / f"{name}.txt", GOLDEN / f"{name}.json"
    if os.environ.get("KDUMPTOOL_REGEN_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        gt.write_text(got_text)
        gj.write_text(got_json)
    assert gt.exists(), f"no golden file {gt}: run with KDUMPTOOL_REGEN_GOLDEN=1"
    assert got_text == gt.read_text()
    assert got_json == gj.read_text()


def test_kdump_commandline_override_drops_intel_iommu_on(tmp_path):
    """A RHEL KDUMP_COMMANDLINE that replaces /proc/cmdline without intel_iommu=on, on a
    kernel built without CONFIG_INTEL_IOMMU_DEFAULT_ON: the kdump kernel will run with
    translation off while the first kernel has it on."""
    sysconfig = (FIXTURES / "kdumpconf/rhel-sysconfig-kdump").read_text().replace(
        'KDUMP_COMMANDLINE=""', 'KDUMP_COMMANDLINE="root=/dev/vda1 ro console=ttyS0"')
    config = "CONFIG_INTEL_IOMMU=y\n# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\nCONFIG_IRQ_REMAP=y\n"
    root = _with_files(tmp_path, "live_legacy_on", {
        "etc/kdump.conf": FIXTURES / "kdumpconf/rhel-kdump.conf",
        "etc/sysconfig/kdump": sysconfig,
        "etc/os-release": 'ID="fedora"\n',
        "proc/sys/kernel/osrelease": "6.1.0-56-amd64\n",
        "boot/config-6.1.0-56-amd64": config,
    })
    r = run(root)
    assert r.scenario.case == "on-off" and r.verdict == "error"
    assert "intel_iommu" not in (r.kdump_cmdline or "")
    f = by_id(r, "translation-off-in-kdump")[0]
    ev = [str(e) for e in f.evidence]
    assert any("/etc/sysconfig/kdump:15:" in e for e in ev)
    assert any("/boot/config-6.1.0-56-amd64:2: # CONFIG_INTEL_IOMMU_DEFAULT_ON is not set" in e for e in ev)
    assert "KDUMP_COMMANDLINE_APPEND" in f.remedy and "intel_iommu=on" in f.remedy


def test_remedy_edits_the_variable_that_holds_sm_off(tmp_path):
    """As the QEMU lab's live guest has it: KDUMP_CMDLINE in /etc/default/kdump-tools
    carries intel_iommu=on,sm_off; the remedy rewrites that line."""
    conf = ('KDUMP_CMDLINE="console=ttyS0 irqpoll nr_cpus=1 reset_devices iomem=relaxed '
            'intel_iommu=on,sm_off lab.mode=kdump lab.run=sm_mismatch"\n')
    root = _with_files(tmp_path, "live_sm_mismatch", {"etc/default/kdump-tools": conf})
    r = run(root)
    assert r.scenario.case == "sm-mismatch"
    assert r.kdump_cmdline.split()[-3] == "intel_iommu=on,sm_off"
    sm = by_id(r, "scalable-mode-mismatch")[0]
    assert ('set KDUMP_CMDLINE="console=ttyS0 irqpoll nr_cpus=1 reset_devices iomem=relaxed lab.mode=kdump '
            'lab.run=sm_mismatch intel_iommu=on,sm_on" in /etc/default/kdump-tools (line 1)') in sm.remedy


def test_translation_off_in_kdump_after_passthrough_is_only_a_warning(tmp_path):
    """iommu=pt in the first kernel: DMA addresses were physical, so a kdump kernel with
    intel_iommu=off lets in-flight DMA land where it always did."""
    conf = 'KDUMP_CMDLINE_APPEND="reset_devices intel_iommu=off"\n'
    root = _with_files(tmp_path, "live_legacy_off", {"etc/default/kdump-tools": conf})
    cmd = (root / "proc/cmdline").read_text().strip()
    r = run(root)
    assert r.scenario.case == "on-off" and by_id(r, "translation-off-in-kdump")[0].severity == "error"
    (root / "proc/cmdline").write_text(cmd + " iommu=pt\n")
    r = run(root)
    assert not by_id(r, "translation-off-in-kdump")  # one id, one severity: the pass-through case has its own
    f = by_id(r, "translation-off-in-kdump-passthrough")[0]
    assert f.severity == "warning" and "pass-through" in f.title
    assert any(e.text == "iommu=pt" for e in f.evidence)
    assert all(x.severity != "error" for x in by_id(r, "driverless-bus-master"))
