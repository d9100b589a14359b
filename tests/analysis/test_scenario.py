"""The scenario classifier as pure functions: command lines, kernel config, register bits,
log markers. Register values and log lines below are the lab kernels' own
(../shared/lab-captures, Linux 6.1 under QEMU with an emulated VT-d)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.analysis.scenario import (
    KernelState,
    UnitRegs,
    classify,
    infer_first_from_kdump,
    observe_kernel,
    parse_iommu_params,
    predict_kernel,
)
from kdumptool.model.kernel import KernelDefaults, parse_kernel_config
from kdumptool.model.log import scan_log

LEGACY_ECAP = 0x0000000000F00F4A
SCALABLE_ECAP = 0x0000480080F00F4A  # ECAP bit 43 SMTS set


def regs(gsts, rtaddr, ecap=LEGACY_ECAP, irta=0x120000F):
    return UnitRegs("dmar0", gsts, rtaddr, ecap, irta)


def test_params_last_wins_and_comma_lists():
    p = parse_iommu_params("root=/dev/sda intel_iommu=on,sm_off iommu=pt intel_iommu=off intremap=off nox2apic")
    assert (p.dmar, p.sm, p.passthrough, p.intremap, p.nox2apic) == (False, False, True, False, True)
    assert p.args == ("intel_iommu=on,sm_off", "iommu=pt", "intel_iommu=off", "intremap=off", "nox2apic")
    assert parse_iommu_params("elfcorehdr=867700K").is_kdump
    assert parse_iommu_params("").dmar is None


def test_kernel_config():
    text = (
        "CONFIG_INTEL_IOMMU=y\n# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set\n"
        "CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON=y\nCONFIG_IRQ_REMAP=y\n"
    )
    d = parse_kernel_config(text, "/boot/config-6.1")
    assert (d.intel_iommu, d.default_on, d.sm_default_on, d.irq_remap) == (True, False, True, True)
    assert d.lines[1].line == 2 and d.lines[1].source == "/boot/config-6.1"
    assert parse_kernel_config("").intel_iommu is None


def test_registers_of_the_lab():
    live_sm = regs(0xC7000000, 0x25DB400, SCALABLE_ECAP)
    assert live_sm.tes and live_sm.rtaddr_smt and live_sm.smts and live_sm.ires and live_sm.eime is False
    kdump_off = regs(0x47000000, 0x25DC000)
    assert kdump_off.tes is False and kdump_off.rtps and not kdump_off.rtaddr_smt
    assert "TES=0" in str(kdump_off.ev("GSTS")) and "legacy mode" in str(kdump_off.ev("RTADDR"))


@pytest.mark.parametrize(
    "cmdline,defaults,ecap,want",
    [
        ("intel_iommu=on", KernelDefaults(), LEGACY_ECAP, (True, False)),
        ("intel_iommu=on,sm_off", KernelDefaults(), SCALABLE_ECAP, (True, False)),
        ("intel_iommu=on,sm_on", KernelDefaults(), SCALABLE_ECAP, (True, True)),
        ("intel_iommu=on", KernelDefaults(sm_default_on=True), SCALABLE_ECAP, (True, True)),
        ("intel_iommu=on", KernelDefaults(), SCALABLE_ECAP, (True, None)),  # default unknown
        ("intel_iommu=off", KernelDefaults(), SCALABLE_ECAP, (False, None)),
        ("iommu=off", KernelDefaults(default_on=True), LEGACY_ECAP, (False, None)),
        ("quiet", KernelDefaults(default_on=True), LEGACY_ECAP, (True, False)),
        ("quiet", KernelDefaults(default_on=False), LEGACY_ECAP, (False, None)),
        ("intel_iommu=on", KernelDefaults(intel_iommu=False), LEGACY_ECAP, (False, None)),
    ],
)
def test_predict(cmdline, defaults, ecap, want):
    k = predict_kernel("kdump", cmdline, defaults, [regs(None, None, ecap)])
    assert (k.vtd, k.scalable) == want


def test_predict_without_units_is_off():
    assert predict_kernel("kdump", "intel_iommu=on", KernelDefaults(), []).vtd is False


SM_KDUMP_LOG = [
    "[    0.058666] Kernel command line: console=ttyS0 irqpoll nr_cpus=1 reset_devices intel_iommu=on,sm_off",
    "[    0.059339] DMAR: IOMMU enabled",
    "[    0.059437] DMAR: Scalable mode is disallowed",
    "[    0.198218] DMAR-IR: Copied IR table for dmar0 from previous kernel",
    "[    0.199430] DMAR-IR: Enabled IRQ remapping in xapic mode",
    "[    1.277292] DMAR: Translation already enabled - trying to copy translation structures",
    "[    1.277433] DMAR: Failed to copy translation tables from previous kernel for dmar0",
    "[    1.330704] DMAR: Intel(R) Virtualization Technology for Directed I/O",
    "[    1.344547] DMAR: DRHD: handling fault status reg 2",
    "[    1.344813] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x06] PTE Read access is not set",
    "[    4.581941] e1000e 0000:00:02.0: Interrupt Throttling Rate (ints/sec) set to dynamic conservative mode",
    "[    4.581942] pci 0000:00:02.0: something the PCI core says",
]


def test_scan_log_markers_and_line_numbers():
    m = scan_log(SM_KDUMP_LOG, "dmesg.txt")
    kinds = [x.kind for x in m.markers]
    assert kinds == [
        "cmdline", "param_on", "sm_disallowed", "ir_copied", "ir_enabled", "pre_enabled",
        "copy_failed", "vtd_up", "fault", "probe",
    ]
    f = m.first("fault")
    assert f.evidence.line == 10 and f.get("bdf") == "0000:00:02.0" and f.get("reason") == "06"
    assert m.first("probe").get("drv") == "e1000e"
    assert m.first("copy_failed").get("unit") == "dmar0"


def test_fault_markers_in_every_kernel_format():
    # Verbatim lines of ../shared/corpus/dmesg/FAULT_LINES.txt eras: the decimal reason of
    # the 3.x one-line form is decimal (12 = 0x0c), the 2.6 two-line form has no reason on
    # its first line, interrupt-remapping faults carry an index instead of an address.
    m = scan_log([
        "[  108.451233] DMAR:[DMA Write] Request device [00:02.0] fault addr 3ffff000",
        "[  108.451237] DMAR:[fault reason 05] PTE Write access is not set",
        "[ 1234.567] DMAR: DMAR:[DMA Read] Request device [07:00.0] fault addr fff00000 DMAR:[fault reason 12] non-zero reserved fields in PTE",
        "[    3.1] DMAR: [INTR-REMAP] Request device [f0:1f.0] fault index 0x2 [fault reason 0x25] Blocked a compatibility format interrupt request",
    ])
    faults = m.all("fault")
    assert [(f.get("bdf"), f.get("kind"), f.evidence.line) for f in faults] == [
        ("0000:00:02.0", "dma_fault", 1), ("0000:07:00.0", "dma_fault", 3), ("0000:f0:1f.0", "ir_fault", 4),
    ]
    assert faults[0].get("addr") == "3ffff000"
    assert faults[1].get("reason") == "0c" and faults[1].get("addr") == "fff00000"
    assert faults[2].get("index") == "2" and faults[2].get("reason") == "25"


def test_sm_mismatch_inside_kdump():
    log = scan_log(SM_KDUMP_LOG)
    units = [regs(0xC7000000, 0x3083F000, SCALABLE_ECAP, 0x2F20000F)]
    kd = observe_kernel("kdump", None, units, log)
    assert (kd.vtd, kd.scalable, kd.ir, kd.x2apic) == (True, False, True, False)
    first = infer_first_from_kdump(kd, units, log)
    assert (first.vtd, first.scalable, first.ir) == (True, True, True)
    s = classify(first, kd, True, True, log)
    assert (s.case, s.severity, s.table_copy, s.ir_copy) == ("sm-mismatch", "error", "failed", "copied")
    assert "first kernel scalable, kdump kernel legacy" in s.title


def test_translation_off_inside_kdump_from_registers():
    log = scan_log(["[    0.070241] DMAR: IOMMU disabled", "[    0.217425] DMAR-IR: Copied IR table for dmar0 from previous kernel"])
    units = [regs(0x47000000, 0x25DC000)]
    kd = observe_kernel("kdump", "intel_iommu=off", units, log)
    assert kd.vtd is False
    first = infer_first_from_kdump(kd, units, log)
    assert first.vtd is True and first.scalable is False
    assert any("RTADDR=0x00000000025DC000" in e.text for e in first.evidence)
    s = classify(first, kd, True, True, log)
    assert (s.case, s.severity) == ("on-off", "error")


def test_copied_inside_kdump():
    log = scan_log([
        "[    1.359772] DMAR: Translation already enabled - trying to copy translation structures",
        "[    1.378951] DMAR: Copied translation tables from previous kernel for dmar0",
        "[    1.424845] DMAR: Intel(R) Virtualization Technology for Directed I/O",
    ])
    units = [regs(0xC7000000, 0x26836000)]
    kd = observe_kernel("kdump", None, units, log)
    first = infer_first_from_kdump(kd, units, log)
    s = classify(first, kd, True, True, log)
    assert (s.case, s.severity, s.table_copy) == ("copied", "info", "copied")


def test_off_in_first_on_in_kdump():
    log = scan_log(["[ 1.0] DMAR: Intel(R) Virtualization Technology for Directed I/O"])
    units = [regs(0xC7000000, 0x1000)]
    kd = observe_kernel("kdump", None, units, log)
    first = infer_first_from_kdump(kd, units, log)
    assert first.vtd is False
    assert classify(first, kd, True, True, log).case == "off-on"


def test_predicted_cases_on_a_live_host():
    first = KernelState("first", "observed", "intel_iommu=on", True, True, True, False)
    for kd, case in [
        (KernelState("kdump", "predicted", "", True, False), "sm-mismatch"),
        (KernelState("kdump", "predicted", "", True, True), "copied"),
        (KernelState("kdump", "predicted", "", False, None), "on-off"),
        (KernelState("kdump", "predicted", "", None, None), "unknown"),
    ]:
        assert classify(first, kd, False, True).case == case
    off = KernelState("first", "observed", "", False)
    assert classify(off, KernelState("kdump", "predicted", "", False), False, True).case == "off-both"
    assert classify(off, KernelState("kdump", "predicted", "", False), False, False).case == "no-vtd"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=30))
def test_fuzz_scan_log(lines):
    scan_log(lines)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_params(text):
    parse_iommu_params(text)
    parse_kernel_config(text)


def test_text_and_bytes_scans_agree():
    text = "\n".join(SM_KDUMP_LOG) + "\n"
    a = scan_log(SM_KDUMP_LOG, "x")
    from kdumptool.model.log import scan_log_text

    b = scan_log_text(text.encode(), "x")
    assert a.markers == b.markers and a.lines == b.lines == len(SM_KDUMP_LOG)
    c = scan_log_text(text.encode(), "x", probes=False)
    assert [m.kind for m in c.markers] == [m.kind for m in a.markers if m.kind != "probe"]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_scan_bytes(data):
    from kdumptool.model.log import scan_log_text

    scan_log_text(data + b"\nDMAR: [DMA Read] Request device [00:02.0] fault addr 0x1 [fault reason 0x06] x\n 0000:00:01.0")


def test_fault_line_formats_of_several_kernel_eras():
    """One verbatim example per format, from ../shared/corpus/dmesg/FAULT_LINES.txt."""
    lines = [
        "[ 1692.021403] dmar: DMAR:[DMA Read] Request device [00:02.0] fault addr 1a45aa9000 ",
        "[   20.279508] DMAR: [DMA Read] Request device [00:02.0] fault addr 8900a000 [fault reason 05] PTE Write access is not set",
        "[   27.498868] DMAR: [DMA Read] Request device [02:00.0] PASID ffffffff fault addr bdf83000 [fault reason 06] PTE Read access is not set",
        "[    0.938401] kernel: DMAR: [DMA Read NO_PASID] Request device [0x00:0x02.0] fault addr 0x70ad5000 [fault reason 0x07] Next page table ptr is invalid",
        "[Thu Oct 22 08:54:51 2020] DMAR: [INTR-REMAP] Request device [42:00.2] fault index 1600 [fault reason 37] Blocked a compatibility format interrupt request",
        "[    6.837629] DMAR: [DMA Write NO_PASID] Request device [07:00.0] fault addr",
        "[  100.000000] dmar_fault: 131757 callbacks suppressed",
    ]
    m = scan_log(lines)
    faults = m.all("fault")
    assert [f.get("bdf") for f in faults] == [
        "0000:00:02.0", "0000:00:02.0", "0000:02:00.0", "0000:00:02.0", "0000:42:00.2", "0000:07:00.0"]
    assert [f.get("addr") for f in faults] == ["1a45aa9000", "8900a000", "bdf83000", "70ad5000", None, None]
    # "[fault reason 37]" without 0x is decimal: 0x25, the kernel's "Blocked a compatibility
    # format interrupt request" (irq_remap_fault_reasons[5]).
    assert faults[4].get("index") == "1600" and faults[4].get("reason") == "25"
    assert m.first("suppressed").get("value") == "131757"
