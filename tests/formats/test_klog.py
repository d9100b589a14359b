"""klog: line normaliser, fault formats of every kernel era, markers, reason tables.

Expected values are read off the verbatim lines by hand (and the kernel's tables in
drivers/iommu/intel/dmar.c), not produced by the parser.
"""

from __future__ import annotations

import itertools
from typing import Iterator, List, Optional

import pytest

from kdumptool.formats.klog import (
    DMA_REMAP_FAULT_REASONS,
    DMA_REMAP_SM_FAULT_REASONS,
    IRQ_REMAP_FAULT_REASONS,
    LogEvent,
    fault_reason_text,
    normalise_line,
    parse_log,
    wallclock_seconds,
)


def events(text: str) -> List[LogEvent]:
    return list(parse_log(text.splitlines()))


def faults(text: str) -> List[LogEvent]:
    return [e for e in events(text) if e.kind in ("dma_fault", "ir_fault")]


# --- reason tables ------------------------------------------------------------------------


def test_reason_tables_span_the_kernel_ranges() -> None:
    assert len(DMA_REMAP_FAULT_REASONS) == 0x0E  # 0x00-0x0D
    assert len(IRQ_REMAP_FAULT_REASONS) == 7  # 0x20-0x26
    assert 0x30 + len(DMA_REMAP_SM_FAULT_REASONS) - 1 == 0x90
    assert fault_reason_text(0x06) == ("dma", "PTE Read access is not set")
    assert fault_reason_text(0x0D) == ("dma", "PCE for translation request specifies blocking")
    assert fault_reason_text(0x0E) == ("unknown", "Unknown")
    assert fault_reason_text(0x25) == ("ir", "Blocked a compatibility format interrupt request")
    assert fault_reason_text(0x26)[1].startswith("Blocked an interrupt request due to source-id")
    assert fault_reason_text(0x27) == ("unknown", "Unknown")
    assert fault_reason_text(0x30) == ("dma", "SM: Invalid Root Table Address")
    assert fault_reason_text(0x39) == ("dma", "SM: Present bit in Root Entry is clear")
    assert fault_reason_text(0x59) == ("dma", "SM: Present bit in PASID Table Entry is clear")
    assert fault_reason_text(0x81)[1] == "SM: U/S set 0 for first-level translation with user privilege"
    assert fault_reason_text(0x90)[1].startswith("SM: A/D bit update needed in first-level")
    assert fault_reason_text(0x91) == ("unknown", "Unknown")
    assert fault_reason_text(0x35) == ("dma", "Unknown")


