"""``kdumptool vmcore iommu|exposure|scan``: the crashed kernel's VT-d tables from a dump.

Where the root table comes from, in this order (the output says which):
``--rtaddr`` (argument); ``--saved DIR`` (``DIR/_kdumptool/vtd_registers.json`` of a
snapshot taken before the crash, or a ``drhd_regs.txt`` register listing): saved; the
unit's RTADDR register read live through /dev/mem when the dump is this kdump kernel's
``/proc/vmcore`` and translation is off here (GSTS.TES clear), so RTADDR still holds the
old table: register; otherwise a scan of the dump: scan. Every address from the first
three is checked structurally first; one that does not look like a root table is
reported and the next source is tried.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import typer

from kdumptool.cli.common import FormatOpt
from kdumptool.model.roottable import RootTable

if TYPE_CHECKING:
    from kdumptool.analysis.exposure import Exposure
    from kdumptool.analysis.vtd_walk import DeviceTranslation, FaultCheck, VtdTables
    from kdumptool.model.memmap import DumpLayout
    from kdumptool.sources.vmcore import Dump

VmcoreArg = Annotated[Path, typer.Argument(readable=False, help="The dump: /proc/vmcore (the default, in a kdump kernel), "
                                                "an ELF core or a kdump-compressed file.")]
PROC_VMCORE = Path("/proc/vmcore")
RtaddrOpt = Annotated[Optional[str], typer.Option(
    "--rtaddr", help="Root-table address or RTADDR register value (hex); bits 11:10 give the mode.")]
SavedOpt = Annotated[Optional[Path], typer.Option(
    "--saved", readable=False, help="Snapshot or crash directory with _kdumptool/vtd_registers.json (or a drhd_regs.txt).")]
UnitOpt = Annotated[Optional[str], typer.Option("--unit", help="Which unit of a saved record (dmar0, ...).")]
ModeOpt = Annotated[str, typer.Option("--mode", help="Table mode when RTADDR bits 11:10 do not say: auto, legacy, scalable.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="Only this device: BB:DD.F or SSSS:BB:DD.F.")]
VendorOpt = Annotated[str, typer.Option(
    "--vendor", help="auto (from --dev-table/--saved/the crashed kernel's log; VT-d first, then an "
                     "AMD-Vi scan), intel or amd.")]
DevTableOpt = Annotated[Optional[str], typer.Option(
    "--dev-table", help="AMD-Vi: device table address or Device Table Base register value (hex).")]


def register(vmcore_app: typer.Typer) -> None:
    vmcore_app.command("iommu")(iommu)
    vmcore_app.command("exposure")(exposure)
    vmcore_app.command("scan")(scan)


def iommu(
    vmcore: VmcoreArg = PROC_VMCORE,
    rtaddr: RtaddrOpt = None,
    saved: SavedOpt = None,
    unit: UnitOpt = None,
    mode: ModeOpt = "auto",
    device: DeviceOpt = None,
    iova: Annotated[Optional[str], typer.Option("--iova", help="Translate this IOVA for --device, "
                                                               "printing every entry like the kernel's fault dump.")] = None,
    all_units: Annotated[bool, typer.Option("--all-units", help="Decode the root table of every unit "
                                                               "(saved record, registers or scan), not only the first.")] = False,
    faults: Annotated[Optional[Path], typer.Option(
        "--faults", readable=False, help="A kernel log (the kdump kernel's dmesg, or a snapshot's _kdumptool/dmesg.txt), or "
                         "'vmcore' for the crashed kernel's own log in the dump: look up each DMA fault it "
                         "reports in the crashed kernel's tables.")] = None,
    vendor: VendorOpt = "auto",
    dev_table: DevTableOpt = None,
    fmt: FormatOpt = "auto",
) -> None:
    """Decode the crashed kernel's IOMMU tables: VT-d root, context, PASID and page tables,
    or the AMD-Vi device table and v1 page tables."""
    from kdumptool.analysis.vtd_walk import lookup_iova, walk_root_table
    from kdumptool.cli.common import check_format
    from kdumptool.errors import SourceMissing
    from kdumptool.render import vtd as rv
    from kdumptool.render.output import emit
    from kdumptool.sources.vmcore import open_dump

    fmt = check_format(fmt)
    dev = _parse_bdf(device) if device else None
    if iova is not None and dev is None:
        raise typer.BadParameter("--iova needs --device", param_hint="--iova")
    if all_units and (iova is not None or faults is not None):
        raise typer.BadParameter("--iova and --faults work on one unit (use --unit)", param_hint="--all-units")
    if vendor not in ("auto", "intel", "amd"):
        raise typer.BadParameter(f"{vendor!r} is not auto, intel or amd", param_hint="--vendor")
    if _amd(vmcore, vendor, dev_table, saved, rtaddr, unit, dev, fmt, exposure=False,
            iova=_int(iova, "--iova") if iova is not None else None, faults=faults):
        return
    if all_units:
        with open_dump(str(vmcore)) as dump:
            try:
                roots, warnings = _resolve_all(dump, vmcore, rtaddr, saved, unit, mode)
            except SourceMissing as err:
                return _vtd_or_amd(err, vmcore, vendor, rtaddr, saved, unit, dev, fmt, False)
            objs = []
            for root in roots:
                addr, tmode, source, detail = root.address, root.mode, root.source, root.detail
                with _progress("walking page tables", None, "tables") as tick:
                    t = walk_root_table(dump, addr, tmode, progress=tick)
                devs = [d for d in t.devices if (d.bus, d.devfn) == (dev[1], dev[2])] if dev else None
                objs.append(rv.iommu_json(t, source, detail, [], devs))
        uobj = rv.units_json(objs, warnings)
        emit(fmt, json_obj=lambda: uobj, text=lambda: rv.render_units_text(uobj, 1 << 62 if dev else 8))
        return
    with open_dump(str(vmcore)) as dump:
        try:
            roots, warnings = _resolve_all(dump, vmcore, rtaddr, saved, unit, mode, all_units=False)
        except SourceMissing as err:
            return _vtd_or_amd(err, vmcore, vendor, rtaddr, saved, unit, dev, fmt, False,
                               iova=_int(iova, "--iova") if iova is not None else None, faults=faults)
        truncated = _truncation(dump, warnings)
        root = roots[0]
        addr, tmode, source, detail = root.address, root.mode, root.source, root.detail
        if iova is not None and dev is not None:
            r = lookup_iova(dump, addr, tmode, dev[1], dev[2], _int(iova, "--iova"))
            obj = rv.lookup_json(r, root.unit, source)
            emit(fmt, json_obj=lambda: obj, text=lambda: rv.render_lookup_text(obj))
            return
        if faults is not None:
            unchecked = [0]
            checks = _fault_checks(dump, addr, tmode, faults, unchecked)
            fobj = rv.faults_json(checks, "the crashed kernel's log (from the dump)" if str(faults) == "vmcore"
                                  and not faults.exists() else str(faults), root, warnings, unchecked[0])
            emit(fmt, json_obj=lambda: fobj, text=lambda: rv.render_faults_text(fobj))
            if unchecked[0]:
                from kdumptool.errors import IncompleteResult

                raise IncompleteResult(f"{vmcore}: {unchecked[0]:,} faults not looked up (MAX_FAULT_CHECKS)")
            return
        with _progress("walking page tables", None, "tables") as tick:
            tables = walk_root_table(dump, addr, tmode, segment=dev[0] if dev else 0, progress=tick)
    devices = None
    if dev is not None:
        devices = [d for d in tables.devices if (d.bus, d.devfn) == (dev[1], dev[2])]
        if not devices:
            warnings.append(f"no context entry for {device} in this root table")
    obj = rv.iommu_json(tables, source, detail, warnings, devices)
    emit(fmt, json_obj=lambda: obj, text=lambda: rv.render_iommu_text(obj, 1 << 62 if dev else 8),
         rich=lambda: rv.render_iommu_rich(obj))
    _fail_if_incomplete(vmcore, tables, devices, truncated)


EXPOSURE_FORMATS = ("auto", "text", "rich", "json", "html")
if TYPE_CHECKING:
    ExposureFormat = str
else:
    ExposureFormat = Enum("ExposureFormat", {f: f for f in EXPOSURE_FORMATS}, type=str)


def exposure(
    vmcore: VmcoreArg = PROC_VMCORE,
    rtaddr: RtaddrOpt = None,
    saved: SavedOpt = None,
    unit: UnitOpt = None,
    mode: ModeOpt = "auto",
    device: DeviceOpt = None,
    all_units: Annotated[bool, typer.Option("--all-units", help="Every unit's root table together.")] = False,
    vendor: VendorOpt = "auto",
    dev_table: DevTableOpt = None,
    fmt: Annotated[ExposureFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="Output: auto (rich on a terminal, text when piped), text, rich, json or html (one self-contained "
             "page with the memory map).")] = "auto",
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the report to this file (created atomically; never follows a link) instead "
                               "of standard output; auto is html for a .html name, else text.")] = None,
    force: Annotated[bool, typer.Option("--force", help="With -o: replace an existing file.")] = False,
) -> None:
    """Physical memory each device could still read or write by DMA, and whether it was dumped."""
    from kdumptool.analysis.exposure import find_exposure
    from kdumptool.analysis.vtd_walk import walk_root_table
    from kdumptool.cli.common import enum_value
    from kdumptool.errors import SourceMissing
    from kdumptool.render import vtd as rv
    from kdumptool.sources.vmcore import open_dump

    fmt = enum_value(fmt).lower()
    if fmt not in EXPOSURE_FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(EXPOSURE_FORMATS)}", param_hint="--format")
    if output is not None:
        from kdumptool.sources.outfile import refuse_existing

        if fmt == "auto":
            fmt = "html" if output.suffix.lower() in (".html", ".htm") else "text"
        if fmt == "rich":
            raise typer.BadParameter("rich output is for a terminal; use text, json or html with -o",
                                     param_hint="--output")
        refuse_existing(output, force)
    dev = _parse_bdf(device) if device else None
    if vendor not in ("auto", "intel", "amd"):
        raise typer.BadParameter(f"{vendor!r} is not auto, intel or amd", param_hint="--vendor")
    deliver = ExposureOutput(fmt, vmcore, output, force)
    if _amd(vmcore, vendor, dev_table, saved, rtaddr, unit, dev, fmt, exposure=True, deliver=deliver):
        return
    with open_dump(str(vmcore)) as dump:
        try:
            roots, warnings = _resolve_all(dump, vmcore, rtaddr, saved, unit, mode, all_units=all_units)
        except SourceMissing as err:
            return _vtd_or_amd(err, vmcore, vendor, rtaddr, saved, unit, dev, fmt, True, deliver)
        truncated = _truncation(dump, warnings)
        parts = []
        for r in roots:
            with _progress("walking page tables", None, "tables") as tick:
                parts.append(walk_root_table(dump, r.address, r.mode, progress=tick))
        ranges = list(dump.iter_dumped_ranges())
        deliver.read_layout(dump)
    source, detail = roots[0].source, roots[0].detail
    tables = parts[0]
    if len(parts) > 1:  # one exposure over every unit's devices
        tables = dataclasses.replace(
            tables, devices=tuple(d for t in parts for d in t.devices),
            domains=tuple(w for t in parts for w in t.domains),
            unreadable=tuple(u for t in parts for u in t.unreadable))
        detail = "; ".join(f"0x{r.address:x} ({r.mode}, {r.detail})" for r in roots)
    devices = None
    if dev is not None:
        devices = [d for d in tables.devices if (d.bus, d.devfn) == (dev[1], dev[2])]
    ex = find_exposure(tables, ranges, devices=devices)
    obj = rv.exposure_json(ex, tables, source, detail, warnings)
    deliver(obj, ex, lambda: rv.render_exposure_text(obj, 1 << 62 if dev else 12), lambda: rv.render_exposure_rich(obj))
    if ex.incomplete or truncated:
        from kdumptool.errors import IncompleteResult

        why = (["table pages unreadable or a walk stopped at a limit"] if ex.incomplete else []) + \
            (["the dump file is truncated (its pages past the end count as in the dump)"] if truncated else [])
        raise IncompleteResult(f"{vmcore}: exposure incomplete: {'; '.join(why)} (see above)")


class ExposureOutput:
    """Where ``vmcore exposure`` writes its result: the format's renderer, to standard
    output or (``-o``) through the atomic writer; html also draws the dump's memory map,
    so the dump's layout is read while it is open (:meth:`read_layout`)."""

    def __init__(self, fmt: str, vmcore: Path, output: Optional[Path], force: bool) -> None:
        self.fmt, self.vmcore, self.output, self.force = fmt, vmcore, output, force
        self.layout: Optional[DumpLayout] = None

    def read_layout(self, dump: Dump) -> None:
        if self.fmt == "html":
            from kdumptool.sources.memmap import read_dump_layout

            self.layout = read_dump_layout(dump, str(self.vmcore))

    def __call__(self, obj: Dict[str, Any], ex: Exposure, text: Callable[[], str],
                 rich: Optional[Callable[[], Any]] = None) -> None:
        import sys

        from kdumptool.render.output import emit, to_json, with_schema_version

        if self.fmt == "html":
            from kdumptool import __version__
            from kdumptool.analysis.memmap import find_exposure_memory_map
            from kdumptool.render.html import render_exposure_html

            assert self.layout is not None, "read_layout() runs while the dump is open"
            doc = render_exposure_html(obj, find_exposure_memory_map(ex, self.layout), str(self.vmcore), __version__)
        elif self.output is not None:
            doc = to_json(with_schema_version(obj)) if self.fmt == "json" else text()
        else:
            emit(self.fmt, json_obj=lambda: obj, text=text, rich=rich)
            return
        if self.output is not None:
            from kdumptool.sources.outfile import write_file

            write_file(self.output, doc, self.force)
        else:
            sys.stdout.write(doc)


