"""The kernel-mediated quiesce method (sysfs ``enable``), for kernels locked down to
integrity/confidentiality, on temporary copies of a lab snapshot. ``enable`` is a plain
file there; :class:`FakeKernel` stands in for drivers/pci/pci-sysfs.c ``enable_store`` and
pci.c's enable count so that the read-back through config has something to check. No
hardware is written."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from kdumptool.actions import pciwrite
from kdumptool.actions.pciwrite import (
    METHOD_CONFIG,
    METHOD_SYSFS_ENABLE,
    ChangeLog,
    choose_method,
    clear_bus_master_sysfs,
)
from kdumptool.actions.quiesce import apply_quiesce, describe_plan, plan_quiesce
from kdumptool.errors import ActionRefused, PermissionDenied
from kdumptool.sources.root import Root
from kdumptool.sources.system import read_system
from tests.actions.snapshots import command_of, config_file, writable_copy

E1000 = "0000:03:01.0"
BRIDGE = "0000:02:00.0"


def _set_command(tree: Path, bdf: str, value: int) -> None:
    path = config_file(tree, bdf)
    data = bytearray(path.read_bytes())
    data[4:6] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))


class FakeKernel:
    """enable_store/enable_show and pci_enable_device/pci_disable_device, on files.

    ``enable`` holds enable_cnt. "1": enable_cnt += 1; from 0 it sets memory decode and,
    like pci_enable_bridge, enables every bridge above (count 0 -> 1) and sets their Bus
    Master. "0": EIO when the count is 0, else count -= 1 and at 0 clears Bus Master only
    (do_pci_disable_device). EBUSY with a driver bound."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.calls: list = []
        devs = tree / "sys/bus/pci/devices"
        for link in devs.iterdir():
            bound = (link / "driver").is_symlink()
            (link / "enable").write_text("1\n" if bound else "0\n")

    def _dev(self, fd: int) -> Path:
        return Path(os.readlink(f"/proc/self/fd/{fd}")).parent

    def store(self, fd: int, data: bytes) -> int:
        dev = self._dev(fd)
        self.calls.append((dev.name, data.decode()))
        if (dev / "driver").is_symlink():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        count = int((dev / "enable").read_text())
        if data.strip() == b"1":
            if count == 0:
                self._or_command(dev, 0x2)
                for up in self._upstream(dev):
                    if int((up / "enable").read_text()) == 0:
                        (up / "enable").write_text("1\n")
                    self._or_command(up, 0x4)
            (dev / "enable").write_text(f"{count + 1}\n")
        else:
            if count == 0:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            (dev / "enable").write_text(f"{count - 1}\n")
            if count == 1:
                self._and_command(dev, ~0x4)
        return len(data)

    @staticmethod
    def _upstream(dev: Path):
        return [p for p in dev.parents if p.name.startswith("0000:")]

    @staticmethod
    def _or_command(dev: Path, bits: int) -> None:
        data = bytearray((dev / "config").read_bytes())
        cmd = int.from_bytes(data[4:6], "little") | bits
        data[4:6] = cmd.to_bytes(2, "little")
        (dev / "config").write_bytes(bytes(data))

    @classmethod
    def _and_command(cls, dev: Path, mask: int) -> None:
        data = bytearray((dev / "config").read_bytes())
        cmd = int.from_bytes(data[4:6], "little") & mask
        data[4:6] = (cmd & 0xFFFF).to_bytes(2, "little")
        (dev / "config").write_bytes(bytes(data))


@pytest.fixture
def tree(tmp_path):
    return writable_copy("kdump_legacy_on", tmp_path)


@pytest.fixture
def kernel(tree, monkeypatch):
    k = FakeKernel(tree)
    monkeypatch.setattr(pciwrite, "_store", k.store)
    return k


