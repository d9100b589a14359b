"""Default tier: which lab runs ``pytest -m lab`` (and so lab/ci-tier.sh) selects; an
``opt_in`` scenario only when named (LAB_SCENARIOS or a LAB_KERNELS =list)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.lab import labrun


def test_every_builtin_on_the_default_kernel() -> None:
    default = labrun.selected_runs("6.1", [])
    assert "legacy_on" in default and "lockdown_kdump" in default


def test_opt_in_scenarios_only_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = labrun.SCENARIOS["lockdown_kdump"]
    monkeypatch.setitem(labrun.SCENARIOS, "lockdown_kdump", dataclasses.replace(sc, opt_in=True))
    assert "lockdown_kdump" not in labrun.selected_runs("6.1", [])
    assert labrun.selected_runs("6.1", ["lockdown_kdump"]) == ["lockdown_kdump"]
    assert labrun.selected_runs("6.1=legacy_on+lockdown_kdump", []) == ["legacy_on", "lockdown_kdump"]
    assert labrun.selected_runs("5.10=lockdown_kdump", []) == ["lockdown_kdump@5.10"]
