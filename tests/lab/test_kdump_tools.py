"""The commands kdumptool runs around a real crash: ``collect`` (live snapshot),
``triage`` (live prediction and kdump observation), ``record`` and ``quiesce --plan /
--apply`` in the kdump kernel, each against the oracle files captured beside them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

from tests.lab.expect import expect
from tests.lab.labrun import Run
from tests.lab.test_pci_model import bus_master, lspci_n, sysfs

pytestmark = pytest.mark.lab
STABLE = ("VER", "CAP", "ECAP", "GSTS", "RTADDR", "IRTA", "IQA")


def kdt_json(run: Run, mode: str, name: str, ok_rcs: Set[int] = frozenset({0})) -> Any:  # type: ignore[assignment]
    res = run.kdt(mode, name)
    if res is None:
        pytest.skip(f"kdumptool {name} is not in this tree")
    rc, out, err = res
    assert rc in ok_rcs, f"{run.name} ({mode}): kdumptool {name} rc={rc}: {err[-1500:]}"
    return json.loads(out)


def _int(v: Any) -> int:
    return v if isinstance(v, int) else int(str(v), 16)


# -- collect (live) ---------------------------------------------------------------------------

def snapshot(run: Run) -> Path:
    kdt_json(run, "live", "collect")
    snap = run.path("live", "snapshot")
    assert (snap / "_kdumptool" / "collect.json").is_file(), f"{run.name}: snapshot has no _kdumptool/collect.json"
    return snap


def test_collect_registers_match_devmem(run: Run) -> None:
    snap = snapshot(run)
    if not expect(run.name)["live_vtd"]:
        # intel_iommu=off: no /sys/class/iommu/dmar* unit, so collect reads no registers
        # (the DRHD page is still there; collect locates units through sysfs only).
        assert not (snap / "_kdumptool" / "vtd_registers.json").is_file() or \
            not json.loads((snap / "_kdumptool" / "vtd_registers.json").read_text()).get("units"), run.name
        pytest.skip(f"{run.name}: intel_iommu=off in the live kernel: collect has no unit to read registers from")
    units = json.loads((snap / "_kdumptool" / "vtd_registers.json").read_text())["units"]
    assert [u["address"] for u in units] == [0xFED90000], f"{run.name}: snapshot units {units}"
    regs = units[0]["registers"]
    assert regs, f"{run.name}: collect read no registers: {units[0].get('read_error')}"
    oracle = run.regs("live")
    for name in STABLE:
        assert _int(regs[name]) == oracle[name], f"{run.name}: snapshot {name}={regs[name]} devmem={oracle[name]:#x}"


def test_collect_snapshot_reads_like_the_live_system(run: Run) -> None:
    """The snapshot, read back on the host, gives the guest's lspci devices, sysfs drivers
    and groups."""
    from kdumptool.sources.system import read_system

    system = read_system(str(snapshot(run)))
    want = lspci_n(run, "live")
    assert sorted(system.devices) == sorted(want), f"{run.name}: snapshot devices {sorted(system.devices)} != lspci {sorted(want)}"
    for bdf, w in sysfs(run, "live").items():
        d = system.devices[bdf]
        assert d.driver == (None if w["driver"] == "-" else w["driver"]), f"{run.name} {bdf}: driver {d.driver}"
        assert d.iommu_group == (None if w["group"] == "-" else int(w["group"])), f"{run.name} {bdf}: group {d.iommu_group}"
    assert system.kexec_crash_loaded is True, f"{run.name}: the snapshot says no crash kernel was loaded"


def test_collect_snapshot_log_has_the_live_log(run: Run) -> None:
    text = (snapshot(run) / "_kdumptool" / "dmesg.txt").read_text(errors="replace")
    got = set(text.splitlines())
    want = [ln for ln in run.text("live", "dmesg.txt").splitlines() if ln.startswith("[")]
    missing = [ln for ln in want if ln not in got]
    if missing:
        # Show the snapshot's version of the line when it differs only by /dev/kmsg's escapes.
        unescaped = {re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), ln): ln
                     for ln in text.splitlines()}
        theirs = unescaped.get(missing[0], "(absent)")
        raise AssertionError(f"{run.name}: snapshot dmesg lacks {len(missing)} lines of busybox dmesg, e.g. "
                             f"{missing[0]!r}; the snapshot has: {theirs}")


# -- triage -----------------------------------------------------------------------------------

def check_triage_details(run: Run, where: str, doc: Dict[str, Any]) -> None:
    """What every triage (live, kdump, offline) must also say for this run's kernel: the
    row of the kernel table it applied (its release), how the copy went (5.10: misread),
    that no contradiction was found, and for iommu=pt unrestricted DMA for every
    driverless device."""
    exp = expect(run.name)
    s = doc["scenario"]
    assert not s.get("contradictions"), f"{run.name} ({where}): {s.get('contradictions')}"
    from lablib.scenarios import split_key

    series = split_key(run.name)[1]
    want_row = "ecs-bit" if series == "5.10" else "rtaddr-smt"
    assert s.get("kernel_row") == want_row, f"{run.name} ({where}): kernel row {s.get('kernel_row')!r}, want {want_row}"
    if "table_copy" in exp:
        got = s.get("table_copy") or ""
        assert got in (exp["table_copy"], "expected-" + exp["table_copy"]), f"{run.name} ({where}): table copy {got!r}"
    if exp.get("passthrough"):
        driverless = [f for f in doc["findings"] if f["id"] == "driverless-bus-master"]
        assert driverless, f"{run.name} ({where}): no driverless bus master found"
        for f in driverless:
            assert "pass-through" in f["title"] and "unrestricted DMA" in f["title"], f"{run.name} ({where}): {f['title']}"
        for f in doc["findings"]:
            if f["id"] == "crashed-kernel-tables":
                assert "pass-through" in f["title"] and f["severity"] == "warning", f"{run.name} ({where}): {f['title']}"


@pytest.mark.parametrize("mode", ["live", "kdump"])
def test_triage_case(run: Run, mode: str) -> None:
    """The live kernel's triage (capture kernel loaded, kdump-tools' KDUMP_CMDLINE) predicts,
    and the kdump kernel's triage observes, the case the kdump kernel's own lines show."""
    doc = kdt_json(run, mode, "triage", ok_rcs=set(range(0, 8)))
    rc = int(run.text(mode, "kdt/triage.rc"))
    assert doc["exit_code"] == rc, f"{run.name} ({mode}): triage exit_code {doc['exit_code']} != rc {rc}"
    exp = expect(run.name)
    want = exp["triage_case"]
    assert doc["scenario"]["case"] == want, f"{run.name} ({mode}): triage case {doc['scenario']['case']!r}, kernel shows {want!r}: {doc['scenario'].get('title')}"
    check_triage_details(run, mode, doc)
    if mode == "live":
        kd = run.text("kdump", "cmdline.txt").split()
        assert doc["kdump_cmdline"].split() == [w for w in kd if not w.startswith(("elfcorehdr=", "acpi_rsdp="))], \
            f"{run.name}: triage predicted kdump cmdline {doc['kdump_cmdline']!r}, the kdump kernel had {kd}"


# -- record (kdump) ---------------------------------------------------------------------------

def record(run: Run) -> Dict[str, Any]:
    doc = kdt_json(run, "kdump", "record")
    for f in ("kdumptool-record.json", "kdumptool-record.txt", "kdumptool-snapshot.tar.gz"):
        assert run.path("kdump", f"record/{f}").is_file(), f"{run.name}: record wrote no {f}"
    return doc  # type: ignore[no-any-return]


def test_record_registers_match_devmem(run: Run) -> None:
    doc = record(run)
    lockdown = expect(run.name).get("kdump_lockdown")
    if lockdown:
        # /dev/mem refused (devmem too: test_registers): no RTADDR, the refusal recorded.
        assert doc["rtaddr"] == {}, f"{run.name}: record rtaddr {doc['rtaddr']} under lockdown"
        errs = [u.get("read_error") or "" for u in doc["units"]]
        assert errs and all(f"refused by kernel lockdown ({lockdown})" in e for e in errs), f"{run.name}: record units {doc['units']}"
        return
    oracle = run.regs("kdump")
    assert {k: _int(v) for k, v in doc["rtaddr"].items()} == {"dmar0": oracle["RTADDR"]}, f"{run.name}: record rtaddr {doc['rtaddr']}"
    regs = doc["units"][0]["registers"]
    for name in STABLE:
        assert _int(regs[name]) == oracle[name], f"{run.name}: record {name}={regs[name]} devmem={oracle[name]:#x}"


def test_record_bus_masters_match_lspci(run: Run) -> None:
    doc = record(run)
    want = sorted(b for b, on in bus_master(run, "kdump").items() if on)
    got = sorted(d["bdf"] for d in doc["bus_masters"])
    assert got == want, f"{run.name}: record bus_masters {got} != lspci BusMaster+ {want}"


# -- quiesce (kdump) --------------------------------------------------------------------------

def driverless_masters(run: Run, mode: str = "kdump") -> Set[str]:
    bm, sf = bus_master(run, mode), sysfs(run, mode)
    return {b for b, on in bm.items() if on and sf[b]["driver"] == "-" and not b.endswith("00:00.0")}


def test_quiesce_plan_is_the_driverless_masters(run: Run) -> None:
    plan = kdt_json(run, "kdump", "quiesce_plan")["plan"]
    steps = [s["bdf"] for s in plan["steps"]]
    assert sorted(steps) == sorted(driverless_masters(run)), f"{run.name}: plan {steps} != driverless bus masters {sorted(driverless_masters(run))}"
    sf = sysfs(run, "kdump")
    for s in plan["skips"]:
        if s["reason"] == "driver bound":
            assert sf[s["bdf"]]["driver"] != "-", f"{run.name}: {s['bdf']} skipped as driver bound, sysfs has none"


def test_quiesce_order_deepest_first(run: Run) -> None:
    """Every device is cleared before any bridge above it (bridges from the sysfs path)."""
    plan = kdt_json(run, "kdump", "quiesce_plan")["plan"]
    order = [s["bdf"] for s in plan["steps"]]
    sf = sysfs(run, "kdump")
    for i, bdf in enumerate(order):
        chain = [p for p in sf[bdf]["path"].split("/") if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", p)][:-1]
        for up in chain:
            if up in order:
                assert order.index(up) > i, f"{run.name}: bridge {up} cleared before {bdf} below it: {order}"


def command_words(lspci_xxxx: str) -> Dict[str, int]:
    """COMMAND (config offset 0x04) of each device in an ``lspci -xxxx`` dump."""
    out, cur = {}, None
    for ln in lspci_xxxx.splitlines():
        m = re.match(r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", ln)
        if m:
            cur = f"{m.group(1) or '0000'}:{m.group(2)}"
        elif cur and ln.startswith("00: "):
            b = ln.split()[1:]
            out[cur] = int(b[4], 16) | int(b[5], 16) << 8
    return out


def test_quiesce_apply_cleared_bus_master(run: Run) -> None:
    """After --apply, lspci (a fresh read of config space) shows BusMaster- on exactly the
    planned devices, every other COMMAND register unchanged, and the journal's
    old -> new values are lspci's before/after."""
    kdt_json(run, "kdump", "quiesce_apply")
    # The last look before --apply: after the drivers, where the scenario loads some.
    last = "kdump/after_drivers" if run.path("kdump", "after_drivers/lspci_xxxx.txt").is_file() else "kdump"
    before = command_words(run.text(last, "lspci_xxxx.txt"))
    after = command_words(run.text("kdump", "after_quiesce/lspci_xxxx.txt"))
    planned = driverless_masters(run, last)
    journal: List[List[str]] = [ln.split()[1:] for ln in run.text("kdump", "quiesce.journal").splitlines() if " COMMAND " in ln]
    assert sorted(j[0] for j in journal) == sorted(planned), f"{run.name}: journal {journal} != planned {sorted(planned)}"
    for bdf, _, old, _, new in (j[:5] for j in journal):  # "... via sysfs enable 1,0" under lockdown
        assert before[bdf] == int(old, 16) and after[bdf] == int(new, 16), \
            f"{run.name} {bdf}: journal {old} -> {new}, lspci {before[bdf]:#06x} -> {after[bdf]:#06x}"
        assert not after[bdf] & 0x4, f"{run.name} {bdf}: Bus Master Enable still set"
    for bdf in before:
        if bdf not in planned:
            assert after[bdf] == before[bdf], f"{run.name} {bdf}: COMMAND changed {before[bdf]:#06x} -> {after[bdf]:#06x} though not planned"
    assert not any(bus_master(run, "kdump/after_quiesce")[b] for b in planned), f"{run.name}: lspci -vvv still BusMaster+"


