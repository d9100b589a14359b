"""The kdump-tools hook scripts on the host, with their fixed paths pointed at temporary
folders: kdump-tools-publish copies the record into the crash folder `kdump-config
savecore` created after the record started (never into an older crash's folder), once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import FIXTURES, REPO

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


# --- after the dump: Debian's own init script (fixtures/distro/kdump-tools-1.8.1) with
# kdumptool's LSB hook sourced where /lib/lsb/init-functions sources it -----------------

INIT = FIXTURES / "distro/kdump-tools-1.8.1/etc/init.d/kdump-tools"
HOOK = REPO / "systemd/kdumptool-lsb-hook.sh"
AFTER = REPO / "systemd/kdump-tools-after-dump.sh"


def _stand_in(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _init_script(tmp: Path, savecore_rc: int, fail_cmd: str = "") -> Path:
    """Debian's init script, its fixed paths pointed at tmp: init-functions -> the hook as
    install-integration writes it, kdump-config/reboot/date -> stand-ins that log."""
    log = tmp / "log"
    lib = tmp / "libexec"
    lib.mkdir(exist_ok=True)
    (tmp / "bin").mkdir(exist_ok=True)
    (tmp / "vmcore").write_text("ELF")
    _stand_in(lib / "kdump-tools-after-dump", f'echo "after-dump $*" >> {log}\n')
    _stand_in(tmp / "kdump-config", f'echo "kdump-config $*" >> {log}\nexit {savecore_rc}\n')
    _stand_in(tmp / "bin/reboot", f'echo "reboot $*" >> {log}\n')
    _stand_in(tmp / "bin/date", f'echo "date $*" >> {log}\n')
    hook = (HOOK.read_text().replace("@LIBEXECDIR@", str(lib)).replace("@KDUMP_COREDIR@", "/var/crash")
            .replace("/proc/vmcore", str(tmp / "vmcore")))
    (tmp / "50-kdumptool").write_text(hook)
    (tmp / "defaults").write_text(f'USE_KDUMP=1\nKDUMP_COREDIR="{tmp}/crash"\nKDUMP_FAIL_CMD="{fail_cmd}"\n')
    text = INIT.read_text()
    for old, new in (("PATH=/bin:/usr/bin:/sbin:/usr/sbin", f"PATH={tmp}/bin:/bin:/usr/bin:/sbin:/usr/sbin"),
                     (". /lib/lsb/init-functions", f". {tmp}/50-kdumptool"), (". /lib/init/vars.sh", ":"),
                     ("VMCORE_FILE=/proc/vmcore", f"VMCORE_FILE={tmp}/vmcore"),
                     ("KDUMP_SCRIPT=/usr/sbin/kdump-config", f"KDUMP_SCRIPT={tmp}/kdump-config"),
                     ("KDUMP_DEFAULTS=/etc/default/kdump-tools", f"KDUMP_DEFAULTS={tmp}/defaults")):
        assert old in text, old  # the fixture is Debian's script as shipped
        text = text.replace(old, new)
    script = tmp / "kdump-tools"
    script.write_text(text)
    script.chmod(0o755)
    return script


def _log(tmp: Path) -> list:
    return (tmp / "log").read_text().splitlines() if (tmp / "log").exists() else []


def test_lsb_hook_runs_after_savecore_and_before_reboot(tmp_path):
    script = _init_script(tmp_path, 0)
    r = subprocess.run(["sh", str(script), "start"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # kdump-tools' own order, with kdumptool's step between its last two commands; the
    # coredir comes from /etc/default/kdump-tools, which the init script sourced
    assert _log(tmp_path) == ["kdump-config savecore", "date -R", f"after-dump {tmp_path}/crash", "reboot -f"]


def test_lsb_hook_on_a_failed_save_with_kdump_fail_cmd(tmp_path):
    script = _init_script(tmp_path, 1, fail_cmd="reboot -f")
    subprocess.run(["sh", str(script), "start"], capture_output=True, text=True, timeout=60)
    assert _log(tmp_path) == ["kdump-config savecore", f"after-dump {tmp_path}/crash", "reboot -f"]


def test_lsb_hook_inert_elsewhere(tmp_path):
    script = _init_script(tmp_path, 0)
    (tmp_path / "vmcore").write_text("")  # the normal boot: kdump-config load, no reboot
    subprocess.run(["sh", str(script), "start"], capture_output=True, text=True, timeout=60)
    assert _log(tmp_path) == ["kdump-config load"]
    (tmp_path / "vmcore").write_text("ELF")
    for name, arg in (("kdump-tools", "stop"), ("kdump-tools", "savecore"), ("ssh", "start")):
        # another init script, or kdump-config sourcing init-functions: no reboot function
        r = subprocess.run(["sh", "-c", f'NAME={name}; . "$0"; type reboot', str(tmp_path / "50-kdumptool"), arg],
                           capture_output=True, text=True, timeout=60)
        assert "function" not in r.stdout, (name, arg, r.stdout)


def _after_dump(tmp: Path, coredir: Path) -> subprocess.CompletedProcess:
    """kdump-tools-after-dump as installed, /run/kdumptool -> tmp/run (the record of
    _setup moved to tmp/run/record), a stand-in kdumptool that logs its arguments."""
    lib = tmp / "libexec"
    lib.mkdir(exist_ok=True)
    run = tmp / "run"
    if not run.exists():
        run.mkdir()
        (tmp / "rec").rename(run / "record")
    sub = {"/proc/vmcore": str(tmp / "vmcore"), "/run/kdumptool": str(run), "/dev/kmsg": "/dev/null",
           "@KDUMPTOOL@": str(tmp / "kdumptool"), "@LIBEXECDIR@": str(lib), "@KDUMP_COREDIR@": "/var/crash"}

    def inst(src: Path) -> str:
        text = src.read_text()
        for k, v in sub.items():
            text = text.replace(k, v)
        return text

    _stand_in(lib / "kdump-tools-publish", inst(PUBLISH).split("\n", 1)[1])
    _stand_in(tmp / "kdumptool", f'echo "kdumptool $*" >> {tmp}/log\necho "quiesce apply: 5 to clear"\n')
    return subprocess.run(["sh", "-c", inst(AFTER), "after-dump", str(coredir)], capture_output=True, text=True,
                          timeout=60)


def test_after_dump_publishes_then_quiesces_into_the_crash_folder(tmp_path):
    core = _setup(tmp_path)
    new = core / "202612060412"
    new.mkdir()
    (new / "dump.202612060412").write_text("dump")
    assert _after_dump(tmp_path, core).returncode == 0
    journal = new / "kdumptool/kdumptool-quiesce.log"
    assert _log(tmp_path) == [f"kdumptool quiesce --apply --if-enabled --journal {journal} --format text"]
    # the record (the path unit had not published it yet) and the quiesce's output beside the dump
    assert (new / "kdumptool/kdumptool-record.json").read_text() == "kdumptool-record.json"
    assert (new / "kdumptool/quiesce-after-dump.txt").read_text() == "quiesce apply: 5 to clear\n"
    assert not (core / "202612050101/kdumptool").exists()


def test_after_dump_without_a_record_or_outside_kdump(tmp_path):
    core = _setup(tmp_path)
    (core / "202612060412").mkdir()
    (tmp_path / "rec/.started").unlink()  # the record unit did not run: journal in /run
    assert _after_dump(tmp_path, core).returncode == 0
    assert _log(tmp_path) == [f"kdumptool quiesce --apply --if-enabled --journal {tmp_path}/run/kdumptool-quiesce.log"
                              " --format text"]
    assert not (core / "202612060412/kdumptool").exists()
    (tmp_path / "log").unlink()
    (tmp_path / "vmcore").unlink()  # not a kdump kernel: nothing at all
    assert _after_dump(tmp_path, core).returncode == 0 and _log(tmp_path) == []
