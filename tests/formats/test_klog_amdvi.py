"""AMD-Vi kernel log lines across eras: real event lines (fixtures/dmesg/amdvi, with
PROVENANCE.md) and the init/kdump lines as Linux's format strings print them
(drivers/iommu/amd/init.c and iommu.c, 6.12, quoted below)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from kdumptool.analysis.log import analyse_log
from kdumptool.formats.klog import LogEvent, parse_log
from tests.conftest import FIXTURES

D = FIXTURES / "dmesg" / "amdvi"


def events(text: str) -> List[LogEvent]:
    return [e for e in parse_log(text.splitlines()) if e.kind != "driver"]


def test_split_two_record_form_of_4x_kernels() -> None:
    evs = events((D / "pcengines_apu2_240.txt").read_text())
    assert [(e.kind, e.line, e.end_line) for e in evs] == [
        ("amd_vi_fault", 1, 2), ("amd_vi_fault", 3, 4), ("amd_vi_fault", 5, 6),
        ("amd_vi_fault", 7, 8), ("amd_vi_fault", 9, 10)]
    idr = evs[0]
    assert idr.details["event"] == "INVALID_DEVICE_REQUEST" and idr.reason_code == 0x8
    assert idr.bdf == "0000:00:00.1" and idr.address == 0xFDF8000020
    pf = evs[2]
    assert (pf.bdf, pf.address, pf.details["domain"], pf.details["flags"]) == (
        "0000:05:00.0", 0xFF6101B0, 0x12, 0x70)
    # flags 0x0070: PR RW PE -> a write that hit a present page without permission.
    assert pf.access == "write" and pf.reason == "IO_PAGE_FAULT (permission violation)"
    assert pf.details["flag_names"] == ["PR", "RW", "PE"]


def test_dev_err_form_of_5x_and_later() -> None:
    evs = events((D / "dasharo_1134.txt").read_text())
    assert {(e.bdf, e.details["domain"]) for e in evs} == {("0000:01:00.0", 0xD)}
    assert [e.address for e in evs] == [0xCFF49550, 0xCECE9E50, 0xCEDEB950]
    evs = events((D / "popos_853.txt").read_text())
    assert evs[0].kind == "suppressed" and evs[0].value == 96
    assert evs[1].reason == "IO_PAGE_FAULT (page not present)" and evs[1].access == "read"
    evs = events((D / "corpus_excerpt_125.txt").read_text())
    assert evs[0].bdf == "0000:06:00.0" and evs[0].access == "write"


def test_segment_and_pasid_forms() -> None:
    # Linux >= 6.0 iommu_print_event(): "device=%04x:%02x:%02x.%x pasid=0x%05x".
    evs = events(
        "AMD-Vi: Event logged [IO_PAGE_FAULT device=0001:c1:00.0 domain=0x0003 pasid=0x00001 "
        "address=0xfffffffdf8000000 flags=0x0a00]\n"
        "AMD-Vi: Event logged [ILLEGAL_DEV_TABLE_ENTRY device=0000:00:14.0 pasid=0x00000 "
        "address=0x1000 flags=0x0000]\n"
        "AMD-Vi: DTE[0]: 0000000000000003\n"
        "AMD-Vi: Event logged [RMP_PAGE_FAULT device=0000:41:00.0 vmg_tag=0x0000, gpa=0x12345000, "
        "flags_rmp=0x0000, flags=0x0000]\n")
    assert [(e.kind, e.bdf) for e in evs] == [
        ("amd_vi_fault", "0001:c1:00.0"), ("amd_vi_fault", "0000:00:14.0"),
        ("amdvi_dte", None), ("amd_vi_fault", "0000:41:00.0")]
    assert evs[0].pasid == 1 and evs[0].details["domain"] == 3
    assert evs[2].details["value"] == 3
    assert evs[3].address == 0x12345000 and evs[3].reason_code == 0xD


KDUMP_LOG = """\
[    0.000000] Linux version 6.12.0-amd64
[    0.000000] Kernel command line: BOOT_IMAGE=/vmlinuz elfcorehdr=0x73000000 maxcpus=1
[    0.512000] AMD-Vi: Translation is already enabled - trying to copy translation structures
[    0.512100] AMD-Vi: The device table size of IOMMU:0 is not expected!
[    0.512200] AMD-Vi: Failed to copy DEV table from previous kernel.
[    0.600000] pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40
[    0.600100] AMD-Vi: Extended features (0x29d3, 0x0): PreF PPR GT IA GA HE
[    0.600200] AMD-Vi: Interrupt remapping enabled
[    1.200000] nvme 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0xfc189000 flags=0x0000]
"""


def test_kdump_copy_story() -> None:
    evs = events(KDUMP_LOG)
    kinds = [e.kind for e in evs]
    assert kinds == ["boot", "kdump_kernel", "amdvi_translation_preenabled", "amdvi_copy_refused",
                     "amdvi_copy_failed", "amdvi_found", "amdvi_features", "amdvi_ir_enabled",
                     "amd_vi_fault"]
    assert evs[3].details["why"] == "The device table size of IOMMU:0 is not expected!"
    assert evs[5].bdf == "0000:00:00.2" and evs[5].details["cap"] == 0x40
    assert evs[6].details["efr"] == 0x29D3 and evs[6].details["names"].split() == [
        "PreF", "PPR", "GT", "IA", "GA", "HE"]
    rep = analyse_log(parse_log(KDUMP_LOG.splitlines()))
    summ = rep.to_json()["summary"]
    assert summ["verdict_level"] == "fault" and summ["in_kdump_kernel"]
    assert "failed to copy the crashed kernel's device table (The device table size of " \
        "IOMMU:0 is not expected!)" in summ["verdict"]
    assert [(g["kind"], g["bdf"], g["reason_code"], g["reads"]) for g in summ["faults"]] == [
        ("amd_vi_fault", "0000:01:00.0", "0x02", 1)]


def test_copied_and_not_kdump_and_firmware_lines() -> None:
    evs = events(
        "AMD-Vi: Copied DEV table from previous kernel.\n"
        "AMD-Vi: Translation was enabled for IOMMU:1 but we are not in kdump mode\n"
        "AMD-Vi: [Firmware Bug]: : IOAPIC[4] not in IVRS table\n"
        "AMD-Vi: [Firmware Bug]: : No southbridge IOAPIC found\n"
        "AMD-Vi: Disabling interrupt remapping\n"
        "AMD-Vi: [Firmware Bug]: IVRS invalid checksum\n"
        "AMD-Vi: SNP: IOMMU disabled or configured in passthrough mode, SNP cannot be supported.\n"
        "AMD-Vi: IOMMU SNP support enabled.\n")
    assert [e.kind for e in evs] == [
        "amdvi_tables_copied", "amdvi_not_kdump", "amdvi_firmware", "amdvi_firmware",
        "amdvi_ir_disabled", "amdvi_firmware", "amdvi_snp", "amdvi_snp"]
    assert evs[1].unit == "1"
    assert [e.details["what"] for e in evs if e.kind == "amdvi_firmware"] == [
        "IOAPIC[4] not in IVRS table", "No southbridge IOAPIC found", "IVRS invalid checksum"]


def test_real_qemu_amd_iommu_boot() -> None:
    """A real 6.1 boot under QEMU's amd-iommu (fixtures/dmesg/amdvi PROVENANCE): every
    AMD-Vi line is read, and the Extended Feature Register decoder prints the kernel's
    own line from the value it printed."""
    from kdumptool.formats.amdvi_regs import Efr

    text = (D / "qemu_amd_iommu_6.1_live.txt").read_text()
    evs = events(text)
    by = {}
    for e in evs:
        by.setdefault(e.kind, []).append(e)
    found = by["amdvi_found"][0]
    assert found.bdf == "0000:00:01.0" and found.details["cap"] == 0x40
    feat = by["amdvi_features"][0]
    line = feat.text[feat.text.index("Extended features"):]
    assert Efr(feat.details["efr"]).kernel_text(feat.details["efr2"]) == line
    assert len(by["amdvi_ir_enabled"]) == 1
    groups = {e.bdf: e.value for e in by["iommu_group"]}
    assert len(groups) == 14 and groups["0000:00:02.0"] == 1 and groups["0000:03:01.0"] == 10
    assert "amd_vi_fault" not in by and "amdvi_copy_failed" not in by


# --- real event lines of 5.x/6.x kernels (fixtures/dmesg/amdvi PROVENANCE.md) -------------

def test_6x_event_through_the_iommus_own_device_with_control_reg_and_dtes() -> None:
    """"iommu ivhd3: AMD-Vi: Event logged [ILLEGAL_DEV_TABLE_ENTRY device=0000:43:00.0
    pasid=..." (6.x), its "Control Reg :" line (context: parsed, not an event of its own)
    and the DTE dump: the device is the one the event names, not the IOMMU."""
    evs = events((D / "stable_6.19_snp_identity_ivhd3.txt").read_text())
    faults = [e for e in evs if e.kind == "amd_vi_fault"]
    assert [(e.bdf, e.address, e.details["event"], e.details["flags"]) for e in faults] == [
        ("0000:43:00.0", 0x3737B01000, "ILLEGAL_DEV_TABLE_ENTRY", 0x20)] * 2
    assert [e.details["value"] for e in evs if e.kind == "amdvi_dte"] == [
        0x6000000000000003, 0x1, 0x2000003088B3E013, 0] * 2
    rep = analyse_log(parse_log((D / "stable_6.19_snp_identity_ivhd3.txt").read_text().splitlines()))
    assert "amdvi_control_reg" not in rep.counts and rep.counts["amd_vi_fault"] == 2
    from kdumptool.model.log import scan_log_text

    m = scan_log_text((D / "stable_6.19_snp_identity_ivhd3.txt").read_text())
    assert [c.get("value") for c in m.all("amdvi_control_reg")] == ["0xc22000142148d"] * 2


def test_journal_and_relative_timestamps_and_the_5x_form_without_segment() -> None:
    evs = events((D / "stable_6.13_resume_journal.txt").read_text())
    assert (evs[0].bdf, evs[0].address, evs[0].details["flags"]) == ("0000:06:00.0", 0x135300000, 0x80)
    assert evs[0].wallclock is not None and [e.kind for e in evs[1:]] == ["amdvi_dte"] * 4
    evs = events((D / "snp_ioapic_illegal_dte_5x.txt").read_text())
    assert (evs[0].bdf, evs[0].details.get("segment_assumed"), evs[0].address) == (
        "0000:c0:00.1", True, 0xFFFFFFFDF8140000)
    evs = events((D / "proton_8206_invalid_device_request.txt").read_text())
    idr = next(e for e in evs if e.kind == "amd_vi_fault")
    assert (idr.bdf, idr.reason_code, idr.address, idr.details["flags"]) == (
        "0000:00:00.0", 0x8, 0xFFFFFFFDF8000000, 0xA00)


def test_command_timeout_and_event_log_overflow_are_said() -> None:
    """"Completion-Wait loop timed out" (the IOMMU stopped completing commands) and "IOMMU
    event log overflow" (events lost): counted, listed in order and in the verdict; the
    overflow's own rate-limit line is not a fault count."""
    text = (D / "corpus_raven_completion_wait.txt").read_text()
    rep = analyse_log(parse_log(text.splitlines()))
    summ = rep.to_json()["summary"]
    assert rep.counts["amdvi_cmd_timeout"] == 1 and "command-buffer time-out" in summ["verdict"]
    assert [(g["bdf"], g["reason_code"]) for g in summ["faults"]] == [("0000:0b:00.0", "0x07")]
    text = (D / "threadripper_4090_overflow.txt").read_text()
    rep = analyse_log(parse_log(text.splitlines()))
    summ = rep.to_json()["summary"]
    assert rep.counts["amdvi_event_overflow"] == 1 and "event log overflowed" in summ["verdict"]
    assert {g["bdf"]: g["count"] for g in summ["faults"]} == {"0000:41:00.0": 12, "0000:61:00.0": 2}
    assert "23883 more fault messages suppressed" in summ["verdict"]  # 10432 + 12950 + 501


