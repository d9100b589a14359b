"""What each scenario must show, from the kernel's own behaviour (drivers/iommu/intel/
iommu.c and dmar.c of Linux 6.1) as observed in ../shared/lab-captures, and per kernel
where another kernel behaves differently (:data:`KERNEL_EXPECT`, from the lab's own runs
of Debian 11's 5.10.0-32 and bookworm-backports' 6.12): these are the expected kernel log
lines and register relations, not outputs of kdumptool."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

COPIED = "DMAR: Copied translation tables from previous kernel for dmar0"
COPY_FAILED = "DMAR: Failed to copy translation tables from previous kernel for dmar0"
DISABLED = "DMAR: IOMMU disabled"
VTD_UP = "DMAR: Intel(R) Virtualization Technology for Directed I/O"
PRE_ENABLED = "DMAR: Translation already enabled - trying to copy translation structures"
LOCKED_CMDLINE = "Kernel is locked down from command line"

EXPECT: Dict[str, Dict[str, Any]] = {
    # live_sm: RTADDR.TTM says scalable mode in the live kernel.
    # kdump_lines: lines the kdump kernel's log must contain; kdump_absent: must not.
    # kdump_tes: GSTS.TES in the kdump kernel; kdump_rtaddr: "old" (still the crashed
    # kernel's root table) or "new" (a table the kdump kernel allocated, in crashkernel).
    # fault_device: a DMAR fault the kdump kernel must log for this requester.
    # triage_case: the case of kdumptool.analysis.scenario that the kernel's lines above
    # amount to (copied | on-off | sm-mismatch).
    # kdump_lockdown: the kdump kernel's lockdown mode (/dev/mem and config writes refused;
    # tests/lab/test_lockdown.py); unlocked: the same scenario without lockdown.
    "legacy_on": dict(live_sm=False, kdump_lines=[COPIED], kdump_absent=[COPY_FAILED],
                      kdump_tes=True, kdump_rtaddr="new", fault_device=None, triage_case="copied"),
    "legacy_off": dict(live_sm=False, kdump_lines=[DISABLED], kdump_absent=[COPIED],
                       kdump_tes=False, kdump_rtaddr="old", fault_device=None, triage_case="on-off"),
    "legacy_drv": dict(live_sm=False, kdump_lines=[COPIED], kdump_absent=[COPY_FAILED],
                       kdump_tes=True, kdump_rtaddr="new", fault_device=None, triage_case="copied",
                       drivers_after={"0000:00:02.0": "e1000e", "0000:00:03.0": "nvme"}),
    "sm_on": dict(live_sm=True, kdump_lines=[COPIED], kdump_absent=[COPY_FAILED],
                  kdump_tes=True, kdump_rtaddr="new", fault_device=None, triage_case="copied"),
    "sm_mismatch": dict(live_sm=True, kdump_lines=[COPY_FAILED, "DMAR: DRHD: handling fault status reg"],
                        kdump_absent=[COPIED], kdump_tes=True, kdump_rtaddr="new",
                        fault_device="00:02.0", triage_case="sm-mismatch"),
    # iommu=pt in both kernels: identity domains, pass-through context entries, copied.
    "passthrough": dict(live_sm=False, kdump_lines=[COPIED], kdump_absent=[COPY_FAILED],
                        kdump_tes=True, kdump_rtaddr="new", fault_device=None, triage_case="copied",
                        passthrough=True),
    # intel_iommu=off live: no translation, no tables; the kdump kernel starts fresh.
    # The e1000e, programmed with physical addresses, faults once the kdump kernel turns
    # translation on (6.1 lab: "[fault reason 0x06] PTE Read access is not set").
    "first_kernel_off": dict(live_sm=False, live_vtd=False, kdump_lines=[VTD_UP],
                             kdump_absent=[COPIED, COPY_FAILED, PRE_ENABLED], kdump_tes=True,
                             kdump_rtaddr="new", fault_device="00:02.0", triage_case="off-on"),
    # legacy_on with lockdown=integrity in the kdump kernel (docs/lockdown.md): the same
    # kernel lines, registers refused (/dev/mem), quiesce through sysfs enable; triage's
    # verdict must equal that of "unlocked", the same scenario without lockdown.
    "lockdown_kdump": dict(live_sm=False, kdump_lines=[COPIED],
                           kdump_absent=[COPY_FAILED], kdump_tes=True, kdump_rtaddr="new",
                           fault_device=None, triage_case="copied", kdump_lockdown="integrity",
                           unlocked="legacy_on"),
}

#: Where a kernel series does otherwise (its own lines, lab runs of 2026-12-06):
#: Debian 11's 5.10.0-32 decides the old table's format by the ECS bit, so it "copies"
#: scalable-mode tables as legacy ones (model/kernel_table.py row ecs-bit): with sm_off
#: the e1000e then faults "[fault reason 11] non-zero reserved fields in CTP", with sm_on
#: in both kernels "[fault reason 88] SM: Error attempting to access PASID Table Entry".
KERNEL_EXPECT: Dict[Tuple[str, str], Dict[str, Any]] = {
    ("sm_mismatch", "5.10"): dict(kdump_lines=[COPIED, "DMAR: DRHD: handling fault status reg"],
                                  kdump_absent=[COPY_FAILED], triage_case="sm-mismatch",
                                  table_copy="misread"),
    ("sm_on", "5.10"): dict(kdump_lines=[COPIED, "DMAR: DRHD: handling fault status reg"],
                            kdump_absent=[COPY_FAILED], fault_device="00:02.0", triage_case="copy-misread",
                            table_copy="misread"),
}


#: (text in the failure message, what is wrong): kdumptool bugs this lab found, reported to
#: the stream that owns the code. tests/lab/conftest.py reports a failure carrying that text
#: as xfail; remove the entry once fixed (the tests then simply pass).
KNOWN_ISSUES: List[Tuple[str, str]] = [
    # Both bugs this lab found are fixed on main (a fresh-clone run of lab/ci-tier.sh at
    # 10:16 had no xfail): "overlaps PT_LOAD" (formats/elf.py rejected every real
    # /proc/vmcore) and "\\x09" (collect kept /dev/kmsg escapes). Add new ones here.
]


def expect(key: str) -> Dict[str, Any]:
    """Expectations of a run (``sm_on`` or ``sm_on@5.10``): the scenario's, with its
    kernel's differences; scenarios added by JSON files (lab-scenarios/) have none here,
    and the tests that need them skip."""
    import pytest

    name, _, series = key.partition("@")
    if name not in EXPECT:
        pytest.skip(f"{key}: no expectations in tests/lab/expect.py")
    out = dict(EXPECT[name])
    out.setdefault("live_vtd", True)
    out.update(KERNEL_EXPECT.get((name, series), {}))
    return out
