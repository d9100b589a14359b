"""The AMD-Vi lab (``pytest -m lab``, runs of a scenario with ``vendor="amd"``: QEMU's
amd-iommu): a real panic into a real kdump kernel on AMD-Vi, checked against what the
guest captured (busybox devmem of the AMD-Vi registers, /sys/kernel/iommu_groups, both
kernels' own AMD-Vi lines) and against the tests' own DTE/page-table decoder reading the
kdump kernel's raw ELF copy of /proc/vmcore (tests/amdvi_memory.py).

``amd_on`` is in the default lab set (CI); ``amd_off`` is opt-in:
``LAB_SCENARIOS=amd_off python3 -m pytest -m lab tests/lab/test_amdvi.py``."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from tests.amdvi_memory import elf_reader, oracle_device
from tests.lab.conftest import get_run
from tests.lab.labrun import (
    AMD_NAMES,
    SCENARIOS,
    Run,
    kdumptool,
    parse_regs,
    run_scenario,
    split_key,
)
from tests.lab.test_fixtures_amdvi import live_groups

pytestmark = pytest.mark.lab


_runs: Dict[str, Run] = {}


@pytest.fixture(scope="module", params=AMD_NAMES or ["(no amd run selected)"])
def arun(request: pytest.FixtureRequest) -> Run:
    if not AMD_NAMES:
        pytest.skip("no AMD-Vi scenario selected (LAB_SCENARIOS=amd_on)")
    name = request.param
    if SCENARIOS[split_key(name)[0]].kdump_iommu != "off":
        return get_run(name)
    # amd_off's kdump kernel hangs (test_reaches_the_dump): the run ends at its timeout
    if name not in _runs:
        _runs[name] = run_scenario(name)
    return _runs[name]


def _json(r: Run, mode: str, name: str) -> Dict[str, Any]:
    got = r.kdt(mode, name)
    if got is None:
        pytest.skip(f"kdumptool {name} not in this tree")
    rc, out, err = got
    assert out.strip(), f"{r.name}: {mode} {name} rc={rc} wrote nothing: {err[-800:]}"
    return json.loads(out)  # type: ignore[no-any-return]


def _off(r: Run) -> bool:
    """The kdump kernel is told amd_iommu=off (scenario amd_off)."""
    return r.result["scenario"].get("vendor") == "amd" and r.result["scenario"].get("kdump_iommu") == "off"


def test_reaches_the_dump(arun: Run) -> None:
    """amd_on: the dump is written. amd_off: what the lab observed, kept as the expectation
    (the error triage predicts): the kdump kernel boots with amd_iommu=off, never gets its
    /init's first line out and writes nothing, while the IOMMU it never touched keeps
    remapping interrupts and DMA through the crashed kernel's tables."""
    res = arun.result
    live = arun.text("live", "dmesg_final.txt")
    assert "AMD-Vi: Interrupt remapping enabled" in live and "Found IOMMU cap" in live
    assert res["live_ok"] and not res["unexpected_panic"], f"{arun.name}: see {arun.dir}/serial.log"
    if _off(arun):
        serial = (arun.dir / "serial.log").read_text(errors="replace")
        kd = serial.split("sysrq: Trigger a crash", 1)[-1]
        assert "amd_iommu=off" in kd and "Run /init as init process" in kd, f"{arun.name}: the kdump kernel did not boot"
        assert "init mode=kdump" not in kd and not res["kdump_ok"], f"{arun.name}: the kdump kernel got further: update"
        return
    assert res["kdump_ok"], f"{arun.name}: kdump_ok={res['kdump_ok']} (see {arun.dir}/serial.log)"


@pytest.fixture
def drun(arun: Run) -> Run:
    """A run whose kdump kernel wrote its files (not amd_off's)."""
    if _off(arun):
        pytest.skip(f"{arun.name}: the kdump kernel writes nothing with amd_iommu=off (test_reaches_the_dump)")
    return arun


def test_kdump_kernel_and_the_device_table(drun: Run) -> None:
    """What QEMU's amd-iommu model makes the kdump kernel do (its own lines, its registers
    read by busybox devmem): it copies the device table and runs on its own copy."""
    arun = drun
    kd = arun.text("kdump", "dmesg_final.txt")
    regs = parse_regs(arun.text("kdump", "drhd_regs.txt"))
    live = parse_regs(arun.text("live", "drhd_regs_final.txt"))
    assert regs["CONTROL"] & 1 and live["CONTROL"] & 1
    assert "AMD-Vi: Translation is already enabled - trying to copy translation structures" in kd
    assert "AMD-Vi: Copied DEV table from previous kernel." in kd
    # the kdump kernel runs on its own copy (a new table in its crashkernel memory), same size
    assert regs["DEV_TABLE"] != live["DEV_TABLE"] and regs["DEV_TABLE"] & 0x1FF == live["DEV_TABLE"] & 0x1FF


