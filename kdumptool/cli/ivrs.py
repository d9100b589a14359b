"""``kdumptool ivrs [FILE]``: decode and check an ACPI IVRS table (AMD-Vi)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdumptool.cli.common import FormatOpt, RootOpt, check_format


def ivrs(
    file: Optional[Path] = typer.Argument(
        None,
        readable=False, help="An IVRS table: raw (/sys/firmware/acpi/tables/IVRS, acpidump -b) or acpidump "
        "text; - reads standard input. Default: the live system's, or the one under --root.",
        show_default=False,
    ),
    root: RootOpt = None,
    fmt: FormatOpt = "auto",
    no_registers: bool = typer.Option(
        False, "--no-registers",
        help="Do not read the IOMMUs' registers (live: through /dev/mem; --root: the "
        "snapshot's _kdumptool/amdvi_registers.json).",
    ),
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
    from kdumptool.analysis.amdvi import build_units, check_units
    from kdumptool.analysis.ivrs_checks import check_ivrs
    from kdumptool.render.ivrs import ivrs_json, render_ivrs_rich, render_ivrs_text
    from kdumptool.render.output import emit
    from kdumptool.sources.acpi import read_ivrs_input
    from kdumptool.sources.amdvi import (
        AMDVI_REGS_JSON,
        amdvi_units,
        read_amdvi_live,
        read_amdvi_snapshot,
    )
    from kdumptool.sources.root import open_root

    with open_root(root) as r:
        table, ioapics, source = read_ivrs_input(r, file, None if root is None else str(root))
        units = None
        if file is None and not no_registers:
            if root is None:
                units = build_units(table, read_amdvi_live(amdvi_units(r), r), "/dev/mem")
            else:
                entries = read_amdvi_snapshot(r)
                where = f"{root}:_kdumptool/{AMDVI_REGS_JSON}"
                units = build_units(table, entries if entries is not None else [],
                                    where if entries is not None else f"{where} (absent)")
    findings = check_ivrs(table, ioapics) + (check_units(table, units) if units else [])
    emit(
        fmt,
        json_obj=lambda: ivrs_json(table, findings, source, units),
        text=lambda: render_ivrs_text(table, findings, source, units),
        rich=lambda: render_ivrs_rich(table, findings, source, units),
    )
    if fail_on is not None:
        from kdumptool.model.finding import at_least

        if at_least(findings, fail_on.lower()):
            raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("ivrs")(ivrs)
