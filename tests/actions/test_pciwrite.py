"""Writing COMMAND on a temporary copy of a lab snapshot, where config files are plain
files: verification, idempotence, refusals. Real config space is written only in the lab VM
(tests/dracut/test_lab_e2e.py)."""

from __future__ import annotations

import errno
import io

import pytest

from kdumptool.actions import pciwrite
from kdumptool.actions.pciwrite import (
    ChangeLog,
    DeviceIdentity,
    check_change,
    clear_bus_master,
    read_identity,
)
from kdumptool.actions.quiesce import apply_quiesce, plan_quiesce
from kdumptool.errors import ActionRefused, PermissionDenied
from kdumptool.sources.root import Root
from kdumptool.sources.system import read_system
from tests.actions.snapshots import command_of, config_file, writable_copy

E1000 = "0000:03:01.0"


@pytest.fixture
def tree(tmp_path):
    return writable_copy("kdump_legacy_on", tmp_path)


def _log(tmp_path):
    out = io.StringIO()
    return ChangeLog(console=out, journal=str(tmp_path / "journal.log")), out


def test_apply_plan_clears_only_bus_master_and_verifies(tree, tmp_path):
    before = {p: p.read_bytes() for p in (tree / "sys/devices").rglob("config")}
    system = read_system(str(tree), use_udev=False)
    plan = plan_quiesce(system)
    log, console = _log(tmp_path)
    report = apply_quiesce(plan, Root(tree), apply=True, log=log)
    assert report.ok and [r.status for r in report.results] == ["changed"] * 5
    changed = {r.bdf for r in report.results}
    for path, old in before.items():
        new = path.read_bytes()
        bdf = path.parent.name
        if bdf in changed:
            # exactly one bit of one byte differs: COMMAND bit 2
            diff = [i for i in range(len(old)) if old[i] != new[i]]
            assert diff == [4] and old[4] ^ new[4] == 0x04, bdf
        else:
            assert new == old, bdf
    assert command_of(tree, E1000) == 0x0103
    lines = console.getvalue().splitlines()
    assert lines[0] == "kdumptool: 0000:03:01.0 COMMAND 0x0107 -> 0x0103"
    assert lines[1] == "kdumptool: 0000:02:00.0 COMMAND 0x0107 -> 0x0103"
    journal = (tmp_path / "journal.log").read_text().splitlines()
    assert [j.split(" ", 1)[1] for j in journal] == [line[len("kdumptool: "):] for line in lines]
    # a fresh look at the tree: nothing left to do
    again = plan_quiesce(read_system(str(tree), use_udev=False))
    assert again.steps == ()


def test_idempotent_second_apply(tree, tmp_path):
    plan = plan_quiesce(read_system(str(tree), use_udev=False))
    apply_quiesce(plan, Root(tree), apply=True, log=_log(tmp_path)[0])
    snap = config_file(tree, E1000).read_bytes()
    log, console = _log(tmp_path)
    report = apply_quiesce(plan, Root(tree), apply=True, log=log)
    assert report.ok and {r.status for r in report.results} == {"unchanged"}
    assert console.getvalue() == ""
    assert config_file(tree, E1000).read_bytes() == snap


def test_dry_run_writes_nothing(tree, tmp_path):
    before = config_file(tree, E1000).read_bytes()
    plan = plan_quiesce(read_system(str(tree), use_udev=False))
    log, console = _log(tmp_path)
    report = apply_quiesce(plan, Root(tree), apply=False, log=log)
    assert {r.status for r in report.results} == {"dry-run"}
    assert config_file(tree, E1000).read_bytes() == before
    assert "dry run: not written" in console.getvalue()


def _patch_config(tree, bdf, offset, data):
    p = config_file(tree, bdf)
    b = bytearray(p.read_bytes())
    b[offset:offset + len(data)] = data
    p.write_bytes(bytes(b))


