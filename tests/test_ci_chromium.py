""".ci/chromium, the CI step that finds or installs the browser for the HTML report's test:
what it says on Debian, on Ubuntu (where chromium is a snap) and elsewhere, with a fake
/etc/os-release and a PATH of stubs (CI_CHROMIUM_DRY=1: nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Tuple

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "chromium"
BASH = shutil.which("bash")
GREP = shutil.which("grep")

pytestmark = pytest.mark.skipif(not (BASH and GREP), reason="needs bash and grep")


def _stub(bin_dir: Path, name: str, out: str, rc: int = 0) -> None:
    p = bin_dir / name
    p.write_text(f"#!{BASH}\necho '{out}'\nexit {rc}\n")
    p.chmod(0o755)


def _run(tmp: Path, os_release: str, stubs: Dict[str, Tuple[str, int]]) -> subprocess.CompletedProcess:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    os.symlink(str(GREP), bin_dir / "grep")
    for name, (out, rc) in stubs.items():
        _stub(bin_dir, name, out, rc)
    rel = tmp / "os-release"
    rel.write_text(os_release)
    env = {"PATH": str(bin_dir), "OS_RELEASE": str(rel), "CI_CHROMIUM_DRY": "1"}
    return subprocess.run([str(BASH), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_ubuntu_without_snapd_says_why_and_what_to_do(tmp_path: Path) -> None:
    wrapper = "Command '/usr/bin/chromium-browser' requires the chromium snap to be installed."
    p = _run(tmp_path, 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', {"chromium-browser": (wrapper, 1)})
    assert p.returncode == 1 and p.stdout == ""
    assert "chromium-browser does not answer --version" in p.stderr
    assert "its chromium package is a snap, and snapd is not running here" in p.stderr
    assert "KDUMPTOOL_CHROMIUM=" in p.stderr and "apt-get" not in p.stderr


def test_debian_installs_the_deb(tmp_path: Path) -> None:
    p = _run(tmp_path, "ID=debian\nVERSION_ID=12\n", {})
    assert p.returncode == 1
    assert "Debian (debian): apt-get install chromium" in p.stderr
    assert "would run: apt-get install -y -qq --no-install-recommends chromium" in p.stderr


def test_a_working_browser_is_used_as_it_is(tmp_path: Path) -> None:
    p = _run(tmp_path, "ID=ubuntu\n", {"chromium": ("Chromium 131.0.6778.85 built on Debian", 0)})
    assert p.returncode == 0 and p.stdout.strip() == str(tmp_path / "bin" / "chromium")
    assert "snap" not in p.stderr


def test_unknown_distribution_is_named(tmp_path: Path) -> None:
    p = _run(tmp_path, "ID=alpine\n", {})
    assert p.returncode == 1 and "no known way to install one on 'alpine'" in p.stderr