def scan(
    vmcore: VmcoreArg = PROC_VMCORE,
    fmt: FormatOpt = "auto",
    vendor: Annotated[str, typer.Option(
        "--vendor", help="auto (the crashed kernel's log in the dump, or --saved, says which; both scans when "
                         "neither does), intel (VT-d root tables) or amd (AMD-Vi device tables).")] = "auto",
    saved: Annotated[Optional[Path], typer.Option(
        "--saved", readable=False, help="A snapshot (before the crash, or the kdump kernel's) with "
                                        "_kdumptool/amdvi_registers.json and dmesg.txt: its Device Table Base and "
                                        "copy lines are set beside the AMD-Vi candidates.")] = None,
) -> None:
    """Find VT-d root tables and AMD-Vi device tables in the dump with no hint, validated
    and ranked."""
    from kdumptool.cli.common import check_format
    from kdumptool.cli.hot import run_vmcore_scan

    if vendor not in ("auto", "intel", "amd"):
        raise typer.BadParameter(f"{vendor!r} is not auto, intel or amd", param_hint="--vendor")
    run_vmcore_scan(vmcore, check_format(fmt), vendor, saved)


# --- helpers ---------------------------------------------------------------------------------------


def _vtd_or_amd(err: Exception, vmcore: Path, vendor: str, rtaddr: Optional[str], saved: Optional[Path],
                unit: Optional[str], dev: Optional[Tuple[int, int, int]], fmt: str, exposure: bool,
                deliver: Optional[ExposureOutput] = None, iova: Optional[int] = None,
                faults: Optional[Path] = None) -> None:
    """The VT-d scan found no root table and nothing named a vendor: try an AMD-Vi device
    table before giving up (re-raising the VT-d error, with the AMD result, if both fail)."""
    from kdumptool.errors import SourceMissing

    if vendor != "auto" or rtaddr is not None or saved is not None:
        raise err
    try:
        _amd(vmcore, "amd", None, None, None, unit, dev, fmt, exposure, iova, faults,
             note="vendor AMD-Vi: the scan found no VT-d root table, so an AMD-Vi device table was looked for",
             deliver=deliver)
    except SourceMissing as amd_err:
        raise SourceMissing(f"{err}; {amd_err}") from None


