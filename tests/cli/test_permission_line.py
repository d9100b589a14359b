"""An OSError of permission (non-root output folder, unreadable input) is one `error:`
line naming the file, exit 1: not "internal error: PermissionError" (issue 14)."""

from __future__ import annotations

import pytest

from kdumptool.cli import main as cli_main


def test_permission_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class App:
        def __call__(self, *a: object, **kw: object) -> None:
            raise PermissionError(13, "Permission denied", "/root/x.tar.gz")

    monkeypatch.setattr(cli_main, "_build_app", lambda: App())
    monkeypatch.setattr(cli_main, "_bare_group", lambda app, args: False)
    with pytest.raises(SystemExit) as done:
        cli_main.main(["collect", "-o", "/root/x.tar.gz"])
    assert done.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: /root/x.tar.gz: permission denied (run as root?)"]


INPUT_PARAMS = {"file", "from_lspci", "vmcore", "saved", "faults", "root"}


def test_input_paths_are_not_checked_by_click() -> None:
    """click's own ``readable`` check turns an unreadable input (non-root on a snapshot
    under /root, on /proc/vmcore) into a usage box and exit 2; our sources say
    "permission denied" in one line, exit 1. So no input path parameter asks click to
    check readability."""
    import typer
    import typer.main

    if tuple(int(x) for x in typer.__version__.split(".")[:2]) >= (0, 29):
        pytest.skip("typer >= 0.29 has no click path types (pyproject pins typer < 0.29)")
    cmd = typer.main.get_command(cli_main._build_app())
    todo, seen = [cmd], 0
    while todo:
        c = todo.pop()
        todo.extend(getattr(c, "commands", {}).values())
        for param in getattr(c, "params", []):
            ptype = getattr(param, "type", None)
            if param.name in INPUT_PARAMS and hasattr(ptype, "readable"):
                seen += 1
                assert ptype.readable is False, f"{c.name} {param.name}"
    assert seen >= 15
