"""``kdumptool install-integration``: options and output; the work is in
:mod:`kdumptool.actions.integration` (what to write, with the installed kdumptool's real
path) and :mod:`kdumptool.sources.kdumpstack` (which kdump stack is installed)."""

# No ``from __future__ import annotations``: typer reads the annotations of the command
# defined inside register() (see cli/quiesce.py).
from pathlib import Path
from typing import Any, Dict, List, Optional


def register(app: Any) -> None:
    import typer

    from kdumptool.cli.common import FormatOpt

    @app.command("install-integration")
    def install_integration(
        prefix: Path = typer.Option(Path("/"), "--prefix", help="Install below this root (a package build root)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print every file and line that would be written."),
        stack: str = typer.Option(
            "auto", "--stack",
            help="auto (what is installed below --prefix; all when nothing is), all, kdump-utils, kdump-tools, dracut."),
        kdumptool_cmd: Optional[str] = typer.Option(
            None, "--kdumptool", help="Absolute command the units run (default: the installed kdumptool)."),
        source: Optional[Path] = typer.Option(None, "--source", help="A kdumptool checkout (default: this one)."),
        python: Optional[str] = typer.Option(
            None, "--python", help="Interpreter for the initramfs (default: the one running this)."
        ),
        fmt: FormatOpt = "auto",
    ) -> None:
        """Put kdumptool's kdump hooks in place for the kdump stack found (kdump-utils, kdump-tools, dracut)."""
        from kdumptool.cli.common import check_format
        from kdumptool.render.integration import render_integration_json
        from kdumptool.render.output import emit

        fmt = check_format(fmt)
        records: List[dict] = []
        meta: Dict[str, Any] = {}
        from kdumptool.actions.integration import run_install

        text = run_install(prefix, dry_run, source, python, records, stack=stack,
                           kdumptool_cmd=kdumptool_cmd, meta=meta)
        emit(fmt, json_obj=lambda: render_integration_json(prefix, dry_run, meta, records),
             text=lambda: text.rstrip("\n"))
