"""The lab tier (``pytest -m lab``): the session fixture that runs each scenario once.

See tests/lab/labrun.py for how scenarios are run (``LAB_REUSE``, ``LAB_SCENARIOS``).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import pytest

from tests.lab.expect import KNOWN_ISSUES
from tests.lab.labrun import DUMP_CASES, NAMES, Run, run_scenario

_runs: Dict[str, Run] = {}


def get_run(name: str) -> Run:
    if name not in _runs:
        _runs[name] = run_scenario(name)
    r = _runs[name]
    assert not r.result["timed_out"], f"{name}: QEMU timed out after {r.result['wall_s']}s (see {r.dir}/serial.log)"
    return r


@pytest.fixture(scope="session", params=NAMES)
def run(request: pytest.FixtureRequest) -> Run:
    return get_run(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``dump`` tests run once per (scenario, dump format) the scenario writes."""
    if "dump" in metafunc.fixturenames:
        metafunc.parametrize("dump", DUMP_CASES, ids=[f"{s}-{f}" for s, f in DUMP_CASES], indirect=True)


@pytest.fixture
def dump(request: pytest.FixtureRequest) -> Tuple[Run, str, str]:
    """(run, format, path) of one dump; skips a format makedumpfile was built without."""
    name, fmt = request.param
    r = get_run(name)
    for d in r.dumps():
        if d["format"] == fmt:
            if "skipped:" in d["line"]:
                pytest.skip(f"{name}: {d['line']}")
            assert d.get("rc") == "0", f"{name}: dump {d['line']}"
            return r, fmt, str(r.path("kdump", d["file"]))
    raise AssertionError(f"{name}: the kdump kernel wrote no {fmt} dump: {r.text('kdump', 'dumps.txt')}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:  # type: ignore[type-arg]
    """A failure whose message matches an entry of KNOWN_ISSUES (a kdumptool bug the lab
    found, reported to its stream) is reported as xfail with that entry's text; any other
    failure, or the same test once the bug is fixed, counts as usual."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and call.excinfo is not None:
        msg = str(call.excinfo.value)
        for needle, reason in KNOWN_ISSUES:
            if needle in msg:
                rep.outcome = "skipped"
                rep.wasxfail = f"known kdumptool issue: {reason}"
                break
