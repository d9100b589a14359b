"""A real dracut build with 99kdumptool (slow tier: ``pytest -m lab``; needs dracut, e.g.
``apt-get install dracut-core``). Builds the same image without and with the module
(``--no-kernel``: no kernel modules needed) from a private dracutbasedir, lists the image
with dracut's own lsinitrd, and bounds the bytes added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("dracut") is None, reason="dracut is not installed"),
]
MODULES = "bash systemd base"


def _basedir(tmp: Path) -> Path:
    sysd = Path("/usr/lib/dracut")
    base = tmp / "dracut"
    base.mkdir()
    for e in sysd.iterdir():
        if e.name != "modules.d":
            os.symlink(e, base / e.name)
    (base / "modules.d").mkdir()
    for m in (sysd / "modules.d").iterdir():
        os.symlink(m, base / "modules.d" / m.name)
    os.symlink(REPO / "dracut/99kdumptool", base / "modules.d/99kdumptool")
    return base


def _build(base: Path, modules: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, dracutbasedir=str(base), KDUMPTOOL_SRC=str(REPO),
               # a venv's own python (only it sees the venv's packages), else the real one
               KDUMPTOOL_PYTHON=sys.executable if sys.prefix != sys.base_prefix else os.path.realpath(sys.executable))
    return subprocess.run(
        ["dracut", "--force", "--no-kernel", "--no-hostonly", "--no-early-microcode", "--compress", "zstd",
         "-m", modules, str(out)], env=env, capture_output=True, text=True, timeout=900,
    )


def test_dracut_builds_with_module(tmp_path):
    base = _basedir(tmp_path)
    a, b = tmp_path / "without.img", tmp_path / "with.img"
    ra = _build(base, MODULES, a)
    assert ra.returncode == 0, ra.stderr[-3000:]
    rb = _build(base, MODULES + " kdumptool", b)
    assert rb.returncode == 0, rb.stderr[-3000:]
    listing = subprocess.run(["lsinitrd", str(b)], capture_output=True, text=True, errors="replace",
                             timeout=300).stdout
    for path in ("usr/bin/kdumptool", "etc/kdump/pre.d/50-kdumptool-record", "etc/kdump/post.d/50-kdumptool",
                 "usr/lib/systemd/system-shutdown/kdumptool.shutdown", "usr/libexec/kdumptool/kdump-pre",
                 "usr/lib/kdumptool/site/kdumptool/cli/initrd.pyc", "usr/lib/kdumptool/bin/python3"):
        assert path in listing, path
    assert "usr/lib/kdumptool/site/kdumptool/cli/initrd.py\n" not in listing
    for heavy in ("site/typer/", "site/pydantic", "site/rich/", "site/click/"):
        assert heavy not in listing, heavy
    added = b.stat().st_size - a.stat().st_size
    print(f"\nkdumptool adds {added:,} bytes (zstd) to a {a.stat().st_size:,}-byte image")
    assert 0 < added < 8 * 1024 * 1024
