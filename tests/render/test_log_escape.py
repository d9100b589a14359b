"""The one kernel-log escaper (render/output.escape_log_text) and makedumpfile's record
layout, and `vmcore log` through them on a dump whose ring holds control bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kdumptool.render.output import dump_dmesg_lines, escape_log_text


def test_escapes_like_makedumpfile():
    # 6.12's module loader prints the ELF magic it wanted: makedumpfile and dmesg show \x7f.
    assert escape_log_text("Invalid ELF header magic: != \x7fELF") == \
        "Invalid ELF header magic: != \\x7fELF"
    # An escape sequence from a crashed kernel never reaches the terminal raw.
    assert escape_log_text("a\x1b[2Jb\x00") == "a\\x1b[2Jb\\x00"
    # isspace() bytes stay; non-ASCII is escaped byte by byte (the C locale).
    assert escape_log_text("\tx\r\v\f é") == "\tx\r\v\f \\xc3\\xa9"
    # printk decodes invalid UTF-8 with backslashreplace: the same \xNN text.
    assert escape_log_text(b"\xff".decode("utf-8", "backslashreplace")) == "\\xff"


def test_record_layout():
    assert dump_dmesg_lines(2_829_543_210, "If you want:\n  \"x\"\non the line") == [
        "[    2.829543] If you want:",
        "                 \"x\"",
        "               on the line",
    ]
    assert dump_dmesg_lines(123_456_000_000_000, "") == ["[123456.000000] "]


@given(st.text())
def test_escaped_text_is_printable(text):
    out = escape_log_text(text)
    assert all(0x20 <= ord(c) < 0x7F or c in "\t\n\v\f\r" for c in out)
    assert out.count("\n") == text.count("\n")


def test_printk_log_era_records_render_like_makedumpfile():
    """The 3.5-5.9 printk_log buffer (no lab kernel has it: a buffer built in code, see
    tests/formats/test_printk.py): its records go through the same renderer, so a 4.18 or
    5.4 dump's `vmcore log` escapes and indents as makedumpfile's dump_log_entry() does."""
    from tests.formats.test_printk import _printk_log, _rec

    recs = _rec(b"module: Invalid ELF header magic: != \x7fELF", 1_500_000, 3) + \
        _rec(b"clocksource: first\n  second \xff", 2_000_000_000, 4)
    log = _printk_log(0, len(recs), recs + bytes(64))
    assert log.kind == "printk_log" and log.warnings == ()
    lines = [ln for r in log.records for ln in dump_dmesg_lines(r.ts_nsec, r.text)]
    assert lines == [
        "[    0.001500] module: Invalid ELF header magic: != \\x7fELF",
        "[    2.000000] clocksource: first",
        "                 second \\xff",
    ]
