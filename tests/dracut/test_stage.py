"""The initramfs Python runtime: staged by dracut/99kdumptool/kdumptool-stage.py into a
temporary tree (no dracut needed), then run from there with nothing but its own stdlib."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.actions.snapshots import snapshot
from tests.conftest import REPO

STAGE = REPO / "dracut/99kdumptool/kdumptool-stage.py"


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    initdir = tmp_path_factory.mktemp("initdir")
    r = subprocess.run(
        [sys.executable, str(STAGE), "--initdir", str(initdir), "--path", str(REPO), "--copy-elf"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return initdir / "usr/lib/kdumptool", r


def test_only_bytecode_and_no_cli_framework(staged):
    prefix, r = staged
    files = [p for p in prefix.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".py"]
    tops = {p.relative_to(prefix / "site").parts[0] for p in files if (prefix / "site") in p.parents}
    assert "kdumptool" in tops
    assert not tops & {"typer", "click", "pydantic", "pydantic_core", "rich", "pygments", "pytest", "hypothesis"}
    assert (prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "os.pyc").is_file()
    assert f"PYTHON {os.path.realpath(sys.executable)}" in r.stdout
    manifest = (prefix / "MANIFEST").read_text().split()
    assert "site/kdumptool/cli/initrd.pyc" in manifest


def test_staged_runtime_runs_quiesce_and_record(staged, tmp_path):
    prefix, _ = staged
    env = {
        "PYTHONHOME": str(prefix), "PYTHONPATH": str(prefix / "site"), "PYTHONUTF8": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin",
    }
    exe = os.path.realpath(sys.executable)
    cmd = [exe, "-S", "-m", "kdumptool.cli.initrd"]
    r = subprocess.run(cmd + ["quiesce", "--plan", "--root", str(snapshot("kdump_legacy_on"))],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ref = subprocess.run([sys.executable, "-m", "kdumptool.cli.initrd", "quiesce", "--plan", "--root",
                          str(snapshot("kdump_legacy_on"))], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert r.stdout == ref.stdout
    r = subprocess.run(cmd + ["record", "--root", str(snapshot("kdump_legacy_on")), "--out", str(tmp_path / "rec")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rec/kdumptool-record.json").is_file()
    assert (tmp_path / "rec/kdumptool-snapshot.tar.gz").is_file()
    # the staged interpreter sees only the staged stdlib
    r = subprocess.run([exe, "-S", "-c", "import sys; print(sys.path)"], env=env, capture_output=True, text=True)
    assert "site-packages" not in r.stdout and str(prefix) in r.stdout
