"""The bodies of the commands that run in the kdump kernel or over big dumps and must
start fast (`dmar`, `vmcore log`, `vmcore scan`), free of typer: the typer commands in
cli/dmar.py, cli/vmcore.py and cli/vmcore_vtd.py call these after parsing their options,
and ``cli/main.py`` calls them directly for a plain invocation (a path and ``-f``), so
that those do not pay for importing typer (bench/bench_ratios.py). ``record`` and
``quiesce`` with their own options only (what the kdump hooks run) likewise go straight to
``run_record``/``run_quiesce`` (bench/bench_record.py).

``fmt`` is already checked (one of render.output.FORMATS). Errors are our exceptions;
a non-zero exit that is not an error is ``SystemExit``.
"""

from __future__ import annotations

import sys

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, List, Optional, Tuple, Union



def run_dmar(file: Optional[Path], root: Optional[Path], fmt: str, no_pci: bool = False,
             fail_on: Optional[str] = None) -> None:
    from kdumptool.analysis.dmar_checks import check_dmar
    from kdumptool.render.dmar import dmar_json, render_dmar_rich, render_dmar_text
    from kdumptool.render.output import emit
    from kdumptool.sources.acpi import (
        read_dmar_input,
        read_iomem_ranges,
        read_pci_bridges,
        read_reserved_ranges,
    )
    from kdumptool.sources.root import open_root

    with open_root(root) as r:
        table, source = read_dmar_input(r, file, None if root is None else str(root))
        # The PCI tree and the memory map are known for the live host and for --root,
        # never for a bare file.
        machine = not (file is not None and root is None)
        pci = read_pci_bridges(r) if machine and not no_pci else None
        reserved = read_reserved_ranges(r) if machine else None
        crash = read_iomem_ranges(r, "Crash kernel") if machine else None
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
            sys.exit(3)


def run_vmcore_log(vmcore: Union[str, Path], fmt: str, analyse: bool = False) -> None:
    from kdumptool.render.output import emit
    from kdumptool.sources.crashlog import read_printk
    from kdumptool.sources.vmcore import open_dump

    with open_dump(str(vmcore)) as dump:
        klog = read_printk(dump, str(vmcore))
        warnings = list(dump.warnings) + list(klog.warnings)
        truncated = dump.truncated
    for w in warnings:
        sys.stderr.write(f"warning: {w}\n")
    if analyse:
        from kdumptool.cli.vmcore import _analyse

        _analyse(fmt, klog.dmesg_lines(), str(vmcore))
    else:
        from kdumptool.render.printk import printk_json, render_printk_text

        emit(fmt, json_obj=lambda: printk_json(str(vmcore), klog, warnings), text=lambda: render_printk_text(klog))
    if klog.warnings:
        from kdumptool.errors import IncompleteResult

        raise IncompleteResult(f"{vmcore}: the kernel log is incomplete or damaged "
                               f"({len(klog.warnings)} warning(s) above)")
    if truncated:
        from kdumptool.errors import IncompleteResult

        raise IncompleteResult(f"{vmcore}: the dump is cut short (see the warning above): "
                               f"the log was read from what is there")


