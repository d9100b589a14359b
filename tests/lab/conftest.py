"""The lab tier (``pytest -m lab``): the session fixture that runs each scenario once.

See tests/lab/labrun.py for how scenarios are run (``LAB_REUSE``, ``LAB_SCENARIOS``).
"""

from __future__ import annotations

from typing import Dict

import pytest

from tests.lab.labrun import NAMES, Run, run_scenario

_runs: Dict[str, Run] = {}


@pytest.fixture(scope="session", params=NAMES)
def run(request: pytest.FixtureRequest) -> Run:
    name = request.param
    if name not in _runs:
        _runs[name] = run_scenario(name)
    r = _runs[name]
    assert not r.result["timed_out"], f"{name}: QEMU timed out after {r.result['wall_s']}s (see {r.dir}/serial.log)"
    return r