def test_registers_equal_devmem(arun: Run) -> None:
    """`kdumptool collect` (amdvi_registers.json, /dev/mem) and `kdumptool ivrs` in the live
    kernel read what busybox devmem read."""
    dm = parse_regs(arun.text("live", "drhd_regs.txt"))
    snap = json.loads(arun.text("live", "snapshot/_kdumptool/amdvi_registers.json"))
    got = snap["units"][0]["registers"]
    for name in ("DEV_TABLE", "CMD_BUF", "EVT_BUF", "EXT_FEATURES", "EXCL_BASE"):
        assert got[name] == dm[name], f"{arun.name}: {name} 0x{got[name]:x} != devmem 0x{dm[name]:x}"
    doc = _json(arun, "live", "ivrs")
    u = doc["iommus"][0]
    assert u["source"] == "/dev/mem" and u["read_error"] is None and u["address"] == 0xFED80000
    # read later than the snapshot but before the panic: the same device table, IommuEn on
    assert u["registers"]["raw"]["DEV_TABLE"] == dm["DEV_TABLE"] and u["registers"]["control"]["iommu_en"]


def _devid(bdf: str) -> int:
    return int(bdf[5:7], 16) << 8 | int(bdf[8:10], 16) << 3 | int(bdf[11], 16)


def test_vmcore_iommu_lists_every_grouped_device(drun: Run) -> None:
    """Host side, on the raw ELF copy: every device in a live IOMMU group with its DomainID
    (one per group) and mapped pages, equal to the tests' own decoder on the same bytes;
    the zlib dump gives the same devices and counts."""
    arun = drun
    elf = arun.path("kdump", "vmcore.elf")
    r = kdumptool("vmcore", "iommu", str(elf), "--saved", str(arun.path("live", "snapshot")), "-f", "json")
    assert r.returncode == 0, r.stderr[-1500:]
    doc = json.loads(r.stdout)
    assert doc["vendor"] == "AMD-Vi" and doc["device_table"]["source"] == "saved"
    by = {d["bdf"]: d for d in doc["devices"]}
    groups = live_groups(arun.path("live", "iommu_groups.txt"))
    grouped = {b for devs in groups.values() for b in devs}
    assert grouped <= set(by), f"{arun.name}: no DTE for {sorted(grouped - set(by))}"
    assert all(len({by[b]["domain_id"] for b in devs}) == 1 for devs in groups.values())
    read = elf_reader(str(elf))
    base = doc["device_table"]["address"]
    for bdf, d in by.items():
        assert (d["domain_id"], d["dte"]["mode"], d["mapped_4k_pages"], d["mapped_large_pages"]) == \
            oracle_device(read, base, _devid(bdf)), bdf
    assert by["0000:00:02.0"]["mapped_4k_pages"] > 0
    dumps = {d["format"]: d for d in arun.dumps()}
    z = arun.path("kdump", dumps["zlib"]["file"])
    rz = kdumptool("vmcore", "iommu", str(z), "--saved", str(arun.path("live", "snapshot")), "-f", "json")
    assert rz.returncode == 0, rz.stderr[-1500:]
    zdoc = json.loads(rz.stdout)
    assert [(d["bdf"], d["domain_id"], d["mapped_4k_pages"], d["mapped_large_pages"]) for d in zdoc["devices"]] == \
        [(d["bdf"], d["domain_id"], d["mapped_4k_pages"], d["mapped_large_pages"]) for d in doc["devices"]]
    # and the kdump kernel's own `vmcore iommu /proc/vmcore` said the same
    g = _json(arun, "kdump", "vmcore_iommu")
    assert {d["bdf"]: d["domain_id"] for d in g["devices"]} == {b: d["domain_id"] for b, d in by.items()}


def test_triage_equals_what_the_kernel_did(arun: Run) -> None:
    """Triage in both kernels gives the case the kdump kernel's own lines (and registers)
    show: copied, copy failed, or amd_iommu=off with the old translation still on."""
    if _off(arun):
        want, modes = "amdvi-on-off", ("live",)  # the kdump kernel never ran triage (see above)
    else:
        kd = arun.text("kdump", "dmesg_final.txt")
        want = "amdvi-copied" if "Copied DEV table from previous kernel." in kd else "amdvi-copy-failed"
        modes = ("live", "kdump")
    for mode in modes:
        doc = _json(arun, mode, "triage")
        ids = [f["id"] for f in doc["findings"]]
        assert want in ids, f"{arun.name}: {mode} triage says {ids}"
        f = next(f for f in doc["findings"] if f["id"] == want)
        assert any("CONTROL=" in str(e) and "translation on" in str(e) for e in f["evidence"]), f"{mode}: {f}"