def run_vmcore_scan(vmcore: Union[str, Path], fmt: str, vendor: str = "auto", saved: Optional[Path] = None) -> None:
    """VT-d root tables and/or AMD-Vi device tables found by structure alone. Which:
    ``vendor`` (intel, amd), else the evidence in this order: ``saved`` with AMD-Vi
    registers, the crashed kernel's own log in the dump; not known: both scans."""
    from kdumptool.render import amdscan as ras
    from kdumptool.render.output import emit
    from kdumptool.sources.vmcore import open_dump

    with open_dump(str(vmcore)) as dump:
        ranges = list(dump.iter_dumped_ranges())
        found, why = _scan_vendor(dump, vendor, saved)
        res = amd = None
        if found != "AMD-Vi":
            from kdumptool.analysis.rtscan import find_root_tables

            with Progress("scanning for root tables", sum(e - s for s, e in ranges), "bytes") as tick:
                res = find_root_tables(dump, ranges, progress=tick)
        if found != "VT-d":
            from kdumptool.analysis.amdscan import find_device_tables

            low = sum(min(e, 1 << 32) - s for s, e in ranges if s < 1 << 32)
            with Progress("scanning for AMD-Vi device tables", low, "bytes") as tick:
                ares = find_device_tables(dump, ranges, progress=tick)
            tabs: List[Tuple[str, int, int]] = []
            copy: List[Tuple[str, str]] = []
            if saved is not None:
                from kdumptool.sources.amdvi import read_saved_copy_lines, read_saved_dev_tables

                tabs, copy = read_saved_dev_tables(saved) or [], read_saved_copy_lines(saved)
            # registers read in a kdump kernel that copied the old table name its own copy
            amd = ras.amd_scan_json(ares, tabs, [c for _k, c in copy],
                                    "kdump" if any(k == "amdvi_translation_preenabled" for k, _c in copy) else "first")
        truncated = dump.truncated
        warnings = list(dump.warnings)
    # pages the scan could not read may hold the table: the output says so, and the exit code
    obj = ras.scan_json(res, amd, truncated, warnings, found, why)
    emit(fmt, json_obj=lambda: obj, text=lambda: ras.render_scan_text(obj), rich=lambda: ras.render_scan_rich(obj))
    if obj["incomplete"]:
        from kdumptool.errors import IncompleteResult

        # both scans read the same pages (the AMD-Vi one those below 4 GiB)
        unread = max(obj["unreadable_pages"], amd["unreadable_pages"] if amd is not None else 0)
        raise IncompleteResult(f"{vmcore}: scan incomplete: {unread} page(s) "
                               f"unreadable{' (the dump is truncated)' if truncated else ''}")


def _scan_vendor(dump: Any, vendor: str, saved: Optional[Path]) -> Tuple[Optional[str], List[str]]:
    """("VT-d" | "AMD-Vi" | None, why) for ``vmcore scan``."""
    if vendor == "intel":
        return "VT-d", ["--vendor intel"]
    if vendor == "amd":
        return "AMD-Vi", ["--vendor amd"]
    from kdumptool.sources.crashlog import iommu_vendor_from_dump

    if saved is not None:
        from kdumptool.sources.amdvi import has_saved_amdvi

        if has_saved_amdvi(saved):
            return "AMD-Vi", [f"{saved}/_kdumptool/amdvi_registers.json"]
    got = iommu_vendor_from_dump(dump)
    if got is not None:
        return ("AMD-Vi" if got[0] == "AMD-Vi" else "VT-d"), [f"the crashed kernel's log: {got[1]!r}"]
    return None, ["the crashed kernel's log in the dump names neither"]


