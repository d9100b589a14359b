"""The pager: used when writing to a terminal and the output is taller than it (like git,
systemctl), never when piped, never with --no-pager or KDUMPTOOL_NO_PAGER=1."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from kdumptool.cli.main import main
from kdumptool.render import output
from tests.conftest import FIXTURES

ROOT = str(FIXTURES / "snapshots" / "kdump_sm_mismatch")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: int, *args: str) -> tuple:
    paged = tmp_path / "paged"
    monkeypatch.setenv("KDUMPTOOL_PAGER", f"cat > {paged}")
    monkeypatch.delenv("KDUMPTOOL_NO_PAGER", raising=False)
    monkeypatch.setattr(output, "_terminal_rows", lambda stream: rows)
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    with pytest.raises(SystemExit):
        main(["triage", "--root", ROOT, "-f", "text", *args])
    return tty.getvalue(), paged.read_text() if paged.exists() else None


def test_pages_when_taller_than_the_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    direct, paged = _run(monkeypatch, tmp_path, 10)
    assert direct == "" and paged is not None and paged.startswith("VERDICT: AT RISK")


def test_no_pager_when_it_fits_or_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    direct, paged = _run(monkeypatch, tmp_path, 10_000)
    assert paged is None and direct.startswith("VERDICT: AT RISK")
    direct, paged = _run(monkeypatch, tmp_path, 10, "--no-pager")
    assert paged is None and direct.startswith("VERDICT: AT RISK")
    monkeypatch.setenv("KDUMPTOOL_NO_PAGER", "1")
    assert not output.should_page("x\n" * 100, FakeTTY())


def test_never_when_piped() -> None:
    assert not output.should_page("x\n" * 1000, io.StringIO())