# --- normaliser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, text, ts, wall, prefixed",
    [
        ("[    1.344813] DMAR: x", "DMAR: x", 1.344813, None, True),
        ("DMAR: x", "DMAR: x", None, None, False),
        ("<3>[   12.5] DMAR: x", "DMAR: x", 12.5, None, True),
        ("[Fri May 22 09:34:59 2026] DMAR: x", "DMAR: x", None, "Fri May 22 09:34:59 2026", True),
        ("[Fri May  1 09:46:41 2026] DMAR: x", "DMAR: x", None, "Fri May  1 09:46:41 2026", True),
        ("[kwi27 22:04] xhci_hcd 0000:04:00.0: x", "xhci_hcd 0000:04:00.0: x", None, "kwi27 22:04", True),
        ("[May22 09:34] DMAR: x", "DMAR: x", None, "May22 09:34", True),
        ("Aug 23 19:13:02 video kernel: [ 9007.601194] DMAR: x", "DMAR: x", 9007.601194, "Aug 23 19:13:02", True),
        ("aug 23 18:04:17 taz kernel: DMAR: x", "DMAR: x", None, "aug 23 18:04:17", True),
        ("Sep 19 09:34:40 kernel: DMAR: x", "DMAR: x", None, "Sep 19 09:34:40", True),
        ("2014-04-25T09:37:53.595431+01:00 kvmhost kernel:     8.490171] DMAR: x", "DMAR: x", 8.490171,
         "2014-04-25T09:37:53.595431+01:00", True),
        ("2021-12-01T10:00:00,123456+01:00 DMAR: x", "DMAR: x", None, "2021-12-01T10:00:00,123456+01:00", True),
        ("kernel: DMAR: x", "DMAR: x", None, None, True),
        ("kern  :info  : [Fri Apr  9 10:11:12 2021] DMAR: x", "DMAR: x", None, "Fri Apr  9 10:11:12 2021", True),
        ("6,339,5140900,-;DMAR: x", "DMAR: x", 5.1409, None, True),
        ("3,1200,1344813,-,caller=T1;DMAR: x", "DMAR: x", 1.344813, None, True),
        ("[    0.000000][    T0] DMAR: x", "DMAR: x", 0.0, None, True),
        ("[    0.000000] [      T1] DMAR: x", "DMAR: x", 0.0, None, True),
        ("[    8.490171] kvmhost kernel: DMAR: x", "DMAR: x", 8.490171, None, True),
        ("> > > DMAR: x", "DMAR: x", None, None, False),
        (">> [   12.000001] DMAR: x", "DMAR: x", 12.000001, None, True),
        ("\t[38588.839800] DMAR: x", "DMAR: x", 38588.8398, None, True),
        ("   fault addr 0", "fault addr 0", None, None, False),
        ("[04:00.0] fault addr 0x1", "[04:00.0] fault addr 0x1", None, None, False),
        ("", "", None, None, False),
    ],
)
def test_normalise_line(raw: str, text: str, ts: Optional[float], wall: Optional[str], prefixed: bool) -> None:
    ln = normalise_line(raw, 7)
    assert ln.text == text
    assert ln.number == 7
    assert ln.timestamp == (pytest.approx(ts) if ts is not None else None)
    assert ln.wallclock == wall
    assert ln.prefixed == prefixed


def test_normalise_relative_and_quote_depth() -> None:
    ln = normalise_line("[  +0,000004] DMAR: y")
    assert ln.text == "DMAR: y" and ln.delta == pytest.approx(4e-6) and ln.prefixed
    assert normalise_line("> > > DMAR: x").quote == 3
    assert normalise_line(" SUBSYSTEM=pci").meta
    assert not normalise_line("[ 1.0] SUBSYSTEM=pci").meta


# --- FAULT_LINES.txt: one verbatim example per format -------------------------------------


def test_f1_old_two_line_format() -> None:
    (ev,) = faults(
        "[ 1692.021403] dmar: DMAR:[DMA Read] Request device [00:02.0] fault addr 1a45aa9000 \n"
        "[ 1692.021403] DMAR:[fault reason 12] non-zero reserved fields in PTE\n"
        "[ 1692.021416] dmar: DRHD: handling fault status reg 2\n"
    )
    assert (ev.kind, ev.line, ev.end_line, ev.bdf, ev.access) == ("dma_fault", 1, 2, "0000:00:02.0", "read")
    assert ev.address == 0x1A45AA9000
    assert ev.reason_code == 12  # decimal in this era: 12 = 0x0c
    assert ev.reason == "non-zero reserved fields in PTE" == ev.reason_table
    assert ev.timestamp == pytest.approx(1692.021403)
    assert ev.warnings == ()


def test_f1_behind_syslog_prefix_with_lost_bracket() -> None:
    evs = events(
        "2014-04-25T09:37:53.595431+01:00 kvmhost kernel:     8.490171] dmar: DMAR:[DMA Read] Request device [01:00.0] fault addr 41a6aa000 \n"
        "2014-04-25T09:37:53.595431+01:00 kvmhost kernel:     8.490171] DMAR:[fault reason 01] Present bit in root entry is clear\n"
    )
    (ev,) = evs
    assert (ev.bdf, ev.access, ev.address, ev.reason_code) == ("0000:01:00.0", "read", 0x41A6AA000, 1)
    assert ev.reason == "Present bit in root entry is clear"


def test_f1_documentation_form() -> None:
    (ev,) = faults(
        "DMAR:[DMA Write] Request device [00:02.0] fault addr 6df084000\n"
        "DMAR:[fault reason 05] PTE Write access is not set\n"
    )
    assert (ev.access, ev.address, ev.reason_code) == ("write", 0x6DF084000, 5)