def _amd(vmcore: Path, vendor: str, dev_table: Optional[str], saved: Optional[Path], rtaddr: Optional[str],
         unit: Optional[str], dev: Optional[Tuple[int, int, int]], fmt: str, exposure: bool,
         iova: Optional[int] = None, faults: Optional[Path] = None, note: Optional[str] = None,
         deliver: Optional[ExposureOutput] = None) -> bool:
    """Run the AMD-Vi decode when the evidence says AMD (True: done). With nothing to go
    on (auto), VT-d runs first and an AMD-Vi scan follows only when VT-d finds nothing
    (_vtd_or_amd). ``iova`` (with ``dev``) or ``faults``: one IOVA, or every IO_PAGE_FAULT
    of a log, looked up through the device table and v1 page tables."""
    from kdumptool.cli import vmcore_amd as va
    from kdumptool.errors import IncompleteResult
    from kdumptool.sources.vmcore import open_dump

    with open_dump(str(vmcore)) as dump:
        amd, evidence = va.wants_amd(vendor, dev_table, saved, dump, rtaddr)
        if note is not None:
            evidence = [note]
        if not amd:
            return False
        if iova is not None and dev is not None:
            va.amd_lookup(dump, vmcore, dev_table, saved, unit, dev, iova, fmt, evidence)
        elif faults is not None:
            unchecked = va.amd_faults(dump, vmcore, dev_table, saved, unit, _fault_lines(dump, faults),
                                      _log_name(faults), fmt, evidence)
            if unchecked:
                raise IncompleteResult(f"{vmcore}: {unchecked:,} faults not looked up (MAX_FAULT_CHECKS)")
        elif exposure:
            if deliver is not None:
                deliver.read_layout(dump)
            ex = va.amd_exposure(dump, vmcore, dev_table, saved, unit, dev, fmt, evidence, deliver)
            if ex.incomplete:
                raise IncompleteResult(f"{vmcore}: exposure incomplete: table pages unreadable or guest page "
                                       "tables not walked (see above)")
        else:
            t, devices = va.amd_iommu(dump, vmcore, dev_table, saved, unit, dev, fmt, evidence)
            devs = t.devices if devices is None else devices
            bad = sum(len(d.all_unreadable) for d in devs) + len(t.unreadable)
            if bad:
                raise IncompleteResult(f"{vmcore}: {bad} device/page table page(s) unreadable: the "
                                       "answer is partial")
            guest = [d.bdf for d in devs if d.not_walked]
            if guest:
                raise IncompleteResult(f"{vmcore}: guest page tables (GCR3) of {', '.join(guest[:4])} not walked: "
                                       "what they reach is UNKNOWN")
    return True