def test_quiesce_is_idempotent(run: Run) -> None:
    again = kdt_json(run, "kdump", "quiesce_again")["plan"]
    assert again["steps"] == [], f"{run.name}: a second --apply planned {again['steps']}"


def test_triage_offline_of_the_saved_crash(run: Run) -> None:
    """On the host, after the fact: the live snapshot, the dump and the kdump kernel's
    folder (its dmesg.txt) give the same case as the kernel's own lines."""
    from tests.lab.labrun import has_command, kdumptool
    from tests.lab.test_vmcore import dump_paths

    if not has_command("triage"):
        pytest.skip("kdumptool triage is not in this tree")
    fmt, path = next(dump_paths(run))
    r = kdumptool("triage", "--offline", "--root", str(run.path("live", "snapshot")), "--vmcore", path,
                  "--saved", str(run.guest / "kdump"), "-f", "json")
    assert r.stdout, f"{run.name}: triage --offline printed nothing: {r.stderr[-1500:]}"
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == r.returncode, f"{run.name}: exit_code {doc['exit_code']} != rc {r.returncode}"
    want = expect(run.name)["triage_case"]
    assert doc["scenario"]["case"] == want, f"{run.name} ({fmt}): offline triage case {doc['scenario']['case']!r}, kernel shows {want!r}"
    check_triage_details(run, "offline", doc)
