"""The rich triage fits one screen for a typical triage (the lab's sm_mismatch kdump
snapshot: 2 errors, 5 warnings, 4 risky devices) and loses nothing that matters: every
finding id, every risky device with its reasons, the errors' remedies whole, a remedy line
per device for a group whose remedies differ."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kdumptool.analysis.triage import triage
from kdumptool.render.triage import render_triage_rich
from kdumptool.sources.root import open_root
from kdumptool.sources.triage import open_triage_input
from tests.conftest import FIXTURES


def _rows(width: int, verbose: bool = False) -> list:
    with open_root(FIXTURES / "snapshots" / "kdump_sm_mismatch") as r, open_triage_input(r, None, None) as inp:
        report = triage(inp)
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    for part in render_triage_rich(report, verbose=verbose):
        console.print(part)
    return report, buf.getvalue().splitlines()


@pytest.mark.parametrize("width,most", [(80, 50), (100, 48), (120, 44)])
def test_one_screen(width: int, most: int) -> None:
    report, rows = _rows(width)
    assert len(rows) <= most, len(rows)
    text = "\n".join(rows)
    for d in report.devices:
        assert f"{d.bdf[5:]} {d.driver or ','.join(d.modules)}: {d.reasons[0]}" in text
    flat = " ".join(" ".join(r.strip(" │") for r in rows).split())
    for f in report.findings:
        assert f.id in flat
        if f.severity == "error" and f.remedy:
            assert " ".join(f.remedy.split()) in flat
    # driverless-bus-master: one group, one remedy line per device (module names differ)
    for f in report.findings:
        if f.id == "driverless-bus-master":
            assert f"→ {f.devices[0][5:]}: put " in text


def test_verbose_keeps_everything() -> None:
    report, rows = _rows(100, verbose=True)
    flat = " ".join(" ".join(r.strip(" │") for r in rows).split())
    for f in report.findings:
        assert " ".join(f.title.split()) in flat
        if f.remedy:
            assert " ".join(f.remedy.split()) in flat
    assert len(rows) > 60