def _truncation(dump: Dump, warnings: List[str]) -> bool:
    """A dump file shorter than its headers say: the reader's warnings join the output's
    (the exit code then says incomplete, even when every table page was read)."""
    if dump.truncated:
        warnings.extend(w for w in dump.warnings if w not in warnings)
    return bool(dump.truncated)


def _fail_if_incomplete(vmcore: Path, tables: VtdTables, devices: Optional[List[DeviceTranslation]],
                        truncated: bool = False) -> None:
    """Exit 3 (after the output) when the decoded tables rest on unreadable pages, a walk
    stopped at a limit, or the dump file is truncated: a partial answer is not a clean 0."""
    from kdumptool.errors import IncompleteResult

    devs = tables.devices if devices is None else devices
    unread = len(tables.unreadable) + sum(len(d.all_unreadable) for d in devs)
    cut = sum(1 for d in devs for w in d.walks if w.truncated) + sum(1 for d in devs if d.pasids_truncated)
    if unread or cut or truncated:
        raise IncompleteResult(f"{vmcore}: VT-d tables incomplete: {unread} table page(s) unreadable, "
                               f"{cut} walk(s) or PASID directories truncated at a limit"
                               + ("; the dump file is truncated" if truncated else "") + " (see above)")


def _fault_lines(dump: Dump, log: Path) -> Iterable[str]:
    """The lines of ``--faults LOG``: 'vmcore' for the crashed kernel's log in the dump, a
    snapshot directory's _kdumptool/dmesg.txt, or a log file."""
    from kdumptool.sources.kmsg import open_log_file

    if str(log) == "vmcore" and not log.exists():
        from kdumptool.sources.crashlog import read_printk

        return read_printk(dump).dmesg_lines()
    # bounded like `kdumptool log FILE`: a device node is refused, a stream stops at MAX_LOG_STREAM
    return open_log_file(str(log / "_kdumptool" / "dmesg.txt" if log.is_dir() else log))