def test_old_ir_two_line_format() -> None:
    # 3.x-4.0 dmar.c: "INTR-REMAP: Request device [[%02x:%02x.%d] fault index %llx\n"
    # "INTR-REMAP:[fault reason %02d] %s\n"; dmesg indents the record's second line.
    (ev,) = faults(
        "[    0.057770] DMAR: INTR-REMAP: Request device [[f0:1f.0] fault index 0\n"
        "               INTR-REMAP:[fault reason 37] Blocked a compatibility format interrupt request\n"
    )
    assert (ev.kind, ev.bdf, ev.fault_index, ev.reason_code) == ("ir_fault", "0000:f0:1f.0", 0, 0x25)
    assert ev.end_line == 2


def test_f2_one_line_decimal() -> None:
    (ev,) = faults(
        "[   20.279508] DMAR: [DMA Read] Request device [00:02.0] fault addr 8900a000 [fault reason 05] PTE Write access is not set"
    )
    assert (ev.bdf, ev.access, ev.address, ev.reason_code, ev.pasid) == ("0000:00:02.0", "read", 0x8900A000, 5, None)
    assert ev.reason == "PTE Write access is not set"


def test_f3_pasid_ffffffff_means_none() -> None:
    (ev,) = faults(
        "[   27.498868] DMAR: [DMA Read] Request device [02:00.0] PASID ffffffff fault addr bdf83000 [fault reason 06] PTE Read access is not set"
    )
    assert (ev.bdf, ev.access, ev.address, ev.reason_code, ev.pasid) == ("0000:02:00.0", "read", 0xBDF83000, 6, None)


def test_f3_real_pasid_wrapped_by_mailer() -> None:
    (ev,) = faults(
        "DMAR: [DMA Read] Request device [41:00.0] PASID 1 fault addr 7ecdcd000\n"
        "        [fault reason 129] SM: U/S set 0 for first-level translation\n"
    )
    assert (ev.bdf, ev.pasid, ev.address, ev.reason_code) == ("0000:41:00.0", 1, 0x7ECDCD000, 0x81)
    assert ev.reason == "SM: U/S set 0 for first-level translation"  # as printed (older kernel text)
    assert ev.reason_table == "SM: U/S set 0 for first-level translation with user privilege"


def test_f4_no_pasid_hex() -> None:
    (ev,) = faults(
        "[12807.735222] DMAR: [DMA Write NO_PASID] Request device [3b:00.0] fault addr 0x0 [fault reason 0x05] PTE Write access is not set"
    )
    assert (ev.bdf, ev.access, ev.address, ev.reason_code, ev.pasid) == ("0000:3b:00.0", "write", 0, 5, None)
    (ev,) = faults(
        "DMAR: [DMA Read NO_PASID] Request device [00:00.0] fault addr 0x7cd80000 [fault reason 0x01] Present bit in root entry is clear"
    )
    assert (ev.address, ev.reason_code) == (0x7CD80000, 1)


def test_f4a_0x_prefixed_bus_device_journal() -> None:
    (ev,) = faults(
        "[    0.938401] kernel: DMAR: [DMA Read NO_PASID] Request device [0x00:0x02.0] fault addr 0x70ad5000 [fault reason 0x07] Next page table ptr is invalid"
    )
    assert (ev.bdf, ev.access, ev.address, ev.reason_code) == ("0000:00:02.0", "read", 0x70AD5000, 7)
    assert ev.reason == "Next page table ptr is invalid"


def test_f4b_scalable_mode_reason_dmesg_T() -> None:
    (ev,) = faults(
        "[Fri May 22 09:34:59 2026] DMAR: [DMA Write NO_PASID] Request device [80:1f.6] fault addr 0x15183f000 [fault reason 0x39] SM: Present bit in Root Entry is clear"
    )
    assert (ev.bdf, ev.access, ev.address, ev.reason_code) == ("0000:80:1f.6", "write", 0x15183F000, 0x39)
    assert ev.wallclock == "Fri May 22 09:34:59 2026" and ev.timestamp is None
    (ev,) = faults(
        "DMAR: [DMA Read NO_PASID] Request device [00:1f.0] fault addr 0x1000 [fault reason 0x59] SM: Present bit in PASID table entry is clear"
    )
    # Older kernels spelled it "PASID table entry": text kept as printed, agreement ignores case.
    assert ev.reason_code == 0x59 and ev.warnings == ()
    assert ev.reason == "SM: Present bit in PASID table entry is clear"


