"""Choosing and emitting an output format: ``text``, ``rich`` or ``json``.

Commands build one result object and hand ``emit`` three renderers. ``auto`` means rich
on a terminal and plain text when piped. Plain text never carries colour or timestamps,
so golden files can diff it. JSON is ``json.dumps(..., indent=2, sort_keys=False)`` with a
trailing newline.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Optional

FORMATS = ("auto", "text", "rich", "json")


def resolve_format(fmt: str, stream: Any = None) -> str:
    """Map ``auto`` to ``rich`` on a terminal and ``text`` otherwise."""
    if fmt != "auto":
        return fmt
    stream = stream or sys.stdout
    try:
        return "rich" if stream.isatty() else "text"
    except (AttributeError, ValueError):
        return "text"


def to_json(obj: Any) -> str:
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
        sys.stdout.write(to_json(json_obj()))
    elif fmt == "text" or rich is None:
        out = text()
        sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    else:
        from rich.console import Console

        console = Console()
        renderable = rich()
        if isinstance(renderable, (list, tuple)):
            for r in renderable:
                console.print(r)
        else:
            console.print(renderable)


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