def _log_name(log: Path) -> str:
    return "the crashed kernel's log (from the dump)" if str(log) == "vmcore" and not log.exists() else str(log)


def _fault_checks(dump: Dump, addr: int, mode: str, log: Path, unchecked: Optional[List[int]] = None
                  ) -> List[FaultCheck]:
    from kdumptool.analysis.vtd_walk import check_faults, fault_events_in_lines

    return check_faults(dump, addr, mode, fault_events_in_lines(_fault_lines(dump, log)), unchecked=unchecked)


def _int(text: str, opt: str) -> int:
    try:
        value = int(text, 16) if not text.lower().startswith(("0x", "0o", "0b")) else int(text, 0)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a hex number", param_hint=opt) from None
    if not 0 <= value < 1 << 64:
        raise typer.BadParameter(f"{text!r} is not a 64-bit address", param_hint=opt)
    return value


def _parse_bdf(text: str) -> Tuple[int, int, int]:
    parts = text.split(":")
    try:
        if len(parts) == 3:
            seg, bus, df = int(parts[0], 16), int(parts[1], 16), parts[2]
        elif len(parts) == 2:
            seg, bus, df = 0, int(parts[0], 16), parts[1]
        else:
            raise ValueError
        d, f = df.split(".")
        dev, fn = int(d, 16), int(f, 16)
        if not (0 <= bus < 256 and 0 <= dev < 32 and 0 <= fn < 8):
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not BB:DD.F or SSSS:BB:DD.F", param_hint="--device") from None
    return seg, bus, (dev << 3) | fn


