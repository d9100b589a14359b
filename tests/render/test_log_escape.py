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
