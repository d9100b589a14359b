"""Issue 14, terminal escapes: ESC, BEL and other control bytes in foreign data (log lines,
file names, names read from a snapshot) are shown escaped in text and rich output and in
error lines, never written raw."""

from __future__ import annotations

import os

import pytest

from tests.cliutil import run
from tests.hostile.util import snapshot_copy

EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _clean(text):
    return not any(c in text for c in RAW)


@pytest.mark.parametrize("fmt", ["text", "rich"])
def test_log_lines_with_escapes(tmp_path, capsys, fmt):
    log = tmp_path / "dmesg.txt"
    log.write_text(
        "[    0.000000] Linux version 6.8.0 (x) #1 SMP\n"
        f"[    1.000000] DMAR: [DMA Read NO_PASID] Request device [03:01.0] fault addr 0x1000 [fault reason 0x06] {EVIL}\n"
        f"[    5.000000] Kernel panic - not syncing: sysrq {EVIL} triggered\n"
    )
    code, out, err = run(capsys, "log", str(log), "-f", fmt, "--no-system")
    assert "triggered" in out  # the panic text is shown...
    assert _clean(out) and _clean(err), repr(out)  # ...escaped
    assert "\\x1b" in out


def test_file_name_with_escapes_in_error_line(tmp_path, capsys):
    code, out, err = run(capsys, "log", str(tmp_path / f"missing{EVIL}.txt"))
    assert code != 0 and _clean(err) and "\\x1b" in err


@pytest.mark.parametrize("fmt", ["text", "rich"])
def test_driver_name_from_snapshot_with_escapes(tmp_path, capsys, fmt):
    snap = snapshot_copy("kdump_legacy_on", tmp_path)
    dev = (snap / "sys/bus/pci/devices/0000:03:01.0").resolve()
    drv_dir = snap / "sys/bus/pci/drivers" / f"e1000{EVIL}"
    drv_dir.mkdir(parents=True)
    if os.path.lexists(dev / "driver"):
        (dev / "driver").unlink()
    (dev / "driver").symlink_to(os.path.relpath(drv_dir, dev))
    code, out, err = run(capsys, "pci", "--root", str(snap), "-f", fmt)
    assert "e1000" in out
    assert _clean(out) and _clean(err), repr(out[:2000])


def test_escape_control_helper():
    from kdumptool.render.escape import escape_control

    assert escape_control("a\x1b[1mb\x07\tc\nd\x7f\x9b\u202e") == "a\\x1b[1mb\\x07\tc\nd\\x7f\\x9b\\u202e"
    assert escape_control("x\ny", keep_newlines=False) == "x\\x0ay"
    assert escape_control("Grüße → ok") == "Grüße → ok"
