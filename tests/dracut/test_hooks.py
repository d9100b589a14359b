"""The kdump hook scripts with a stand-in ``kdumptool`` on PATH that logs its arguments:
they call the right commands and never fail the dump."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import REPO

MOD = REPO / "dracut/99kdumptool"


def _env(tmp_path, fail=False):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls.log"
    (bin_ / "kdumptool").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$*" in *--publish*) echo /crash/dir/kdumptool ;; esac\n'
        f"exit {1 if fail else 0}\n"
    )
    (bin_ / "kdumptool").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}:{os.environ['PATH']}")
    return env, log


def _run(script, env, *args):
    # the scripts write below /run and to /dev/kmsg: give them a private /run via sed
    text = script.read_text().replace("/run/kdumptool", str(env["_RUN"])).replace("/dev/kmsg", "/dev/null")
    text = text.replace("@KDUMPTOOL@", "kdumptool")  # the stand-in on PATH
    r = subprocess.run(["sh", "-c", text, script.name, *args], env=env, capture_output=True, text=True, timeout=60)
    return r


def test_pre_and_post_call_record_and_quiesce(tmp_path):
    env, log = _env(tmp_path)
    env["_RUN"] = str(tmp_path / "run")
    assert _run(MOD / "kdumptool-pre.sh", env).returncode == 0
    assert _run(MOD / "kdumptool-post.sh", env, "0").returncode == 0
    calls = log.read_text().splitlines()
    assert calls[0].startswith("record --if-enabled --out ")
    assert calls[1].startswith("record --publish ")
    assert calls[2].startswith("quiesce --apply --if-enabled --journal /crash/dir/kdumptool/kdumptool-quiesce.log")
    assert "--dump-finished" not in calls[2]  # kdump-utils still writes its log after post


def test_hooks_never_fail_the_dump(tmp_path):
    env, log = _env(tmp_path, fail=True)
    env["_RUN"] = str(tmp_path / "run")
    assert _run(MOD / "kdumptool-pre.sh", env).returncode == 0
    assert _run(MOD / "kdumptool-post.sh", env, "1").returncode == 0


def test_shutdown_hook_only_in_kdump_kernel(tmp_path):
    env, log = _env(tmp_path)
    env["_RUN"] = str(tmp_path / "run")
    text = (MOD / "kdumptool-shutdown.sh").read_text()
    # outside a kdump kernel (no /proc/vmcore on this host) it does nothing
    if not os.path.exists("/proc/vmcore"):
        r = subprocess.run(["sh", "-c", text.replace("@KDUMPTOOL@", str(tmp_path / "bin/kdumptool")), "x", "reboot"],
                           env=env, capture_output=True, text=True)
        assert r.returncode == 0 and not log.exists()
    fake = text.replace("/proc/vmcore", str(tmp_path)).replace("@KDUMPTOOL@", str(tmp_path / "bin/kdumptool"))
    fake = fake.replace("/run/kdumptool", str(tmp_path / "run")).replace("/dev/kmsg", "/dev/null")
    r = subprocess.run(["sh", "-c", fake, "x", "reboot"], env=env, capture_output=True, text=True)
    assert r.returncode == 0
    assert log.read_text().split()[:5] == ["quiesce", "--apply", "--if-enabled", "--dump-finished", "--journal"]
