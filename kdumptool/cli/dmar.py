"""``kdumptool dmar [FILE]``: decode and check an ACPI DMAR table."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from kdumptool.cli.common import FormatOpt, RootOpt, check_format, enum_value


class Severity(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


def dmar(
    file: Optional[Path] = typer.Argument(
        None,
        readable=False, help="A DMAR table: raw (/sys/firmware/acpi/tables/DMAR, acpidump -b) or acpidump "
        "text; - reads standard input. Default: the live system's, or the one under --root.",
        show_default=False,
    ),
    root: RootOpt = None,
    fmt: FormatOpt = "auto",
    no_pci: bool = typer.Option(
        False, "--no-pci", help="Do not check device scopes against the PCI tree."
    ),
    fail_on: Optional[Severity] = typer.Option(
        None, "--fail-on", case_sensitive=False,
        help="Exit 3 when a finding of this severity or worse is present: error, warning "
        "or info (for scripts and CI).",
    ),
) -> None:
    """Decode an ACPI DMAR table (every structure and device scope) and check it."""
    fmt = check_format(fmt)
    fail_on = enum_value(fail_on) if fail_on is not None else None  # type: ignore[assignment]
    if fail_on is not None and fail_on.lower() not in ("error", "warning", "info"):
        raise typer.BadParameter(f"{fail_on!r} is not one of error, warning, info",
                                 param_hint="--fail-on")
    from kdumptool.cli.hot import run_dmar

    run_dmar(file, root, fmt, no_pci, fail_on)  # also what `kdumptool dmar FILE` runs without typer


def register(app: typer.Typer) -> None:
    app.command("dmar")(dmar)
