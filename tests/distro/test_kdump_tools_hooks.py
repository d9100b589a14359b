"""The kdump-tools hook scripts on the host, with their fixed paths pointed at temporary
folders: kdump-tools-publish copies the record into the crash folder `kdump-config
savecore` created after the record started (never into an older crash's folder), once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO

PUBLISH = REPO / "systemd/kdump-tools-publish.sh"


def _publish(tmp: Path, coredir: Path) -> subprocess.CompletedProcess:
    text = (PUBLISH.read_text().replace("/proc/vmcore", str(tmp / "vmcore"))
            .replace("/run/kdumptool/record", str(tmp / "rec")).replace("/dev/kmsg", "/dev/null"))
    return subprocess.run(["sh", "-c", text, "publish", str(coredir)], capture_output=True, text=True, timeout=60)


def _setup(tmp: Path) -> Path:
    (tmp / "vmcore").write_text("")
    core = tmp / "crash"
    old = core / "202612050101"  # an earlier crash, before this record
    old.mkdir(parents=True)
    (old / "dump.202612050101").write_text("old")
    past = time.time() - 3600
    os.utime(old, (past, past))
    rec = tmp / "rec"
    rec.mkdir()
    (rec / ".started").write_text("")
    os.utime(rec / ".started", (past + 1800, past + 1800))
    for name in ("kdumptool-record.json", "kdumptool-record.txt", "kdumptool-snapshot.tar.gz", "record.log"):
        (rec / name).write_text(name)
    return core


def test_publish_into_the_new_crash_folder_once(tmp_path):
    core = _setup(tmp_path)
    r = _publish(tmp_path, core)
    assert r.returncode == 0 and r.stdout == ""  # kdump-config has not created its folder yet
    other = core / "kdump"  # another folder created meanwhile: not kdump-config's
    other.mkdir()
    r = _publish(tmp_path, core)
    assert r.returncode == 0 and r.stdout == "" and not (other / "kdumptool").exists()
    new = core / "202612060412"
    new.mkdir()
    (new / "dmesg.202612060412").write_text("dmesg")
    r = _publish(tmp_path, core)
    assert r.returncode == 0 and r.stdout.strip() == f"kdumptool: record published to {new}/kdumptool"
    assert sorted(p.name for p in (new / "kdumptool").iterdir()) == [
        "kdumptool-record.json", "kdumptool-record.txt", "kdumptool-snapshot.tar.gz", "record.log"]
    assert (new / "kdumptool/kdumptool-record.json").read_text() == "kdumptool-record.json"
    assert not (core / "202612050101/kdumptool").exists()
    # the path unit fires again on every change of the folder: nothing more happens
    (new / "dump-incomplete").write_text("x")
    r = _publish(tmp_path, core)
    assert r.returncode == 0 and r.stdout == ""


def test_publish_does_nothing_without_a_record_or_outside_kdump(tmp_path):
    core = _setup(tmp_path)
    (core / "202612060412").mkdir()
    (tmp_path / "rec/kdumptool-record.json").unlink()  # record disabled or failed
    assert _publish(tmp_path, core).returncode == 0
    assert not (core / "202612060412/kdumptool").exists()
    (tmp_path / "rec/kdumptool-record.json").write_text("{}")
    (tmp_path / "vmcore").unlink()  # not a kdump kernel
    assert _publish(tmp_path, core).returncode == 0
    assert not (core / "202612060412/kdumptool").exists()
