"""JSON, plain text and rich output for the vmcore VT-d commands (iommu, exposure, scan).

The JSON of ``vmcore iommu`` is the contract of issue 6: ``root_table`` {address, mode,
source} and ``devices`` [{bdf, present, translation_type, address_width, domain_id,
pt_root, mapped_4k_pages, mapped_large_pages, extents [{iova, phys, size, read, write}],
unreadable_tables}], plus a few extra keys documented in docs/vtd.md. Text and rich are
rendered from that JSON object, so all three say the same thing.
"""

from __future__ import annotations

from kdumptool.render.output import human_size

# typing is only read by type checkers here (annotations are strings): importing it
# costs start-up time of `vmcore scan` (bench/bench_ratios.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

    from kdumptool.analysis.exposure import Exposure
    from kdumptool.analysis.rtscan import ScanResult
    from kdumptool.analysis.vtd_walk import DeviceTranslation, FaultCheck, IovaLookup, VtdTables
    from kdumptool.model.roottable import RootTable

SOURCE_TEXT = {
    "argument": "given with --rtaddr",
    "saved": "from a record saved before the crash",
    "register": "from the unit's live RTADDR register (translation off in this kdump kernel)",
    "scan": "found by scanning the dump",
}




def _rw(read: bool, write: bool) -> str:
    return ("r" if read else "-") + ("w" if write else "-")


# --- vmcore iommu --------------------------------------------------------------------------


def device_json(d: DeviceTranslation, with_extents: bool = True) -> Dict[str, Any]:
    w = d.walk
    out: Dict[str, Any] = {
        "bdf": d.bdf,
        "present": d.present,
        "translation_type": d.translation_type,
        "address_width": d.address_width,
        "domain_id": d.domain_id,
        "pt_root": d.pt_root,
        "mapped_4k_pages": w.mapped_4k_pages if w else 0,
        "mapped_large_pages": w.mapped_large_pages if w else 0,
        "extents": [x.to_json() for x in w.extents] if (w and with_extents) else [],
        "extents_truncated": bool(w and w.truncated),
        "unreadable_tables": [u.to_json() for u in d.all_unreadable],
        # extras (not in the issue's contract, documented in docs/vtd.md)
        "aw": d.aw,
        "levels": d.levels,
        "fpd": d.fpd,
        "context_entry": d.context_paddr,
        "problems": list(d.problems) + (list(w.problems) if w else []),
    }
    if d.pasid is not None:
        out["pasid"] = d.pasid
        out["pasid_dir"] = d.pasid_dir
        out["pasid_entry"] = d.pasid_entry_paddr
        out["other_pasids"] = [{
            "pasid": p.pasid,
            "entry": p.entry_paddr,
            "translation_type": p.translation_type,
            "address_width": p.address_width,
            "domain_id": p.domain_id,
            "pt_root": p.pt_root,
            "mapped_4k_pages": p.walk.mapped_4k_pages if p.walk else 0,
            "mapped_large_pages": p.walk.mapped_large_pages if p.walk else 0,
            "extents": [x.to_json() for x in p.walk.extents] if (p.walk and with_extents) else [],
            "problems": list(p.problems) + (list(p.walk.problems) if p.walk else []),
        } for p in d.other_pasids]
    return out


def iommu_json(
    tables: VtdTables,
    source: str,
    source_detail: str,
    warnings: List[str],
    devices: Optional[List[DeviceTranslation]] = None,
) -> Dict[str, Any]:
    devs = list(tables.devices) if devices is None else devices
    return {
        "vendor": "Intel VT-d",
        "root_table": {
            "address": tables.root_address,
            "mode": tables.mode,
            "source": source,
            "source_detail": source_detail,
        },
        "devices": [device_json(d) for d in devs],
        "domains": len(tables.domains),
        "unreadable_tables": [u.to_json() for u in tables.unreadable],
        "problems": list(tables.problems),
        "warnings": warnings,
    }


