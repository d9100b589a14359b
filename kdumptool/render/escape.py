"""Foreign text on a terminal: control characters become visible escapes.

Everything kdumptool prints can carry bytes it did not choose: a crashed kernel's printk
text, log lines, file and device names from a snapshot, strings from a DMAR table. An
ESC or BEL among them would reach the terminal raw (an escape sequence can retitle the
window, hide text, or answer back into the shell). :func:`escape_control` turns every
control character (C0 but tab and newline, DEL, C1) and the bidirectional-override
characters into ``\\xNN``/``\\uNNNN`` escapes; :func:`escaped_renderable` does the same
inside a rich renderable while keeping rich's own styling. ``emit`` applies both to every
text and rich rendering, so a renderer cannot forget. (``escape_log_text`` in
render/output.py is the dmesg-exact escaping of a kernel log; it escapes a superset.)
"""

from __future__ import annotations

# No `re` or `typing` import: this module is loaded by every command (render/output.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

#: C0 controls except tab and newline, DEL, C1 controls, and the bidi embedding/override/
#: isolate characters (a "Trojan Source" reordering of what is shown).
_CODES = [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]


def _esc(c: int) -> str:
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


_TABLE = {c: _esc(c) for c in _CODES}
_TABLE_NL = {**_TABLE, 0x0A: _esc(0x0A)}


def escape_control(text: str, keep_newlines: bool = True) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``, ``\\x07``)."""
    return text.translate(_TABLE if keep_newlines else _TABLE_NL)


def _has_control(text: str) -> bool:
    return len(text.translate(_TABLE)) != len(text)


class _Escaped:
    """A rich renderable whose text segments are escaped (control segments, which rich
    itself emits for cursor movement, pass unchanged)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.segment import Segment

        for seg in console.render(self.inner, options):
            if seg.control or not _has_control(seg.text):
                yield seg
            else:
                yield Segment(escape_control(seg.text), seg.style)


def escaped_renderable(renderable: Any) -> Any:
    return _Escaped(renderable)
