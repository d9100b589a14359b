"""Issue 14, output writers: collect -o and record --out write a temporary file
(O_EXCL|O_NOFOLLOW) in the destination, fsync it and rename it; they never follow a link,
never overwrite without --force, and a failed write (ENOSPC) is one error line with
nothing left behind. record's default folder is never taken from a snapshot's content."""

from __future__ import annotations

import errno
import os

import pytest

from tests.cliutil import run
from tests.hostile.util import SNAPSHOTS, snapshot_copy

SNAP = SNAPSHOTS / "kdump_legacy_on"


def _files(d):
    return sorted(p.name for p in d.iterdir())


def test_collect_to_a_symlink_does_not_create_its_target(tmp_path, capsys):
    target = tmp_path / "elsewhere" / "target.tar.gz"
    target.parent.mkdir()
    link = tmp_path / "out.tar.gz"
    link.symlink_to(target)
    code, out, err = run(capsys, "collect", "--root", str(SNAP), "-o", str(link))
    assert code != 0 and err.startswith("error: ")
    assert not target.exists()


def test_collect_does_not_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "s.tar.gz"
    out.write_bytes(b"precious")
    code, _, err = run(capsys, "collect", "--root", str(SNAP), "-o", str(out))
    assert code != 0 and "--force" in err and out.read_bytes() == b"precious"
    code, _, err = run(capsys, "collect", "--root", str(SNAP), "-o", str(out), "--force")
    assert code == 0, err
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # a gzip now
    assert _files(tmp_path) == ["s.tar.gz"]  # no temporary file left


def test_collect_enospc_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "s.tar.gz"
    code, stdout, err = run(capsys, "collect", "--root", str(SNAP), "-o", str(out))
    monkeypatch.setattr(os, "fsync", real)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and "No space left" in err, err
    assert _files(tmp_path) == []


@pytest.mark.parametrize("planted", ["kdumptool-record.json", "kdumptool-record.txt", "kdumptool-snapshot.tar.gz"])
def test_record_out_never_writes_through_a_planted_link(tmp_path, capsys, planted):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "rec"
    out.mkdir()
    (out / planted).symlink_to(victim)
    code, _, err = run(capsys, "record", "--root", str(SNAP), "--out", str(out))
    assert victim.read_text() == "precious\n"
    assert code != 0 and "exists" in err
    code, _, err = run(capsys, "record", "--root", str(SNAP), "--out", str(out), "--force")
    assert code == 0, err
    assert victim.read_text() == "precious\n"  # --force replaces the link itself
    assert not (out / planted).is_symlink()


def test_record_does_not_overwrite_an_earlier_record(tmp_path, capsys):
    out = tmp_path / "rec"
    code, _, err = run(capsys, "record", "--root", str(SNAP), "--out", str(out), "--no-snapshot")
    assert code == 0, err
    first = (out / "kdumptool-record.json").read_bytes()
    code, _, err = run(capsys, "record", "--root", str(SNAP), "--out", str(out), "--no-snapshot")
    assert code != 0 and "exists" in err
    assert (out / "kdumptool-record.json").read_bytes() == first


def test_record_default_folder_is_not_taken_from_the_snapshot(tmp_path):
    from kdumptool.cli.record import FALLBACK_DIR, _default_out
    from kdumptool.sources.root import Root

    snap = snapshot_copy("kdump_legacy_on", tmp_path)
    escape = tmp_path / "escape"
    (escape / "127.0.0.1-2026-01-01-00:00:00").mkdir(parents=True)
    (escape / "127.0.0.1-2026-01-01-00:00:00" / "vmcore").write_bytes(b"x")
    (snap / "etc").mkdir(exist_ok=True)
    (snap / "etc/kdump.conf").write_text(f"path /../../../../../../../..{escape}\n")
    dest = _default_out(Root(snap))
    assert str(dest) == FALLBACK_DIR
