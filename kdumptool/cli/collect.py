"""``kdumptool collect -o snapshot.tar.gz``: capture what the system model reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from kdumptool.cli.common import FormatOpt, RootOpt, check_format


def register(app: typer.Typer) -> None:
    @app.command("collect")
    def collect(
        output: Path = typer.Option(..., "--output", "-o", help="snapshot.tar.gz (or .tar, .tgz) or a new directory."),
        root: RootOpt = None,
        fmt: FormatOpt = "auto",
        no_registers: bool = typer.Option(False, "--no-registers", help="Do not read VT-d registers through /dev/mem."),
        no_lspci: bool = typer.Option(False, "--no-lspci", help="Do not run lspci for the optional outputs."),
        force: bool = typer.Option(False, "--force", help="Replace an existing snapshot file."),
    ) -> None:
        """Snapshot PCI devices, IOMMU groups and units, VT-d registers, DMAR, kernel log and kdump state."""
        import sys

        fmt = check_format(fmt)
        from kdumptool.render.output import emit, resolve_format
        from kdumptool.sources.root import open_root
        from kdumptool.sources.snapshot import collect as do_collect

        src = open_root(root)
        progress: Optional[Any] = None
        bar: Optional[Any] = None
        if sys.stderr.isatty() and resolve_format(fmt) != "json":
            from rich.progress import Progress

            bar = Progress(transient=True)
            task = bar.add_task("collecting", total=8)
            bar.start()

            def progress(step: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=step)

        existed = os.path.lexists(output)
        try:
            meta = do_collect(output, src, progress, read_registers=not no_registers, run_lspci=not no_lspci,
                              force=force)
        except BaseException as exc:
            if not existed:  # nothing written on error: remove what this run created
                import shutil

                if output.is_dir() and not output.is_symlink():
                    shutil.rmtree(output, ignore_errors=True)
            if isinstance(exc, OSError):
                from kdumptool.errors import KdumptoolError

                raise KdumptoolError(f"{exc.filename or output}: {exc.strerror or exc}") from None
            raise
        finally:
            if bar is not None:
                bar.stop()
            src.close()

        from kdumptool.sources.system import read_system

        check = open_root(output)
        try:
            system = read_system(check, use_udev=False)
        finally:
            check.close()

        from kdumptool.render.collect import render_collect_json, render_collect_text

        emit(fmt, json_obj=lambda: render_collect_json(output, meta),
             text=lambda: render_collect_text(output, system, meta))
