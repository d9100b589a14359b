"""Helpers shared by the CLI tests: run ``kdumptool`` in-process, compare golden files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import pytest

from kdumptool.cli.main import main

#: ``KDUMPTOOL_REGEN_GOLDEN=1`` rewrites the golden files (then read the diff).
REGEN = os.environ.get("KDUMPTOOL_REGEN_GOLDEN") == "1"


def run(capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, str, str]:
    """``kdumptool ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def check_golden(directory: Path, name: str, text: str) -> None:
    """``text`` must equal ``directory/name`` (rewritten first when REGEN)."""
    path = directory / name
    if REGEN:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"golden {name} differs (KDUMPTOOL_REGEN_GOLDEN=1 to update)"
