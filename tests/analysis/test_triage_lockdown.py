"""Triage with what kernel lockdown leaves: a lab snapshot (kdump_legacy_on) turned into
what `kdumptool collect` records under lockdown=integrity (the lockdown file says so and
/dev/mem was refused, so no VT-d register values), compared with the unlocked original."""

from __future__ import annotations

import json
import shutil

from kdumptool.analysis.triage import triage
from kdumptool.sources.root import Root
from kdumptool.sources.system import read_system
from kdumptool.sources.triage import read_triage_input
from tests.conftest import FIXTURES

SNAP = FIXTURES / "snapshots" / "kdump_legacy_on"
REFUSED = "/dev/mem: refused by kernel lockdown (integrity)"


def _locked_copy(tmp_path, mode="integrity"):
    tree = tmp_path / "locked"
    shutil.copytree(SNAP, tree, symlinks=True)
    (tree / "sys/kernel/security").mkdir(parents=True, exist_ok=True)
    words = ["none", "integrity", "confidentiality"]
    (tree / "sys/kernel/security/lockdown").write_text(" ".join(f"[{w}]" if w == mode else w for w in words) + "\n")
    for name in ("vtd_registers.json", "vtd_registers_early.json"):
        path = tree / "_kdumptool" / name
        if path.exists():
            doc = json.loads(path.read_text())
            for unit in doc["units"]:
                unit["registers"] = None
                unit["read_error"] = REFUSED
            path.write_text(json.dumps(doc))
    return tree


def _run(tree):
    return triage(read_triage_input(Root(tree), use_tools=False))


def test_lockdown_state_in_the_model(tmp_path):
    assert read_system(str(_locked_copy(tmp_path, "confidentiality")), use_udev=False).lockdown == "confidentiality"
    assert read_system(str(SNAP), use_udev=False).lockdown is None


def test_verdict_unchanged_and_lost_register_evidence_named(tmp_path):
    plain = _run(SNAP)
    locked = _run(_locked_copy(tmp_path))
    assert locked.scenario.case == plain.scenario.case == "copied"
    assert locked.verdict == plain.verdict
    assert not [f for f in plain.findings if f.id == "registers-refused-by-lockdown"]
    (f,) = [f for f in locked.findings if f.id == "registers-refused-by-lockdown"]
    assert f.title.startswith("Kernel lockdown (integrity) refused /dev/mem: VT-d registers of dmar0 not read")
    # the kdump kernel's state from the log: translation and IR still known; the table mode
    # (RTADDR in the unlocked run) now follows from ECAP in sysfs: QEMU's unit without
    # x-scalable-mode has SMTS clear, so legacy mode is all the kernel can run
    assert plain.scenario.kdump.scalable is False and locked.scenario.kdump.scalable is False
    assert any(e.source == "/sys/class/iommu/dmar0/intel-iommu" and "SMTS=0" in e.text
               for e in locked.scenario.kdump.evidence)
    assert "VT-d translation (GSTS.TES): on" in f.title and "interrupt remapping (GSTS.IRES): on" in f.title
    assert "table mode (RTADDR.SMT): legacy (ECAP.SMTS=0 in sysfs: this hardware has no scalable mode)" in f.title
    assert "/sys/class/iommu/{dmar0}/intel-iommu" in f.title
    assert any(e.source == "/sys/kernel/security/lockdown" and e.text == "[integrity]" for e in f.evidence)
    assert any(REFUSED in e.text for e in f.evidence)
    assert "kexec -s" in (f.remedy or "") and "disable" not in (f.remedy or "").lower()
    # register evidence the plain run cites is gone from the locked run
    regs = [e for g in plain.findings for e in g.evidence if "vtd_registers" in e.source]
    assert regs
    assert not [e for g in locked.findings for e in g.evidence if "vtd_registers" in e.source]


def test_no_finding_when_registers_were_read_under_none(tmp_path):
    tree = tmp_path / "none"
    shutil.copytree(SNAP, tree, symlinks=True)
    (tree / "sys/kernel/security").mkdir(parents=True, exist_ok=True)
    (tree / "sys/kernel/security/lockdown").write_text("[none] integrity confidentiality\n")
    assert not [f for f in _run(tree).findings if f.id == "registers-refused-by-lockdown"]


def test_table_mode_unknown_when_the_hardware_offers_scalable_mode(tmp_path):
    """With ECAP.SMTS set (hardware that can do scalable mode) and no RTADDR, the table mode
    has no evidence left under lockdown: UNKNOWN, never a guess."""
    tree = _locked_copy(tmp_path)
    ecap = tree / "sys/class/iommu/dmar0/intel-iommu/ecap"
    ecap.write_text(f"{int(ecap.read_text(), 16) | 1 << 43:x}\n")
    locked = _run(tree)
    (f,) = [f for f in locked.findings if f.id == "registers-refused-by-lockdown"]
    assert locked.scenario.kdump.scalable is None
    assert "table mode (RTADDR.SMT): UNKNOWN" in f.title and "ECAP.SMTS" not in f.title


LIVE_LOCKED = FIXTURES / "lockdown" / "live_locked_no_kdump"


def test_crash_kernel_refused_under_lockdown_real_snapshot():
    """A real locked-down live kernel (lab) where `kexec -p` and `kexec -s -p` were both
    refused: the kernel's own lines and kexec's errors are the oracle; triage says no crash
    kernel is loaded, why (lockdown), and that its registers were refused."""
    log = (LIVE_LOCKED / "dmesg_lockdown.txt").read_text()
    assert log.count("Lockdown: kexec: kexec of unsigned images is restricted") == 2
    assert "kexec_file_load failed: Operation not permitted" in (LIVE_LOCKED / "kexec.txt").read_text()
    assert "loaded=0" in (LIVE_LOCKED / "kexec.txt").read_text()
    r = _run(LIVE_LOCKED / "snapshot")
    by_id = {f.id: f for f in r.findings}
    assert r.verdict == "error" and r.exit_code == 4
    assert {"kdump-not-loaded", "kdump-load-locked-down", "registers-refused-by-lockdown"} <= set(by_id)
    f = by_id["kdump-load-locked-down"]
    assert f.severity == "warning" and f.title.startswith("The kernel is locked down (integrity)")
    assert ("/sys/kernel/security/lockdown", "[integrity]") in {(e.source, e.text) for e in f.evidence}
    assert "kexec -s -p" in (f.remedy or "") and "disable" not in (f.remedy or "").lower()
    assert not r.scenario.in_kdump


def test_no_lockdown_load_finding_when_unlocked_or_loaded(tmp_path):
    tree = tmp_path / "unlocked"
    shutil.copytree(LIVE_LOCKED / "snapshot", tree, symlinks=True)
    (tree / "sys/kernel/security/lockdown").write_text("[none] integrity confidentiality\n")
    ids = {f.id for f in _run(tree).findings}
    assert "kdump-not-loaded" in ids and "kdump-load-locked-down" not in ids
    (tree / "sys/kernel/security/lockdown").write_text("none [integrity] confidentiality\n")
    (tree / "sys/kernel/kexec_crash_loaded").write_text("1\n")
    ids = {f.id for f in _run(tree).findings}
    assert "kdump-not-loaded" not in ids and "kdump-load-locked-down" not in ids
