"""Packaging: what a plain install depends on and carries, the typer pin, and the unit
files install-integration writes (named after the kdumptool actually installed).
The built wheel itself is tested in a clean venv by .ci/wheel-smoke."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys

import pytest

from kdumptool.actions import integration
from tests.cliutil import run
from tests.conftest import REPO

PYPROJECT = (REPO / "pyproject.toml").read_text()


def _deps() -> list:
    block = re.search(r"^dependencies = \[(.*?)^\]", PYPROJECT, re.S | re.M)
    assert block
    return re.findall(r'^\s*"([^"]+)"', block.group(1), re.M)


def test_every_makedumpfile_decompressor_is_a_base_dependency():
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0) for d in _deps()}
    assert {"zstandard", "cramjam", "lzokay", "typer"} <= names
    assert re.search(r"^vmcore = \[\]", PYPROJECT, re.M)  # the old extra still installs


def test_typer_pin_holds_and_no_command_imports_pydantic():
    pin = next(d for d in _deps() if d.startswith("typer"))
    assert "<0.29" in pin
    major, minor = (int(x) for x in md.version("typer").split(".")[:2])
    if (major, minor) >= (0, 29):
        # An interpreter whose packages were not installed from pyproject.toml (a shared
        # development python); install.sh's venv and the wheel's venv resolve the pin.
        pytest.skip(f"typer {md.version('typer')} here was not installed from {pin!r}")
    table = REPO / "fixtures/dmar/tables/X01_Server_Supermicro_SMCI-MB_SkylakeSP-2S_from-dsl.dat"
    code = ("import sys; from kdumptool.cli.main import main\n"
            "try: main(['dmar', sys.argv[1], '-f', 'text'])\n"
            "except SystemExit: pass\n"
            "heavy = sorted(m for m in ('pydantic', 'rich', 'asyncio') if m in sys.modules)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code, str(table)], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert "DMAR table" in r.stdout and "HEAVY [" in r.stderr, r.stderr[-500:]
    assert "HEAVY []" in r.stderr, r.stderr[-300:]


def test_units_name_the_installed_kdumptool(capsys, tmp_path, monkeypatch):
    exe = tmp_path / "venv" / "bin" / "kdumptool"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(exe), "install-integration"])
    assert integration.resolve_kdumptool(None) == (str(exe), "the kdumptool running this")
    code, out, err = run(capsys, "install-integration", "--prefix", str(tmp_path / "root"))
    assert code == 0, err
    assert f"units run {exe}" in out
    sd = tmp_path / "root/usr/lib/systemd"
    rec = (sd / "system/kdumptool-boot-record.service").read_text()
    assert f"ExecStart={exe} record --if-enabled" in rec and "/usr/bin/kdumptool" not in rec
    q = (sd / "system/kdumptool-quiesce.service").read_text()
    assert f"ExecStop={exe} quiesce --apply" in q
    hook = (sd / "system-shutdown/kdumptool.shutdown").read_text()
    assert f'\nkdumptool="{exe}"\n' in hook and "\n$kdumptool quiesce --apply" in hook
    # Everything else in the files is the repository's text (a template: @KDUMPTOOL@).
    src = (REPO / "systemd/kdumptool-boot-record.service").read_text()
    assert rec == src.replace("@KDUMPTOOL@", str(exe))
