"""``--format html``: one self-contained page to attach to a support case.

Built from the same records as the text and JSON renderers (a :class:`TriageReport`, the
:class:`System` it was read from, a :class:`MemoryMap`; or ``vmcore exposure``'s JSON
object), with ``html.escape`` and string building: no template engine, no script, no
external stylesheet, font or image. The CSS and the SVG memory map are inline, so the page
reads the same offline, in a mail client's viewer or printed.

Every value that came from the system (device and driver names, log lines, file names,
command lines) passes through :func:`_e`: control characters become visible escapes
(``\\x1b``), then ``& < > " '`` become entities, so a crafted log line or device name can
neither run script nor break the page's structure. Nothing in the page depends on the time
it was made (goldens diff it).
"""

from __future__ import annotations

import html
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from kdumptool.analysis.triage import RISK_FAULTS, TriageReport
from kdumptool.model.finding import Finding
from kdumptool.model.memmap import DeviceReach, Layer, MemoryMap, Ranges
from kdumptool.model.record import JsonObj
from kdumptool.model.system import PciDevice, System
from kdumptool.render.escape import escape_control
from kdumptool.render.grouping import (
    class_counts,
    group_devices,
    group_findings,
    rank_devices,
    short_bdf,
)
from kdumptool.render.names import NUMERIC, Naming
from kdumptool.render.output import human_size
from kdumptool.render.triage import kernel_state_rows

#: a device address -> its class name (for "3 Ethernet controller")
ClassOf = Callable[[str], Optional[str]]

_VERDICT_WORD = {"ok": "OK", "nothing": "NOTHING TO TRIAGE", "warning": "WARNING", "error": "AT RISK"}