def test_f4c_dump_block() -> None:
    evs = events(
        "[   13.396480] DMAR: Dump dmar5 table entries for IOVA 0xffffd000\n"
        "[   13.396481] DMAR: scalable mode root entry: hi 0x0000000000000000, low 0x000000010b7ab001\n"
        "[   13.396482] DMAR: context entry: hi 0x0000000000000008, low 0x000000010d1f6205\n"
        "[   13.396483] DMAR: pasid dir entry: 0x000000010d1f5001\n"
        "[   13.396484] DMAR: pasid table entry[0]: 0x0000000000000000\n"
        "[   13.396485] DMAR: pte level: 4, pte value: 0x000000010a2c2003\n"
        "[   13.396486] DMAR: PTE not present at level 2\n"
    )
    kinds = [e.kind for e in evs]
    assert kinds == ["fault_dump"] + ["dump_entry"] * 6
    assert evs[0].unit == "dmar5" and evs[0].address == 0xFFFFD000
    assert evs[1].details == {"entry": "scalable mode root entry", "hi": 0, "lo": 0x10B7AB001}
    assert evs[3].details == {"entry": "pasid dir entry", "value": 0x10D1F5001}
    assert evs[5].details == {"entry": "pte level", "level": 4, "value": 0x10A2C2003}


def test_f5_intr_remap_decimal_reason_hex_index() -> None:
    (ev,) = faults(
        "[Thu Oct 22 08:54:51 2020] DMAR: [INTR-REMAP] Request device [42:00.2] fault index 1600 [fault reason 37] Blocked a compatibility format interrupt request"
    )
    assert (ev.kind, ev.bdf, ev.fault_index, ev.reason_code, ev.access) == ("ir_fault", "0000:42:00.2", 0x1600, 0x25, None)
    (ev,) = faults(
        "DMAR: [INTR-REMAP] Request device [00:11.0] fault index 3b [fault reason 38] Blocked an interrupt request due to source-id verification failure"
    )
    assert (ev.fault_index, ev.reason_code) == (0x3B, 0x26)


def test_f6_intr_remap_hex() -> None:
    (ev,) = faults(
        "[ 1623.083459] DMAR: [INTR-REMAP] Request device [f0:1f.0] fault index 0x0 [fault reason 0x25] Blocked a compatibility format interrupt request"
    )
    assert (ev.bdf, ev.fault_index, ev.reason_code) == ("0000:f0:1f.0", 0, 0x25)
    (ev,) = faults(
        "[   58.440907] DMAR: [INTR-REMAP] Request device [0x64:0x00.5] fault index 0x8800 [fault reason 0x25] Blocked a compatibility format interrupt request"
    )
    assert (ev.bdf, ev.fault_index) == ("0000:64:00.5", 0x8800)


def test_interim_h_suffix_and_wo_pasid() -> None:
    (ev,) = faults(
        "DMAR: [DMA Write w/o PASID] Request device [00:02.0] fault addr 1000 [fault reason 05h] PTE Write access is not set"
    )
    assert (ev.access, ev.reason_code, ev.pasid) == ("write", 5, None)


def test_dma_write_with_pasid_hex() -> None:
    (ev,) = faults(
        "DMAR: [DMA Write PASID 0x2a] Request device [00:02.0] fault addr 0xdead000 [fault reason 0x81] SM: U/S set 0 for first-level translation with user privilege"
    )
    assert (ev.pasid, ev.address, ev.reason_code, ev.warnings) == (0x2A, 0xDEAD000, 0x81, ())


