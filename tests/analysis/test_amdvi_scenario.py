"""The AMD-Vi scenario matrix (on/off in each kernel, copy ok/failed, not-kdump, SNP) from
command lines and kernel-log lines as Linux prints them, and through ``triage`` on a
snapshot root with an IVRS."""

from __future__ import annotations

from pathlib import Path

from kdumptool.analysis.amdvi_scenario import classify_amdvi, parse_amdvi_params
from kdumptool.analysis.triage import triage
from kdumptool.formats.klog import parse_log
from kdumptool.model.log import scan_log
from kdumptool.sources.root import Root
from kdumptool.sources.triage import read_triage_input
from tests.conftest import FIXTURES

T14 = FIXTURES / "ivrs" / "ivrs_Notebook_Lenovo_ThinkPad-T14-Gen-3-21CF004PGE_696E48381F84.dat"


def markers(text: str) -> list:
    return [(m.kind, m.evidence, dict(m.groups)) for m in scan_log(text.splitlines()).markers
            if m.kind.startswith("amdvi_")]


PRE = "[0.5] AMD-Vi: Translation is already enabled - trying to copy translation structures\n"
COPIED = "[0.6] AMD-Vi: Copied DEV table from previous kernel.\n"
FAILED = ("[0.6] AMD-Vi: The address of old device table is above 4G, not trustworthy!\n"
          "[0.6] AMD-Vi: Failed to copy DEV table from previous kernel.\n")
FRESH = "[0.6] pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40\n"


def test_params() -> None:
    p = parse_amdvi_params("ro amd_iommu=fullflush,off iommu=pt elfcorehdr=0x1000")
    assert p.off and p.amd_off and p.passthrough and p.is_kdump
    assert not parse_amdvi_params("amd_iommu=force_isolation").off
    assert parse_amdvi_params("iommu=off").off


def test_matrix_from_the_first_kernel() -> None:
    cases = {
        ("root=/dev/sda", "root=/dev/sda maxcpus=1"): "amd-copied",
        ("root=/dev/sda", "maxcpus=1 amd_iommu=off"): "amd-on-off",
        ("root=/dev/sda", "maxcpus=1 iommu=off"): "amd-on-off",
        ("amd_iommu=off", "amd_iommu=off"): "amd-off-both",
        ("amd_iommu=off", "maxcpus=1"): "amd-off-on",
        ("root=/dev/sda iommu=pt", "iommu=pt"): "amd-copied",
    }
    for (first, kd), want in cases.items():
        a = classify_amdvi(False, first, kd, [])
        assert a.case == want, (first, kd, a.case)
    a = classify_amdvi(False, "root=/dev/sda", "amd_iommu=off", [])
    assert a.severity == "error" and "neither copies nor protects" in a.title
    assert classify_amdvi(False, None, "x", []).case == "amd-unknown"


def test_matrix_inside_the_kdump_kernel() -> None:
    a = classify_amdvi(True, None, "elfcorehdr=0x1 maxcpus=1", markers(PRE + COPIED))
    assert (a.case, a.first_on, a.kdump_on, a.copy) == ("amd-copied", True, True, "copied")
    assert a.evidence[0].text.endswith("trying to copy translation structures")
    a = classify_amdvi(True, None, "elfcorehdr=0x1", markers(PRE + FAILED))
    assert a.case == "amd-copy-failed" and a.severity == "warning"
    assert a.copy_why == ("The address of old device table is above 4G, not trustworthy!",)
    assert "above 4G" in a.title
    # the kdump kernel set AMD-Vi up and found nothing left on: first kernel was off
    a = classify_amdvi(True, None, "elfcorehdr=0x1", markers(FRESH))
    assert (a.case, a.first_on) == ("amd-off-on", False)
    # amd_iommu=off on this kdump kernel's own command line, first kernel's says on
    a = classify_amdvi(True, "root=/dev/sda", "elfcorehdr=0x1 amd_iommu=off", [])
    assert a.case == "amd-on-off"


def test_not_kdump_and_snp() -> None:
    a = classify_amdvi(False, "root=/dev/sda", "x",
                       markers("AMD-Vi: Translation was enabled for IOMMU:0 but we are not in kdump mode\n"))
    assert a.case == "amd-not-kdump"
    a = classify_amdvi(False, "root=/dev/sda", "x", markers("[1.0] AMD-Vi: IOMMU SNP support enabled.\n"))
    assert a.snp and a.case == "amd-copied"


def test_klog_and_markers_agree() -> None:
    """One pattern table: the events of formats/klog and the markers of model/log name
    the same lines the same way."""
    text = PRE + FAILED + FRESH + COPIED
    ev_kinds = [e.kind for e in parse_log(text.splitlines()) if e.kind.startswith("amdvi_")]
    assert ev_kinds == [k for k, _, _ in markers(text)]


