"""``vmcore scan``'s JSON and text: the VT-d root-table scan (render/vtd.py's shape, kept
as is for tools that read it) and the AMD-Vi device-table scan (analysis/amdscan.py), with
which IOMMU the evidence names and why.

JSON: render/vtd.scan_json's keys (``candidates``, ``best``, ``pages_scanned``... of the
VT-d scan; ``vtd_scanned`` false and empty when it did not run) plus ``vendor`` ("VT-d",
"AMD-Vi" or null: not known), ``vendor_evidence`` (texts), and ``amdvi``: null when the
AMD-Vi scan did not run, else {``candidates`` [{address, size, entries, last_valid_devid,
valid, score, valid_entries, blocked_entries, translated_entries, passthrough_entries,
domains, page_tables_ok, irq_tables, guest_translation_entries, violations, evidence}],
``best``, ``pages_scanned``, ``bytes_scanned``, ``prefilter_passed``, ``unreadable_pages``,
``above_4g_bytes``, ``runs``, ``fast_path``, ``seconds``, ``saved`` [{unit, address, size,
kernel ("first" or "kdump"), candidate (1-based rank, or null), same_size_as_best}],
``log_evidence`` [texts]}. ``incomplete`` covers both.
Cheap to import (``vmcore scan`` starts fast: bench/bench_ratios.py).
"""

from __future__ import annotations

from kdumptool.render import vtd as rv
from kdumptool.render.output import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

    from kdumptool.analysis.amdscan import DevTableScan
    from kdumptool.analysis.rtscan import ScanResult


def amd_scan_json(res: DevTableScan, saved: Sequence[Tuple[str, int, int]] = (),
                  log_evidence: Sequence[str] = (), saved_kernel: str = "first") -> Dict[str, Any]:
    """``saved``: (unit, base, size) of saved Device Table Base registers, read in the
    ``saved_kernel`` ("first": before the crash, the table the scan should find; "kdump":
    the kdump kernel's own copy, in crashkernel memory outside the dump, of the size the
    crashed kernel's table had, since the kernel copies only a table of its own size)."""
    ranks = {c.address: i + 1 for i, c in enumerate(res.candidates)}
    best = res.best
    return {
        "candidates": [c.to_json() for c in res.candidates],
        "best": res.best.to_json() if res.best else None,
        "pages_scanned": res.pages_scanned,
        "bytes_scanned": res.bytes_scanned,
        "prefilter_passed": res.prefilter_passed,
        "unreadable_pages": res.unreadable_pages,
        "above_4g_bytes": res.above_4g_bytes,
        "runs": res.runs,
        "fast_path": res.fast_path,
        "seconds": round(res.seconds, 3),
        "saved": [{"unit": u, "address": a, "size": s, "kernel": saved_kernel,
                   "candidate": ranks.get(a) if saved_kernel == "first" else None,
                   "same_size_as_best": (best.size == s) if best is not None else None} for u, a, s in saved],
        "log_evidence": list(log_evidence),
    }


def scan_json(vtd: Optional[ScanResult], amd: Optional[Dict[str, Any]], truncated: bool, warnings: List[str],
              vendor: Optional[str], vendor_evidence: Sequence[str]) -> Dict[str, Any]:
    """The whole ``vmcore scan`` document (``amd``: :func:`amd_scan_json` or None)."""
    if vtd is not None:
        obj = rv.scan_json(vtd, truncated, warnings)
    else:
        obj = {"candidates": [], "best": None, "pages_scanned": 0, "bytes_scanned": 0, "prefilter_passed": 0,
               "unreadable_pages": 0, "fast_path": False, "skipped_raw_pages": 0, "seconds": 0.0,
               "incomplete": truncated, "warnings": list(warnings)}
    obj["vtd_scanned"] = vtd is not None
    obj["vendor"] = vendor
    obj["vendor_evidence"] = list(vendor_evidence)
    obj["amdvi"] = amd
    if amd is not None and amd["unreadable_pages"]:
        obj["incomplete"] = True
    return obj


