"""``kdumptool record``: in the kdump kernel, before the dump, keep what the crash analysis
needs next to the vmcore: VT-d registers (decoded, with the RTADDR seen), the devices
mastering the bus, the quiesce plan, the dump target, the triage verdict when the triage
module is there, and a snapshot tree. Also used at boot (``--out /var/lib/kdumptool/boot``)
by ``kdumptool-boot-record.service``, so the kdump kernel can compare RTADDR with the
crashed kernel's."""

# No ``from __future__ import annotations``: typer reads the annotations of the command
# defined inside register() (see cli/quiesce.py).
import sys
from pathlib import Path
from typing import Any, Optional


def run_record(
    out: Optional[Path] = None,
    root: Optional[Path] = None,
    fmt: str = "text",
    snapshot: bool = True,
    publish: Optional[Path] = None,
    if_enabled: bool = False,
    force: bool = False,
) -> int:
    """The command without its parser (typer in register(), argparse in cli/initrd.py)."""
    from kdumptool.render.output import emit
    from kdumptool.sources.knobs import read_knob
    from kdumptool.sources.root import open_root

    with open_root(root) as r:
        if if_enabled:
            knob = read_knob(r, "record")
            if not knob.value:
                sys.stderr.write(f"record disabled by {knob.source}\n")
                return 0
        if publish is not None:
            dest = _publish(r, publish)
            sys.stdout.write(f"{dest}\n")
            return 0
        report, text, dest = _record(r, out, snapshot, force)
    from kdumptool.render.record import render_record_json

    emit(fmt, json_obj=lambda: render_record_json(dest, report), text=lambda: text)
    return 0


def register(app: Any) -> None:
    import typer

    from kdumptool.cli.common import FormatOpt, RootOpt, check_format

    @app.command("record")
    def record(
        out: Optional[Path] = typer.Option(
            None,
            "--out",
            help="Folder to write into (created). Default: the newest crash dump folder, else /run/kdumptool/record.",
        ),
        root: RootOpt = None,
        fmt: FormatOpt = "auto",
        snapshot: bool = typer.Option(True, "--snapshot/--no-snapshot", help="Also save a snapshot tree (.tar.gz)."),
        publish: Optional[Path] = typer.Option(
            None,
            "--publish",
            help="Copy an earlier record folder into the newest crash dump folder (kdump_post) and print that folder.",
        ),
        if_enabled: bool = typer.Option(
            False, "--if-enabled", help="Do nothing when kdumptool.record=0 (kernel command line or config file)."
        ),
        force: bool = typer.Option(False, "--force", help="Replace the files of an earlier record in --out."),
    ) -> None:
        """Write a report (JSON and text) and a snapshot of the PCI and VT-d state."""
        run_record(out, root, check_format(fmt), snapshot, publish, if_enabled, force)


#: Where a record goes without --out when the newest crash folder is not known, and
#: always when reading a snapshot (--root): never a folder named by the snapshot's content.
FALLBACK_DIR = "/run/kdumptool/record"


def _default_out(r: object) -> Path:
    from kdumptool.sources.dumptarget import find_crash_dirs, newest_dump_dir

    if not r.is_live:  # type: ignore[attr-defined]
        return Path(FALLBACK_DIR)
    for d in find_crash_dirs(r):  # type: ignore[arg-type]
        newest = newest_dump_dir(r, d)  # type: ignore[arg-type]
        if newest:
            return r.p(newest) / "kdumptool"  # type: ignore[attr-defined, no-any-return]
    return Path(FALLBACK_DIR)


def _publish(r: object, src: Path) -> Path:
    from kdumptool.errors import SourceMissing
    from kdumptool.sources.dumptarget import find_crash_dirs, newest_dump_dir
    from kdumptool.sources.outfile import write_file
    from kdumptool.sources.root import MAX_IMAGE_BYTES, read_file_capped

    if not src.is_dir():
        raise SourceMissing(f"{src}: no record folder to publish")
    dirs = find_crash_dirs(r)  # type: ignore[arg-type]
    for d in dirs:
        newest = newest_dump_dir(r, d)  # type: ignore[arg-type]
        if newest:
            dest = r.p(newest) / "kdumptool"  # type: ignore[attr-defined]
            dest.mkdir(parents=True, exist_ok=True)
            for f in sorted(src.iterdir()):
                if f.is_file() and not f.is_symlink():
                    # temp file + rename: a link planted in the crash folder is replaced, not followed
                    write_file(dest / f.name, read_file_capped(f, MAX_IMAGE_BYTES), force=True)
            return dest  # type: ignore[no-any-return]
    raise SourceMissing(f"no crash dump folder with a vmcore under {', '.join(dirs) or 'the kdump path'}")