def render_iommu_text(obj: Dict[str, Any], max_extents: int = 8) -> str:
    rt = obj["root_table"]
    lines = [
        f"root table 0x{rt['address']:x} ({rt['mode']} mode), {SOURCE_TEXT.get(rt['source'], rt['source'])}"
        + (f": {rt['source_detail']}" if rt.get("source_detail") else ""),
    ]
    for w in obj.get("warnings", []):
        lines.append(f"warning: {w}")
    devs = obj["devices"]
    lines.append(f"{len(devs)} devices, {obj.get('domains', 0)} page tables (domains), "
                 f"{len(obj.get('unreadable_tables', []))} unreadable "
                 f"{'device/page' if obj.get('vendor') == 'AMD-Vi' else 'root/context'} table pages")
    for u in obj.get("unreadable_tables", []):
        lines.append(f"  unreadable: {u['what']} at 0x{u['paddr']:x} ({u['why']})")
    for p in obj.get("problems", []):
        lines.append(f"  problem: {p}")
    lines.append("")
    head = f"{'BDF':<13} {'P':1} {'TYPE':<13} {'AW':>3} {'DID':>5} {'PT_ROOT':>12} {'4K':>7} {'LARGE':>6} " \
           f"{'EXTENTS':>7} {'UNREAD':>6}"
    lines.append(head)
    for d in devs:
        lines.append(
            f"{d['bdf']:<13} {'y' if d['present'] else 'n'} {d['translation_type']:<13} "
            f"{d['address_width'] if d['address_width'] is not None else '-':>3} "
            f"{d['domain_id'] if d['domain_id'] is not None else '-':>5} "
            f"{('0x{:x}'.format(d['pt_root'])) if d['pt_root'] is not None else '-':>12} "
            f"{d['mapped_4k_pages']:>7} {d['mapped_large_pages']:>6} {len(d['extents']):>7} "
            f"{len(d['unreadable_tables']):>6}"
        )
    for d in devs:
        for p in d.get("other_pasids", []):
            lines.append(f"{d['bdf']:<13}   PASID {p['pasid']}: {p['translation_type']}, domain {p['domain_id']}, "
                         f"page table {('0x{:x}'.format(p['pt_root'])) if p['pt_root'] is not None else '-'}, "
                         f"{p['mapped_4k_pages']} 4K + {p['mapped_large_pages']} large pages, "
                         f"{len(p['extents'])} extents")
    shown = set()
    for d in devs:
        key = (d["pt_root"], d["domain_id"])
        if not d["extents"] and not d["unreadable_tables"] and not d["problems"]:
            continue
        if key in shown:
            continue
        shown.add(key)
        sharing = [x["bdf"] for x in devs if (x["pt_root"], x["domain_id"]) == key]
        lines.append("")
        lines.append(f"{', '.join(sharing)}: domain {d['domain_id']}, page table 0x{d['pt_root'] or 0:x}, "
                     f"{len(d['extents'])} extents")
        for x in d["extents"][:max_extents]:
            lines.append(f"  iova 0x{x['iova']:x}-0x{x['iova'] + x['size'] - 1:x} -> phys 0x{x['phys']:x}-"
                         f"0x{x['phys'] + x['size'] - 1:x} {human_size(x['size'])} {_rw(x['read'], x['write'])}")
        if len(d["extents"]) > max_extents:
            lines.append(f"  ... {len(d['extents']) - max_extents} more (--device {sharing[0]} or -f json for all)")
        for u in d["unreadable_tables"]:
            lines.append(f"  unreadable: {u['what']} at 0x{u['paddr']:x} ({u['why']})")
        for p in d["problems"]:
            lines.append(f"  problem: {p}")
    return "\n".join(lines) + "\n"


def faults_json(checks: List[FaultCheck], log: str, root: RootTable, warnings: List[str],
                unchecked: int = 0) -> Dict[str, Any]:
    """``vmcore iommu --faults``: each DMA fault of ``log`` looked up in ``root``'s tables;
    ``unchecked`` faults past MAX_FAULT_CHECKS were counted, not looked up (a warning says so)."""
    warns = list(warnings)
    if unchecked:
        from kdumptool.analysis.vtd_walk import MAX_FAULT_CHECKS  # not on `vmcore scan`'s path

        warns.append(f"faults truncated: {unchecked:,} faults past the first {MAX_FAULT_CHECKS} "
                     "distinct (device, address, access) were not looked up (MAX_FAULT_CHECKS)")
    return {
        "log": log,
        "faults": [{
            "bdf": c.bdf,
            "address": c.address,
            "access": c.access,
            "count": c.count,
            "first_line": c.first_line,
            "reason": c.reason,
            "mapped": c.lookup is not None and c.lookup.phys is not None,
            "phys": c.lookup.phys if c.lookup else None,
            "read": c.lookup.read if c.lookup else None,
            "write": c.lookup.write if c.lookup else None,
            "verdict": c.verdict,
        } for c in checks],
        "root_table": {"address": root.address, "mode": root.mode, "source": root.source,
                       "source_detail": root.detail},
        "warnings": warns,
        "unchecked_faults": unchecked,
    }


