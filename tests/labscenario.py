"""How the end-to-end lab tests (tests/distro/test_lab_*.py, tests/dracut/test_lab_e2e.py)
run a kdump scenario of dracut/lab-scenarios/: once per session, skipped when
``LAB_SCENARIOS`` leaves it out or the QEMU lab (lab/, tests/lab/) is not in this tree,
failed when QEMU timed out or the capture did not reach its end."""

from __future__ import annotations

import os
from typing import Any, Dict

import pytest

_runs: Dict[str, Any] = {}


def run_kdump_scenario(name: str, missed_end: str) -> Any:
    """The scenario's ``tests.lab.labrun.Run``; ``missed_end`` words the failure when its
    ``kdump_ok`` is false (the scenario's own end: kdump.sh's kdump_post, kdump-tools' reboot)."""
    labrun = pytest.importorskip("tests.lab.labrun", reason="the QEMU lab (lab/, tests/lab/) is not in this tree")
    only = [w for w in os.environ.get("LAB_SCENARIOS", "").split(",") if w]
    if only and name not in only:
        pytest.skip(f"{name} not in LAB_SCENARIOS")
    if name not in _runs:
        _runs[name] = labrun.run_scenario(name)
    r = _runs[name]
    assert not r.result["timed_out"], f"{name}: QEMU timed out (see {r.dir}/serial.log)"
    assert r.result["kdump_ok"], f"{name}: {missed_end} (see {r.dir}/serial.log)"
    return r


def serial(r: Any) -> str:
    """The guest's console log."""
    return (r.dir / "serial.log").read_text(errors="replace")  # type: ignore[no-any-return]
