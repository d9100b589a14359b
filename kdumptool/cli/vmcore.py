"""``kdumptool vmcore``: read a crashed kernel's dump (ELF core or kdump-compressed).

``info`` shows the format, headers, VMCOREINFO, CPU notes and what was dumped; ``log``
prints the crashed kernel's log from its printk buffer (VMCOREINFO only, no vmlinux) and,
with ``--analyse``, feeds it to the kernel-log analysis. The VT-d commands (``iommu``,
``exposure``, ``scan``) are added by ``kdumptool.cli.vmcore_vtd`` when it is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List

import typer

from kdumptool.cli.common import FormatOpt

vmcore_app = typer.Typer(
    name="vmcore",
    help="Post-mortem of a vmcore: headers, VMCOREINFO, the crashed kernel's log, VT-d tables.",
    no_args_is_help=True,
)

VmcoreArg = Annotated[Path, typer.Argument(readable=False, help="The dump: /proc/vmcore (the default, in a "
                                                "kdump kernel), an ELF core or a makedumpfile "
                                                "kdump-compressed file.")]
PROC_VMCORE = Path("/proc/vmcore")


@vmcore_app.command("info")
def info(
    vmcore: VmcoreArg = PROC_VMCORE,
    fmt: FormatOpt = "auto",
    vmcoreinfo: bool = typer.Option(False, "--vmcoreinfo", help="Print every VMCOREINFO line."),
) -> None:
    """Format, headers, VMCOREINFO and the dumped physical ranges of a dump."""
    from kdumptool.analysis.panic import crash_facts
    from kdumptool.cli.common import check_format
    from kdumptool.errors import IncompleteResult
    from kdumptool.render.output import emit
    from kdumptool.render.vmcore import info_json, render_info_text
    from kdumptool.sources.crashlog import read_crash_log
    from kdumptool.sources.vmcore import open_dump, read_dump_info

    fmt = check_format(fmt)
    with open_dump(str(vmcore)) as dump:
        dinfo = read_dump_info(dump)
        records, why = read_crash_log(dump)
    result = info_json(dinfo, crash_facts(dinfo.vmcoreinfo.crashtime, records, why))
    emit(fmt, json_obj=lambda: result, text=lambda: render_info_text(result, vmcoreinfo))
    if result.get("incomplete"):
        raise IncompleteResult(f"{vmcore}: the dump is incomplete (pages are missing)")


@vmcore_app.command("log")
def log(
    vmcore: VmcoreArg = PROC_VMCORE,
    fmt: FormatOpt = "auto",
    analyse: bool = typer.Option(False, "--analyse", "--analyze",
                                 help="Feed the log to the kernel-log analysis (VT-d faults, "
                                      "kdump markers) instead of printing it."),
) -> None:
    """The crashed kernel's log, read from its printk buffer in the dump."""
    from kdumptool.cli.common import check_format
    from kdumptool.cli.hot import run_vmcore_log

    run_vmcore_log(vmcore, check_format(fmt), analyse)


def _analyse(fmt: str, lines: List[str], name: str) -> None:
    from kdumptool.analysis.log import analyse_log
    from kdumptool.render.log import render_log_json, render_log_rich, render_log_text
    from kdumptool.render.output import emit

    report = analyse_log(lines)
    emit(fmt, json_obj=lambda: render_log_json(report, name), text=lambda: render_log_text(report, name),
         rich=lambda: render_log_rich(report, name))


def register(app: typer.Typer) -> None:
    from kdumptool.cli import vmcore_vtd

    vmcore_vtd.register(vmcore_app)
    app.add_typer(vmcore_app, name="vmcore")