def render_faults_text(obj: Dict[str, Any]) -> str:
    rt = obj["root_table"]
    head = f"root table 0x{rt['address']:x} ({rt['mode']} mode), {SOURCE_TEXT.get(rt['source'], rt['source'])}"
    return faults_text(head, "DMA faults", obj)


def faults_text(head: str, what: str, obj: Dict[str, Any]) -> str:
    """A :func:`faults_json` object as text under ``head`` (the table the faults were looked
    up in): its warnings, then each fault group (``what``: the faults' name) with its verdict."""
    lines = [head] + [f"warning: {w}" for w in obj["warnings"]]
    lines.append(f"{what} in {obj['log']}, looked up in the crashed kernel's tables:")
    if not obj["faults"]:
        lines.append("  none")
    for f in obj["faults"]:
        lines.append(f"  {f['bdf']} {f['access'] or 'access?'} 0x{f['address']:x} (x{f['count']}, line "
                     f"{f['first_line']}{', ' + f['reason'] if f['reason'] else ''}): {f['verdict']}")
    return "\n".join(lines) + "\n"


def units_json(units: List[Dict[str, Any]], warnings: List[str]) -> Dict[str, Any]:
    """``vmcore iommu --all-units``: one :func:`iommu_json` per unit's root table."""
    return {"units": units, "warnings": warnings}


def render_units_text(obj: Dict[str, Any], max_extents: int = 8) -> str:
    return "".join([f"warning: {w}\n" for w in obj["warnings"]]
                   + ["\n".join(render_iommu_text(o, max_extents) for o in obj["units"])])


def render_iommu_rich(obj: Dict[str, Any]) -> Any:
    from rich.table import Table

    rt = obj["root_table"]
    t = Table(title=f"VT-d root table 0x{rt['address']:x} ({rt['mode']}), "
                    f"{SOURCE_TEXT.get(rt['source'], rt['source'])}")
    for col in ("BDF", "P", "type", "AW", "DID", "pt_root", "4K", "large", "extents", "unreadable"):
        t.add_column(col, justify="right" if col in ("AW", "DID", "4K", "large", "extents", "unreadable") else "left")
    for d in obj["devices"]:
        t.add_row(
            d["bdf"], "y" if d["present"] else "[red]n[/red]", d["translation_type"],
            str(d["address_width"] or "-"), str(d["domain_id"] if d["domain_id"] is not None else "-"),
            f"0x{d['pt_root']:x}" if d["pt_root"] is not None else "-",
            str(d["mapped_4k_pages"]), str(d["mapped_large_pages"]), str(len(d["extents"])),
            f"[red]{len(d['unreadable_tables'])}[/red]" if d["unreadable_tables"] else "0",
        )
    return [t] + [f"[yellow]warning:[/yellow] {w}" for w in obj.get("warnings", [])]


# --- --iova ----------------------------------------------------------------------------------


def lookup_json(r: IovaLookup, unit: str, source: str) -> Dict[str, Any]:
    return {
        "root_table": {"address": r.root_address, "mode": r.mode, "source": source},
        "unit": unit,
        "bdf": f"{r.bus:02x}:{r.devfn >> 3:02x}.{r.devfn & 7:x}",
        "iova": r.iova,
        "phys": r.phys,
        "page_size": r.page_size,
        "read": r.read,
        "write": r.write,
        "reason": r.reason,
        "steps": [{"name": s.name, "paddr": s.paddr, "values": list(s.values), "level": s.level} for s in r.steps],
    }


def render_lookup_text(obj: Dict[str, Any]) -> str:
    """Like the kernel's ``dmar_fault_dump_ptes`` (drivers/iommu/intel/iommu.c)."""
    lines = [f"Dump {obj['unit']} table entries for IOVA 0x{obj['iova']:x} (device [{obj['bdf']}])"]
    for s in obj["steps"]:
        v = s["values"]
        if s["name"] == "root entry":
            if obj["root_table"]["mode"] == "scalable":
                lines.append(f"scalable mode root entry: hi 0x{v[1]:016x}, low 0x{v[0]:016x}")
            else:
                lines.append(f"root entry: 0x{v[0]:016x}")
        elif s["name"] == "context entry":
            lines.append(f"context entry: hi 0x{v[1]:016x}, low 0x{v[0]:016x}")
        elif s["name"] == "pasid dir entry":
            lines.append(f"pasid dir entry: 0x{v[0]:016x}")
        elif s["name"] == "pasid table entry":
            for i, q in enumerate(v):
                lines.append(f"pasid table entry[{i}]: 0x{q:016x}")
        else:
            lines.append(f"pte level: {s['level']}, pte value: 0x{v[0]:016x}")
    lines.append(lookup_outcome(obj))
    return "\n".join(lines) + "\n"