def _record(r: object, out: Optional[Path], snapshot: bool, force: bool = False):  # -> (dict, str, Path)
    import dataclasses
    import json
    import time

    from kdumptool import __version__
    from kdumptool.actions.pciwrite import choose_method
    from kdumptool.actions.quiesce import describe_plan, plan_quiesce
    from kdumptool.cli.names import naming
    from kdumptool.errors import KdumptoolError
    from kdumptool.model.record import (
        RECORD_JSON,
        RECORD_SNAPSHOT,
        RECORD_TEXT,
        RecordFile,
        hex_or_none,
    )
    from kdumptool.render.output import with_schema_version
    from kdumptool.render.record import master_json, render_record_text, unit_json
    from kdumptool.sources.dumptarget import find_dump_targets
    from kdumptool.sources.knobs import read_knobs
    from kdumptool.sources.outfile import refuse_existing, write_file
    from kdumptool.sources.record import find_boot_record, read_release
    from kdumptool.sources.runstats import mark
    from kdumptool.sources.system import read_system

    mark("imported")
    t0 = time.monotonic()
    dest = out if out is not None else _default_out(r)
    if dest.is_symlink():
        raise KdumptoolError(f"{dest}: is a symbolic link (not followed; name a folder)")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdumptoolError(f"{dest}: cannot create the record folder: {exc.strerror}") from None
    # an earlier record (or a planted link) is refused before any work, unless --force
    for name in (RECORD_JSON, RECORD_TEXT) + ((RECORD_SNAPSHOT,) if snapshot else ()):
        refuse_existing(dest / name, force)
    # sysfs enumeration (not udev): the kdump initramfs need not carry libudev, and the
    # driver links in sysfs are what the kernel itself says.
    system = read_system(r, use_udev=False)  # type: ignore[arg-type]
    targets = find_dump_targets(r)  # type: ignore[arg-type]
    how, why = choose_method(r)  # type: ignore[arg-type]
    plan = plan_quiesce(system, targets.bdfs, dump_finished=False, method=how, method_reason=why)
    timings = {"system": round(time.monotonic() - t0, 3)}
    mark("system")
    # names when this system has a pci.ids (the kdump initramfs usually has none): null then
    names = naming(False, {d.vendor_id for d in system.devices.values() if d.bus_master})
    rec = RecordFile(
        kdumptool=__version__,
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        kernel=read_release(r),  # type: ignore[arg-type]
        cmdline=system.cmdline,
        in_kdump_kernel=system.in_kdump_kernel,
        rtaddr={u.name: hex_or_none(u.registers.get("RTADDR")) for u in system.units if u.registers is not None},
        boot_record=find_boot_record(r),  # type: ignore[arg-type]
        units=tuple(unit_json(u) for u in system.units),
        bus_masters=tuple(master_json(d, names) for d in system.devices.values() if d.bus_master),
        dump_target=targets.as_json(),
        quiesce_plan=plan.as_json(),
        knobs={k.name: {"value": k.value, "source": k.source} for k in read_knobs(r)},  # type: ignore[arg-type]
        warnings=tuple(system.warnings),
    )
    t1 = time.monotonic()
    triage = _triage(r, system)
    timings["triage"] = round(time.monotonic() - t1, 3)
    mark("triage")
    files = [RECORD_JSON, RECORD_TEXT]
    snap = None
    if snapshot:
        t1 = time.monotonic()
        snap = _snapshot(r, dest / RECORD_SNAPSHOT, force)
        timings["snapshot"] = round(time.monotonic() - t1, 3)
        if snap.get("file"):
            files.append(RECORD_SNAPSHOT)
    rec = dataclasses.replace(rec, triage=triage, snapshot=snap, elapsed_s=round(time.monotonic() - t0, 3),
                              timings_s=timings)
    report = rec.to_json()
    text = render_record_text(rec, describe_plan(plan), dest, files)
    write_file(dest / RECORD_JSON, json.dumps(with_schema_version(report), indent=2) + "\n", force)
    write_file(dest / RECORD_TEXT, text, force)
    mark("written")
    return report, text, dest


def _triage(r: object, system: object) -> Optional[dict]:
    """The triage verdict as JSON, or why it is missing (from the system model record has
    already read: the system and /dev/mem are read once)."""
    try:
        from kdumptool.analysis.triage import triage
        from kdumptool.render.triage import render_triage_json
        from kdumptool.sources.triage import read_triage_input

        inp = read_triage_input(r, system=system)  # type: ignore[arg-type]
        return render_triage_json(triage(inp))  # type: ignore[no-any-return]
    except Exception as exc:  # the record must not fail because of the triage
        return {"error": f"{type(exc).__name__}: {exc}"}


def _snapshot(r: object, path: Path, force: bool = False) -> dict:
    """A snapshot tree of this system as .tar.gz (the system stream's collector)."""
    try:
        from kdumptool.sources.runstats import step_marks
        from kdumptool.sources.snapshot import collect

        meta = collect(path, root=r, force=force, progress=step_marks("snapshot:"))  # type: ignore[arg-type]
        return {"file": path.name, "bytes": path.stat().st_size,
                "unreadable": len(meta.get("unreadable", {}) or {})}  # type: ignore[arg-type]
    except Exception as exc:  # keep the report even when the snapshot fails
        return {"file": None, "why": f"{type(exc).__name__}: {exc}"}