CSS = """
:root{--err:#b3261e;--warn:#8a5a00;--info:#1f5f8b;--ok:#1e6b30;--line:#d0d4d9;--muted:#5b6470}
*{box-sizing:border-box}
svg{max-width:100%;height:auto}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1b1f24;
 margin:0 auto;max-width:1180px;padding:16px 20px 40px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid var(--line);
 padding-bottom:4px}h3{font-size:15px;margin:0}
code,pre,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-all;margin:4px 0;background:#f5f6f8;padding:6px 8px;border-radius:4px}
.verdict{border-radius:8px;padding:14px 18px;color:#fff}
.v-error{background:var(--err)}.v-warning{background:#c77700}.v-ok,.v-nothing{background:var(--ok)}
.verdict p{margin:4px 0}.verdict .exit{opacity:.85;font-size:13px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid var(--line);padding:4px 8px;
 text-align:left;vertical-align:top}th{background:#f1f3f5;font-weight:600}
table.kv th{width:150px;background:none}
.finding{border-left:5px solid var(--line);padding:6px 10px;margin:8px 0;background:#fbfbfc}
.sev-error{border-color:var(--err)}.sev-warning{border-color:#d08a00}.sev-info{border-color:var(--info)}
.badge{display:inline-block;font-size:11.5px;font-weight:700;border-radius:3px;padding:1px 6px;color:#fff;
 margin-right:6px;vertical-align:1px}
.b-error{background:var(--err)}.b-warning{background:#c77700}.b-info{background:var(--info)}
.fid{font-family:"DejaVu Sans Mono",Menlo,monospace;font-weight:700}a.fid{color:inherit}
#findings-overview td{padding:3px 8px}#findings-overview .fid{white-space:nowrap}
.remedy{margin:6px 0 2px;padding:4px 8px;background:#eef7ef;border-radius:4px}
.remedy::before{content:"Remedy: ";font-weight:700;color:var(--ok)}
details>summary{cursor:pointer;color:var(--muted)}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:18px}ul.tree{padding-left:0}
ul.tree li{margin:1px 0;position:relative}
ul.tree ul>li::before{content:"";position:absolute;left:-12px;top:0;bottom:50%;width:9px;
 border-left:1px solid #aab;border-bottom:1px solid #aab}
.dev .bdf{font-family:"DejaVu Sans Mono",Menlo,monospace;font-weight:600}
.dev.risky>.node{background:#fde8e6;border:1px solid var(--err);border-radius:4px;padding:0 4px}
.dev.bridge-risky>.node{background:#fff4d6;border:1px solid #d08a00;border-radius:4px;padding:0 4px}
.tag{font-size:11.5px;font-weight:700;border-radius:3px;padding:0 5px;margin-left:6px;color:#fff}
.tag.risk{background:var(--err)}.tag.above{background:#c77700}
.muted{color:var(--muted)}.small{font-size:12.5px}
svg text{font-family:"DejaVu Sans",Arial,sans-serif}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;
 vertical-align:-1px;margin-right:4px;border:1px solid #0003}
footer{margin-top:30px;color:var(--muted);font-size:12px}
@media print{.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""

#: fill colours of the map (legend and SVG share them)
_FILL = {"ram": "#9ecae1", "crashkernel": "#f28e2b", "dumped": "#2ca25f", "read": "#6a51a3",
         "write": "#d62728", "all": "#d62728", "unknown": "#c7c9cc"}


def _e(value: object) -> str:
    """Text from anywhere, safe in element content and in quoted attributes."""
    return html.escape(escape_control("" if value is None else str(value)), quote=True)


def _page(title: str, body: Iterable[str]) -> str:
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        # nothing may be fetched: no script, style or image from anywhere but this file
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">\n",
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        *body,
        "</body>\n</html>\n",
    ])


def _hex(n: int) -> str:
    return f"0x{n:x}"


# --- the SVG memory map ------------------------------------------------------------------------

_W, _LABEL, _ROW, _GAP, _TOP = 940, 250, 20, 8, 30


def _spans(ranges: Sequence[Tuple[int, int]], end: int, width: float) -> List[Tuple[float, float, int, int, int, int]]:
    """Ranges as pixel spans (x0, x1, first start, last end, count, bytes), ranges closer
    than a pixel merged, every span at least one pixel wide (a 4 KiB page in 1 TiB shows)."""
    out: List[Tuple[float, float, int, int, int, int]] = []
    for s, e in ranges:
        x0 = s * width / end
        x1 = max(e * width / end, x0 + 1.0)
        if out and x0 <= out[-1][1] + 0.5:
            lx0, lx1, first, _, count, size = out[-1]
            out[-1] = (lx0, max(lx1, x1), first, e, count + 1, size + e - s)
        else:
            out.append((x0, x1, s, e, 1, e - s))
    return out


def _ticks(end: int) -> List[int]:
    """About eight round addresses across [0, end]."""
    step = 1 << 20
    while end / step > 8:
        step *= 2
    return list(range(0, end + 1, step))


def _rect_row(ranges: Sequence[Tuple[int, int]], end: int, y: float, fill: str, cls: str, what: str) -> List[str]:
    width = _W - _LABEL
    out = []
    for x0, x1, s, e, n, size in _spans(ranges, end, width):
        tip = f"{what}: {_hex(s)}-{_hex(e - 1)}" + (f" ({n} ranges, {human_size(size)})" if n > 1 else f" ({human_size(size)})")
        out.append(f'<rect class="seg {cls}" x="{_LABEL + x0:.2f}" y="{y:.1f}" width="{x1 - x0:.2f}" height="{_ROW}" '
                   f'fill="{fill}" data-start="{_hex(s)}" data-end="{_hex(e)}"><title>{_e(tip)}</title></rect>')
    return out


def _layer_row(layer: Layer, key: str, fill: str, end: int, y: float) -> List[str]:
    width = _W - _LABEL
    out = [f'<g class="row layer" id="map-{key}" data-layer="{key}" data-known="{"no" if layer.ranges is None else "yes"}">',
           f'<text x="{_LABEL - 8}" y="{y + 14:.1f}" text-anchor="end" font-size="12">{_e(layer.name)}</text>',
           f'<rect class="track" x="{_LABEL}" y="{y:.1f}" width="{width}" height="{_ROW}" fill="#f3f4f6" stroke="#d0d4d9"/>']
    if layer.ranges is None:
        out.append(f'<rect class="seg unknown" x="{_LABEL}" y="{y:.1f}" width="{width}" height="{_ROW}" '
                   f'fill="url(#hatch)"><title>{_e(layer.basis)}</title></rect>')
        out.append(f'<text x="{_LABEL + 8}" y="{y + 14:.1f}" font-size="11" fill="#444">unknown</text>')
    elif not layer.ranges:
        out.append(f'<text x="{_LABEL + 8}" y="{y + 14:.1f}" font-size="11" fill="#444">none</text>')
    else:
        out += _rect_row(layer.ranges, end, y, fill, key, layer.name)
    out.append("</g>")
    return out


def _device_row(d: DeviceReach, end: int, y: float, name: str, bdfs: Sequence[str] = ()) -> List[str]:
    width = _W - _LABEL
    cls = "row device" + (" risky" if d.risky else "")
    bold = ' font-weight="700" fill="#b3261e"' if d.risky else ""
    group = f' data-bdfs="{_e(" ".join(bdfs))}" data-count="{len(bdfs)}"' if len(bdfs) > 1 else ""
    out = [f'<g class="{cls}" data-bdf="{_e(d.bdf)}" data-kind="{_e(d.kind)}"{group}>',
           f'<text x="{_LABEL - 8}" y="{y + 14:.1f}" text-anchor="end" font-size="12"{bold}>{_e(name)}</text>',
           f'<rect class="track" x="{_LABEL}" y="{y:.1f}" width="{width}" height="{_ROW}" fill="#f3f4f6" stroke="#d0d4d9"/>']
    if d.ranges is None:
        out.append(f'<rect class="seg unknown" x="{_LABEL}" y="{y:.1f}" width="{width}" height="{_ROW}" '
                   f'fill="url(#hatch)"><title>{_e(d.basis)}</title></rect>')
        out.append(f'<text x="{_LABEL + 8}" y="{y + 14:.1f}" font-size="11" fill="#444">unknown: {_e(d.basis[:90])}</text>')
    elif d.kind in ("passthrough", "untranslated"):
        out.append(f'<rect class="seg all" x="{_LABEL}" y="{y:.1f}" width="{width}" height="{_ROW}" '
                   f'fill="url(#allmem)" data-start="0x0" data-end="{_hex(end)}"><title>{_e(d.bdf)}: {_e(d.basis)}</title></rect>')
        out.append(f'<text x="{_LABEL + 8}" y="{y + 14:.1f}" font-size="11" font-weight="700" fill="#fff">'
                   f'{"pass-through" if d.kind == "passthrough" else "no translation"}: all of memory</text>')
    elif not d.ranges:
        out.append(f'<text x="{_LABEL + 8}" y="{y + 14:.1f}" font-size="11" fill="#444">nothing mapped</text>')
    else:
        ro = _subtract(d.ranges, d.writable or ())
        out += _rect_row(ro, end, y, _FILL["read"], "read", f"{d.bdf} read")
        out += _rect_row(d.writable or (), end, y, _FILL["write"], "write", f"{d.bdf} read/write")
    out.append("</g>")
    return out


def _subtract(a: Sequence[Tuple[int, int]], b: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    j = 0
    for s, e in a:
        pos = s
        while j < len(b) and b[j][1] <= pos:
            j += 1
        k = j
        while k < len(b) and b[k][0] < e:
            if b[k][0] > pos:
                out.append((pos, b[k][0]))
            pos = max(pos, b[k][1])
            k += 1
        if pos < e:
            out.append((pos, e))
    return out


#: More device rows than this and devices with the same reach share a row (a 600-device
#: server without its vmcore would otherwise draw hundreds of identical hatched rows).
MAX_DEVICE_ROWS = 24


def device_rows(m: MemoryMap) -> List[Tuple[DeviceReach, List[str]]]:
    """The map's device rows: one per device, or, past MAX_DEVICE_ROWS, one per distinct
    reach (kind, ranges, basis) with every device that has it (risky if any is)."""
    if len(m.devices) <= MAX_DEVICE_ROWS:
        return [(d, [d.bdf]) for d in m.devices]
    groups: Dict[Tuple[str, Optional[Ranges], Optional[Ranges], str], List[DeviceReach]] = {}
    for d in m.devices:
        groups.setdefault((d.kind, d.ranges, d.writable, d.basis), []).append(d)
    out = []
    for members in groups.values():
        first = members[0]
        if any(x.risky for x in members) and not first.risky:
            import dataclasses

            first = dataclasses.replace(first, risky=True)
        out.append((first, [x.bdf for x in members]))
    return out


def _row_name(bdfs: Sequence[str], names: Dict[str, str]) -> str:
    if len(bdfs) == 1:
        return names.get(bdfs[0]) or short_bdf(bdfs[0])
    return f"{len(bdfs)} devices ({short_bdf(bdfs[0])}...)"


def render_memory_svg(m: MemoryMap, names: Optional[Dict[str, str]] = None) -> str:
    """The map as one inline SVG: a row per layer (RAM, crashkernel, dump) and per device
    (or group of devices with the same reach, :func:`device_rows`)."""
    names = names or {}
    end = max(m.end, 1)
    dev_rows = device_rows(m)
    rows = 3 + len(dev_rows)
    height = _TOP + rows * (_ROW + _GAP) + 10
    width = _W - _LABEL
    out = [f'<svg id="memory-svg" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
           f'viewBox="0 0 {_W} {height}" role="img" aria-label="physical memory map" data-end="{_hex(end)}">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
           '<rect width="6" height="6" fill="#e6e7ea"/><line x1="0" y1="0" x2="0" y2="6" stroke="#a9adb3" stroke-width="2"/>'
           '</pattern><pattern id="allmem" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
           f'<rect width="8" height="8" fill="{_FILL["all"]}"/><line x1="0" y1="0" x2="0" y2="8" stroke="#8b1a1a" '
           'stroke-width="3"/></pattern></defs>']
    for t in _ticks(end):
        x = _LABEL + t * width / end
        out.append(f'<line x1="{x:.2f}" y1="{_TOP - 6}" x2="{x:.2f}" y2="{height - 6}" stroke="#e1e3e6"/>')
        out.append(f'<text x="{x:.2f}" y="{_TOP - 10}" font-size="10" text-anchor="middle" fill="#5b6470">'
                   f'{_e(human_size(t) if t else "0")}</text>')
    y = float(_TOP)
    for layer, key, fill in ((m.ram, "ram", _FILL["ram"]), (m.crashkernel, "crashkernel", _FILL["crashkernel"]),
                             (m.dumped, "dumped", _FILL["dumped"])):
        out += _layer_row(layer, key, fill, end, y)
        y += _ROW + _GAP
    for d, bdfs in dev_rows:
        out += _device_row(d, end, y, _row_name(bdfs, names), bdfs)
        y += _ROW + _GAP
    out.append("</svg>")
    return "\n".join(out)


def _bytes(ranges: Optional[Sequence[Tuple[int, int]]]) -> str:
    if ranges is None:
        return "unknown"
    return f"{human_size(sum(e - s for s, e in ranges))} in {len(ranges):,} range(s)"


def _memory_section(m: MemoryMap, names: Dict[str, str]) -> List[str]:
    out = ['<section id="memory-map"><h2>Physical memory</h2>',
           '<p class="small muted">Physical addresses 0 to ' + _e(_hex(m.end)) + " (" + _e(human_size(m.end))
           + "). Each row is one source of facts; a hatched row is not known from the evidence given "
             "(the table below says why). Pass-through or untranslated devices reach all of memory.</p>",
           '<p class="legend small">'
           + "".join(f'<span><i class="sw" style="background:{c}"></i>{_e(t)}</span>' for t, c in (
               ("RAM", _FILL["ram"]), ("crashkernel reservation", _FILL["crashkernel"]), ("in the dump", _FILL["dumped"]),
               ("DMA read-only", _FILL["read"]), ("DMA read/write", _FILL["write"]), ("unknown", _FILL["unknown"])))
           + "</p>",
           render_memory_svg(m, names),
           '<table class="small" id="memory-table"><tr><th>row</th><th>extent</th><th>from</th></tr>']
    for layer, key in ((m.ram, "ram"), (m.crashkernel, "crashkernel"), (m.dumped, "dumped")):
        spans = ", ".join(f"{_hex(s)}-{_hex(e - 1)}" for s, e in (layer.ranges or ())[:6])
        more = len(layer.ranges or ()) - 6
        out.append(f'<tr data-layer="{key}"><td>{_e(layer.name)}</td><td>{_e(_bytes(layer.ranges))}'
                   + (f'<br><span class="mono">{_e(spans)}{_e(f" (+{more} more)") if more > 0 else ""}</span>' if spans else "")
                   + f"</td><td>{_e(layer.basis)}</td></tr>")
    for d, bdfs in device_rows(m):
        if d.ranges is None:
            ext = "unknown"
        elif d.kind in ("passthrough", "untranslated"):
            ext = "all of memory"
        else:
            ext = f"{_bytes(d.ranges)}; writable {human_size(sum(e - s for s, e in d.writable or ()))}"
        dumped = {True: "all in the dump", False: "none of it in the dump", None: ""}[d.dumped] if m.dumped.ranges is not None else ""
        rcls, tag = (' class="risky"', ' <span class="tag risk">risky</span>') if d.risky else ("", "")
        who = short_bdf(d.bdf) if len(bdfs) == 1 else f"{len(bdfs)} devices: " + ", ".join(short_bdf(b) for b in bdfs)
        out.append(f'<tr data-bdf="{_e(d.bdf)}"{rcls}><td class="mono">{_e(who)}{tag}</td><td>{_e(ext)}'
                   f'{"<br>" + _e(dumped) if dumped else ""}</td><td>{_e(d.basis)}</td></tr>')
    out.append("</table>")
    for n in m.notes:
        out.append(f'<p class="small"><b>note:</b> {_e(n)}</p>')
    out.append("</section>")
    return out


# --- triage ---------------------------------------------------------------------------------------


def _evidence(f: Finding, open_: bool) -> str:
    ev = list(f.evidence)
    if not ev:
        return ""
    lines = "\n".join(str(e) for e in ev)
    return (f'<details class="evidence"{" open" if open_ else ""}><summary>evidence ({len(ev)} line'
            f'{"s" if len(ev) != 1 else ""})</summary><pre>{_e(lines)}</pre></details>')


def _finding(f: Finding, open_: bool, anchor: str = "") -> str:
    devs = (f'<p class="small">devices: <span class="mono">{_e(", ".join(short_bdf(b) for b in f.devices))}</span></p>'
            if f.devices else "")
    ident = f' id="{anchor}"' if anchor else ""
    return (f'<article{ident} class="finding sev-{_e(f.severity)}" data-finding-id="{_e(f.id)}" data-severity="{_e(f.severity)}">'
            f'<h3><span class="badge b-{_e(f.severity)}">{_e(f.severity.upper())}</span><span class="fid">{_e(f.id)}</span></h3>'
            f'<p>{_e(f.title)}</p>{devs}{_evidence(f, open_)}'
            + (f'<p class="remedy">{_e(f.remedy)}</p>' if f.remedy else "") + "</article>")


def _group_what(group: Sequence[Finding], class_of: ClassOf) -> str:
    bdfs = group_devices(group)
    classes = class_counts(bdfs, class_of)
    return f"{len(bdfs)} devices" + (f" ({classes})" if classes else "") if bdfs else f"{len(group)} findings"


def _findings_overview(r: TriageReport, class_of: ClassOf) -> List[str]:
    """One row per finding (or group of one kind and cause), linked to its details below."""
    counts = {k: sum(1 for f in r.findings if f.severity == k) for k in ("error", "warning", "info")}
    out = [f'<section id="overview"><h2>Findings: {counts["error"]} error, {counts["warning"]} warning, '
           f'{counts["info"]} info</h2>']
    if not r.findings:
        out.append("<p>No findings.</p></section>")
        return out
    out.append('<table class="small" id="findings-overview"><tr><th></th><th>finding</th><th>what</th><th>devices</th></tr>')
    for n, group in enumerate(group_findings(r.findings)):
        f = group[0]
        what = f.title if len(group) == 1 else f"{_group_what(group, class_of)}; e.g. {f.title}"
        devs = group_devices(group)
        shown = ", ".join(short_bdf(b) for b in devs[:6]) + (f" +{len(devs) - 6}" if len(devs) > 6 else "")
        out.append(f'<tr data-finding-id="{_e(f.id)}"><td><span class="badge b-{_e(f.severity)}">{_e(f.severity.upper())}'
                   f'</span></td><td><a class="fid" href="#g-{n}">{_e(f.id)}</a>'
                   + (f" &times;{len(group)}" if len(group) > 1 else "")
                   + f'</td><td>{_e(what)}</td><td class="mono">{_e(shown)}</td></tr>')
    out.append("</table></section>")
    return out


def _findings_section(r: TriageReport, class_of: ClassOf) -> List[str]:
    out = ['<section id="findings"><h2>Findings in detail: evidence and remedy</h2>']
    if not r.findings:
        out.append("<p>No findings.</p>")
    for n, group in enumerate(group_findings(r.findings)):
        f = group[0]
        if len(group) == 1:
            out.append(_finding(f, f.severity == "error", f"g-{n}"))
            continue
        what = _group_what(group, class_of)
        out.append(f'<section id="g-{n}" class="finding-group sev-{_e(f.severity)}" data-finding-id="{_e(f.id)}" data-count="{len(group)}">'
                   f'<h3><span class="badge b-{_e(f.severity)}">{_e(f.severity.upper())}</span><span class="fid">'
                   f'{_e(f.id)}</span> &times;{len(group)}: {_e(what)}</h3>'
                   + (f'<p class="remedy">{_e(f.remedy)}</p>' if f.remedy else "")
                   + f"<details><summary>every finding of this group ({len(group)})</summary>"
                   + "".join(_finding(g, False) for g in group) + "</details></section>")
    out.append("</section>")
    return out


def _summary(r: TriageReport, crash: Sequence[Tuple[str, str]] = ()) -> List[str]:
    s = r.scenario
    rows: List[Tuple[str, str]] = [("source", r.source)] + list(crash) + kernel_state_rows(r)
    if s.kernel_row is not None:
        rows.append(("kernel row", f"{s.kernel_row.id} ({s.kernel_row.versions}; {s.kernel_basis})"))
    if r.kdump_cmdline is not None:
        rows.append(("kdump cmdline", f"{r.kdump_cmdline} ({r.kdump_cmdline_basis})"))
    if r.crashed_tables is not None:
        t = r.crashed_tables
        if t.mode == "v1":  # AMD-Vi (analysis/crashed.py decode_amdvi_tables)
            what = (f"AMD-Vi device table {_hex(t.root_address)}, v1 page tables, "
                    f"{sum(1 for d in t.devices if d.present)} translating or pass-through entries")
        else:
            what = (f"root table {_hex(t.root_address)}, {t.mode} mode, "
                    f"{sum(1 for d in t.devices if d.present)} present context entries")
        rows.append(("crashed kernel's tables", f"{what}; found by {t.found_by}"))
    mono = ' class="mono"'
    return ['<section id="summary"><h2>Summary</h2><table class="kv">'] + [
        f'<tr><th>{_e(k)}</th><td{mono if k in ("kdump cmdline", "source", "dump", "panic") else ""}>{_e(v)}</td></tr>'
        for k, v in rows] + ["</table></section>"]


def _title(naming: Naming, d: PciDevice) -> str:
    return naming.title(d.vendor_id, d.device_id, d.class_code)


def _pci_section(system: Optional[System], r: TriageReport, naming: Naming) -> List[str]:
    out = ['<section id="pci-tree"><h2>PCI devices</h2>']
    if system is None or not system.devices:
        out.append("<p>No PCI devices were read.</p></section>")
        return out
    risky = {d.bdf: d for d in r.devices}
    above: Dict[str, List[str]] = {}
    for d in r.devices:
        for b in d.upstream:
            above.setdefault(b, []).append(d.bdf)
    out.append('<p class="small"><span class="tag risk">RISK</span> a device at risk (its reasons follow); '
               '<span class="tag above">ABOVE RISK</span> a bridge a risky device\'s DMA passes through (disabling it '
               f'first turns that DMA into errors). {len(system.devices)} devices, {len(risky)} at risk.</p>')
    children: Dict[Optional[str], List[str]] = {}
    for bdf, pd in system.devices.items():
        parent = pd.upstream[0] if pd.upstream and pd.upstream[0] in system.devices else None
        children.setdefault(parent, []).append(bdf)

    def node(bdf: str, depth: int) -> List[str]:
        d = system.devices[bdf]
        cls = "dev" + (" risky" if bdf in risky else "") + (" bridge-risky" if bdf in above else "") + (
            " bridge" if d.is_bridge else "")
        drv = (d.driver or "-") if d.driver_known else "unknown"
        bits = [f'<span class="bdf">{_e(d.short_bdf)}</span> {_e(_title(naming, d))}',
                f'<span class="muted small"> driver={_e(drv)}'
                f' BusMaster{"+" if d.bus_master else "-"}'
                + (f" group {d.iommu_group}" if d.iommu_group is not None else "") + "</span>"]
        if bdf in risky:
            bits.append(f'<span class="tag risk">RISK</span> <span class="small">{_e("; ".join(risky[bdf].reasons))}</span>')
        if bdf in above:
            bits.append(f'<span class="tag above">ABOVE RISK</span> <span class="small">above '
                        f'{_e(", ".join(short_bdf(b) for b in above[bdf]))}</span>')
        li = [f'<li class="{cls}" data-bdf="{_e(bdf)}"><span class="node">{"".join(bits)}</span>']
        kids = sorted(children.get(bdf, ()))
        if kids and depth < 32:
            li.append("<ul>")
            for k in kids:
                li += node(k, depth + 1)
            li.append("</ul>")
        li.append("</li>")
        return li

    roots = sorted(children.get(None, ()))
    by_bus: Dict[str, List[str]] = {}
    for b in roots:
        by_bus.setdefault(b[:7], []).append(b)
    out.append('<ul class="tree">')
    for bus, members in sorted(by_bus.items()):
        out.append(f'<li class="root"><span class="node mono">[{_e(bus)}]</span><ul>')
        for b in members:
            out += node(b, 0)
        out.append("</ul></li>")
    out.append("</ul></section>")
    return out


def _risky_section(r: TriageReport, naming: Naming) -> List[str]:
    if not r.devices:
        return []
    out = ['<section id="risky-devices"><h2>Risky devices, most dangerous first</h2><table class="small">'
           "<tr><th>device</th><th>upstream bridges</th><th>driver / modules</th><th>why</th></tr>"]
    for d in rank_devices(r.devices):
        try:
            v, dev = (int(x, 16) for x in d.ids.split(":"))
            title = naming.title(v, dev, d.class_code)
        except ValueError:
            title = f"[{d.ids}]"
        cls = "risky faults" if RISK_FAULTS in d.causes else "risky"
        out.append(f'<tr class="{cls}" data-bdf="{_e(d.bdf)}"><td><span class="mono">{_e(short_bdf(d.bdf))}</span> {_e(title)}</td>'
                   f'<td class="mono">{_e(" <- ".join(short_bdf(b) for b in d.upstream) or "-")}</td>'
                   f'<td>{_e(d.driver or "-")} / {_e(",".join(d.modules) or "-")}</td>'
                   f'<td>{"<br>".join(_e(x) for x in d.reasons)}</td></tr>')
    out.append("</table></section>")
    return out


def device_labels(system: Optional[System], naming: Naming, bdfs: Iterable[str], extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Row names of the map: ``00:02.0 e1000e`` (driver, else module, else class)."""
    out: Dict[str, str] = {}
    for b in bdfs:
        what = (extra or {}).get(b) or ""
        d = system.devices.get(b) if system is not None else None
        if not what and d is not None:
            what = d.driver or (naming.class_name(d.class_code) or "")
        out[b] = f"{short_bdf(b)} {what}".strip()[:38]
    return out


