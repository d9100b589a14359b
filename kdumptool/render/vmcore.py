"""JSON and text of ``vmcore info``, built from the records (model/dump.py): the dump's
headers and VMCOREINFO (DumpInfo) and what it says about the crash (CrashFacts)."""

from __future__ import annotations

from typing import Any, Dict, List

from kdumptool.model.dump import CrashFacts, DumpInfo


def info_json(info: DumpInfo, facts: CrashFacts) -> Dict[str, Any]:
    """The vmcore-info JSON (docs/schema): an ``incomplete`` key comes from the reader's
    layout (a kdump-compressed dump marked incomplete or truncated)."""
    p = facts.panic
    return {
        "path": info.path,
        "file_size": info.file_size,
        "page_size": info.page_size,
        **info.layout,
        "dumped_bytes": sum(e - s for s, e in info.ranges),
        "dumped_ranges": [{"start": s, "end": e} for s, e in info.ranges],
        "cpus": [{"cpu": c.cpu_index, "pid": c.pid, "rip": c.reg("rip"), "rsp": c.reg("rsp")} for c in info.cpus],
        "notes": [{"name": n.name, "type": n.n_type, "size": len(n.desc)} for n in info.notes],
        "vmcoreinfo": info.vmcoreinfo.to_json(),
        "vmcoreinfo_raw": info.vmcoreinfo.raw,
        "warnings": list(info.warnings),
        "crash_date": facts.crash_date,
        "panic": None if p is None else {"kind": p.kind, "seconds": p.seconds, "message": p.message},
        "panic_unknown_reason": facts.panic_unknown_reason,
    }


def render_info_text(r: Dict[str, Any], full_vmcoreinfo: bool = False) -> str:
    vi = r["vmcoreinfo"]
    fl = r.get("flattened")
    out: List[str] = [f"{r['path']}: {r['format']}"
                      f"{' in makedumpfile flattened format (-F)' if fl else ''}, "
                      f"{r['file_size']:,} bytes, page size {r['page_size']}"]
    if fl:
        end = (f"end marker at 0x{fl['end_marker']:x}" if fl["end_marker"] is not None
               else "NO END MARKER (cut short)")
        out.append(f"  flattened: {fl['blocks']:,} blocks, image {fl['image_size']:,} bytes "
                   f"(the file makedumpfile -R rebuilds), {end}"
                   + (f", {fl['hole_bytes']:,} bytes in holes no block covers (zeros, as in that file)"
                      if fl["hole_bytes"] else "")
                   + (f", {fl['overlapping_blocks']} overlapping" if fl["overlapping_blocks"] else "")
                   + (f", {fl['trailing_bytes']:,} bytes after it" if fl["trailing_bytes"] else ""))
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


