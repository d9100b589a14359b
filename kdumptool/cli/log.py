"""``kdumptool log [FILE|-]``: VT-d faults and kdump markers in a kernel log."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from kdumptool.cli.common import FormatOpt, RootOpt


class LogLevel(str, Enum):
    fault = "fault"
    warning = "warning"

if TYPE_CHECKING:
    from kdumptool.model.system import System
    from kdumptool.sources.root import Root

#: Events listed in JSON output at most (all are counted and summarised).
MAX_JSON_EVENTS = 100_000


def log(
    file: Annotated[
        Optional[str],
        typer.Argument(help="Log file (dmesg, journalctl -k, syslog, a mail quote...) or - for stdin. "
                       "Default: the live /dev/kmsg, or the snapshot's log with --root."),
    ] = None,
    root: RootOpt = None,
    fmt: FormatOpt = "auto",
    no_system: Annotated[
        bool, typer.Option("--no-system", help="Do not tie faults to devices of the system model.")
    ] = False,
    last_boot: Annotated[
        bool, typer.Option("--last-boot", help="Only the last boot of a log that holds several.")
    ] = False,
    fail_on: Annotated[
        Optional[LogLevel],
        typer.Option("--fail-on", help="Exit 3 when the verdict is at least this level: fault or warning "
                     "(for scripts; the report is printed either way)."),
    ] = None,
    system_root: Annotated[
        Optional[str],
        typer.Option("--system-root", help="Tie faults to the devices of this snapshot instead (e.g. the "
                     "crashed kernel's snapshot when reading the kdump kernel's log)."),
    ] = None,
) -> None:
    """Summarise DMAR faults per device and reason, kdump markers in order, and a verdict."""
    from kdumptool.analysis.log import analyse_log
    from kdumptool.cli.common import check_format, enum_value
    from kdumptool.render.log import render_log_json, render_log_rich, render_log_text
    from kdumptool.render.output import emit
    from kdumptool.sources.kmsg import open_log
    from kdumptool.sources.root import open_root

    fmt = check_format(fmt)
    fail_on = enum_value(fail_on) if fail_on is not None else None  # type: ignore[assignment]
    if fail_on is not None and fail_on not in ("fault", "warning"):
        raise typer.BadParameter(f"{fail_on!r} is not fault or warning", param_hint="--fail-on")
    rt = open_root(root) if root is not None else None
    try:
        src = open_log(file, rt)
        system: Optional[System] = None
        if no_system:
            pass
        elif system_root is not None:
            from kdumptool.sources.system import read_system

            with open_root(system_root) as srt:
                system = read_system(srt)
        elif rt is not None or file is None:
            system = _read_system(rt)
        report = analyse_log(src, system=system, max_events=MAX_JSON_EVENTS,
                             last_boot_only=last_boot)
        report.warnings[:0] = src.warnings
        if src.count == 0:
            report.warnings.insert(0, f"{src.name}: no lines read")
        name, n = src.name, src.count
        if file is None and root is not None and root.is_file():
            name = f"{root}:_kdumptool/dmesg.txt"  # a tar snapshot, unpacked to a temporary dir
        emit(
            fmt,
            json_obj=lambda: render_log_json(report, name, n),
            text=lambda: render_log_text(report, name, n),
            rich=lambda: render_log_rich(report, name, n),
        )
        rank = {"ok": 0, "warning": 1, "fault": 2}
        if fail_on is not None and rank[report.verdict_level] >= rank[fail_on]:
            raise typer.Exit(3)
    finally:
        if rt is not None:
            rt.close()


def _read_system(rt: Optional[Root]) -> Optional[System]:
    """The system model when the system stream provides it; None otherwise."""
    try:
        from kdumptool.sources.root import open_root
        from kdumptool.sources.system import read_system
    except ImportError:
        return None
    from kdumptool.errors import KdumptoolError

    try:
        return read_system(rt if rt is not None else open_root(None))
    except KdumptoolError:
        return None


def register(app: typer.Typer) -> None:
    app.command("log")(log)