def render_triage_html(r: TriageReport, system: Optional[System], memory: Optional[MemoryMap],
                       naming: Naming = NUMERIC, version: str = "") -> str:
    by = system.devices if system is not None else {}

    def class_of(bdf: str) -> Optional[str]:
        d = by.get(bdf)
        return (naming.class_name(d.class_code) or f"class {d.class_code >> 8:04x}") if d is not None else None

    word = _VERDICT_WORD[r.verdict]
    body = [f'<header id="verdict" class="verdict v-{_e(r.verdict)}" data-verdict="{_e(r.verdict)}" data-exit="{r.exit_code}">'
            f'<h1>{_e(word)}</h1><p class="headline">{_e(r.headline)}</p>'
            f'<p class="exit">kdumptool triage: exit {r.exit_code} &middot; source <span class="mono">{_e(r.source)}</span></p>'
            "</header>"]
    body += _summary(r, memory.crash if memory is not None else ())
    body += _findings_overview(r, class_of)
    body += _pci_section(system, r, naming)
    if memory is not None:
        labels = device_labels(system, naming, [d.bdf for d in memory.devices], {d.bdf: d.label for d in memory.devices})
        body += _memory_section(memory, labels)
    body += _findings_section(r, class_of)
    body += _risky_section(r, naming)
    body.append(f"<footer>kdumptool {_e(version)} triage --format html. Self-contained: no script, no external "
                "resource. JSON with every field: <span class=\"mono\">kdumptool triage -f json</span>.</footer>\n")
    return _page(f"kdumptool triage: {word} - {r.source}", body)


