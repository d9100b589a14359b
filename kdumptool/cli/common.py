"""Options shared by every command, so each command module stays a screen long."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="Output: auto (rich on a terminal, text when piped), text, rich or json.",
        case_sensitive=False,
    ),
]

RootOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--root",
        help="Read a tree that mirrors / (a snapshot directory or .tar.gz) instead of the live host.",
    ),
]


def check_format(fmt: str) -> str:
    from kdumptool.render.output import FORMATS

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    return fmt
