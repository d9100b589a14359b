"""``kdumptool quiesce``: stop driverless bus masters (plan, dry run, or --apply).

:func:`run_quiesce` is the command without its parser: ``register`` wraps it for typer,
:mod:`kdumptool.cli.initrd` for argparse in the kdump initramfs (no typer there).
"""

# No ``from __future__ import annotations`` here: typer reads the option annotations of
# the command defined inside register(), which must be evaluated where they are defined.
from pathlib import Path
from typing import Any, List, Optional, Sequence


def run_quiesce(
    root: Optional[Path] = None,
    fmt: str = "text",
    plan_only: bool = False,
    apply: bool = False,
    journal: Optional[Path] = None,
    dump_finished: bool = False,
    dump_target: Sequence[str] = (),
    if_enabled: bool = False,
    numeric: bool = True,
    method: str = "auto",
) -> int:
    """Plan, then dry-run or apply; returns the exit status (1 when a device was refused).

    ``numeric`` False names the planned devices from pci.ids (the typer command; the kdump
    initramfs path stays numeric: no pci.ids there, and no time to parse one).
    ``method``: ``auto`` (config write unless the kernel is locked down), ``config`` or
    ``sysfs-enable`` (see :mod:`kdumptool.actions.pciwrite`)."""
    from kdumptool.actions.pciwrite import ChangeLog, choose_method
    from kdumptool.actions.quiesce import apply_quiesce, describe_plan, plan_quiesce
    from kdumptool.errors import KdumptoolError
    from kdumptool.render.output import emit
    from kdumptool.render.quiesce import (
        render_named_plan,
        render_quiesce_disabled_json,
        render_quiesce_json,
    )
    from kdumptool.sources.dumptarget import BDF_RE, find_dump_targets
    from kdumptool.sources.knobs import read_knob
    from kdumptool.sources.root import open_root
    from kdumptool.sources.system import read_system

    for t in dump_target:
        if not BDF_RE.match(t):
            raise KdumptoolError(f"--dump-target {t!r} is not SSSS:BB:DD.F")
    with open_root(root) as r:
        if apply and r.from_archive:
            from kdumptool.errors import ActionRefused

            raise ActionRefused(f"{root}: a tar snapshot is unpacked to a temporary copy, so --apply would "
                                "change nothing that lasts; unpack it and pass the directory")
        kmsg = "/dev/kmsg" if r.is_live and apply else None
        log = ChangeLog(kmsg=kmsg, journal=str(journal) if journal else None)
        if if_enabled:
            knob = read_knob(r, "quiesce")
            if not knob.value:
                log.write(f"quiesce disabled (kdumptool.quiesce=0, from {knob.source}); nothing written")
                emit(
                    fmt,
                    json_obj=lambda: render_quiesce_disabled_json(knob.source),
                    text=lambda: f"quiesce disabled by {knob.source}\n",
                )
                return 0
        # sysfs enumeration, not udev: the driver links are what the kernel says, and the
        # kdump initramfs need not carry libudev. No VT-d register reads: quiesce needs only PCI.
        system = read_system(r, use_udev=False, read_registers=False)
        targets = find_dump_targets(r)
        bdfs = tuple(targets.bdfs) + tuple(t.lower() for t in dump_target)
        how, why = choose_method(r, method)
        plan = plan_quiesce(system, bdfs, dump_finished, how, why)
        names = None
        if not numeric:
            from kdumptool.cli.names import naming

            # pci.ids decoded for the vendors of the devices the plan names only
            names = naming(False, {system.devices[s.bdf].vendor_id for s in plan.steps if s.bdf in system.devices})
        titles, plan_json = render_named_plan(plan.as_json(), system, names)
        warnings = [*targets.conf.warnings, *targets.warnings]
        if plan_only:
            emit(
                fmt,
                json_obj=lambda: render_quiesce_json(plan_json, targets.as_json()),
                text=lambda: describe_plan(plan, titles) + "".join(f"warning: {w}\n" for w in warnings),
            )
            return 0
        mode = "apply" if apply else "dry run"
        log.write(f"quiesce {mode}: {len(plan.steps)} to clear, {len(plan.skips)} left alone")
        if how != "config" or why != "default":
            log.write(f"quiesce method {how} ({why})")
        report = apply_quiesce(plan, r, apply=apply, log=log)

    def text() -> str:
        out = [describe_plan(plan, titles)]
        for w in warnings:
            out.append(f"warning: {w}\n")
        verb = "changed" if apply else "would change (dry run; --apply writes)"
        for res in report.results:
            if res.status == "unchanged":
                out.append(f"{res.bdf} COMMAND 0x{res.before:04x}: Bus Master Enable already clear\n")
            else:
                out.append(f"{res.line()}  {verb}\n")
        for _bdf, msg in report.refused:
            out.append(f"refused: {msg}\n")
        return "".join(out)

    emit(
        fmt,
        json_obj=lambda: render_quiesce_json(plan_json, targets.as_json(), report.as_json()),
        text=text,
    )
    return 0 if report.ok else 1


def register(app: Any) -> None:
    import typer

    from kdumptool.cli.common import FormatOpt, RootOpt, check_format

    @app.command("quiesce")
    def quiesce(
        root: RootOpt = None,
        fmt: FormatOpt = "auto",
        plan_only: bool = typer.Option(
            False, "--plan", help="Only show the ordered plan, with the reason for each device and each skip."
        ),
        apply: bool = typer.Option(
            False,
            "--apply",
            help="Write the COMMAND registers (without it: a dry run). With --root, writes the snapshot's files.",
        ),
        journal: Optional[Path] = typer.Option(
            None, "--journal", help="Append every change to this file (as well as to the console)."
        ),
        dump_finished: bool = typer.Option(
            False, "--dump-finished", help="The vmcore is saved: the dump target devices may be stopped too."
        ),
        dump_target: List[str] = typer.Option(
            [], "--dump-target", help="A further PCI device (SSSS:BB:DD.F) to leave alone while dumping."
        ),
        if_enabled: bool = typer.Option(
            False,
            "--if-enabled",
            help="Do nothing unless kdumptool.quiesce=1 (kernel command line or /etc/kdumptool/kdumptool.conf).",
        ),
        numeric: bool = typer.Option(False, "--numeric", "-n", help="Numbers only, no names from pci.ids (like lspci -n)."),
        method: str = typer.Option(
            "auto",
            "--method",
            help="auto (config write; sysfs-enable when the kernel is locked down), config, or sysfs-enable "
            "(the kernel's enable attribute, 1 then 0: also puts the device in D0 and sets the upstream "
            "bridges' Bus Master).",
        ),
    ) -> None:
        """Clear Bus Master Enable on devices mastering the bus with no driver, deepest first.

        Never touches a device with a driver, a host bridge, the dump target devices
        (until --dump-finished), a bridge above any of those, or an absent device.
        """
        from kdumptool.sources.dumptarget import BDF_RE

        fmt = check_format(fmt)
        if method not in ("auto", "config", "sysfs-enable"):
            raise typer.BadParameter(f"{method!r} is not auto, config or sysfs-enable", param_hint="--method")
        for t in dump_target:
            if not BDF_RE.match(t):
                raise typer.BadParameter(f"{t!r} is not SSSS:BB:DD.F", param_hint="--dump-target")
        code = run_quiesce(root, fmt, plan_only, apply, journal, dump_finished, dump_target, if_enabled, numeric,
                            method)
        if code:
            raise typer.Exit(code)
