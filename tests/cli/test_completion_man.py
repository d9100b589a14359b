"""Shell completion and the man page, generated from the CLI itself (tools/gen_cli_docs.py):
bash completes commands, subcommands, options and enum choices; the man page has a section
per command with its own --help text and renders with man(1) when it is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clidocs")
    subprocess.run([sys.executable, str(REPO / "tools/gen_cli_docs.py"), str(d)], check=True,
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True)
    return d


def _complete(out: Path, *words: str) -> str:
    script = (f'source {out / "kdumptool.bash"}; COMP_WORDS=({" ".join(repr(w) for w in words)}); '
              f'COMP_CWORD={len(words) - 1}; _kdumptool; echo "${{COMPREPLY[*]}}"')
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_bash_completion(out: Path) -> None:
    assert _complete(out, "kdumptool", "tri") == "triage"
    assert _complete(out, "kdumptool", "triage", "--format", "") == "auto text rich json prometheus html"
    assert _complete(out, "kdumptool", "dmar", "--fail-on", "w") == "warning"
    assert set(_complete(out, "kdumptool", "vmcore", "").split()) >= {"info", "log", "iommu", "exposure", "scan"}
    assert "--from-lspci" in _complete(out, "kdumptool", "pci", "--f").split()
    assert (out / "_kdumptool").read_text().startswith("#compdef kdumptool")
    fish = (out / "kdumptool.fish").read_text()
    assert "-a triage" in fish and "-l format -s f -x -a 'auto text rich json prometheus html'" in fish


def test_man_page(out: Path) -> None:
    page = (out / "kdumptool.1").read_text()
    for sec in ("TRIAGE", "PCI", "VMCORE INFO", "EXIT STATUS"):
        assert f"\n.SH {sec}\n" in page
    assert "--exit-zero" in page and "--from-lspci" in page
    if shutil.which("man") is None:
        return
    r = subprocess.run(["man", "-l", str(out / "kdumptool.1")], capture_output=True, text=True,
                       env={"MANPAGER": "cat", "PAGER": "cat", "PATH": "/usr/bin:/bin", "MANWIDTH": "100"})
    assert r.returncode == 0 and "kdumptool - triage Linux kdump" in r.stdout