def render_amd_scan_text(a: Dict[str, Any]) -> str:
    lines = [f"AMD-Vi device tables: scanned {a['pages_scanned']:,} pages below 4 GiB "
             f"({human_size(a['bytes_scanned'])}; {human_size(a['above_4g_bytes'])} above 4 GiB not scanned: "
             f"Linux never allocates the table there); {a['prefilter_passed']} passed the byte prefilter, "
             f"{a['runs']} run(s) of device-table pages"]
    best = a["best"]
    if best:
        lines.append(f"device table: 0x{best['address']:x} ({human_size(best['size'])}, {best['entries']} entries; "
                     f"{best['translated_entries']} translated, {best['passthrough_entries']} pass-through, "
                     f"{best['domains']} domain(s))")
    else:
        lines.append("no valid AMD-Vi device table found")
    for s in a["saved"]:
        if s["kernel"] == "kdump":
            size = {True: "the same size as the device table found", False: "NOT the size of the device table found",
                    None: "no device table found to compare"}[s["same_size_as_best"]]
            lines.append(f"saved Device Table Base {s['unit']} of the kdump kernel: 0x{s['address']:x} "
                         f"({human_size(s['size'])}): its own copy, outside the dump; {size} (the kernel copies "
                         "only a table of its own size)")
            continue
        where = f"= candidate {s['candidate']}" if s["candidate"] else "NOT among the candidates"
        lines.append(f"saved Device Table Base {s['unit']}: 0x{s['address']:x} ({human_size(s['size'])}) {where}")
    lines += [f"log: {e}" for e in a["log_evidence"]]
    if a["unreadable_pages"]:
        lines.append(f"INCOMPLETE: {a['unreadable_pages']:,} pages below 4 GiB could not be read (a device table "
                     "there would not be found)")
    lines.append("")
    lines.append(f"{'ADDRESS':>12} {'SIZE':>8} {'VALID':<5} {'SCORE':>6} {'ENTRIES':>7} {'XLATED':>6} {'PT_OK':>5} "
                 f"{'DOMS':>4}  WHY")
    for c in a["candidates"]:
        why = "; ".join(c["violations"]) if c["violations"] else "; ".join(c["evidence"])
        lines.append(f"{'0x{:x}'.format(c['address']):>12} {human_size(c['size']):>8} "
                     f"{'yes' if c['valid'] else 'no':<5} {c['score']:>6} {c['valid_entries']:>7} "
                     f"{c['translated_entries']:>6} {c['page_tables_ok']:>5} {c['domains']:>4}  {why}")
    return "\n".join(lines) + "\n"


def render_scan_text(obj: Dict[str, Any]) -> str:
    head = []
    # VT-d's text stays as it was (tools and tests read its first line); JSON has the vendor
    if obj.get("vendor") == "VT-d":
        pass
    elif obj.get("vendor"):
        head.append(f"IOMMU: {obj['vendor']} ({'; '.join(obj['vendor_evidence'])})")
    elif obj.get("vendor_evidence"):
        head.append(f"IOMMU: not known ({'; '.join(obj['vendor_evidence'])}): both scans run")
    parts = ["\n".join(head) + "\n"] if head else []
    if obj["vtd_scanned"]:
        parts.append(rv.render_scan_text(obj))
    elif obj["warnings"]:
        parts.append("".join(f"warning: {w}\n" for w in obj["warnings"]))
    if obj.get("amdvi") is not None:
        parts.append(render_amd_scan_text(obj["amdvi"]))
    return "\n".join(parts)


def render_scan_rich(obj: Dict[str, Any]) -> Any:
    from rich.text import Text

    out: List[Any] = []
    if obj.get("vendor") and obj["vendor"] != "VT-d":
        out.append(Text(f"IOMMU: {obj['vendor']} ({'; '.join(obj['vendor_evidence'])})"))
    if obj["vtd_scanned"]:
        r = rv.render_scan_rich(obj)
        out.extend(r if isinstance(r, list) else [r])
    if obj.get("amdvi") is not None:
        out.append(Text(render_amd_scan_text(obj["amdvi"])))
    return out