def lookup_outcome(obj: Dict[str, Any]) -> str:
    """The last line of an IOVA lookup (VT-d and AMD-Vi alike): where it lands, or why not."""
    if obj["phys"] is not None:
        size = human_size(obj["page_size"]) if obj["page_size"] else "pass-through"
        return (f"=> phys 0x{obj['phys']:x} ({size} page), {'R' if obj['read'] else '-'}"
                f"{'W' if obj['write'] else '-'}")
    return f"=> no translation: {obj['reason']}"


# --- vmcore exposure ------------------------------------------------------------------------------


def exposure_json(ex: Exposure, tables: VtdTables, source: str, source_detail: str,
                  warnings: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"root_table": {"address": tables.root_address, "mode": tables.mode, "source": source,
                          "source_detail": source_detail}}
    out.update(ex.to_json())
    out["warnings"] = warnings
    return out


def render_exposure_text(obj: Dict[str, Any], max_ranges: int = 12) -> str:
    rt = obj["root_table"]
    t = obj["totals"]
    lines = [f"root table 0x{rt['address']:x} ({rt['mode']} mode), {SOURCE_TEXT.get(rt['source'], rt['source'])}"]
    for w in obj.get("warnings", []):
        lines.append(f"warning: {w}")
    nd = t["not_dumped_bytes"]
    wd = t["writable_dumped_bytes"]
    lines.append(f"DMA could reach {human_size(t['readable_bytes'])} by read and {human_size(t['writable_bytes'])} by write"
                 + (f"; {human_size(wd)} of the writable memory is in the dump (may have changed after the crash)"
                    if wd is not None else "")
                 + (f"; {human_size(nd)} reachable but not dumped" if nd is not None else ""))
    if t["passthrough_devices"]:
        lines.append(f"pass-through (all memory): {', '.join(t['passthrough_devices'])}")
    if t["incomplete"]:
        lines.append("incomplete: some table pages were unreadable or a walk stopped at a limit, the exposure "
                     "may be larger")
    lines.append("")
    lines.append(f"{'BDF':<13} {'DID':>5} {'READ':>10} {'WRITE':>10} {'NOT DUMPED':>10} {'RANGES':>6}")
    for d in obj["devices"]:
        lines.append(f"{d['bdf']:<13} {d['domain_id'] if d['domain_id'] is not None else '-':>5} "
                     f"{human_size(d['readable_bytes']):>10} {human_size(d['writable_bytes']):>10} "
                     f"{human_size(d['not_dumped_bytes']) if d['not_dumped_bytes'] is not None else '?':>10} "
                     f"{len(d['ranges']):>6}")
    lines.append("")
    lines.append(f"physical ranges reachable by DMA ({len(obj['union'])}):")
    for r in obj["union"][:max_ranges]:
        dumped = {True: "dumped", False: "NOT dumped", None: "partly dumped"}[r["dumped"]]
        span = f"0x{r['start']:x}-0x{r['end'] - 1:x}"
        lines.append(f"  {span:<25} {human_size(r['size']):>10} {_rw(r['read'], r['write'])} "
                     f"{dumped:<13} {', '.join(r.get('devices', []))}")
    if len(obj["union"]) > max_ranges:
        lines.append(f"  ... {len(obj['union']) - max_ranges} more (-f json for all)")
    return "\n".join(lines) + "\n"


# --- vmcore scan ---------------------------------------------------------------------------------------


def scan_json(res: ScanResult, truncated: bool, warnings: List[str]) -> Dict[str, Any]:
    """``vmcore scan``. ``incomplete`` when the dump is ``truncated`` or pages could not be
    read: a root table there would not have been found."""
    return {
        "candidates": [c.to_json() for c in res.candidates],
        "best": res.best.to_json() if res.best else None,
        "pages_scanned": res.pages_scanned,
        "bytes_scanned": res.bytes_scanned,
        "prefilter_passed": res.prefilter_passed,
        "unreadable_pages": res.unreadable_pages,
        "fast_path": res.fast_path,
        "skipped_raw_pages": res.skipped_raw_pages,
        "seconds": round(res.seconds, 3),
        "incomplete": truncated or res.unreadable_pages > 0,
        "warnings": list(warnings),
    }