def _root(tmp_path: Path, kdump_append: str) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 crashkernel=256M\n")
    (tmp_path / "sys/firmware/acpi/tables").mkdir(parents=True)
    (tmp_path / "sys/firmware/acpi/tables/IVRS").write_bytes(T14.read_bytes())
    (tmp_path / "etc/sysconfig").mkdir(parents=True)
    (tmp_path / "etc/sysconfig/kdump").write_text(
        f'KDUMP_COMMANDLINE_APPEND="irqpoll nr_cpus=1 reset_devices {kdump_append}"\n')
    (tmp_path / "etc/redhat-release").write_text("Red Hat Enterprise Linux release 9.4 (Plow)\n")
    return tmp_path


def test_triage_names_the_amd_verdict_and_remedy(tmp_path: Path) -> None:
    root = _root(tmp_path, "amd_iommu=off")
    r = triage(read_triage_input(Root(root), use_tools=False))
    ids = [f.id for f in r.findings]
    # the AMD-Vi case is the scenario; nothing is said of VT-d on an AMD machine
    assert "no-vtd" not in ids and "amdvi-on-off" in ids
    assert r.vendor == "AMD-Vi" and r.scenario.case == "amd-on-off" and r.scenario.kdump.vtd is False
    f = next(f for f in r.findings if f.id == "amdvi-on-off")
    assert f.severity == "error"
    assert f.remedy is not None and "remove amd_iommu=off" in f.remedy
    assert "/etc/sysconfig/kdump" in f.remedy


def test_triage_default_kdump_copies(tmp_path: Path) -> None:
    r = triage(read_triage_input(Root(_root(tmp_path, "")), use_tools=False))
    f = next(f for f in r.findings if f.id.startswith("amdvi-") and f.id != "amdvi-registers-unread")
    assert f.id == "amdvi-copied" and f.severity == "info"
    # the snapshot has no amdvi_registers.json: said, as a warning (unknown is not OK)
    u = next(f for f in r.findings if f.id == "amdvi-registers-unread")
    assert u.severity == "warning" and "not in this snapshot" in u.title and r.verdict == "warning"


def _with_regs(root: Path, control: int, dev_table: int = 0x0100_0000 | 0x1FF) -> Path:
    import json

    (root / "_kdumptool").mkdir(exist_ok=True)
    (root / "_kdumptool" / "amdvi_registers.json").write_text(json.dumps({"units": [
        {"name": "ivhd0", "address": 0xFE000000, "read_error": None,
         "registers": {"DEV_TABLE": dev_table, "CONTROL": control}}]}))
    return root


def test_triage_reads_iommu_en(tmp_path: Path) -> None:
    """IommuEn is the evidence: on with no option (copied), off although no option turns
    it off (the driver did not enable it: the first kernel is off, whatever the command
    line says)."""
    r = triage(read_triage_input(Root(_with_regs(_root(tmp_path, ""), 0x1405)), use_tools=False))
    ids = [f.id for f in r.findings]
    assert "amdvi-copied" in ids and "amdvi-registers-unread" not in ids
    f = next(f for f in r.findings if f.id == "amdvi-copied")
    assert any("CONTROL=0x1405" in e.text and "translation on" in e.text and "0x1000000" in e.text
               for e in f.evidence)
    r = triage(read_triage_input(Root(_with_regs(tmp_path, 0x0)), use_tools=False))
    f = next(f for f in r.findings if f.id.startswith("amdvi-"))
    assert f.id == "amdvi-off-on" and any("translation off" in e.text for e in f.evidence)


def test_kdump_kernel_with_amd_iommu_off_sees_the_old_translation() -> None:
    from kdumptool.analysis.amdvi_scenario import AmdViControl
    from kdumptool.model.evidence import Evidence

    c = AmdViControl("ivhd0", True, 0x0100_0000, Evidence("/dev/mem ivhd0", "CONTROL=0x1 translation on"))
    a = classify_amdvi(True, None, "elfcorehdr=0x1 amd_iommu=off", [], controls=[c])
    assert a.case == "amd-on-off" and a.first_on and c.evidence in a.evidence
    a = classify_amdvi(True, None, "elfcorehdr=0x1", [], controls=[c])
    assert a.kdump_on and c.evidence in a.evidence


def test_iommu_and_pci_name_amd(tmp_path: Path) -> None:
    from kdumptool.render.pci import no_vtd_reason
    from kdumptool.sources.system import read_system

    sysm = read_system(str(_root(tmp_path, "")), read_registers=False)
    assert sysm.ivrs_present and not sysm.dmar_present
    note = no_vtd_reason(sysm)
    assert note is not None and "AMD-Vi machine" in note and "kdumptool ivrs" in note


