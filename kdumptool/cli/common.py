"""Options shared by every command, so each command module stays a screen long."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer


class Format(str, Enum):
    """``--format`` (an Enum, so that help lists the choices and typer checks them)."""

    auto = "auto"
    text = "text"
    rich = "rich"
    json = "json"


if TYPE_CHECKING:  # commands see a str (Format is a str Enum); typer sees the Enum
    FormatOpt = Annotated[str, "--format"]
else:
    FormatOpt = Annotated[
        Format,
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
        readable=False, help="Read a tree that mirrors / (a snapshot directory or .tar.gz) instead of the live host.",
    ),
]


def enum_value(v: object) -> str:
    """The plain string of an Enum option (or of a string passed by a caller)."""
    return str(getattr(v, "value", v))


def check_format(fmt: object) -> str:
    from kdumptool.render.output import FORMATS

    fmt = enum_value(fmt).lower()
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    return fmt