def test_f7_f8_f9_status_suppressed_firmware() -> None:
    evs = events(
        "DMAR: DRHD: handling fault status reg 2\n"
        "[   14.180842] DMAR: DRHD: handling fault status reg 302\n"
        "dmar_fault: 131757 callbacks suppressed\n"
        "May 30 17:32:17 localhost kernel: [    0.168658] DMAR: [Firmware Bug]: No firmware reserved region can cover this RMRR [0x000000009d800000-0x000000009fffffff], contact BIOS vendor for fixes\n"
        "dmar: DRHD: handling fault status reg 3\n"
    )
    assert [(e.kind, e.value) for e in evs] == [
        ("fault_status", 2), ("fault_status", 0x302), ("suppressed", 131757), ("firmware_bug", None), ("fault_status", 3),
    ]


@pytest.mark.parametrize(
    "line, kind, unit",
    [
        ("DMAR: Translation already enabled - trying to copy translation structures", "translation_preenabled", None),
        ("DMAR: Copied translation tables from previous kernel for dmar0", "tables_copied", "dmar0"),
        ("DMAR: Failed to copy translation tables from previous kernel for dmar0", "copy_failed", "dmar0"),
        ("DMAR-IR: Copied IR table for dmar0 from previous kernel", "ir_copied", "dmar0"),
        ("DMAR-IR: Failed to copy IR table for dmar1 from previous kernel", "ir_copy_failed", "dmar1"),
        ("DMAR: Translation was enabled for dmar0 but we are not in kdump mode", "translation_not_kdump", "dmar0"),
        ("DMAR-IR: IRQ remapping was enabled on dmar6 but we are not in kdump mode", "ir_not_kdump", "dmar6"),
        ("DMAR: Scalable mode is disallowed", "sm_disallowed", None),
        ("DMAR: IOMMU disabled", "iommu_disabled", None),
        ("DMAR: IOMMU enabled", "iommu_enabled", None),
        ("DMAR: Intel(R) Virtualization Technology for Directed I/O", "vtd_ready", None),
        ("Intel-IOMMU: disabled", "iommu_disabled", None),
        ("Intel-IOMMU: enabled", "iommu_enabled", None),
        ("DMAR-IR: Enabled IRQ remapping in x2apic mode", "ir_mode", None),
        ("Kernel panic - not syncing: sysrq triggered crash", "panic", None),
    ],
)
def test_kdump_markers(line: str, kind: str, unit: Optional[str]) -> None:
    (ev,) = events(f"[    1.277292] {line}")
    assert (ev.kind, ev.unit, ev.line) == (kind, unit, 1)
    assert ev.timestamp == pytest.approx(1.277292)


def test_unit_discovery_line() -> None:
    (ev,) = events("[    0.188] DMAR: dmar0: reg_base_addr fed90000 ver 1:0 cap d2008c22260206 ecap 480080f00f4a")
    assert ev.kind == "unit" and ev.unit == "dmar0"
    assert ev.details == {"reg_base_addr": 0xFED90000, "ver": "1:0", "cap": 0xD2008C22260206, "ecap": 0x480080F00F4A}


def test_aer_lines_tied_to_device() -> None:
    evs = events(
        "[  5.1] pcieport 0000:00:1c.0: AER: Corrected error received: 0000:03:00.0\n"
        "[  5.2] nvme 0000:03:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)\n"
        "[  5.3] pcieport 0000:00:1c.0: AER: Multiple Uncorrected (Non-Fatal) error received: id=0300\n"
        "[  0.9] pcieport 0000:00:04.0: AER: enabled with IRQ 24\n"
    )
    evs = [e for e in evs if e.kind != "driver"]
    assert [(e.kind, e.bdf) for e in evs] == [
        ("aer", "0000:03:00.0"), ("aer", "0000:03:00.0"), ("aer", "0000:03:00.0"),
    ]
    assert evs[1].details["severity"] == "Corrected" and evs[1].details["type"] == "Physical Layer"