def test_newest_kernel_formats() -> None:
    """The forms of the newest drivers/iommu/amd/iommu.c, from its format strings (no real
    log has them yet): the two-line fault of a device not attached to a domain, joined (and
    alone when its second line was rate-limited away), ``vflags=`` after the flags, RMP
    faults with commas, UNKNOWN without its closing bracket, the command-buffer timeout."""
    evs = events(
        "[    5.000000] AMD-Vi: Event logged [Device not attached to domain properly]\n"
        "[    5.000001] AMD-Vi:   device=0000:03:00.0 domain=0x0000\n"
        "[    5.100000] nvme 0000:01:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0002 "
        "address=0xfffc0000 flags=0x0020 vflags=0x0]\n"
        "[    5.200000] AMD-Vi: Event logged [IO_PAGE_FAULT device=0000:04:00.0 domain=0x0003 "
        "address=0x1000 flags=0x0000 vflags=0]\n"
        "[    5.300000] iommu ivhd0: AMD-Vi: Event logged [RMP_PAGE_FAULT device=0000:05:00.0, "
        "vmg_tag=0x0001, gpa=0x7000, flags_rmp=0x0002, flags=0x0020]\n"
        "[    5.400000] iommu ivhd0: AMD-Vi: Event logged [UNKNOWN event[0]=0x00000001 "
        "event[1]=0xf0000000 event[2]=0x00000000 event[3]=0x00000000\n"
        "[    5.500000] AMD-Vi: Event logged [Device not attached to domain properly]\n"
        "[    5.600000] AMD-Vi: Command buffer timeout\n")
    got = [(e.kind, e.bdf, e.line, e.end_line, e.reason) for e in evs]
    assert got[0] == ("amd_vi_fault", "0000:03:00.0", 1, 2, "IO_PAGE_FAULT (device not attached to a domain yet)")
    assert evs[0].details["domain"] == 0 and evs[0].details["not_attached"] and evs[0].reason_code == 0x2
    assert got[1][:2] == ("amd_vi_fault", "0000:01:00.0") and evs[1].access == "write"
    assert got[2][:2] == ("amd_vi_fault", "0000:04:00.0") and evs[2].access == "read"
    assert (evs[3].bdf, evs[3].address, evs[3].reason_code) == ("0000:05:00.0", 0x7000, 0xD)
    assert evs[4].details["event"] == "UNKNOWN" and not evs[4].warnings
    assert got[5][:3] == ("amd_vi_fault", None, 7)  # its device= line was rate-limited away
    assert evs[6].kind == "amdvi_cmd_timeout" and evs[6].details["what"] == "Command buffer timeout"
    # triage's markers read the device from the second line (line by line, no joining)
    from kdumptool.model.log import scan_log_text

    m = scan_log_text("AMD-Vi: Event logged [Device not attached to domain properly]\n"
                      "AMD-Vi:   device=0000:03:00.0 domain=0x0000\n")
    assert [(f.get("bdf"), f.get("kind")) for f in m.all("fault")] == [("0000:03:00.0", "amd_vi_fault")]