def _amd_kdump_root(tmp_path: Path, extra_log: str) -> Path:
    """The lab's legacy_on kdump-kernel snapshot (real sysfs of driverless bus masters)
    turned into an AMD machine's: IVRS instead of DMAR, no VT-d unit or registers, no
    intel_iommu=, and AMD-Vi lines in its log."""
    import shutil

    root = tmp_path / "amdk"
    shutil.copytree(FIXTURES / "snapshots" / "kdump_legacy_on", root, symlinks=True)
    (root / "sys/firmware/acpi/tables/DMAR").unlink()
    shutil.rmtree(root / "sys/class/iommu/dmar0", ignore_errors=True)
    if (root / "sys/class/iommu/dmar0").is_symlink():
        (root / "sys/class/iommu/dmar0").unlink()
    (root / "_kdumptool/vtd_registers.json").unlink()
    shutil.copyfile(T14, root / "sys/firmware/acpi/tables/IVRS")
    cmd = root / "proc/cmdline"
    cmd.write_text(cmd.read_text().replace("intel_iommu=on ", ""))
    log = root / "_kdumptool/dmesg.txt"
    log.write_text("".join(ln.replace("intel_iommu=on ", "") for ln in log.read_text().splitlines(True)
                           if "DMAR" not in ln and "dmar" not in ln) + extra_log)
    return root


def test_amd_triage_has_the_device_risks(tmp_path: Path) -> None:
    """The same per-device risks as VT-d, weighed by the AMD-Vi case: copied -> driverless
    bus masters keep mastering through the old page tables; an IO_PAGE_FAULT tied to the
    device's module (amdvi-fault, error inside kdump)."""
    fault = ("[    6.000000] e1000e 0000:00:02.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 "
             "address=0xffffc000 flags=0x0000]\n")
    r = triage(read_triage_input(Root(_amd_kdump_root(tmp_path, PRE + COPIED + fault)), use_tools=False))
    ids = [f.id for f in r.findings]
    assert "amdvi-copied" in ids and "no-vtd" not in ids
    drv = [f for f in r.findings if f.id == "driverless-bus-master"]
    assert {d for f in drv for d in f.devices} == {"0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:03:01.0"}
    assert all("crashed kernel's page tables" in f.title for f in drv)
    f = next(f for f in r.findings if f.id == "amdvi-fault")
    assert f.severity == "error" and f.devices == ("0000:00:02.0",) and "e1000e" in (f.remedy or "")
    assert r.verdict == "error"
    risk = next(x for x in r.devices if x.bdf == "0000:00:02.0")
    assert "AMD-Vi DMA fault events in the log" in risk.reasons
    from kdumptool.render.triage import render_triage_text

    text = render_triage_text(r)
    # the header names the AMD-Vi case and each kernel's AMD-Vi state, not VT-d's
    assert "\nscenario:     amd-copied (AMD-Vi; device table copy: copied)\n" in text
    assert "\nkdump kernel: AMD-Vi on, device table copied (observed)\n" in text
    # a failed copy: every device blocked, DMA faults against the fresh table
    failed = ("[0.6] AMD-Vi: Translation is already enabled - trying to copy translation structures\n"
              + FAILED)
    r = triage(read_triage_input(Root(_amd_kdump_root(tmp_path / "f", failed)), use_tools=False))
    assert "amdvi-copy-failed" in [f.id for f in r.findings]
    assert all("empty tables" in f.title for f in r.findings if f.id == "driverless-bus-master")


def test_amd_dma_fault_events_of_every_wording_tie_to_the_device(tmp_path: Path) -> None:
    """Triage's amdvi-fault from the real wordings of fixtures/dmesg/amdvi (the device
    replaced by the snapshot's e1000e, 00:02.0, or nvme, 00:03.0): 6.x "iommu ivhdN:"
    ILLEGAL_DEV_TABLE_ENTRY and INVALID_DEVICE_REQUEST, journalctl's prefix, 5.x without
    segment, the two-line unattached-device fault; an IOTLB_INV_TIMEOUT (the device's ATS
    not answering an invalidation, not its DMA) is not a DMA fault."""
    lines = (
        "Nov 14 11:52:19 Thinkbook kernel: iommu ivhd0: AMD-Vi: Event logged [ILLEGAL_DEV_TABLE_ENTRY "
        "device=0000:00:02.0 pasid=0x00000 address=0x135300000 flags=0x0080]\n"
        "[    7.000000] iommu ivhd1: AMD-Vi: Event logged [INVALID_DEVICE_REQUEST device=00:03.0 pasid=0x00000 "
        "address=0xfffffffdf8000000 flags=0x0a00]\n"
        "[    7.100000] AMD-Vi: Event logged [Device not attached to domain properly]\n"
        "[    7.100001] AMD-Vi:   device=0000:00:1f.2 domain=0x0000\n"
        "[    7.200000] iommu ivhd0: AMD-Vi: Event logged [IOTLB_INV_TIMEOUT device=03:01.0 address=0x42b5b01a0]\n")
    r = triage(read_triage_input(Root(_amd_kdump_root(tmp_path, PRE + COPIED + lines)), use_tools=False))
    got = {f.devices[0]: f for f in r.findings if f.id == "amdvi-fault"}
    assert set(got) == {"0000:00:02.0", "0000:00:03.0", "0000:00:1f.2"}, sorted(got)
    assert all(f.severity == "error" and "AMD-Vi DMA fault event" in f.title for f in got.values())
    assert "ILLEGAL_DEV_TABLE_ENTRY" in got["0000:00:02.0"].evidence[0].text
    assert "device=0000:00:1f.2" in got["0000:00:1f.2"].evidence[0].text