def test_kmsg_records_and_escaped_newline() -> None:
    evs = events(
        "3,812,1344813,-;DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x06] PTE Read access is not set\n"
        " SUBSYSTEM=pci\n"
        " DEVICE=+pci:0000:00:02.0\n"
        "3,813,1400000,-;DMAR:[DMA Read] Request device [00:02.0] fault addr 1000 \\x0aDMAR:[fault reason 06] PTE Read access is not set\n"
    )
    assert [(e.kind, e.line, e.address, e.reason_code) for e in evs] == [
        ("dma_fault", 1, 0xFFFFC000, 6), ("dma_fault", 4, 0x1000, 6),
    ]
    assert evs[0].timestamp == pytest.approx(1.344813)


def test_cut_short_fault_still_an_event_with_warning() -> None:
    evs = events("  - DMAR: [INTR-REMAP] Request device [00:00.5]\n\nnext\n")
    (ev,) = evs
    assert (ev.kind, ev.bdf, ev.reason_code) == ("ir_fault", "0000:00:00.5", None)
    assert any("cut short" in w for w in ev.warnings)


def test_wrapped_between_request_device_and_bracket() -> None:
    (ev,) = faults(
        "Aug 27 11:51:07 b0v9by3 kernel: DMAR: [DMA Read NO_PASID] Request device\n"
        "[04:00.0] fault addr 0xffffe000 [fault reason 0x0c] non-zero reserved fields in\n"
        "PTE\n"
        "are part of the kernel log\n"
    )
    assert (ev.line, ev.end_line, ev.bdf, ev.reason_code, ev.reason) == (
        1, 3, "0000:04:00.0", 0x0C, "non-zero reserved fields in PTE")


def test_wrapped_fault_word() -> None:
    (ev,) = faults("DMAR: [DMA Write] Request device [00:02.0] fault addr 108a000 [fault\nreason 23] Unknown\n")
    assert (ev.reason_code, ev.reason, ev.end_line) == (23, "Unknown", 2)  # decimal 23 = 0x17: no such reason


def test_decimal_hex_ambiguity_resolved_by_text() -> None:
    # "10" decimal = 0x0a "non-zero reserved fields in RTP"; hex 0x10 = Unknown.
    (ev,) = faults("DMAR: [DMA Read] Request device [00:02.0] fault addr 0 [fault reason 10] non-zero reserved fields in RTP")
    assert ev.reason_code == 0x0A and ev.warnings == ()
    # A log whose writer printed hex without 0x: the text only matches the hex reading.
    (ev,) = faults("DMAR: [DMA Read] Request device [00:02.0] fault addr 0 [fault reason 12] Unknown")
    assert ev.reason_code == 0x12  # decimal 12 = 0x0c disagrees, hex 0x12 = Unknown agrees
    assert any("hex" in w for w in ev.warnings)
    (ev,) = faults("DMAR: [DMA Read] Request device [00:02.0] fault addr 0 [fault reason 25] Blocked a compatibility format interrupt request")
    assert ev.reason_code == 0x25 and any("hex" in w for w in ev.warnings)


def test_complete_lines_are_not_joined_with_next_line_in_untimestamped_log() -> None:
    evs = events(
        "DMAR: [DMA Write] Request device [00:02.0] fault addr 0 [fault reason 01] Present bit in root entry is clear\n"
        "pci 0000:00:00.0: Adding to iommu group 0\n"
    )
    assert [(e.kind, e.line, e.end_line) for e in evs] == [("dma_fault", 1, 1), ("iommu_group", 2, 2)]
    assert evs[1].bdf == "0000:00:00.0" and evs[1].value == 0


def test_parse_log_streams_lazily() -> None:
    def endless() -> Iterator[str]:
        yield "[ 1.0] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set"
        for i in itertools.count():
            yield f"[ {i}.0] noise"

    (ev,) = itertools.islice(parse_log(endless()), 1)
    assert ev.address == 0x1000


def test_bytes_and_embedded_newlines() -> None:
    evs = list(parse_log([b"DMAR: IOMMU disabled\n", "DMAR: Scalable mode is disallowed\nDMAR: IOMMU enabled"]))
    assert [e.kind for e in evs] == ["iommu_disabled", "sm_disallowed", "iommu_enabled"]