def render_scan_text(obj: Dict[str, Any]) -> str:
    lines = [f"scanned {obj['pages_scanned']:,} pages ({human_size(obj['bytes_scanned'])}); "
             f"{obj['prefilter_passed']} passed the byte prefilter"]
    best = obj["best"]
    if best:
        lines.append(f"root table: 0x{best['address']:x} ({best['mode']} mode)")
    else:
        lines.append("no valid VT-d root table found")
    if obj.get("incomplete"):
        lines.append(f"INCOMPLETE: {obj['unreadable_pages']:,} pages could not be read (a root table "
                     "there would not be found)")
    lines += [f"warning: {w}" for w in obj.get("warnings", [])]
    lines.append("")
    lines.append(f"{'ADDRESS':>12} {'MODE':<9} {'VALID':<5} {'SCORE':>6} {'BUSES':>5} {'DEVICES':>7} {'PT_OK':>5}  WHY")
    for c in obj["candidates"]:
        why = "; ".join(c["violations"]) if c["violations"] else "; ".join(c["evidence"])
        lines.append(f"{'0x{:x}'.format(c['address']):>12} {c['mode']:<9} {'yes' if c['valid'] else 'no':<5} "
                     f"{c['score']:>6} {c['buses']:>5} {c['devices']:>7} {c['page_tables_ok']:>5}  {why}")
    return "\n".join(lines) + "\n"


def render_exposure_rich(obj: Dict[str, Any]) -> Any:
    from rich.table import Table

    t = obj["totals"]
    dev = Table(title="DMA exposure per device")
    for col in ("BDF", "DID", "read", "write", "not dumped", "ranges"):
        dev.add_column(col, justify="left" if col == "BDF" else "right")
    for d in obj["devices"]:
        dev.add_row(d["bdf"], str(d["domain_id"] if d["domain_id"] is not None else "-"), human_size(d["readable_bytes"]),
                    human_size(d["writable_bytes"]),
                    human_size(d["not_dumped_bytes"]) if d["not_dumped_bytes"] is not None else "?", str(len(d["ranges"])))
    rng = Table(title="physical ranges reachable by DMA")
    for col in ("range", "size", "rights", "dumped", "devices"):
        rng.add_column(col)
    for r in obj["union"]:
        dumped = {True: "dumped", False: "[red]NOT dumped[/red]", None: "[yellow]partly[/yellow]"}[r["dumped"]]
        rng.add_row(f"0x{r['start']:x}-0x{r['end'] - 1:x}", human_size(r["size"]), _rw(r["read"], r["write"]), dumped,
                    ", ".join(r.get("devices", [])))
    head = (f"DMA could reach {human_size(t['readable_bytes'])} by read and {human_size(t['writable_bytes'])} by write"
            + (f"; {human_size(t['not_dumped_bytes'])} reachable but not dumped" if t["not_dumped_bytes"] is not None else ""))
    rt = obj["root_table"]
    where = f"root table 0x{rt['address']:x} ({rt['mode']} mode), {SOURCE_TEXT.get(rt['source'], rt['source'])}"
    return [where, head, dev, rng] + [f"[yellow]warning:[/yellow] {w}" for w in obj.get("warnings", [])]


def render_scan_rich(obj: Dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"root-table candidates ({obj['pages_scanned']:,} pages scanned, "
                    f"{obj['prefilter_passed']} past the byte prefilter)")
    for col in ("address", "mode", "valid", "score", "buses", "devices", "pt ok", "why"):
        t.add_column(col, justify="right" if col in ("score", "buses", "devices", "pt ok") else "left")
    for c in obj["candidates"]:
        why = "; ".join(c["violations"]) if c["violations"] else "; ".join(c["evidence"])
        t.add_row(f"0x{c['address']:x}", c["mode"], "[green]yes[/green]" if c["valid"] else "no", str(c["score"]),
                  str(c["buses"]), str(c["devices"]), str(c["page_tables_ok"]), why)
    notes = [f"[yellow]warning:[/yellow] {w}" for w in obj.get("warnings", [])]
    if obj.get("incomplete"):
        notes.append(f"[red]INCOMPLETE:[/red] {obj['unreadable_pages']:,} pages could not be read")
    return [t] + notes if notes else t
