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
        help="A DMAR table: raw (/sys/firmware/acpi/tables/DMAR, acpidump -b) or acpidump "
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
    from kdumptool.analysis.dmar_checks import check_dmar
    from kdumptool.errors import DecodeError, SourceMissing
    from kdumptool.formats.dmar import parse_dmar
    from kdumptool.render.dmar import dmar_json, render_dmar_rich, render_dmar_text
    from kdumptool.render.output import emit
    from kdumptool.sources.acpi import (
        no_dmar_reason,
        read_dmar,
        read_iomem_ranges,
        read_pci_bridges,
        read_reserved_ranges,
        read_table_file,
    )
    from kdumptool.sources.root import open_root

    with open_root(root) as r:
        if file is not None:
            data = read_table_file(file)
            source = "<stdin>" if str(file) == "-" else str(file)
        else:
            raw = read_dmar(r)
            if raw is None:
                raise SourceMissing(no_dmar_reason(r))
            data = raw
            where = "/sys/firmware/acpi/tables/DMAR"
            source = where if root is None else f"{root}:{where}"
        # The PCI tree and the memory map are known for the live host and for --root,
        # never for a bare file.
        machine = not (file is not None and root is None)
        pci = read_pci_bridges(r) if machine and not no_pci else None
        reserved = read_reserved_ranges(r) if machine else None
        crash = read_iomem_ranges(r, "Crash kernel") if machine else None
    try:
        table = parse_dmar(data, source)
    except DecodeError as err:
        raise err.with_source(source) if err.what != source else err from None
    findings = check_dmar(table, pci, reserved, crash)
    emit(
        fmt,
        json_obj=lambda: dmar_json(table, findings, source),
        text=lambda: render_dmar_text(table, findings, source),
        rich=lambda: render_dmar_rich(table, findings, source),
    )
    if fail_on is not None:
        from kdumptool.model.finding import at_least

        if at_least(findings, fail_on.lower()):
            raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("dmar")(dmar)