def test_to_json_contract_keys() -> None:
    (ev,) = faults("[ 1.5] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x06] PTE Read access is not set")
    js = ev.to_json()
    for key in ("line", "kind", "bdf", "access", "address", "reason_code", "reason", "pasid", "timestamp"):
        assert key in js
    assert js["address"] == "0xffffc000" and js["reason_code"] == "0x06" and js["bdf"] == "0000:00:02.0"


def test_invalidation_queue_errors() -> None:
    # Verbatim from the linux-pci thread on vmd_domain_reset() (commit f73eedc90bf7).
    evs = events(
        "  DMAR: VT-d detected Invalidation Queue Error: Reason f\n"
        "  DMAR: VT-d detected Invalidation Time-out Error: SID ffff\n"
        "  DMAR: VT-d detected Invalidation Completion Error: SID ffff\n"
        "  DMAR: QI HEAD: UNKNOWN qw0 = 0x0, qw1 = 0x0\n"
        "  DMAR: QI PRIOR: UNKNOWN qw0 = 0x0, qw1 = 0x0\n"
        "  DMAR: Invalidation Time-out Error (ITE) cleared\n"
        "DMAR: VT-d detected Invalidation Time-out Error: SID 300\n"
        "DMAR: DMAR hardware is malfunctioning\n"
    )
    assert [e.kind for e in evs] == ["qi_error"] * 7 + ["hw_malfunction"]
    assert evs[0].details == {"error": "Queue", "reason": 0xF}
    assert evs[1].details == {"error": "Time-out", "sid": 0xFFFF} and evs[1].bdf is None
    assert evs[3].details == {"which": "HEAD", "desc": "UNKNOWN", "qw0": 0, "qw1": 0}
    assert evs[5].details == {"error": "Time-out", "code": "ITE"}
    assert evs[6].bdf == "0000:03:00.0"


def test_aer_newer_wording_and_vmd_domain() -> None:
    # full/093 (linux-pci, 6.x): "message received from"; full/107: a VMD domain 10000.
    evs = events(
        "[    1.949940] pcieport 0000:00:1c.0: AER: Multiple Correctable error message received from 0000:00:1c.0\n"
        "[    1.949950] pcieport 0000:00:1c.0: PCIe Bus Error: severity=Correctable, type=Physical Layer, (Receiver ID)\n"
        "[    1.397106] pcieport 10000:e0:1b.4: AER: enabled with IRQ 185\n"
        "[    1.5] nvme 10000:e1:00.0: AER: Corrected error received: 10000:e1:00.0\n"
    )
    assert [(e.kind, e.bdf) for e in evs if e.kind != "driver"] == [
        ("aer", "0000:00:1c.0"), ("aer", "0000:00:1c.0"), ("aer", "10000:e1:00.0")]
    assert [(e.bdf, e.details["driver"]) for e in evs if e.kind == "driver"] == [
        ("0000:00:1c.0", "pcieport"), ("10000:e0:1b.4", "pcieport"), ("10000:e1:00.0", "nvme")]
    aer = [e for e in evs if e.kind == "aer"]
    assert aer[1].details["severity"] == "Correctable"


def test_wrapped_marker_lines_joined() -> None:
    # excerpts/173 (bugzilla quote): "DMAR: DRHD: handling fault" / "status reg 2".
    evs = events(
        "Aug 26 11:47:22 xps13a.happyassassin.net kernel: DMAR: DRHD: handling fault\n"
        "status reg 2\n"
        "DMAR: Copied translation tables from previous kernel\n"
        "for dmar1\n"
        "[ 1.0] iommu: Default domain type: Translated\n"
        "[ 1.1] DMAR: IOMMU enabled\n"
    )
    assert [(e.kind, e.line, e.end_line, e.value, e.unit) for e in evs] == [
        ("fault_status", 1, 2, 2, None), ("tables_copied", 3, 4, None, "dmar1"), ("iommu_enabled", 6, 6, None, None)]


def test_no_join_when_next_line_is_its_own_message() -> None:
    evs = events("DMAR: DRHD: handling fault\nDMAR: IOMMU disabled\n")
    assert [e.kind for e in evs] == ["iommu_disabled"]