@pytest.mark.corpus
def test_every_amdvi_line_of_the_corpus_is_read(shared: Path) -> None:
    """Every "AMD-Vi: Event logged [" line in ../shared/corpus (mail quoting stripped, a
    mailer-wrapped event joined with its next line) gives an event with its type, and the
    device when the line names one; every other AMD-Vi error line a known kind."""
    import re

    quote = re.compile(r"^(?:[>|]\s*)+")
    seen = 0
    for p in sorted((shared / "corpus").rglob("*")):
        if not p.is_file() or p.suffix in (".dat", ".dsl"):
            continue
        lines = p.read_text(errors="replace").splitlines()
        for i, raw in enumerate(lines):
            ln = quote.sub("", raw.strip())
            if "AMD-Vi: Event logged [" not in ln:
                continue
            if "]" not in ln.split("Event logged [", 1)[1] and i + 1 < len(lines):
                ln += " " + quote.sub("", lines[i + 1].strip())  # the mailer wrapped it
            evs = [e for e in parse_log([ln]) if e.kind == "amd_vi_fault"]
            assert evs, f"{p}:{i + 1}: {ln!r}"
            e = evs[0]
            assert e.details["event"] in ("IO_PAGE_FAULT", "IOTLB_INV_TIMEOUT", "INVALID_DEVICE_REQUEST",
                                          "ILLEGAL_DEV_TABLE_ENTRY"), (p, ln)
            assert e.bdf or "device=" not in ln, (p, ln)
            seen += 1
    assert seen >= 8  # 7 IOTLB_INV_TIMEOUT and 1 IO_PAGE_FAULT in the corpus today
