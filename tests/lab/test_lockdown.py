"""Kernel lockdown in the kdump kernel (docs/lockdown.md): what the locked-down kernel
refuses (its own ``Lockdown:`` lines, devmem, setpci), that Debian's signed modules still
load, ``quiesce --apply`` through the kernel's sysfs ``enable`` against a fresh ``lspci
-xxxx`` of every device's whole config space, the guest's enable 1/0 experiment
(guest/lib.sh ``lockdown_probe``), and triage's verdict against the same scenario
without lockdown. Runs without ``kdump_lockdown`` in tests/lab/expect.py skip."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any, Dict, List, Set, Tuple

import pytest

from tests.lab.expect import LOCKED_CMDLINE, expect
from tests.lab.labrun import NAMES, Run
from tests.lab.test_pci_model import bus_master, sysfs

pytestmark = pytest.mark.lab

PCI_COMMAND = 0x04
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_COMMAND_INTX_DISABLE = 0x400
MODULE_SIG_MAGIC = b"~Module signature appended~\n"
#: Findings that exist only because the registers were refused (the lockdown evidence).
LOCKDOWN_ONLY = {"registers-refused-by-lockdown", "input-warning"}


def lockdown(run: Run) -> str:
    mode = expect(run.name).get("kdump_lockdown")
    if not mode:
        pytest.skip(f"{run.name}: the kdump kernel is not locked down")
    return str(mode)


def config_spaces(text: str) -> Dict[str, bytes]:
    """bdf -> the config space bytes an ``lspci -xxxx`` dump shows (4096 for PCIe)."""
    out: Dict[str, bytearray] = {}
    cur = None
    for ln in text.splitlines():
        m = re.match(r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", ln)
        if m:
            cur = f"{m.group(1) or '0000'}:{m.group(2)}"
            out[cur] = bytearray()
            continue
        m = re.match(r"([0-9a-f]{2,3}): ((?:[0-9a-f]{2} ?){16})$", ln.strip())
        if cur and m:
            assert int(m.group(1), 16) == len(out[cur]), f"lspci -xxxx: {cur} line {ln!r} out of order"
            out[cur] += bytes(int(x, 16) for x in m.group(2).split())
    return {k: bytes(v) for k, v in out.items()}


def cpio_files(data: bytes) -> Dict[str, bytes]:
    """name -> contents of a ``newc`` cpio archive (the lab's initramfs)."""
    out, off = {}, 0
    while off + 110 <= len(data) and data[off:off + 6] == b"070701":
        namesize, filesize = int(data[off + 94:off + 102], 16), int(data[off + 54:off + 62], 16)
        name = data[off + 110:off + 110 + namesize - 1].decode()
        start = off + 110 + namesize
        start += -start % 4
        if name == "TRAILER!!!":
            break
        out[name] = data[start:start + filesize]
        off = start + filesize
        off += -off % 4
    return out


def command(space: bytes) -> int:
    return int.from_bytes(space[PCI_COMMAND:PCI_COMMAND + 2], "little")


def diff(before: Dict[str, bytes], after: Dict[str, bytes]) -> Dict[str, List[int]]:
    """bdf -> offsets whose byte differs (devices must be the same set)."""
    assert sorted(before) == sorted(after), f"devices differ: {sorted(before)} vs {sorted(after)}"
    out = {}
    for bdf, b in before.items():
        a = after[bdf]
        assert len(a) == len(b), f"{bdf}: {len(b)} config bytes before, {len(a)} after"
        offs = [i for i in range(len(b)) if a[i] != b[i]]
        if offs:
            out[bdf] = offs
    return out


def triage_doc(run: Run, mode: str = "kdump") -> Dict[str, Any]:
    res = run.kdt(mode, "triage")
    if res is None:
        pytest.skip("kdumptool triage is not in this tree")
    rc, out, err = res
    assert out, f"{run.name} ({mode}): triage printed nothing: {err[-1500:]}"
    doc: Dict[str, Any] = json.loads(out)
    assert doc["exit_code"] == rc, f"{run.name} ({mode}): exit_code {doc['exit_code']} != rc {rc}"
    return doc


def upstream(run: Run, bdf: str, mode: str = "kdump") -> List[str]:
    """The bridges above ``bdf``, nearest first, from its sysfs device path."""
    path = sysfs(run, mode)[bdf]["path"]
    chain = [p for p in path.split("/") if re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", p)]
    return list(reversed(chain[:-1]))


# -- what the locked-down kernel refuses, in its own words ----------------------------------------

def test_kdump_kernel_is_locked_down(run: Run) -> None:
    mode = lockdown(run)
    assert f"[{mode}]" in run.text("kdump", "lockdown.txt"), f"{run.name}: kdump lockdown file {run.text('kdump', 'lockdown.txt')!r}"
    assert "[none]" in run.text("live", "lockdown.txt"), f"{run.name}: live kernel locked: {run.text('live', 'lockdown.txt')!r}"
    assert LOCKED_CMDLINE in run.text("kdump", "dmesg.txt"), f"{run.name}: no {LOCKED_CMDLINE!r} line"


def test_devmem_refused(run: Run) -> None:
    """busybox devmem (the register oracle of the unlocked runs) and kdumptool's /dev/mem
    reader are refused alike, and the kernel says so."""
    lockdown(run)
    text = run.text("kdump", "dmesg_final.txt")
    for who in ("devmem", "python3.11"):
        assert f"Lockdown: {who}: /dev/mem,kmem,port is restricted" in text, f"{run.name}: no /dev/mem refusal line for {who}"
    regs = run.text("kdump", "drhd_regs.txt")
    assert "ERR" in regs and not re.search(r" 0x[0-9A-F]{8,16}$", regs, re.M), f"{run.name}: devmem read a register:\n{regs[:400]}"


def test_config_write_refused(run: Run) -> None:
    """setpci rewriting the host bridge's COMMAND with its own value: EPERM, and the
    kernel's LOCKDOWN_PCI_ACCESS line (why quiesce cannot use its config write)."""
    lockdown(run)
    out = run.text("kdump", "lockdown/setpci_write.txt")
    assert "Operation not permitted" in out, f"{run.name}: setpci write was not refused: {out!r}"
    log = run.text("kdump", "lockdown/dmesg_lockdown.txt")
    assert "Lockdown: setpci: direct PCI access is restricted" in log, f"{run.name}: no PCI access refusal line:\n{log[-800:]}"


def test_signed_modules_load_under_lockdown(run: Run) -> None:
    """The lab's initramfs carries Debian's .ko files byte for byte (each ends with its
    appended signature) and the locked-down kdump kernel loaded them (the 9p shares that
    brought these files back need them)."""
    lockdown(run)
    from lablib.initrd import EARLY_MODULES  # tests/lab/labrun.py puts lab/ on sys.path

    initrd = run.dir.parents[1] / "cache" / f"initrd-{run.result['kver']}.img"
    if not initrd.is_file():
        pytest.skip(f"{run.name}: {initrd} is gone")
    kos = {name: body for name, body in cpio_files(gzip.decompress(initrd.read_bytes())).items()
           if name.startswith("lab/mod/") and name.endswith(".ko")}
    assert kos, f"{run.name}: no modules in {initrd}"
    for name, body in kos.items():
        assert body.endswith(MODULE_SIG_MAGIC), f"{run.name}: {name} in the initramfs lost its appended signature"
    loaded = {ln.split()[0] for ln in run.text("kdump", "modules.txt").splitlines() if ln.strip()}
    # Every module the initramfs carries (EARLY_MODULES and their dependencies, less the
    # built-in ones: 6.12 builds virtio_pci in) is loaded.
    for name in kos:
        m = name.rsplit("/", 1)[-1][:-3].replace("-", "_")
        assert m in loaded, f"{run.name}: {m} not loaded in the locked-down kdump kernel: {sorted(loaded)}"
    assert "9p" in loaded and set(EARLY_MODULES) & loaded, f"{run.name}: {sorted(loaded)}"
    log = run.text("kdump", "dmesg_final.txt")
    for bad in ("unsigned module loading is restricted", "module verification failed", "Loading of unsigned module"):
        assert bad not in log, f"{run.name}: the kdump kernel logged {bad!r}"


# -- quiesce --apply through the kernel -----------------------------------------------------------

def quiesce_apply(run: Run) -> Dict[str, Any]:
    res = run.kdt("kdump", "quiesce_apply")
    if res is None:
        pytest.skip("kdumptool quiesce is not in this tree")
    rc, out, err = res
    assert rc == 0, f"{run.name}: quiesce --apply rc={rc}: {err[-1500:]}"
    doc: Dict[str, Any] = json.loads(out)
    return doc


def test_quiesce_apply_uses_the_kernel(run: Run) -> None:
    """The method is chosen from the lockdown file (sysfs-enable, with its side effects in
    the plan) and every journal line says which writes to ``enable`` did it."""
    mode = lockdown(run)
    plan = quiesce_apply(run)["plan"]
    assert plan["method"] == "sysfs-enable" and f"({mode})" in plan["method_reason"], f"{run.name}: method {plan['method']} ({plan['method_reason']})"
    assert plan["side_effects"], f"{run.name}: a sysfs-enable plan without side effects"
    journal = [ln for ln in run.text("kdump", "quiesce.journal").splitlines() if " COMMAND " in ln]
    assert journal and all(re.search(r" via sysfs enable (1,0|0)$", ln) for ln in journal), f"{run.name}: journal {journal}"
    assert any("quiesce method sysfs-enable" in ln for ln in run.text("kdump", "quiesce.journal").splitlines()), run.name


def test_quiesce_apply_under_lockdown_against_lspci(run: Run) -> None:
    """Over the whole config space of every device (lspci -xxxx before and after): Bus
    Master clear on exactly the planned devices, in the plan's deepest-first order; the
    only other changes are the COMMAND bits the plan's side effects name (decode set,
    INTx Disable cleared by pci_enable_device) on planned devices, and Bus Master on a
    bridge above one only where the plan warned it would stay set. Nothing else changed."""
    lockdown(run)
    doc = quiesce_apply(run)
    plan = doc["plan"]
    steps = [s["bdf"] for s in plan["steps"]]
    journal = [ln.split()[1] for ln in run.text("kdump", "quiesce.journal").splitlines() if " COMMAND " in ln]
    assert journal == steps, f"{run.name}: journal order {journal} != plan order {steps}"
    for i, bdf in enumerate(steps):
        for up in upstream(run, bdf):
            assert up not in steps or steps.index(up) > i, f"{run.name}: bridge {up} cleared before {bdf} below it"
    before = config_spaces(run.text("kdump", "lspci_xxxx.txt"))
    after = config_spaces(run.text("kdump", "after_quiesce/lspci_xxxx.txt"))
    assert all(len(v) == 4096 for k, v in before.items() if k.endswith((":02.0", ":03.0"))), f"{run.name}: lspci -xxxx without extended config space"
    bm_after = bus_master(run, "kdump/after_quiesce")
    side = " ".join(plan["side_effects"])
    allowed = PCI_COMMAND_MASTER
    if "decode" in side:
        allowed |= PCI_COMMAND_IO | PCI_COMMAND_MEMORY
    if "INTx Disable" in side:
        allowed |= PCI_COMMAND_INTX_DISABLE
    warned: Set[str] = {m.group(1) for w in plan.get("warnings", [])
                        if (m := re.match(r"(\S+): Bus Master Enable is clear and pci_enable_bridge will set it", w))}
    for bdf, offs in diff(before, after).items():
        assert set(offs) <= {PCI_COMMAND, PCI_COMMAND + 1}, \
            f"{run.name} {bdf}: config bytes {[hex(o) for o in offs]} changed, not only COMMAND"
        old, new = command(before[bdf]), command(after[bdf])
        if bdf in steps:
            assert not (old ^ new) & ~allowed, f"{run.name} {bdf}: COMMAND {old:#06x} -> {new:#06x} beyond the plan's side effects {side!r}"
        else:
            assert (old ^ new) == PCI_COMMAND_MASTER and new & PCI_COMMAND_MASTER and bdf in warned, \
                f"{run.name} {bdf}: COMMAND {old:#06x} -> {new:#06x} though not planned (plan warnings {plan.get('warnings')})"
    for bdf in steps:
        assert not command(after[bdf]) & PCI_COMMAND_MASTER and not bm_after[bdf], f"{run.name} {bdf}: Bus Master still set"
    assert steps, f"{run.name}: nothing planned (the e1000e at least masters in the kdump kernel)"


def test_dump_complete_before_quiesce(run: Run) -> None:
    """The dump the kdump kernel wrote under lockdown is complete (makedumpfile rc 0, a
    dump kdumptool reads to the end of the crashed kernel's log)."""
    lockdown(run)
    dumps = run.dumps()
    assert dumps and all(d.get("rc") == "0" and int(d["size"]) > 1 << 20 for d in dumps), f"{run.name}: dumps {dumps}"
    assert quiesce_apply(run)["plan"]["dump_finished"] is True, run.name


# -- the enable 1/0 experiment (guest/lib.sh lockdown_probe, after quiesce) ------------------------

def test_sysfs_enable_experiment(run: Run) -> None:
    """What ``enable`` does, measured: on the e1000 03:01.0 behind the PCIe-to-PCI bridge
    02:00.0 (Bus Master already clear), ``1`` (pci_enable_device) changes nothing in the
    device's config space but sets Bus Master on the driverless bridge above it
    (pci_enable_bridge); ``0`` leaves the bridge so; ``0`` on the bridge clears it. Nothing
    else in any device's config space moves at any step."""
    lockdown(run)
    steps = [config_spaces(run.text("kdump", f"lockdown/lspci_xxxx_{i}.txt")) for i in range(4)]
    log = run.text("kdump", "lockdown/enable.txt")
    assert "before enable=0" in log and "write 1 rc=0 enable=1" in log and "write 0 rc=0 enable=0" in log, f"{run.name}: {log}"
    dev, bridge = "0000:03:01.0", "0000:02:00.0"
    assert upstream(run, dev)[0] == bridge, run.name
    assert not command(steps[0][bridge]) & PCI_COMMAND_MASTER, f"{run.name}: bridge {bridge} mastering after quiesce"
    b0 = command(steps[0][bridge])
    want: List[Dict[str, Tuple[int, int]]] = [
        {bridge: (b0, b0 | PCI_COMMAND_MASTER)},  # enable 1 on the device: its bridge gets Bus Master
        {},                                        # enable 0 on the device: the bridge keeps it
        {bridge: (b0 | PCI_COMMAND_MASTER, b0)},  # enable 0 on the bridge: cleared
    ]
    for i, w in enumerate(want):
        d = diff(steps[i], steps[i + 1])
        got = {b: (command(steps[i][b]), command(steps[i + 1][b])) for b in d}
        assert all(set(o) <= {PCI_COMMAND, PCI_COMMAND + 1} for o in d.values()), f"{run.name} step {i + 1}: {d}"
        assert got == w, f"{run.name} step {i + 1}: COMMAND changes {got}, expected {w}"
    assert not command(steps[0][dev]) & PCI_COMMAND_MASTER, run.name


# -- triage: the same verdict as without lockdown --------------------------------------------------

def test_triage_under_lockdown_names_lost_evidence(run: Run) -> None:
    """The kdump kernel's triage says which conclusions lost their register evidence, with
    the lockdown file as evidence, and gives the scenario's case from the kernel log."""
    mode = lockdown(run)
    doc = triage_doc(run)
    assert doc["scenario"]["case"] == expect(run.name)["triage_case"], f"{run.name}: case {doc['scenario']['case']}"
    f = [x for x in doc["findings"] if x["id"] == "registers-refused-by-lockdown"]
    assert len(f) == 1, f"{run.name}: findings {[x['id'] for x in doc['findings']]}"
    title = f[0]["title"]
    for lost in ("GSTS.TES", "RTADDR.SMT", "GSTS.IRES", "IRTA.EIME", "dmar0"):
        assert lost in title, f"{run.name}: the lockdown finding does not name {lost}: {title}"
    ev = {(e["source"], e["text"]) for e in f[0]["evidence"]}
    assert ("/sys/kernel/security/lockdown", f"[{mode}]") in ev, f"{run.name}: evidence {ev}"
    assert "disable Secure Boot" not in json.dumps(doc), f"{run.name}: a remedy says to disable Secure Boot"


def test_triage_verdict_equals_unlocked_run(run: Run) -> None:
    """Triage in the locked-down kdump kernel and in the unlocked run of the same scenario:
    same verdict, exit code, case, table copy, kdump-kernel state and findings, but for
    the findings that say the registers were refused."""
    lockdown(run)
    from lablib.scenarios import run_key, split_key

    from tests.lab.conftest import get_run

    other_key = run_key(expect(run.name)["unlocked"], split_key(run.name)[1])
    if other_key not in NAMES:
        pytest.skip(f"{run.name}: the unlocked run {other_key} is not in this session (LAB_SCENARIOS)")
    locked, unlocked = triage_doc(run), triage_doc(get_run(other_key))
    for key in ("verdict", "exit_code"):
        assert locked[key] == unlocked[key], f"{run.name}: {key} {locked[key]!r}, unlocked {other_key} {unlocked[key]!r}"
    for key in ("case", "table_copy", "ir_copy", "kernel_row"):
        assert locked["scenario"][key] == unlocked["scenario"][key], \
            f"{run.name}: scenario {key} {locked['scenario'][key]!r}, unlocked {unlocked['scenario'][key]!r}"
    for kernel in ("kdump_kernel", "first_kernel"):
        for key in ("translation", "scalable_mode", "interrupt_remapping", "x2apic"):
            a, b = locked["scenario"][kernel][key], unlocked["scenario"][kernel][key]
            assert a == b, f"{run.name}: {kernel} {key} {a!r}, unlocked {b!r}"

    def ids(doc: Dict[str, Any]) -> List[Tuple[str, str]]:
        return sorted((f["id"], f["severity"]) for f in doc["findings"] if f["id"] not in LOCKDOWN_ONLY)

    assert ids(locked) == ids(unlocked), f"{run.name}: findings {ids(locked)}, unlocked {ids(unlocked)}"
