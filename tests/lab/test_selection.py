"""Default tier: which lab runs ``pytest -m lab`` (and so lab/ci-tier.sh) selects; an
``opt_in`` scenario (lockdown_kdump until it has passed here) only when named."""

from __future__ import annotations

from tests.lab.labrun import SCENARIOS, selected_runs


def test_opt_in_scenarios_only_when_named() -> None:
    opt_in = [n for n, s in SCENARIOS.items() if s.opt_in]
    default = selected_runs("6.1", [])
    assert "legacy_on" in default
    for name in opt_in:
        assert name not in default
        assert selected_runs("6.1", [name]) == [name]
        assert selected_runs("6.1=legacy_on+" + name, []) == ["legacy_on", name]
        assert selected_runs("5.10=" + name, []) == [f"{name}@5.10"]
