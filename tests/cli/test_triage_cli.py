"""``kdumptool triage`` end to end: formats, exit codes, the development machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO

SNAP = FIXTURES / "snapshots"


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def kt(*args: str) -> Result:
    """``kdumptool triage ARGS`` in this process (main() as the entry point runs it)."""
    import contextlib
    import io

    from kdumptool.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["triage", *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


def kt_process(*args: str):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "kdumptool", "triage", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    "name,code,case",
    [("kdump_legacy_off", 4, "on-off"), ("kdump_legacy_on", 3, "copied"), ("kdump_sm_mismatch", 4, "sm-mismatch")],
)
def test_exit_codes_and_json(name, code, case):
    p = kt("--root", str(SNAP / name), "--format", "json")
    assert p.returncode == code, p.stderr
    j = json.loads(p.stdout)
    assert j["scenario"]["case"] == case and j["exit_code"] == code


def test_prometheus_format():
    p = kt("--root", str(SNAP / "kdump_sm_mismatch"), "-f", "prometheus")
    assert p.returncode == 4
    lines = p.stdout.splitlines()
    assert 'kdumptool_triage_verdict{scenario="sm-mismatch"} 2' in lines
    assert 'kdumptool_vtd_scalable_mode{kernel="first"} 1' in lines
    assert 'kdumptool_vtd_scalable_mode{kernel="kdump"} 0' in lines
    assert any(x.startswith('kdumptool_triage_finding{id="dmar-fault",severity="error",device="00:02.0"}') for x in lines)


def test_rich_format_renders():
    p = kt("--root", str(SNAP / "kdump_legacy_on"), "-f", "rich")
    assert p.returncode == 3 and "Risky devices" in p.stdout and "bridge 00:05.0" in p.stdout


def test_bad_usage():
    assert kt("-f", "yaml").returncode == 2
    assert kt("--vmcore", "/nonexistent").returncode == 2
    assert kt("--offline").returncode == 2


def test_missing_root_is_one_line_error():
    p = kt("--root", "/nonexistent/snapshot")
    assert p.returncode == 1 and p.stderr.startswith("error: ") and len(p.stderr.splitlines()) == 1


def _host_has_vtd() -> bool:
    return Path("/sys/firmware/acpi/tables/DMAR").exists() or any(
        n.startswith("dmar") for n in (os.listdir("/sys/class/iommu") if os.path.isdir("/sys/class/iommu") else [])
    )


@pytest.mark.skipif(_host_has_vtd(), reason="this host has VT-d: the no-VT-d check is for the dev machines")
def test_live_host_without_vtd_has_nothing_to_triage():
    p = kt_process("--format", "text")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("VERDICT: NOTHING TO TRIAGE (exit 0)")
    assert "nothing to triage for VT-d" in p.stdout
