"""analyse_log on real logs: kdump marker sequence, bursts, verdicts, correlation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List

import pytest

from kdumptool.analysis.log import BURST_GAP_S, analyse_log
from kdumptool.formats.dmar import DeviceScope, Rmrr
from kdumptool.formats.klog import parse_log
from kdumptool.model.system import RawDevice, System, find_rmrrs
from kdumptool.sources.root import open_root
from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES

LAB = FIXTURES / "dmesg" / "lab"
CORPUS = FIXTURES / "dmesg" / "corpus"


def lines(path: Path) -> List[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


@pytest.mark.parametrize("run", ["sm_mismatch", "sm_mismatch_vmcore"])
def test_sm_mismatch_sequence(run: str) -> None:
    report = analyse_log(parse_log(lines(LAB / f"kdump_{run}.txt")))
    seq = [e.kind for e in report.events if e.kind in (
        "sm_disallowed", "translation_preenabled", "tables_copied", "copy_failed", "dma_fault")]
    assert seq == ["sm_disallowed", "translation_preenabled", "copy_failed", "dma_fault"]
    (fault,) = [e for e in report.events if e.kind == "dma_fault"]
    assert (fault.bdf, fault.access, fault.address, fault.reason_code, fault.reason) == (
        "0000:00:02.0", "read", 0xFFFFC000, 0x06, "PTE Read access is not set")
    assert report.in_kdump_kernel
    assert report.verdict_level == "fault"
    assert "failed to copy" in report.verdict and "scalable mode" in report.verdict
    (g,) = report.faults
    assert (g.count, g.reads, g.addresses) == (1, 1, [0xFFFFC000])


@pytest.mark.parametrize("run, kinds, level", [
    ("legacy_on", ["translation_preenabled", "tables_copied"], "ok"),
    ("legacy_drv", ["translation_preenabled", "tables_copied"], "ok"),
    ("legacy_off", ["iommu_disabled"], "warning"),  # intel_iommu=off after a remapping kernel: not OK (issue 14)
])
def test_other_lab_runs(run: str, kinds: List[str], level: str) -> None:
    report = analyse_log(lines(LAB / f"kdump_{run}.txt"))
    marker_kinds = [m.kind for m in report.markers]
    assert [k for k in marker_kinds if k in kinds] == kinds
    assert report.verdict_level == level and report.in_kdump_kernel
    assert not report.faults


def test_live_log_is_not_kdump() -> None:
    report = analyse_log(lines(LAB / "live_sm_mismatch.txt"))
    assert not report.in_kdump_kernel
    assert [m.kind for m in report.markers][:3] == ["boot", "crashkernel_reserved", "iommu_enabled"]
    assert report.markers[0].details == {"version": "6.1.0-56-amd64"}
    assert report.verdict == "OK: no DMAR faults"


def test_bursts_and_suppressed_counts() -> None:
    # W01: three faults within 1 ms, then "dmar_fault: 2474 callbacks suppressed" 5 s later.
    report = analyse_log(lines(CORPUS / "web_excerpts" / "W01_OpenNetworkLinux-PR897_as4630_54te.log"))
    assert report.suppressed_total == 2474
    # The suppressed count belongs to the burst before it (dropped since its last printed
    # fault), even though the report comes more than BURST_GAP_S later.
    assert 10677.928602 - 10672.869448 > BURST_GAP_S
    (b,) = report.bursts
    assert (b.count, b.suppressed, b.first_line, b.last_line) == (3, 2474, 1, 7)
    assert b.first_timestamp == pytest.approx(10672.868940) and b.last_timestamp == pytest.approx(10677.928602)
    assert "2474 more fault messages suppressed" in report.verdict


def test_bursts_without_timestamps_by_distance() -> None:
    # W07 has no timestamps: suppressed line 1, faults at lines 5 and 9.
    report = analyse_log(lines(CORPUS / "web_excerpts" / "W07_spdk-issue2514_P5800X.log"))
    (b,) = report.bursts
    assert (b.count, b.suppressed, b.first_line, b.last_line) == (2, 812287, 1, 9)


def test_groups_per_device_and_reason() -> None:
    report = analyse_log(lines(CORPUS / "excerpts" / "072_linux-pci_9d7c8bfd05_p1_body.log"))
    got = [(g.bdf, g.reason_code, g.count, g.reads, g.writes) for g in report.faults]
    assert got == [("0000:00:16.7", 0x05, 2, 0, 2), ("0000:00:16.7", 0x06, 1, 1, 0)]


def test_kexec_not_kdump_verdict() -> None:
    report = analyse_log(lines(CORPUS / "full" / "060_kexec_3c955ceb2d_p1_body.log"))
    assert not report.in_kdump_kernel
    assert "not a kdump kernel" in report.verdict and report.verdict_level == "fault"


def test_analyse_accepts_strings_and_empty() -> None:
    assert analyse_log([]).verdict == "OK: no VT-d (DMAR) lines in this log"
    r = analyse_log(["DMAR: [DMA Read] Request device [00:02.0] fault addr 0 [fault reason 06] PTE Read access is not set"])
    assert r.counts == {"dma_fault": 1}


def test_max_events_keeps_counts() -> None:
    text = [f"[ {i}.0] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x{i:x}000 [fault reason 0x06] PTE Read access is not set"
            for i in range(1, 30)]
    r = analyse_log(text, max_events=5)
    assert len(r.events) == 5 and r.events_omitted == 24 and r.counts["dma_fault"] == 29
    assert len(r.faults[0].addresses) == 8 and r.faults[0].count == 29


# --- correlation against the real system model read from the lab snapshots -----------------

SNAP = FIXTURES / "snapshots"


def _read_system(name: str) -> System:
    return read_system(open_root(SNAP / name))


# --- correlation against real model records: the lab's live sm_mismatch snapshot as read,
# plus one RMRR [0-0xffffff] naming the ICH9 AHCI 00:1f.2 (QEMU's DMAR table has none; firmware
# gives legacy USB/AHCI controllers one like it), linked to the device by the model's own rule --


def _lab_system() -> System:
    system = _read_system("live_sm_mismatch")
    assert system.dmar is not None
    scope = DeviceScope(offset=0, type_id=1, type="PCI_ENDPOINT", length=8, enumeration_id=0, start_bus=0,
                        path=((0x1F, 2),))
    rmrr = Rmrr(0, 24, 0, 0, 0xFFFFFF, (scope,))
    dmar = dataclasses.replace(system.dmar, structures=system.dmar.structures + (rmrr,))
    raw = {b: RawDevice(b, d.config, d.config_size) for b, d in system.devices.items()}
    devices = {b: dataclasses.replace(d, rmrrs=find_rmrrs(b, d.upstream, dmar, raw)) for b, d in system.devices.items()}
    assert devices["0000:00:1f.2"].rmrrs == (0,) and devices["0000:00:02.0"].rmrrs == ()
    return dataclasses.replace(system, dmar=dmar, devices=devices)


def test_correlation_ties_fault_to_driver_group_unit() -> None:
    report = analyse_log(lines(LAB / "kdump_sm_mismatch.txt"), system=_lab_system())
    info = report.devices["0000:00:02.0"]
    assert (info.known, info.driver, info.iommu_group, info.drhd, info.vendor_device) == (
        True, "e1000e", 2, 0xFED90000, "8086:10d3")
    assert "0000:00:02.0 e1000e group 2" in report.verdict
    assert report.faults[0].address_notes == []  # 0xffffc000: no RMRR, not the MSI window


def test_correlation_address_in_rmrr_and_reserved_region() -> None:
    log = ["[ 1.0] DMAR: [DMA Write NO_PASID] Request device [00:1f.2] fault addr 0x9f000 [fault reason 0x05] PTE Write access is not set",
           "[ 1.1] DMAR: [DMA Write NO_PASID] Request device [00:09.0] fault addr 0x1000 [fault reason 0x02] Present bit in context entry is clear"]
    report = analyse_log(log, system=_lab_system())
    notes = report.faults[0].address_notes
    assert any("inside RMRR [0x0-0xffffff]" in n for n in notes)
    assert any("reserved region [0x0-0xffffff] direct-relaxable" in n for n in notes)
    assert not report.devices["0000:00:09.0"].known
    assert report.devices["0000:00:09.0"].label() == "0000:00:09.0 (not in the system model)"


def test_sm_mismatch_fault_tied_to_e1000e_from_live_snapshot() -> None:
    # The crashed (live) kernel had e1000e bound to 00:02.0 (its sysfs driver link).
    system = _read_system("live_sm_mismatch")
    log = (SNAP / "kdump_sm_mismatch" / "_kdumptool" / "dmesg.txt").read_text().splitlines()
    report = analyse_log(log, system=system)
    info = report.devices["0000:00:02.0"]
    assert (info.known, info.driver, info.iommu_group, info.drhd, info.vendor_device, info.unit) == (
        True, "e1000e", 2, 0xFED90000, "8086:10d3", "dmar0")
    assert info.reserved_regions == [(0xFEE00000, 0xFEEFFFFF, "msi")]
    assert report.faults[0].address_notes == []
    assert "(most: 0000:00:02.0 e1000e group 2, 0x06 PTE Read access is not set)" in report.verdict


def test_kdump_snapshot_model_shows_no_driver() -> None:
    # In the kdump kernel no driver has claimed 00:02.0 yet: the device still did DMA.
    system = _read_system("kdump_sm_mismatch")
    log = (SNAP / "kdump_sm_mismatch" / "_kdumptool" / "dmesg.txt").read_text().splitlines()
    info = analyse_log(log, system=system).devices["0000:00:02.0"]
    assert info.known and info.driver is None and info.label() == "0000:00:02.0 [8086:10d3] no driver group 2"


def test_fault_in_group_reserved_region_real_model() -> None:
    system = _read_system("live_sm_mismatch")
    log = ["[ 1.0] DMAR: [DMA Read NO_PASID] Request device [00:1f.2] fault addr 0x9f000 "
           "[fault reason 0x06] PTE Read access is not set"]
    (g,) = analyse_log(log, system=system).faults
    assert g.address_notes == ["0x9f000 is inside reserved region [0x0-0xffffff] direct-relaxable"]



def test_fault_inside_rmrr_announced_in_the_log() -> None:
    # The RMRR lines of excerpts/030 (Lenovo T450s), then a fault inside the second one.
    log = [
        "[    0.168653] DMAR: RMRR base: 0x0000009c0f1000 end: 0x0000009c107fff",
        "[    0.168655] DMAR: RMRR base: 0x0000009d800000 end: 0x0000009fffffff",
        "[  278.999485] DMAR: [DMA Read] Request device [00:02.0] PASID ffffffff fault addr 9d900000 [fault reason 06] PTE Read access is not set",
        "[  278.999490] DMAR: [DMA Read] Request device [00:16.7] PASID ffffffff fault addr 9cdff000 [fault reason 02] Present bit in context entry is clear",
    ]
    report = analyse_log(log)
    notes = {g.bdf: g.address_notes for g in report.faults}
    assert notes["0000:00:02.0"] == [
        "0x9d900000 is inside RMRR [0x9d800000-0x9fffffff] announced at line 2 (its device scope is not in the log)"]
    assert notes["0000:00:16.7"] == []  # 0x9cdff000 lies between the two RMRRs



def test_bursts_by_wallclock_in_dmesg_T_log() -> None:
    # excerpts/046: two INTR-REMAP faults printed by dmesg -T 63 s apart: two bursts.
    report = analyse_log(lines(CORPUS / "excerpts" / "046_iommu_e7c23eaba2_p1_body.log"))
    assert [(b.first_line, b.count, b.first_wallclock) for b in report.bursts] == [
        (25, 1, "Thu Oct 22 08:54:51 2020"), (31, 1, "Thu Oct 22 08:55:54 2020")]


def test_bursts_by_wallclock_in_syslog() -> None:
    # excerpts/030: three faults at 17:35:46 (syslog seconds): one burst.
    report = analyse_log(lines(CORPUS / "excerpts" / "030_iommu_5429b7f131_p1_body.log"))
    (b,) = report.bursts
    assert (b.count, b.first_wallclock, b.last_wallclock) == (3, "May 30 17:35:46", "May 30 17:35:46")



def test_ir_copy_failed_is_a_kdump_warning() -> None:
    r = analyse_log(["[ 0.2] DMAR-IR: Failed to copy IR table for dmar1 from previous kernel"])
    assert r.in_kdump_kernel and r.verdict_level == "warning"
    assert r.verdict == ("WARNING: kdump kernel: the kdump kernel failed to copy the "
                         "interrupt-remapping table for dmar1")



def test_last_boot_only() -> None:
    # full/060: a first boot (line 61) and the kexec'd one (line 1149), both with crashkernel.
    log = lines(CORPUS / "full" / "060_kexec_3c955ceb2d_p1_body.log")
    whole = analyse_log(log)
    last = analyse_log(log, last_boot_only=True)
    assert whole.boots == last.boots == 2
    assert whole.counts["crashkernel_reserved"] == 2 and last.counts["crashkernel_reserved"] == 1
    assert last.events[0].kind == "boot" and last.events[0].line == 1149
    assert last.counts["dma_fault"] == 1 and last.counts["translation_not_kdump"] == 2



def test_log_only_correlation_identity_maps_of_other_devices() -> None:
    # excerpts/026 (iommu list, "direct mappings" thread, HP server): the kernel set up
    # RMRR identity maps for 00:1f.2 and 06:00.x/07:00.x; 02:00.0 and 01:00.2 then fault
    # inside two of those ranges, which were never mapped for them.
    report = analyse_log(lines(CORPUS / "excerpts" / "026_iommu_d1d63e6199_p2_direct-mappings.log"))
    d = report.devices
    assert (d["0000:02:00.0"].from_log, d["0000:02:00.0"].iommu_group, d["0000:02:00.0"].rmrrs) == (True, 21, [])
    assert d["0000:01:00.2"].iommu_group == 25
    notes = {g.bdf: g.address_notes for g in report.faults}
    owners = "0000:00:1f.2, 0000:06:00.0, 0000:06:00.1, 0000:07:00.0, 0000:07:00.1"
    assert notes["0000:02:00.0"] == [
        f"0xbdf83000 is inside the identity map [0xbdf83000-0xbdf84fff] (an RMRR) the kernel set up for {owners} "
        "but not for 0000:02:00.0: is the device missing from the RMRR's scope?"]
    assert notes["0000:01:00.2"] == [
        f"0xf4000 is inside the identity map [0xf4000-0xf4fff] (an RMRR) the kernel set up for {owners} "
        "but not for 0000:01:00.2: is the device missing from the RMRR's scope?"]


def test_log_only_correlation_own_identity_map_and_driver() -> None:
    log = [
        "[ 1.0] pci 0000:00:1f.2: Adding to iommu group 19",
        "[ 1.1] pci 0000:00:1f.2: DMAR: Setting identity map [0xe8000 - 0xe8fff]",
        "[ 2.0] ahci 0000:00:1f.2: AHCI 0001.0300 32 slots 6 ports 6 Gbps 0x3f impl SATA mode",
        "[ 3.0] DMAR: [DMA Write NO_PASID] Request device [00:1f.2] fault addr 0xe8000 [fault reason 0x05] PTE Write access is not set",
    ]
    report = analyse_log(log)
    info = report.devices["0000:00:1f.2"]
    assert info.label() == "0000:00:1f.2 ahci group 19 (from the log)"
    assert info.rmrrs == [(0xE8000, 0xE8FFF)]
    assert report.faults[0].address_notes == [
        "0xe8000 is inside identity map (RMRR) [0xe8000-0xe8fff] of 0000:00:1f.2: the firmware's identity map "
        "for this device is missing in the active tables"]



def test_panic_is_named_in_the_verdict() -> None:
    # The crashed kernel's last lines (lab run, as its printk buffer in the vmcore holds them).
    r = analyse_log([
        "[   21.311674] sysrq: Trigger a crash",
        "[   21.312503] Kernel panic - not syncing: sysrq triggered crash",
    ])
    assert r.verdict == "OK: no VT-d (DMAR) lines in this log; this kernel panicked: sysrq triggered crash (line 2)"
    assert [m.kind for m in r.markers] == ["crash_trigger", "panic"]



def test_kdump_fault_from_a_device_no_driver_claimed() -> None:
    # sm_mismatch: nothing in the kdump kernel's log claims 00:02.0 before its fault.
    r = analyse_log(lines(LAB / "kdump_sm_mismatch.txt"))
    assert r.verdict.endswith("; no driver had claimed 0000:00:02.0 in this kernel before it faulted: "
                              "DMA left running by the crashed kernel's driver")
    # legacy_drv: e1000e probes 00:02.0 in the kdump kernel (line 493); a fault after it is
    # not called in-flight DMA, one before it is.
    log = lines(LAB / "kdump_legacy_drv.txt")
    fault = "[ 9.0] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set"
    assert "no driver had claimed" not in analyse_log(log + [fault]).verdict
    assert "no driver had claimed 0000:00:02.0" in analyse_log(log[:400] + [fault] + log[400:]).verdict



def test_table_dump_attached_to_its_fault() -> None:
    # The >= 5.17 CONFIG_DMAR_DEBUG block, as quoted in the iommu list (Zhenzhong Duan's fix).
    log = [
        "[  442.2] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffd000 [fault reason 0x71] SM: Present bit in first-level paging entry is clear",
        "[  442.2] DMAR: Dump dmar5 table entries for IOVA 0xffffd000",
        "[  442.2] DMAR: scalable mode root entry: hi 0x0000000000000000, low 0x000000010b7ab001",
        "[  442.2] DMAR: context entry: hi 0x0000000000000008, low 0x000000010d1f6205",
        "[  442.2] DMAR: PTE not present at level 2",
        "[  443.0] e1000e 0000:00:02.0: something else",
    ]
    (g,) = analyse_log(log).faults
    assert g.table_dumps == [[
        "DMAR: Dump dmar5 table entries for IOVA 0xffffd000",
        "DMAR: scalable mode root entry: hi 0x0000000000000000, low 0x000000010b7ab001",
        "DMAR: context entry: hi 0x0000000000000008, low 0x000000010d1f6205",
        "DMAR: PTE not present at level 2",
    ]]
