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
