"""Conventions people bring from lspci/git: names (``-n`` for numbers), ``--debug`` and
``--exit-zero`` anywhere on the line, help that lists choices and never says ``<bool>``."""

from __future__ import annotations

import json
import re

import pytest

from kdumptool.cli.main import _build_app
from tests.cliutil import run
from tests.conftest import FIXTURES

SNAP = FIXTURES / "snapshots"


def test_debug_anywhere(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "pci", "--root", "/nonexistent-root")
    assert code == 1 and err.startswith("error: /nonexistent-root")
    for argv in (["--debug", "pci", "--root", "/nonexistent-root"],
                 ["pci", "--root", "/nonexistent-root", "--debug"],
                 ["pci", "--debug", "--root", "/nonexistent-root"]):
        with pytest.raises(Exception) as ei:  # --debug: the traceback, not the one line
            run(capsys, *argv)
        assert "nonexistent-root" in str(ei.value)


def test_exit_zero(capsys: pytest.CaptureFixture) -> None:
    root = str(SNAP / "kdump_sm_mismatch")
    code, out, _ = run(capsys, "triage", "--root", root, "-f", "prometheus")
    assert code == 4 and "kdumptool_triage_verdict" in out
    code2, out2, _ = run(capsys, "triage", "--root", root, "-f", "prometheus", "--exit-zero")
    assert code2 == 0 and out2 == out
    code3, _, _ = run(capsys, "--exit-zero", "triage", "--root", root, "-f", "json")
    assert code3 == 0
    # errors keep their code
    code4, _, err = run(capsys, "triage", "--root", "/nonexistent-root", "--exit-zero")
    assert code4 == 1 and "error:" in err


def _all_help(capsys: pytest.CaptureFixture) -> dict:
    import typer

    app = _build_app()
    cmd = typer.main.get_command(app)
    names = [[]]
    for name, sub in cmd.commands.items():  # type: ignore[attr-defined]
        if hasattr(sub, "commands"):
            names += [[name, s] for s in sub.commands]
        else:
            names.append([name])
    out = {}
    for n in names:
        code, text, _ = run(capsys, *n, "--help")
        assert code == 0, n
        out[" ".join(n)] = text
    return out


def test_help_lists_choices_and_no_bool(capsys: pytest.CaptureFixture) -> None:
    helps = _all_help(capsys)
    assert len(helps) > 12
    for name, text in helps.items():
        assert "<bool>" not in text, name
        if "--format" in text:
            assert re.search(r"--format [<\[]auto\|text\|rich\|json[|a-z]*[>\]]", text), name
    # typer >= 0.24 writes <a|b>, older typer (Python 3.9) [a|b]
    assert re.search(r"[<\[]auto\|text\|rich\|json\|prometheus\|html[>\]]", helps["triage"])
    assert re.search(r"[<\[]error\|warning\|info[>\]]", helps["dmar"])
    assert re.search(r"[<\[]fault\|warning[>\]]", helps["log"])
    assert "--exit-zero" in helps[""]


def test_numeric_everywhere(capsys: pytest.CaptureFixture) -> None:
    root = str(SNAP / "kdump_legacy_on")
    _, named, _ = run(capsys, "triage", "--root", root, "-f", "text")
    _, numeric, _ = run(capsys, "triage", "--root", root, "-f", "text", "-n")
    assert "Intel Corporation 82574L Gigabit Network Connection [8086:10d3]" in named
    assert "0200: 8086:10d3" in numeric and "Intel Corporation" not in numeric.split("RISKY")[1]
    _, js, _ = run(capsys, "triage", "--root", root, "-f", "json")
    devs = {d["bdf"]: d for d in json.loads(js)["devices"]}
    assert devs["0000:00:02.0"]["device_name"] == "82574L Gigabit Network Connection"
    assert devs["0000:00:02.0"]["class_name"] == "Ethernet controller"
    _, plan, _ = run(capsys, "quiesce", "--plan", "--root", root, "-f", "text")
    assert "(Ethernet controller: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e])" in plan
    _, plan_n, _ = run(capsys, "quiesce", "--plan", "--root", root, "-f", "text", "-n")
    assert "Intel" not in plan_n
    _, pj, _ = run(capsys, "pci", "--root", root, "-f", "json", "-n")
    d0 = json.loads(pj)["devices"][0]
    assert d0["vendor_name"] is None and d0["class_name"] is None and d0["subsystem_name"] is None


def test_no_pci_ids_is_said(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("KDUMPTOOL_PCI_IDS", str(tmp_path / "none"))
    _, out, _ = run(capsys, "pci", "--root", str(SNAP / "kdump_legacy_on"), "-f", "text")
    assert out.startswith("Note: no pci.ids found")
    assert "00:02.0 Network controller [0200]: [8086:10d3]" in out