# --- vmcore exposure ------------------------------------------------------------------------------


def render_exposure_html(obj: JsonObj, memory: MemoryMap, source: str, version: str = "") -> str:
    """``vmcore exposure``'s JSON object and the map of the same dump."""
    t = obj["totals"]
    rt = obj["root_table"]
    verdict = "warning" if (t["writable_bytes"] or t["passthrough_devices"]) else "ok"
    if t["incomplete"]:
        verdict = "warning"
    head = (f"DMA could reach {human_size(t['readable_bytes'])} by read and {human_size(t['writable_bytes'])} by write"
            + (f"; {human_size(t['writable_dumped_bytes'])} of the writable memory is in the dump (may have changed "
               "after the crash)" if t["writable_dumped_bytes"] is not None else "")
            + (f"; {human_size(t['not_dumped_bytes'])} reachable but not dumped" if t["not_dumped_bytes"] is not None else ""))
    body = [f'<header id="verdict" class="verdict v-{verdict}" data-verdict="{verdict}">'
            f'<h1>DMA exposure at the crash</h1><p class="headline">{_e(head)}</p>'
            f'<p class="exit">kdumptool vmcore exposure &middot; <span class="mono">{_e(source)}</span></p></header>',
            '<section id="summary"><h2>Summary</h2><table class="kv">',
            (f'<tr><th>device table</th><td>AMD-Vi device table {_e(_hex(rt["address"]))}, {_e(rt["source"])}: '
             if obj.get("vendor") == "AMD-Vi" else
             f'<tr><th>root table</th><td>{_e(_hex(rt["address"]))} ({_e(rt["mode"])} mode), {_e(rt["source"])}: ')
            + f'{_e(rt["source_detail"])}</td></tr>']
    body += [f'<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in memory.crash]
    if t["passthrough_devices"]:
        body.append(f'<tr><th>pass-through</th><td>{_e(", ".join(t["passthrough_devices"]))}: all of memory</td></tr>')
    if t["incomplete"]:
        body.append("<tr><th>incomplete</th><td>some table pages were unreadable or a walk stopped at a limit: the "
                    "exposure may be larger</td></tr>")
    body.append("</table>")
    for w in obj.get("warnings", []):
        body.append(f'<p class="small"><b>warning:</b> {_e(w)}</p>')
    body.append('</section><section id="devices"><h2>Per device</h2><table class="small"><tr><th>device</th><th>domain</th>'
                "<th>read</th><th>write</th><th>not dumped</th><th>ranges</th></tr>")
    for d in obj["devices"]:
        nd = human_size(d["not_dumped_bytes"]) if d["not_dumped_bytes"] is not None else "?"
        body.append(f'<tr data-bdf="{_e(d["bdf"])}"><td class="mono">{_e(d["bdf"])}</td><td>{_e(d["domain_id"])}</td>'
                    f'<td>{_e(human_size(d["readable_bytes"]))}</td><td>{_e(human_size(d["writable_bytes"]))}</td>'
                    f'<td>{_e(nd)}</td><td>{len(d["ranges"])}</td></tr>')
    body.append("</table></section>")
    body += _memory_section(memory, {d.bdf: short_bdf(d.bdf) for d in memory.devices})
    body.append('<section id="ranges"><h2>Physical ranges reachable by DMA</h2><table class="small mono">'
                "<tr><th>range</th><th>size</th><th>rights</th><th>dumped</th><th>devices</th></tr>")
    for r in obj["union"]:
        dumped = {True: "dumped", False: "NOT dumped", None: "partly dumped"}[r["dumped"]]
        rw = ("r" if r["read"] else "-") + ("w" if r["write"] else "-")
        body.append(f'<tr><td>{_e(_hex(r["start"]))}-{_e(_hex(r["end"] - 1))}</td><td>{_e(human_size(r["size"]))}</td>'
                    f'<td>{rw}</td><td>{dumped}</td><td>{_e(", ".join(r.get("devices", [])))}</td></tr>')
    body.append("</table></section>")
    body.append(f"<footer>kdumptool {_e(version)} vmcore exposure --format html. Self-contained: no script, no "
                "external resource.</footer>\n")
    return _page(f"kdumptool vmcore exposure - {source}", body)
