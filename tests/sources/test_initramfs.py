"""Finding and listing the kdump initramfs under a root (distribution layouts)."""

from __future__ import annotations

import shutil

import pytest

from kdumptool.sources.initramfs import find_kdump_initrds, read_kdump_initrd
from kdumptool.sources.root import Root
from tests.conftest import FIXTURES

IF = FIXTURES / "initramfs"


@pytest.mark.parametrize(
    "rel_path,comp",
    [
        ("boot/initramfs-6.1.0-56-amd64kdump.img", "zstd"),  # RHEL
        ("var/lib/kdump/initrd.img-6.1.0-56-amd64", "gzip"),  # Debian
        ("boot/initrd-6.1.0-56-amd64-kdump", "xz"),  # SUSE
    ],
)
def test_layouts(tmp_path, rel_path, comp):
    dest = tmp_path / rel_path
    dest.parent.mkdir(parents=True)
    shutil.copy(IF / f"initrd-early-{comp}.img", dest)
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.1.0-56-amd64\n")
    root = Root(tmp_path)
    assert find_kdump_initrds(root) == [("/" + rel_path, "6.1.0-56-amd64")]
    got = read_kdump_initrd(root)
    assert got is not None and got.method == "cpio"
    assert got.modules == ("e1000e", "nvme", "nvme_core", "virtio_blk")


def test_lsinitrd_agrees_with_cpio_reader(tmp_path):
    if shutil.which("lsinitrd") is None and shutil.which("lsinitramfs") is None:
        pytest.skip("neither lsinitrd nor lsinitramfs installed")
    dest = tmp_path / "boot/initramfs-6.1.0-56-amdkdump.img"
    dest.parent.mkdir(parents=True)
    shutil.copy(IF / "initrd-early-xz.img", dest)
    root = Root(tmp_path)
    by_tool = read_kdump_initrd(root, use_tools=True)
    by_cpio = read_kdump_initrd(root, use_tools=False)
    assert by_tool.method in ("lsinitrd", "lsinitramfs") and by_cpio.method == "cpio"
    assert by_tool.modules == by_cpio.modules


def test_none_when_absent(tmp_path):
    assert read_kdump_initrd(Root(tmp_path)) is None