def test_wallclock_seconds() -> None:
    assert wallclock_seconds("Thu Oct 22 08:55:54 2020") - wallclock_seconds("Thu Oct 22 08:54:51 2020") == 63  # type: ignore[operator]
    assert wallclock_seconds("Fri May  1 09:46:41 2026") == wallclock_seconds("2026-05-01T09:46:41Z")
    assert wallclock_seconds("2014-04-25T09:37:53.5+01:00") == wallclock_seconds("2014-04-25T08:37:53.5Z")
    assert wallclock_seconds("2021-12-01T10:00:00,25+00:00") == wallclock_seconds("2021-12-01T10:00:00.25Z")
    assert wallclock_seconds("aug 23 18:04:17") - wallclock_seconds("Aug 23 18:04:15") == 2  # type: ignore[operator]
    assert wallclock_seconds("kwi27 22:04") is None and wallclock_seconds("Foo 99 99:99:99") is None
    assert wallclock_seconds(None) is None


def test_device_lines_driver_group_identity_map() -> None:
    # excerpts/026 (HP server, "direct mappings" thread) and the lab's legacy_drv kdump log.
    evs = events(
        "[   21.895979] pci 0000:00:1f.2: Adding to iommu group 19\n"
        "[   21.898870] pci 0000:00:1f.2: DMAR: Setting identity map [0xe8000 - 0xe8fff]\n"
        "[    3.1] e1000e 0000:00:02.0: Interrupt Throttling Rate (ints/sec) set to dynamic conservative mode\n"
        "[    3.2] e1000e 0000:00:02.0 eth0: (PCI Express:2.5GT/s:Width x1) 52:54:00:12:34:56\n"
        "[    3.3] pci 0000:00:03.0: [1b36:0010] type 00 class 0x010802\n"
    )
    assert [(e.kind, e.bdf, e.value) for e in evs] == [
        ("iommu_group", "0000:00:1f.2", 19), ("identity_map", "0000:00:1f.2", None), ("driver", "0000:00:02.0", None)]
    assert evs[1].details == {"base": 0xE8000, "end": 0xE8FFF}
    assert evs[2].details == {"driver": "e1000e"}  # once per driver and device; "pci" is no driver


def test_amd_vi_faults_are_named() -> None:
    # excerpts/125 (linux-usb) and the older form with device= inside the brackets.
    evs = [e for e in events(
        "  thunderbolt 0000:06:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0010 address=0xbb0e3400 flags=0x0020]\n"
        "[ 5.0] AMD-Vi: Event logged [IO_PAGE_FAULT device=03:00.0 domain=0x000f address=0x00000000fdf8c000 flags=0x0010]\n"
    ) if e.kind != "driver"]
    assert [(e.kind, e.bdf, e.address, e.details.get("domain")) for e in evs] == [
        ("amd_vi_fault", "0000:06:00.0", 0xBB0E3400, 0x10), ("amd_vi_fault", "0000:03:00.0", 0xFDF8C000, 0xF)]
    assert evs[0].details["event"] == "IO_PAGE_FAULT"


def test_panic_trailer_is_not_a_second_panic() -> None:
    # excerpts/023 (iommu list): the oops ends with both lines.
    evs = events(
        "[   5.1] Kernel panic - not syncing: Fatal exception\n"
        "[   5.2] ---[ end Kernel panic - not syncing: Fatal exception ]---\n"
    )
    assert [(e.kind, e.details) for e in evs] == [("panic", {"why": "Fatal exception"})]


def test_two_first_lines_in_a_row_stay_two_records() -> None:
    # An untimestamped log where the first record's "[fault reason]" line was lost.
    evs = faults(
        "DMAR:[DMA Read] Request device [00:02.0] fault addr 1000\n"
        "DMAR:[DMA Write] Request device [00:03.0] fault addr 2000\n"
        "DMAR:[fault reason 05] PTE Write access is not set\n"
    )
    assert [(e.line, e.end_line, e.bdf, e.address, e.reason_code) for e in evs] == [
        (1, 1, "0000:00:02.0", 0x1000, None), (2, 3, "0000:00:03.0", 0x2000, 5)]
    assert any("cut short" in w for w in evs[0].warnings)