@pytest.mark.parametrize(
    "offset,data,words",
    [
        (0, b"\xff\xff", "absent"),  # Vendor ID 0xffff
        (2, b"\x0f\x10", "the plan saw 8086:100e"),  # another device at that address
        (0x0E, b"\x01", "header type"),  # header mismatch
        (4, b"\x07\x05", "the plan saw 0x0107"),  # COMMAND changed since the plan
    ],
)
def test_refuses_unexpected_state(tree, tmp_path, offset, data, words):
    plan = plan_quiesce(read_system(str(tree), use_udev=False))
    _patch_config(tree, E1000, offset, data)
    before = config_file(tree, E1000).read_bytes()
    log, console = _log(tmp_path)
    report = apply_quiesce(plan, Root(tree), apply=True, log=log)
    assert [b for b, _ in report.refused] == [E1000]
    assert words in report.refused[0][1]
    assert config_file(tree, E1000).read_bytes() == before
    # the others are still handled
    assert len([r for r in report.results if r.status == "changed"]) == 4
    assert "refused:" in console.getvalue()


@pytest.mark.parametrize(
    "before,after",
    [(0x0107, 0x0106), (0x0107, 0x0100), (0x0103, 0x0107), (0x0107, 0x10107), (0x0507, 0x0103)],
)
def test_refuses_values_changing_other_bits(before, after):
    with pytest.raises(ActionRefused):
        check_change(E1000, before, after)


def test_write_command_refuses_other_bits_before_touching_files(tree):
    p = config_file(tree, E1000)
    old = p.read_bytes()
    with pytest.raises(ActionRefused, match="other than PCI_COMMAND_MASTER"):
        pciwrite.write_command(Root(tree), E1000, 0x0107, 0x0007, apply=True)
    assert p.read_bytes() == old


def test_readback_mismatch_is_an_error(tree, tmp_path, monkeypatch):
    # A device that drops the write (e.g. a hard-wired bit): the read-back shows it.
    monkeypatch.setattr(pciwrite.os, "pwrite", lambda fd, data, off: len(data))
    log, console = _log(tmp_path)
    with pytest.raises(ActionRefused, match="reads back 0x0107"):
        clear_bus_master(Root(tree), E1000, 0x0107, apply=True, log=log)
    assert "FAILED" in console.getvalue()


def _eperm(fd, data, off):
    raise PermissionError(errno.EPERM, "Operation not permitted")


def test_lockdown_eperm_is_refused_clearly(tree, monkeypatch):
    lock = tree / "sys/kernel/security/lockdown"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("none [integrity] confidentiality\n")
    monkeypatch.setattr(pciwrite.os, "pwrite", _eperm)
    with pytest.raises(PermissionDenied, match=r"locked down \(integrity\)"):
        clear_bus_master(Root(tree), E1000, 0x0107, apply=True, log=ChangeLog(console=io.StringIO()))


def test_eperm_without_lockdown_file(tree, monkeypatch):
    monkeypatch.setattr(pciwrite.os, "pwrite", _eperm)
    plan = plan_quiesce(read_system(str(tree), use_udev=False))
    # a permission error stops the whole run: every other write would fail the same way
    with pytest.raises(PermissionDenied, match="EPERM"):
        apply_quiesce(plan, Root(tree), apply=True, log=ChangeLog(console=io.StringIO()))


def test_identity_and_missing_device(tree):
    assert read_identity(Root(tree), E1000) == DeviceIdentity(0x8086, 0x100E, 0)
    assert read_identity(Root(tree), "0000:02:00.0").header_type == 1
    from kdumptool.errors import SourceMissing

    with pytest.raises(SourceMissing):
        clear_bus_master(Root(tree), "0000:09:00.0", 0x0107, apply=True)


def test_journal_unwritable_falls_back_to_console(tmp_path):
    out = io.StringIO()
    log = ChangeLog(console=out, journal=str(tmp_path / "no/such/dir/j.log"))
    log.write("0000:03:01.0 COMMAND 0x0107 -> 0x0103")
    text = out.getvalue()
    assert "0000:03:01.0 COMMAND 0x0107 -> 0x0103" in text and "console only" in text


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_check_change_accepts_only_clearing_bus_master(before, after):
    allowed = after in (before, before & ~0x4)
    try:
        check_change(E1000, before, after)
        accepted = True
    except ActionRefused:
        accepted = False
    assert accepted == allowed
