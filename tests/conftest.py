"""Shared test helpers: where fixtures and the optional ../shared corpus live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def shared_dir() -> Optional[Path]:
    """``../shared`` beside the checkout (or $KDUMPTOOL_SHARED), when present."""
    env = os.environ.get("KDUMPTOOL_SHARED")
    cand = Path(env) if env else REPO.parent / "shared"
    return cand if cand.is_dir() else None


SHARED = shared_dir()


def need_tool(name: str, why: str) -> str:
    """The path of oracle tool ``name``. Missing: a skip on a developer's machine, a FAILURE
    under CI (KDUMPTOOL_CI=1, set by .ci/run, whose set-up installs it), so a check that CI
    counts on can never be skipped there unnoticed."""
    import shutil

    path = shutil.which(name)
    if path is None:
        msg = f"{name} ({why}) is not installed"
        if os.environ.get("KDUMPTOOL_CI") == "1":
            pytest.fail(f"{msg}, but CI's set-up installs it (install.sh)")
        pytest.skip(msg)
    return path


@pytest.fixture
def shared() -> Path:
    if SHARED is None:
        pytest.skip("../shared is not present (corpus sweep only)")
    return SHARED


# Device names come from a pinned, trimmed pci.ids (fixtures/pciids/PROVENANCE.md), so
# golden files do not change with the pci.ids version of the machine running the tests.
PCI_IDS_FIXTURE = FIXTURES / "pciids" / "pci.ids"
os.environ["KDUMPTOOL_PCI_IDS"] = str(PCI_IDS_FIXTURE)
