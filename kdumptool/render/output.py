"""Choosing and emitting an output format: ``text``, ``rich`` or ``json``.

Commands build one result object and hand ``emit`` three renderers. ``auto`` means rich
on a terminal and plain text when piped. Plain text never carries colour or timestamps,
so golden files can diff it. JSON is ``json.dumps(..., indent=2, sort_keys=False)`` with a
trailing newline.
"""

from __future__ import annotations

import sys

from kdumptool.render.escape import escape_control, escaped_renderable

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional

FORMATS = ("auto", "text", "rich", "json")
#: Version of every JSON document's shape (the files in docs/schema/ describe version 1).
#: Raised when a field changes meaning or disappears; new fields keep it.
SCHEMA_VERSION = 1


def with_schema_version(obj: Any) -> Any:
    """``obj`` with ``schema_version`` as its first key (objects only)."""
    if isinstance(obj, dict) and "schema_version" not in obj:
        return {"schema_version": SCHEMA_VERSION, **obj}
    return obj


def resolve_format(fmt: str, stream: Any = None) -> str:
    """Map ``auto`` to ``rich`` on a terminal and ``text`` otherwise."""
    if fmt != "auto":
        return fmt
    stream = stream or sys.stdout
    try:
        return "rich" if stream.isatty() else "text"
    except (AttributeError, ValueError):
        return "text"


#: Off with --no-pager (cli.main) or KDUMPTOOL_NO_PAGER=1.
PAGER_ENABLED = {"on": True}


def _terminal_rows(stream: Any) -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).lines


def should_page(text: str, stream: Any = None) -> bool:
    """Page (like git, systemctl) when writing to a terminal, paging is not turned off, and
    the output is taller than the terminal."""
    import os

    stream = stream or sys.stdout
    if not PAGER_ENABLED["on"] or os.environ.get("KDUMPTOOL_NO_PAGER") == "1":
        return False
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    return text.count("\n") > _terminal_rows(stream) - 1


def page(text: str) -> None:
    """Show ``text`` through $KDUMPTOOL_PAGER, $PAGER or ``less`` (LESS=FRX unless set:
    quit when it fits, keep colours, leave the text on screen); written directly when no
    pager runs."""
    import os
    import shlex
    import subprocess

    cmd = os.environ.get("KDUMPTOOL_PAGER") or os.environ.get("PAGER") or "less"
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    try:
        proc = subprocess.Popen(cmd if " " in cmd else shlex.split(cmd), shell=" " in cmd,
                                stdin=subprocess.PIPE, env=env)
    except OSError:
        sys.stdout.write(text)
        return
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode("utf-8", errors="replace"))
        proc.stdin.close()
    except BrokenPipeError:  # the reader quit early (q in less): not an error
        pass
    proc.wait()


def to_json(obj: Any) -> str:
    import json  # only for --format json (start-up: cli/hot.py)

    return json.dumps(obj, indent=2) + "\n"


def emit(
    fmt: str,
    *,
    json_obj: Callable[[], Any],
    text: Callable[[], str],
    rich: Optional[Callable[[], Any]] = None,
) -> None:
    """Write one result to stdout in the chosen format.

    ``rich`` returns a rich renderable (or a list of them); without one, the plain text is
    printed through rich's console so it still wraps on a terminal.
    """
    fmt = resolve_format(fmt)
    if fmt == "json":
        sys.stdout.write(to_json(with_schema_version(json_obj())))
    elif fmt == "text" or rich is None:
        # foreign bytes (printk text, names from a snapshot) never reach a terminal raw
        out = escape_control(text())
        out = out if out.endswith("\n") or not out else out + "\n"
        if should_page(out):
            page(out)
        else:
            sys.stdout.write(out)
    else:
        import io

        from rich.console import Console

        renderable = rich()
        items = [escaped_renderable(r) for r in (renderable if isinstance(renderable, (list, tuple)) else [renderable])]
        live = Console()
        if live.is_terminal:
            # render once into a string with the terminal's width and colours, then page it
            # when it is taller than the screen
            buf = io.StringIO()
            console = Console(file=buf, force_terminal=True, width=live.width,
                              color_system=live.color_system or "standard")  # type: ignore[arg-type]
            for r in items:
                console.print(r)
            out = buf.getvalue()
            if should_page(out):
                page(out)
            else:
                sys.stdout.write(out)
            return
        for r in items:
            live.print(r)


def human_size(n: int) -> str:
    """Bytes as people read them: exact units when they divide (``4 KiB``, ``16 MiB``),
    else one decimal (``1.5 MiB``)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


#: Characters a kernel-log renderer prints as they are: C-locale ``isprint`` or ``isspace``
#: (the test makedumpfile's ``--dump-dmesg`` applies to each byte; util-linux ``dmesg``
#: escapes the same bytes in the C locale).
_LOG_KEEP = frozenset(chr(c) for c in range(0x20, 0x7F)) | frozenset("\t\n\v\f\r")
#: str.translate table deleting every kept character: what is left needs escaping
_DROP_KEPT = dict.fromkeys(map(ord, _LOG_KEEP))


def escape_log_text(text: str) -> str:
    """A kernel log message as ``makedumpfile --dump-dmesg`` and ``dmesg`` print it: every
    byte that is neither printable ASCII nor whitespace becomes ``\\xNN`` (DEL is
    ``\\x7f``: "Invalid ELF header magic: != \\x7fELF"), so a crashed kernel's log cannot
    send escape sequences to a terminal. Non-ASCII characters are escaped byte by byte
    (their UTF-8 encoding), as in the C locale. Newlines are kept (callers split on them)."""
    if not text.translate(_DROP_KEPT):  # the common case, in C (vmcore log start-up)
        return text
    out = []
    for c in text:
        if c in _LOG_KEEP:
            out.append(c)
        else:
            out.extend(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


def dump_dmesg_lines(ts_nsec: int, text: str) -> List[str]:
    """One log record in ``makedumpfile --dump-dmesg``'s layout: ``[sssss.uuuuuu] `` before
    the first line, continuation lines of a multi-line record indented by as many spaces,
    every line through :func:`escape_log_text`."""
    sec, nsec = divmod(ts_nsec, 1_000_000_000)
    prefix = f"[{sec:5d}.{nsec // 1000:06d}] "
    lines = escape_log_text(text).split("\n")
    return [prefix + lines[0]] + [" " * len(prefix) + ln for ln in lines[1:]]
