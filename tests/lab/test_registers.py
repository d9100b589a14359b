"""VT-d registers: the oracle (busybox devmem reads of the DRHD page) against the kernel's
behaviour, and kdumptool's own register reads (its system model, run in the guest)
against the oracle."""

from __future__ import annotations

import re
from typing import Tuple

import pytest

from tests.lab.expect import expect
from tests.lab.labrun import Run, parse_regs

pytestmark = pytest.mark.lab

DMA_GSTS_TES = 1 << 31
DMA_GSTS_IRES = 1 << 25
ECAP_SMTS = 1 << 43
RTADDR_TTM_SHIFT = 10  # RTADDR 11:10: 00 legacy, 01 scalable mode
#: Registers that do not move between the oracle read and kdumptool's read.
STABLE = ("VER", "CAP", "ECAP", "GSTS", "RTADDR", "IRTA", "IQA")


def crash_kernel_range(iomem: str) -> Tuple[int, int]:
    m = re.search(r"([0-9a-f]+)-([0-9a-f]+) : Crash kernel", iomem)
    assert m, "no 'Crash kernel' range in the live /proc/iomem"
    return int(m.group(1), 16), int(m.group(2), 16)


def test_live_translation_and_mode(run: Run) -> None:
    exp = expect(run.name)
    regs = run.regs("live", "drhd_regs_final.txt")
    if not exp["live_vtd"]:
        # intel_iommu=off: the kernel never enabled translation (interrupt remapping is
        # still set up: the kernel's IR code does not depend on intel_iommu=).
        assert not regs["GSTS"] & DMA_GSTS_TES, f"{run.name}: live GSTS {regs['GSTS']:#x} has TES set"
        return
    assert regs["GSTS"] & DMA_GSTS_TES, f"{run.name}: live GSTS {regs['GSTS']:#x} has TES clear"
    assert regs["GSTS"] & DMA_GSTS_IRES, f"{run.name}: live GSTS {regs['GSTS']:#x} has IRES clear"
    assert regs["RTADDR"] >> 12, f"{run.name}: live RTADDR is 0"
    ttm = (regs["RTADDR"] >> RTADDR_TTM_SHIFT) & 3
    assert ttm == (1 if exp["live_sm"] else 0), f"{run.name}: live RTADDR {regs['RTADDR']:#x} TTM={ttm}"
    assert bool(regs["ECAP"] & ECAP_SMTS) == bool(run.result["scenario"]["scalable"]), \
        f"{run.name}: ECAP {regs['ECAP']:#x} SMTS disagrees with QEMU's x-scalable-mode"


def locked(run: Run, mode: str) -> bool:
    """The scenario locks this kernel down: devmem is refused, so there is no register
    oracle (tests/lab/test_lockdown.py asserts the refusal itself)."""
    return mode == "kdump" and bool(expect(run.name).get("kdump_lockdown"))


def test_kdump_translation_state(run: Run) -> None:
    exp = expect(run.name)
    if locked(run, "kdump"):
        # No GSTS to read: kdumptool's conclusion from the kernel log must still be right.
        from tests.lab.test_lockdown import triage_doc

        got = triage_doc(run)["scenario"]["kdump_kernel"]["translation"]
        assert got is exp["kdump_tes"], f"{run.name}: locked-down triage says translation {got!r}"
        return
    regs = run.regs("kdump")
    assert bool(regs["GSTS"] & DMA_GSTS_TES) == exp["kdump_tes"], \
        f"{run.name}: kdump GSTS {regs['GSTS']:#x}, expected TES={exp['kdump_tes']}"


def test_kdump_rtaddr_old_or_new(run: Run) -> None:
    """intel_iommu=off leaves the crashed kernel's root table in RTADDR; =on installs a new
    one that the kdump kernel allocated inside the crashkernel reservation."""
    exp = expect(run.name)
    if locked(run, "kdump"):
        pytest.skip(f"{run.name}: the kdump kernel is locked down: no RTADDR oracle (devmem refused)")
    live = run.regs("live", "drhd_regs_final.txt")["RTADDR"]
    kdump = run.regs("kdump")["RTADDR"]
    if exp["kdump_rtaddr"] == "old":
        assert kdump == live, f"{run.name}: kdump RTADDR {kdump:#x} != live {live:#x}"
    else:
        lo, hi = crash_kernel_range(run.text("live", "iomem.txt"))
        assert kdump != live or not exp["live_vtd"], f"{run.name}: kdump RTADDR still the live one {live:#x}"
        assert lo <= (kdump & ~0xFFF) <= hi, f"{run.name}: kdump RTADDR {kdump:#x} outside crashkernel {lo:#x}-{hi:#x}"


def _unit(run: Run, mode: str) -> dict:
    system = run.probe_part(mode, "system")
    units = system["units"]
    assert units, f"{run.name}: kdumptool's system model has no IOMMU unit in the {mode} kernel; warnings: {system['warnings']}"
    return units[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["live", "kdump"])
def test_kdumptool_unit_address(run: Run, mode: str) -> None:
    unit = _unit(run, mode)
    dmesg = run.text(mode, "dmesg.txt")
    m = re.search(r"DMAR: DRHD base: 0x([0-9a-f]+)", dmesg)
    assert m, f"{run.name}: no 'DRHD base' line in the {mode} kernel's log"
    assert unit["address"] == int(m.group(1), 16), f"{run.name} ({mode}): unit address {unit['address']:#x} != kernel's {m.group(1)}"


@pytest.mark.parametrize("mode", ["live", "kdump"])
def test_kdumptool_registers_match_devmem(run: Run, mode: str) -> None:
    unit = _unit(run, mode)
    if locked(run, mode):
        # Both readers refused alike: kdumptool says why and invents no value.
        mode_ = expect(run.name)["kdump_lockdown"]
        assert not unit["registers"], f"{run.name} ({mode}): registers read under lockdown: {unit['registers']}"
        assert f"refused by kernel lockdown ({mode_})" in (unit.get("read_error") or ""), \
            f"{run.name} ({mode}): read_error {unit.get('read_error')!r}"
        assert "ERR" in run.text(mode, "drhd_regs.txt") and not parse_regs(run.text(mode, "drhd_regs.txt")), \
            f"{run.name} ({mode}): devmem read registers under lockdown"
        return
    assert unit["registers"], f"{run.name} ({mode}): kdumptool read no registers: {unit.get('read_error')}"
    oracle = run.regs(mode)
    for name in STABLE:
        assert unit["registers"].get(name) == oracle[name], \
            f"{run.name} ({mode}): kdumptool {name}={unit['registers'].get(name)!r} devmem={oracle[name]:#x}"
