"""``kdumptool triage``: will kdump survive the DMA in flight at a crash, and what to change.

Exit codes: 0 fine (or nothing to triage), 3 warnings, 4 errors; 1 for our errors, 2 usage
(every format, html included; ``--exit-zero`` turns 3 and 4 into 0 once the report is written).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from kdumptool.cli.common import RootOpt

FORMATS = ("auto", "text", "rich", "json", "prometheus", "html")
if TYPE_CHECKING:
    from kdumptool.analysis.triage import TriageReport
    from kdumptool.model.triage import TriageInput
    from kdumptool.render.names import Naming

    TriageFormat = str
else:
    TriageFormat = Enum("TriageFormat", {f: f for f in FORMATS}, type=str)


def triage_cmd(
    root: RootOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Triage a saved crash: --root is the saved snapshot, plus --vmcore and/or --saved.")] = False,
    vmcore: Annotated[Optional[Path], typer.Option("--vmcore", readable=False, help="The crashed kernel's vmcore (ELF or kdump-compressed).")] = None,
    saved: Annotated[Optional[Path], typer.Option("--saved", readable=False, help="A saved crash folder: vmcore, vmcore-dmesg.txt, kdumptool/ (record, snapshot); without --root its kdump snapshot is used.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Every finding with all its evidence and every risky device (text and rich group findings of one kind and cause, and list the 10 most dangerous devices).")] = False,
    numeric: Annotated[bool, typer.Option("--numeric", "-n", help="Numbers only, no names from pci.ids (like lspci -n).")] = False,
    fmt: Annotated[TriageFormat, typer.Option("--format", "-f", help="Output: auto (rich on a terminal, text when piped), text, rich, json, prometheus (node_exporter textfile collector) or html (one self-contained page: verdict, findings, PCI tree, memory map).", case_sensitive=False)] = "auto",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to this file (created atomically; never follows a link) instead of standard output; auto is html for a .html name, else text.")] = None,
    force: Annotated[bool, typer.Option("--force", help="With -o: replace an existing file.")] = False,
) -> None:
    """Tell whether kdump will survive in-flight DMA on this VT-d machine, with evidence and remedies."""
    from kdumptool.cli.common import enum_value

    fmt = enum_value(fmt).lower()
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    if (vmcore or saved) and not offline:
        raise typer.BadParameter("--vmcore and --saved need --offline", param_hint="--offline")
    if offline and not (vmcore or saved):
        raise typer.BadParameter("--offline needs --vmcore FILE or --saved DIR", param_hint="--offline")

    import sys

    from kdumptool.analysis.triage import triage
    from kdumptool.cli.names import naming
    from kdumptool.render.output import emit
    from kdumptool.render.triage import (
        render_triage_json,
        render_triage_prometheus,
        render_triage_rich,
        render_triage_text,
    )
    from kdumptool.sources.root import open_root
    from kdumptool.sources.triage import open_triage_input

    if offline and root is None:
        from kdumptool.sources.triage import find_kdump_snapshot

        found = find_kdump_snapshot(str(saved)) if saved else None
        if found is None:
            raise typer.BadParameter(
                "--offline needs --root (the kdump kernel's snapshot) or a --saved folder holding "
                "kdumptool record's kdumptool-snapshot.tar.gz", param_hint="--root")
        root = Path(found)
    if output is not None and fmt == "auto":
        fmt = "html" if output.suffix.lower() in (".html", ".htm") else "text"
    if output is not None and fmt == "rich":
        raise typer.BadParameter("rich output is for a terminal; use text, json, prometheus or html with -o",
                                 param_hint="--output")
    if output is not None:
        from kdumptool.sources.outfile import refuse_existing

        refuse_existing(output, force)  # before the work, not after
    names = naming(numeric)
    with open_root(root) as r, open_triage_input(r, str(vmcore) if vmcore else None,
                                                 str(saved) if saved else None) as inp:
        report = triage(inp)
        page = _html(inp, report, names) if fmt == "html" else None
    if output is not None:
        from kdumptool.render.output import to_json, with_schema_version
        from kdumptool.sources.outfile import write_file

        doc = {"html": lambda: page or "", "prometheus": lambda: render_triage_prometheus(report),
               "json": lambda: to_json(with_schema_version(render_triage_json(report, names))),
               "text": lambda: render_triage_text(report, names, verbose)}[fmt]()
        write_file(output, doc, force)
    elif page is not None:
        sys.stdout.write(page)
    elif fmt == "prometheus":
        sys.stdout.write(render_triage_prometheus(report))
    else:
        emit(
            fmt,
            json_obj=lambda: render_triage_json(report, names),
            text=lambda: render_triage_text(report, names, verbose),
            rich=lambda: render_triage_rich(report, names, verbose),
        )
    raise typer.Exit(report.exit_code)


def _html(inp: TriageInput, report: TriageReport, names: Naming) -> str:
    """The HTML page, while the vmcore is still open (the memory map reads its bitmaps)."""
    from kdumptool import __version__
    from kdumptool.analysis.memmap import find_triage_memory_map
    from kdumptool.render.html import render_triage_html
    from kdumptool.sources.memmap import read_dump_layout
    from kdumptool.sources.vmcore import Dump

    c = inp.crashed
    layout = read_dump_layout(c.memory, c.vmcore or c.source) if c is not None and isinstance(c.memory, Dump) else None
    memory = find_triage_memory_map(inp, report, layout)
    return render_triage_html(report, inp.system, memory, names, __version__)


def register(app: typer.Typer) -> None:
    app.command("triage")(triage_cmd)