from kdumptool.cli.hot import Progress as _progress  # noqa: E402


def _resolve_all(dump: Dump, vmcore: Path, rtaddr: Optional[str], saved: Optional[Path], unit: Optional[str],
                 mode: str, all_units: bool = True) -> Tuple[List[RootTable], List[str]]:
    """Every root table the first source that yields one gives (one per unit), or only
    its first with ``all_units=False``: analysis/crashed.resolve_root_tables over the
    argument, the saved snapshot, the live registers (in a kdump kernel), then a scan."""
    from kdumptool.analysis.crashed import no_root_table, resolve_root_tables
    from kdumptool.model.roottable import RtaddrCandidate
    from kdumptool.sources.rtaddr import read_live_rtaddr, read_saved_rtaddr

    if mode not in ("auto", "legacy", "scalable"):
        raise typer.BadParameter(f"{mode!r} is not auto, legacy or scalable", param_hint="--mode")
    warnings: List[str] = []

    def groups() -> Iterator[Sequence[RtaddrCandidate]]:
        if rtaddr is not None:
            values = [v.strip() for v in rtaddr.split(",") if v.strip()]
            if not values:
                raise typer.BadParameter("no address", param_hint="--rtaddr")
            yield [RtaddrCandidate(unit or (f"dmar{i}" if len(values) > 1 else "dmar"), _int(v, "--rtaddr"),
                                   "argument", f"--rtaddr {v}", trusted=True) for i, v in enumerate(values)]
        if saved is not None:
            yield read_saved_rtaddr(saved, unit, warnings, all_units)
        if str(vmcore) == "/proc/vmcore":
            yield read_live_rtaddr(unit, warnings)

    ranges = list(dump.iter_dumped_ranges())
    with _progress("scanning for root tables", sum(e - s for s, e in ranges), "bytes") as tick:
        res = resolve_root_tables(dump, groups(), mode, all_units, progress=tick, warnings=warnings,
                                  use_unreadable=False)
    if not res.roots:
        raise no_root_table(str(vmcore), res)
    roots = list(res.roots)
    if unit is not None:
        roots = [dataclasses.replace(r, unit=unit) if r.source == "scan" else r for r in roots]
    return roots, warnings