def _lockdown(tree: Path, text: str) -> None:
    path = tree / "sys/kernel/security/lockdown"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("text, asked, method", [
    (None, None, METHOD_CONFIG),
    ("[none] integrity confidentiality\n", None, METHOD_CONFIG),
    ("none [integrity] confidentiality\n", None, METHOD_SYSFS_ENABLE),
    ("none integrity [confidentiality]\n", "auto", METHOD_SYSFS_ENABLE),
    ("none [integrity] confidentiality\n", "config", METHOD_CONFIG),
    (None, "sysfs-enable", METHOD_SYSFS_ENABLE),
])
def test_choose_method(tree, text, asked, method):
    if text is not None:
        _lockdown(tree, text)
    how, why = choose_method(Root(tree), asked)
    assert how == method
    assert ("locked down" in why) == (asked in (None, "auto") and method == METHOD_SYSFS_ENABLE)


def test_unknown_method_refused(tree):
    with pytest.raises(ActionRefused):
        choose_method(Root(tree), "flr")


def test_default_plan_text_unchanged(tree):
    system = read_system(str(tree), use_udev=False)
    assert describe_plan(plan_quiesce(system)) == describe_plan(plan_quiesce(system, (), False, METHOD_CONFIG))
    assert "method" not in describe_plan(plan_quiesce(system))


def test_locked_down_apply_clears_deepest_first_through_the_kernel(tree, kernel, tmp_path):
    _lockdown(tree, "none [integrity] confidentiality\n")
    before = {p.parent.name: p.read_bytes() for p in (tree / "sys/devices").rglob("config")}
    root = Root(tree)
    how, why = choose_method(root)
    system = read_system(str(tree), use_udev=False)
    plan = plan_quiesce(system, (), False, how, why)
    text = describe_plan(plan)
    assert "method: sysfs-enable (kernel locked down (integrity)" in text
    assert "pci_enable_bridge enables every bridge above it and sets THEIR Bus Master" in text
    assert plan.as_json()["method"] == METHOD_SYSFS_ENABLE
    out = io.StringIO()
    log = ChangeLog(console=out, journal=str(tmp_path / "journal.log"))
    report = apply_quiesce(plan, root, apply=True, log=log)
    assert report.ok, report.refused
    assert [r.bdf for r in report.results] == [s.bdf for s in plan.steps]
    # 03:01.0 (count 0): 1 then 0; that enabled 02:00.0 (count 1) through pci_enable_bridge,
    # so 02:00.0 needs only 0. Never anything on a device with a driver.
    assert kernel.calls[:3] == [(E1000, "1"), (E1000, "0"), (BRIDGE, "0")]
    planned = {s.bdf for s in plan.steps}
    assert {bdf for bdf, _ in kernel.calls} == planned
    for bdf in planned:
        assert not command_of(tree, bdf) & 0x4, bdf
    # nothing else changed but COMMAND of the planned devices (the root port above had
    # Bus Master set already, so pci_enable_bridge's set is no change)
    for p in (tree / "sys/devices").rglob("config"):
        bdf = p.parent.name
        new, old = p.read_bytes(), before[bdf]
        if bdf in planned:
            assert new[:4] == old[:4] and new[6:] == old[6:], bdf
        else:
            assert new == old, bdf
    lines = out.getvalue().splitlines()
    assert lines[0] == "kdumptool: 0000:03:01.0 COMMAND 0x0107 -> 0x0103 via sysfs enable 1,0"
    assert lines[1] == "kdumptool: 0000:02:00.0 COMMAND 0x0107 -> 0x0103 via sysfs enable 0"
    journal = (tmp_path / "journal.log").read_text()
    assert "via sysfs enable 1,0" in journal
    # a second run: nothing left to do
    again = plan_quiesce(read_system(str(tree), use_udev=False), (), False, how, why)
    assert again.steps == ()


def test_dry_run_writes_nothing(tree, kernel):
    plan = plan_quiesce(read_system(str(tree), use_udev=False), (), False, METHOD_SYSFS_ENABLE, "asked for")
    out = io.StringIO()
    report = apply_quiesce(plan, Root(tree), apply=False, log=ChangeLog(console=out))
    assert kernel.calls == [] and {r.status for r in report.results} == {"dry-run"}
    assert "via sysfs enable 1,0 (dry run: not written)" in out.getvalue()


