"""sources.snapshot.archive_tree writes the archive tarfile's own ``tar.add`` writes,
byte for byte (it only looks owner names up once per id), on a collected snapshot tree
and on a tree with every kind of member a collector makes (files, nested and empty
folders, relative, absolute and dangling links) plus a hard link and a FIFO (tarfile's
own way)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

from kdumptool.sources.snapshot import archive_tree
from tests.conftest import FIXTURES


def _both(tree: Path) -> None:
    ours, theirs = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=ours, mode="w") as tar:
        archive_tree(tar, str(tree), "snapshot")
    with tarfile.open(fileobj=theirs, mode="w") as tar:
        tar.add(str(tree), arcname="snapshot")
    assert ours.getvalue() == theirs.getvalue()
    with tarfile.open(fileobj=io.BytesIO(ours.getvalue())) as tar:
        names = tar.getnames()
    assert names[0] == "snapshot" and len(names) > 5


def test_a_lab_snapshot_tree(tmp_path: Path) -> None:
    tree = tmp_path / "snap"
    shutil.copytree(FIXTURES / "snapshots" / "kdump_legacy_on", tree, symlinks=True)
    _both(tree)


def test_every_kind_of_member(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "sys/bus/pci/devices").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "a.txt").write_text("a\n")
    (tree / "sys/config").write_bytes(bytes(range(256)))
    os.symlink("../../../a.txt", tree / "sys/bus/pci/devices/rel")
    os.symlink("/etc/passwd", tree / "abs")
    os.symlink("nowhere", tree / "dangling")
    os.link(tree / "a.txt", tree / "hard")
    os.mkfifo(tree / "fifo")
    os.chmod(tree / "a.txt", 0o600)
    os.utime(tree / "sys/config", (1.5e9, 1.5e9 + 0.25))
    _both(tree)
