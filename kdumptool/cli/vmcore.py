"""``kdumptool vmcore``: read a crashed kernel's dump (ELF core or kdump-compressed).

``info`` shows the format, headers, VMCOREINFO, CPU notes and what was dumped; ``log``
prints the crashed kernel's log from its printk buffer (VMCOREINFO only, no vmlinux) and,
with ``--analyse``, feeds it to the kernel-log analysis. The VT-d commands (``iommu``,
``exposure``, ``scan``) are added by ``kdumptool.cli.vmcore_vtd`` when it is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List

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
    from kdumptool.cli.common import check_format
    from kdumptool.errors import IncompleteResult
    from kdumptool.render.output import emit
    from kdumptool.sources.vmcore import open_dump

    fmt = check_format(fmt)
    with open_dump(str(vmcore)) as dump:
        result = _info_json(dump)
        result.update(_crash_facts(dump, result["vmcoreinfo"].get("crashtime")))
    emit(fmt, json_obj=lambda: result, text=lambda: _info_text(result, vmcoreinfo))
    if result.get("incomplete"):
        raise IncompleteResult(f"{vmcore}: the dump is incomplete (pages are missing)")


def _info_json(dump: Any) -> dict:
    ranges = list(dump.iter_dumped_ranges())
    vi = dump.vmcoreinfo
    return {
        "path": dump.path,
        "file_size": dump.file_size,
        "page_size": dump.page_size,
        **dump.describe(),
        "dumped_bytes": sum(e - s for s, e in ranges),
        "dumped_ranges": [{"start": s, "end": e} for s, e in ranges],
        "cpus": [{"cpu": p.cpu_index, "pid": p.pid,
                  "rip": p.reg("rip"), "rsp": p.reg("rsp")} for p in dump.prstatus],
        "notes": [{"name": n.name, "type": n.n_type, "size": len(n.desc)} for n in dump.notes],
        "vmcoreinfo": vi.to_json(),
        "vmcoreinfo_raw": vi.raw,
        "warnings": list(dump.warnings),
    }


def _crash_facts(dump: Any, crashtime: Any) -> dict:
    """The crash date (VMCOREINFO CRASHTIME, UTC) and the panic message from the dump's own
    printk buffer, as crash's ``sys`` shows DATE and PANIC; None when the dump cannot say."""
    import time

    from kdumptool.analysis.panic import find_panic
    from kdumptool.sources.crashlog import read_crash_log

    date = None
    if isinstance(crashtime, int) and 0 < crashtime < 2**40:
        date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(crashtime))
    panic: Any = None
    records, why = read_crash_log(dump)
    if why is None:
        found = find_panic(records)
        if found is not None:
            panic = {"kind": found[0], "seconds": found[1], "message": found[2]}
        else:
            why = f"no panic, sysrq crash or oops line among {len(records)} log records"
    return {"crash_date": date, "panic": panic, "panic_unknown_reason": why}


def _info_text(r: dict, full_vmcoreinfo: bool) -> str:
    vi = r["vmcoreinfo"]
    out: List[str] = [f"{r['path']}: {r['format']}, {r['file_size']:,} bytes, page size "
                      f"{r['page_size']}"]
    if r["format"] == "kdump-compressed":
        out.append(f"  header version {r['header_version']}, compression "
                   f"{'/'.join(r['compression']) or 'none'}, dump level {r['dump_level']}, "
                   f"{'INCOMPLETE, ' if r['incomplete'] else ''}"
                   f"{'split, ' if r['split'] else ''}{r['nr_cpus']} CPUs")
        u = r["utsname"]
        out.append(f"  utsname: {u['sysname']} {u['nodename']} {u['release']} {u['version']} "
                   f"{u['machine']}")
        out.append(f"  pages: {r['dumped_pages']:,} dumped of max_mapnr {r['max_mapnr']:,}")
    else:
        for s in r["segments"]:
            out.append(f"  PT_LOAD {s['index']}: phys 0x{s['paddr']:x}-0x{s['paddr'] + s['memsz']:x}"
                       f" file 0x{s['offset']:x} filesz 0x{s['filesz']:x}")
        for a in r["kernel_text_aliases"]:
            out.append(f"  PT_LOAD {a['index']}: kernel text 0x{a['vaddr']:x} = phys "
                       f"0x{a['paddr']:x}-0x{a['paddr'] + a['memsz']:x} (an alias of RAM above)")
    out.append(f"  dumped: {r['dumped_bytes']:,} bytes in {len(r['dumped_ranges'])} ranges")
    out.append(f"  kernel: {vi['osrelease'] or '?'}  crash time: {vi['crashtime'] or '?'}  "
               f"KERNELOFFSET: {_hex(vi['kerneloffset'])}  phys_base: "
               f"{_hex(vi['numbers'].get('phys_base'))}")
    out.append(f"  crash date: {r.get('crash_date') or 'unknown (no CRASHTIME in VMCOREINFO)'}")
    p = r.get("panic")
    if p:
        out.append(f"  panic: {p['message']}" + (f" (at {p['seconds']:.6f} s)" if p.get("seconds") is not None else ""))
    else:
        out.append(f"  panic: unknown ({r.get('panic_unknown_reason')})")
    out.append(f"  VMCOREINFO: {len(vi['symbols'])} SYMBOL, {len(vi['offsets'])} OFFSET, "
               f"{len(vi['sizes'])} SIZE, {len(vi['lengths'])} LENGTH, {len(vi['numbers'])} "
               f"NUMBER, {len(vi['other'])} other")
    for c in r["cpus"]:
        out.append(f"  CPU {c['cpu']}: pid {c['pid']} rip {_hex(c['rip'])} rsp {_hex(c['rsp'])}")
    if full_vmcoreinfo:
        out.append("VMCOREINFO:")
        out += [f"  {line}" for line in r["vmcoreinfo_raw"].splitlines()]
    out += [f"warning: {w}" for w in r["warnings"]]
    return "\n".join(out)


def _hex(v: Any) -> str:
    if v is None:
        return "?"
    return f"-0x{-v:x}" if v < 0 else f"0x{v:x}"


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