def test_plan_names_bridge_whose_bus_master_will_be_set(tree, kernel):
    _set_command(tree, BRIDGE, 0x0103)  # bridge not mastering: not a step, but enabling below sets it
    system = read_system(str(tree), use_udev=False)
    plan = plan_quiesce(system, (), False, METHOD_SYSFS_ENABLE, "asked for")
    assert BRIDGE not in {s.bdf for s in plan.steps}
    assert any(w.startswith(f"{BRIDGE}: Bus Master Enable is clear and pci_enable_bridge will set it")
               for w in plan.warnings)
    apply_quiesce(plan, Root(tree), apply=True, log=ChangeLog(console=io.StringIO()))
    assert command_of(tree, BRIDGE) & 0x4  # the fake did what the plan warned of
    assert not plan_quiesce(system, (), False, METHOD_CONFIG).warnings


def test_driver_bound_refused_before_writing(tree, kernel):
    os.symlink("../../../bus/pci/drivers/e1000", config_file(tree, E1000).parent / "driver")
    with pytest.raises(ActionRefused, match="driver is bound"):
        clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=ChangeLog(console=io.StringIO()))
    assert kernel.calls == []


def test_ebusy_and_eio_and_eperm_are_named(tree, kernel, monkeypatch):
    log = ChangeLog(console=io.StringIO())
    for err, exc, words in ((errno.EBUSY, ActionRefused, "EBUSY"), (errno.EPERM, PermissionDenied, "CAP_SYS_ADMIN")):
        def refuse(fd, data, err=err):
            raise OSError(err, os.strerror(err))
        monkeypatch.setattr(pciwrite, "_store", refuse)
        with pytest.raises(exc, match=words):
            clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=log)
    # "0" answered with EIO: the kernel did not count it as enabled
    monkeypatch.setattr(pciwrite, "_store",
                        lambda fd, data: (_ for _ in ()).throw(OSError(errno.EIO, "EIO")) if data == b"0"
                        else len(data))
    with pytest.raises(ActionRefused, match="EIO"):
        clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=log)


def test_plain_enable_file_fails_read_back(tree):
    # no kernel behind the file: nothing clears the bit, and the read-back says so
    (config_file(tree, E1000).parent / "enable").write_text("0\n")
    out = io.StringIO()
    with pytest.raises(ActionRefused, match="Bus Master still set"):
        clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=ChangeLog(console=out))
    assert "FAILED" in out.getvalue()


def test_identity_changed_aborts(tree, kernel, monkeypatch):
    real = kernel.store

    def swap(fd, data):
        n = real(fd, data)
        path = config_file(tree, E1000)
        cfg = bytearray(path.read_bytes())
        cfg[0:2] = (0x1234).to_bytes(2, "little")
        path.write_bytes(bytes(cfg))
        return n

    monkeypatch.setattr(pciwrite, "_store", swap)
    with pytest.raises(ActionRefused, match="identity changed"):
        clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=ChangeLog(console=io.StringIO()))


def test_enable_count_above_one_refused(tree, kernel):
    (config_file(tree, E1000).parent / "enable").write_text("2\n")
    with pytest.raises(ActionRefused, match="enabled by others"):
        clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=ChangeLog(console=io.StringIO()))
    assert kernel.calls == []


def test_unplanned_bits_refused(tree, kernel, monkeypatch):
    real = kernel.store

    def serr(fd, data):
        n = real(fd, data)
        FakeKernel._or_command(config_file(tree, E1000).parent, 0x40)  # parity error response: not pci_enable_device's
        return n

    monkeypatch.setattr(pciwrite, "_store", serr)
    with pytest.raises(ActionRefused, match="bits 0x0040 changed"):
        clear_bus_master_sysfs(Root(tree), E1000, 0x0107, apply=True, log=ChangeLog(console=io.StringIO()))
