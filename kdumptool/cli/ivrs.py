"""``kdumptool ivrs [FILE]``: decode and check an ACPI IVRS table (AMD-Vi)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdumptool.cli.common import FormatOpt, RootOpt, check_format


def ivrs(
    file: Optional[Path] = typer.Argument(
        None,
        help="An IVRS table: raw (/sys/firmware/acpi/tables/IVRS, acpidump -b) or acpidump "
        "text; - reads standard input. Default: the live system's, or the one under --root.",
        show_default=False,
    ),
    root: RootOpt = None,
    fmt: FormatOpt = "auto",
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", metavar="SEVERITY",
        help="Exit 3 when a finding of this severity or worse is present: error, warning "
        "or info (for scripts and CI).",
    ),
) -> None:
    """Decode an AMD IVRS table (every IVHD/IVMD block and device entry) and check it
    the way Linux's AMD-Vi driver does."""
    fmt = check_format(fmt)
    if fail_on is not None and fail_on.lower() not in ("error", "warning", "info"):
        raise typer.BadParameter(f"{fail_on!r} is not one of error, warning, info",
                                 param_hint="--fail-on")
    from kdumptool.analysis.ivrs_checks import check_ivrs
    from kdumptool.render.ivrs import ivrs_json, render_ivrs_rich, render_ivrs_text
    from kdumptool.render.output import emit
    from kdumptool.sources.acpi import read_ivrs_input
    from kdumptool.sources.root import open_root

    with open_root(root) as r:
        table, ioapics, source = read_ivrs_input(r, file, None if root is None else str(root))
    findings = check_ivrs(table, ioapics)
    emit(
        fmt,
        json_obj=lambda: ivrs_json(table, findings, source),
        text=lambda: render_ivrs_text(table, findings, source),
        rich=lambda: render_ivrs_rich(table, findings, source),
    )
    if fail_on is not None:
        from kdumptool.model.finding import at_least

        if at_least(findings, fail_on.lower()):
            raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("ivrs")(ivrs)
