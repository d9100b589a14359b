"""What each scenario must show, from the kernel's own behaviour (drivers/iommu/intel/
iommu.c and dmar.c of Linux 6.1) as observed in ../shared/lab-captures: these are the
expected kernel log lines and register relations, not outputs of kdumptool."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

COPIED = "DMAR: Copied translation tables from previous kernel for dmar0"
COPY_FAILED = "DMAR: Failed to copy translation tables from previous kernel for dmar0"
DISABLED = "DMAR: IOMMU disabled"

EXPECT: Dict[str, Dict[str, Any]] = {
    # live_sm: RTADDR.TTM says scalable mode in the live kernel.
    # kdump_lines: lines the kdump kernel's log must contain; kdump_absent: must not.
    # kdump_tes: GSTS.TES in the kdump kernel; kdump_rtaddr: "old" (still the crashed
    # kernel's root table) or "new" (a table the kdump kernel allocated, in crashkernel).
    # fault_device: a DMAR fault the kdump kernel must log for this requester.
    # triage_case: the case of kdumptool.analysis.scenario that the kernel's lines above
    # amount to (copied | on-off | sm-mismatch).
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
}


#: (text in the failure message, what is wrong): kdumptool bugs this lab found, reported to
#: the stream that owns the code. tests/lab/conftest.py reports a failure carrying that text
#: as xfail; remove the entry once fixed (the tests then simply pass).
KNOWN_ISSUES: List[Tuple[str, str]] = [
    # Both bugs this lab found are fixed on main (a fresh-clone run of lab/ci-tier.sh at
    # 10:16 had no xfail): "overlaps PT_LOAD" (formats/elf.py rejected every real
    # /proc/vmcore) and "\\x09" (collect kept /dev/kmsg escapes). Add new ones here.
]


def expect(name: str) -> Dict[str, Any]:
    """Expectations of a scenario; scenarios added by JSON files (lab-scenarios/) have none
    here, and the tests that need them skip."""
    import pytest

    if name not in EXPECT:
        pytest.skip(f"{name}: no expectations in tests/lab/expect.py")
    return EXPECT[name]