class Progress:
    """A rich progress bar on stderr when it is a terminal; a no-op callback otherwise."""

    def __init__(self, what: str, total: Optional[int], unit: str) -> None:
        self.bar: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            cols: List[Any] = [TextColumn("{task.description}"), BarColumn()]
            cols += [TaskProgressColumn(), TimeRemainingColumn()] if total else [TextColumn("{task.completed} " + unit)]
            self.bar = Bar(*cols, console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(what, total=total)

    def __enter__(self) -> Any:
        if self.bar is None:
            return None
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- the fast path ---------------------------------------------------------------------

_FORMATS = ("auto", "text", "rich", "json")


def fast_command(args: List[str]) -> Optional[Any]:
    """A callable running ``args`` without typer when they are a plain invocation of a
    hot command: the command words, at most one path, ``-f/--format`` with a valid value
    (global flags already taken out). None for anything else (typer then parses, with its
    help and its usage errors)."""
    rest = list(args)
    if rest[:1] in (["record"], ["quiesce"]):
        return _fast_record_quiesce(rest[0], rest[1:])
    if rest[:1] == ["dmar"]:
        cmd, rest = "dmar", rest[1:]
    elif rest[:2] in (["vmcore", "log"], ["vmcore", "scan"]):
        cmd, rest = " ".join(rest[:2]), rest[2:]
    else:
        return None
    path: Optional[str] = None
    fmt = "auto"
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("-f", "--format") and i + 1 < len(rest):
            fmt, i = rest[i + 1].lower(), i + 2
        elif a.startswith("--format="):
            fmt, i = a.split("=", 1)[1].lower(), i + 1
        elif (a == "-" or not a.startswith("-")) and path is None:
            path, i = a, i + 1
        else:
            return None
    if fmt not in _FORMATS:
        return None
    if cmd == "dmar":
        from pathlib import Path

        return lambda: run_dmar(Path(path) if path is not None else None, None, fmt)
    vmcore = path if path is not None else "/proc/vmcore"
    if cmd == "vmcore log":
        return lambda: run_vmcore_log(vmcore, fmt)
    return lambda: run_vmcore_scan(vmcore, fmt)


# `record` and `quiesce`: what the kdump kernel's hooks run (kdump-tools' and kdump-utils'
# units and scripts call the installed command). Their options, as cli/record.py and
# cli/quiesce.py declare them for typer: name -> (destination, takes a value).
_RECORD_OPTS = {
    "--out": ("out", True), "--root": ("root", True), "-f": ("fmt", True), "--format": ("fmt", True),
    "--snapshot": ("snapshot", False), "--no-snapshot": ("no_snapshot", False),
    "--publish": ("publish", True), "--if-enabled": ("if_enabled", False), "--force": ("force", False),
}
_QUIESCE_OPTS = {
    "--root": ("root", True), "-f": ("fmt", True), "--format": ("fmt", True), "--plan": ("plan_only", False),
    "--apply": ("apply", False), "--journal": ("journal", True), "--dump-finished": ("dump_finished", False),
    "--dump-target": ("dump_target", True), "--if-enabled": ("if_enabled", False),
    "-n": ("numeric", False), "--numeric": ("numeric", False), "--method": ("method", True),
}
_METHODS = ("auto", "config", "sysfs-enable")


def _fast_record_quiesce(cmd: str, rest: List[str]) -> Optional[Any]:
    """``record``/``quiesce`` with nothing but their own options, each well-formed: the
    same call the typer command makes (same defaults: ``--format auto``, names from
    pci.ids for quiesce), without importing typer. None for anything else (help, a
    positional argument, an unknown or repeated-flag spelling typer would judge, a bad
    value: typer then says so as before)."""
    table = _RECORD_OPTS if cmd == "record" else _QUIESCE_OPTS
    opts: dict = {}
    i = 0
    while i < len(rest):
        a = rest[i]
        name, value = (a.split("=", 1) + [None])[:2] if a.startswith("--") and "=" in a else (a, None)
        spec = table.get(name)  # type: ignore[arg-type]
        if spec is None:
            return None
        dest, takes = spec
        if takes:
            if value is None:
                if i + 1 >= len(rest) or rest[i + 1].startswith("-"):
                    return None  # a missing value (or one that looks like an option): typer says
                value, i = rest[i + 1], i + 2
            else:
                i += 1
            if dest == "dump_target":
                opts.setdefault(dest, []).append(value)
            else:
                opts[dest] = value
        else:
            if value is not None:
                return None
            opts[dest] = True
            i += 1
    fmt = str(opts.get("fmt", "auto")).lower()
    if fmt not in _FORMATS:
        return None
    from pathlib import Path

    def path(key: str) -> Optional[Path]:
        v = opts.get(key)
        return None if v is None else Path(v)

    if cmd == "record":
        # click: the later of --snapshot/--no-snapshot wins; typer's default is --snapshot
        snapshot = True
        for a in rest:
            if a in ("--snapshot", "--no-snapshot"):
                snapshot = a == "--snapshot"

        def record() -> None:
            from kdumptool.cli.record import run_record

            run_record(path("out"), path("root"), fmt, snapshot, path("publish"), bool(opts.get("if_enabled")),
                       bool(opts.get("force")))

        return record
    method = opts.get("method", "auto")
    if method not in _METHODS:
        return None
    targets = opts.get("dump_target", [])
    if targets:
        from kdumptool.sources.dumptarget import BDF_RE

        if not all(BDF_RE.match(t) for t in targets):
            return None

    def quiesce() -> None:
        from kdumptool.cli.quiesce import run_quiesce

        code = run_quiesce(path("root"), fmt, bool(opts.get("plan_only")), bool(opts.get("apply")),
                           path("journal"), bool(opts.get("dump_finished")), targets,
                           bool(opts.get("if_enabled")), bool(opts.get("numeric")), method)
        if code:
            sys.exit(code)

    return quiesce
