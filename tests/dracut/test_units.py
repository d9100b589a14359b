"""The systemd units, checked by systemd's own parser (systemd-analyze verify), and the
shell scripts by the shells' syntax check."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

UNITS = sorted((REPO / "systemd").glob("*.service"))
SCRIPTS = sorted((REPO / "dracut").rglob("*.sh")) + sorted((REPO / "systemd").glob("*.sh")) + sorted((REPO / "dracut/lab/kdump-utils-lab").iterdir()) + [
    REPO / "dracut/lab/debian-kdump-tools" / n for n in ("init", "lab-verify", "lab-reboot")
] + [
    REPO / "systemd/kdumptool.shutdown",
    REPO / "dracut/lab-scenarios/build-kdump-initrd",
    REPO / "dracut/lab-scenarios/build-kdump-utils-initrd",
    REPO / "dracut/lab-scenarios/build-debian-kdump-tools",
    REPO / "lab/ci-tier.sh",
]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_clean(unit, tmp_path):
    # verify checks that ExecStart= binaries exist: point them at a stand-in executable
    exe = tmp_path / "kdumptool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    libexec = tmp_path / "libexec"
    libexec.mkdir()
    for name in ("kdump-pre", "kdump-tools-publish"):
        (libexec / name).write_text("#!/bin/sh\n")
        (libexec / name).chmod(0o755)
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("@KDUMPTOOL@", str(exe)).replace("@LIBEXECDIR@", str(libexec))
                    .replace("@KDUMP_COREDIR@", "/var/crash"))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # no "Unknown key", no bad value


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a mistyped key is reported."""
    bad = tmp_path / "bad.service"
    bad.write_text((REPO / "systemd/kdumptool-quiesce.service").read_text().replace("ExecStop=", "ExecStp="))
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in r.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_syntax(script):
    shell = "bash" if "bash" in script.read_text().splitlines()[0] else "sh"
    r = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_shutdown_hook_is_the_dracut_one():
    assert (REPO / "systemd/kdumptool.shutdown").read_text() == (
        REPO / "dracut/99kdumptool/kdumptool-shutdown.sh"
    ).read_text()
