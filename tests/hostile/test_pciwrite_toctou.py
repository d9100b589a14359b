"""Issue 14, PCI writer: identity, COMMAND read, write, read-back and identity again happen
on one descriptor; a device swapped under the path, or a COMMAND bit changed by someone
else between the read and the write, aborts the write. In-process, on a temporary copy of
a lab snapshot where config files are plain files (no hardware is ever written here)."""

from __future__ import annotations

import io
import os

import pytest

from kdumptool.actions.pciwrite import ChangeLog, DeviceIdentity, clear_bus_master
from kdumptool.errors import ActionRefused, KdumptoolError
from kdumptool.sources.root import Root
from tests.actions.snapshots import command_of, config_file, writable_copy

E1000 = "0000:03:01.0"
OTHER = "0000:02:00.0"
PCI_COMMAND_MEMORY = 0x2


@pytest.fixture
def tree(tmp_path):
    return writable_copy("kdump_legacy_on", tmp_path)


def _expected(tree, bdf):
    head = config_file(tree, bdf).resolve().read_bytes()[:16]
    return DeviceIdentity(int.from_bytes(head[0:2], "little"), int.from_bytes(head[2:4], "little"), head[14] & 0x7F)


def _on_nth_pread(monkeypatch, n, action):
    """Run ``action`` right after the ``n``-th os.pread (1-based) of the write."""
    real = os.pread
    calls = []

    def pread(fd, size, offset):
        data = real(fd, size, offset)
        calls.append((size, offset))
        if len(calls) == n:
            action()
        return data

    monkeypatch.setattr(os, "pread", pread)
    return calls


def test_device_swapped_after_the_identity_check_is_not_written(tree, tmp_path, monkeypatch):
    cfg = config_file(tree, E1000).resolve()
    before = command_of(tree, E1000)
    exp = _expected(tree, E1000)
    # another device's config space moved into the path right after the identity read
    impostor = tmp_path / "impostor"
    impostor.write_bytes(config_file(tree, OTHER).resolve().read_bytes())
    impostor_bytes = impostor.read_bytes()
    _on_nth_pread(monkeypatch, 1, lambda: os.replace(impostor, cfg))
    try:
        clear_bus_master(Root(tree), E1000, before, apply=True, expected=exp,
                         log=ChangeLog(console=io.StringIO()))
    except KdumptoolError:
        pass
    assert cfg.read_bytes() == impostor_bytes  # the device now at the path was never written


def test_memory_space_cleared_between_read_and_write_aborts(tree, monkeypatch):
    cfg = config_file(tree, E1000).resolve()
    before = command_of(tree, E1000)
    assert before & PCI_COMMAND_MEMORY and before & 0x4

    def someone_clears_memory_space():
        data = bytearray(cfg.read_bytes())
        data[4] &= ~PCI_COMMAND_MEMORY
        cfg.write_bytes(bytes(data))

    # the plan's COMMAND value has been read (by the second read at the latest); someone
    # changes the register right after, before the write
    _on_nth_pread(monkeypatch, 2, someone_clears_memory_space)
    with pytest.raises(ActionRefused, match="COMMAND"):
        clear_bus_master(Root(tree), E1000, before, apply=True, expected=_expected(tree, E1000),
                         log=ChangeLog(console=io.StringIO()))
    after = command_of(tree, E1000)
    assert not after & PCI_COMMAND_MEMORY, "Memory Space Enable was turned back on"
    assert after & 0x4  # nothing written


def test_identity_changed_during_the_write_is_reported(tree, monkeypatch):
    cfg = config_file(tree, E1000).resolve()
    before = command_of(tree, E1000)

    def new_device_id():
        data = bytearray(cfg.read_bytes())
        data[2] ^= 0xFF
        cfg.write_bytes(bytes(data))

    calls = _on_nth_pread(monkeypatch, 10**6, lambda: None)  # count the reads of one write
    clear_bus_master(Root(writable_copy("kdump_legacy_on", tree.parent / "probe")), E1000, before,
                     apply=True, log=ChangeLog(console=io.StringIO()))
    n = len(calls)
    assert n >= 4 and calls[-1] == (16, 0), calls  # identity is read again last
    monkeypatch.undo()
    _on_nth_pread(monkeypatch, n - 1, new_device_id)  # between the read-back and the last identity
    with pytest.raises(ActionRefused, match="identity"):
        clear_bus_master(Root(tree), E1000, before, apply=True, expected=_expected(tree, E1000),
                         log=ChangeLog(console=io.StringIO()))


def test_config_that_is_a_symlink_is_not_followed_on_write(tree, tmp_path):
    cfg = config_file(tree, E1000).resolve()
    inside = cfg.with_name("config.real")
    os.replace(cfg, inside)
    cfg.symlink_to("config.real")
    before = command_of(tree, E1000)
    data = inside.read_bytes()
    # a link inside the tree is resolved inside it; the final open uses O_NOFOLLOW on the
    # resolved path, so only the regular file itself is ever opened
    clear_bus_master(Root(tree), E1000, before, apply=True, log=ChangeLog(console=io.StringIO()))
    assert inside.read_bytes() != data and inside.read_bytes()[4] == data[4] & ~0x4


def test_fifo_as_config_is_refused_without_hanging(tree):
    from tests.hostile.util import deadline

    cfg = config_file(tree, E1000).resolve()
    cfg.unlink()
    os.mkfifo(cfg)
    with deadline(10), pytest.raises(KdumptoolError, match="regular file"):
        clear_bus_master(Root(tree), E1000, 0x107, apply=True, log=ChangeLog(console=io.StringIO()))
