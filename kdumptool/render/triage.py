"""Rendering a :class:`~kdumptool.analysis.triage.TriageReport`: plain text (stable, for
golden files), JSON, rich (verdict first, then findings, then the topology of the risky
devices) and the Prometheus textfile-collector format for node_exporter.
"""

from __future__ import annotations

from typing import Any, Dict, List

from kdumptool.analysis.triage import RISK_FAULTS, TriageReport
from kdumptool.model.finding import SEVERITY_RANK
from kdumptool.render.names import NUMERIC, Naming

_MARK = {"error": "ERROR", "warning": "WARN ", "info": "info "}
_VERDICT_VALUE = {"ok": 0, "nothing": 0, "warning": 1, "error": 2}
_VERDICT_WORD = {"ok": "OK", "nothing": "NOTHING TO TRIAGE", "warning": "WARNING", "error": "AT RISK"}


def _ids(d: Any) -> Any:
    v, _, dev = d.ids.partition(":")
    return int(v, 16), int(dev, 16)


def _device_title(d: Any, naming: Naming) -> str:
    """``Ethernet controller: Intel Corporation 82574L ... [8086:10d3]`` (``-n``: numbers)."""
    try:
        v, dev = _ids(d)
    except ValueError:
        return f"[{d.ids}]"
    return naming.title(v, dev, d.class_code)


def render_triage_json(r: TriageReport, naming: Naming = NUMERIC) -> Dict[str, Any]:
    doc = r.to_json()
    for dj, d in zip(doc.get("devices") or [], r.devices):
        try:
            v, dev = _ids(d)
        except ValueError:
            continue
        dj.update(naming.json(v, dev, d.class_code))
    return doc


def _state_line(label: str, st: Any) -> str:
    bits = [st.mode]
    if st.ir is not None:
        bits.append("IR on" if st.ir else "IR off")
    if st.x2apic is not None:
        bits.append("x2APIC" if st.x2apic else "xAPIC")
    return f"{label:<14}{', '.join(bits)} ({st.basis})"


def render_triage_text(r: TriageReport, naming: Naming = NUMERIC) -> str:
    s = r.scenario
    out: List[str] = []
    out.append(f"VERDICT: {_VERDICT_WORD[r.verdict]} (exit {r.exit_code})")
    out.append(r.headline)
    out.append("")
    out.append(f"source:       {r.source}")
    copies = [f"table copy: {s.table_copy}"] if s.table_copy else []
    if s.ir_copy:
        copies.append(f"IR table copy: {s.ir_copy}")
    out.append(f"scenario:     {s.case}" + (f" ({'; '.join(copies)})" if copies else ""))
    out.append(_state_line("first kernel:", s.first))
    out.append(_state_line("kdump kernel:", s.kdump))
    if s.kernel_row is not None:
        out.append(f"kernel row:   {s.kernel_row.id} ({s.kernel_row.versions}; {s.kernel_basis}): "
                   f"reads the old table's mode {s.kernel_row.reads_old_mode.split(':')[0]}")
    if r.kdump_cmdline is not None:
        out.append(f"kdump cmdline: {r.kdump_cmdline}")
        out.append(f"               ({r.kdump_cmdline_basis})")
    counts = {k: sum(1 for f in r.findings if f.severity == k) for k in ("error", "warning", "info")}
    out.append("")
    out.append(f"FINDINGS: {counts['error']} error, {counts['warning']} warning, {counts['info']} info")
    for f in r.findings:
        out.append(f"[{_MARK[f.severity]}] {f.id}: {f.title}")
        for e in f.evidence:
            out.append(f"    evidence: {e}")
        if f.remedy:
            out.append(f"    remedy:   {f.remedy}")
    if r.devices:
        out.append("")
        out.append("RISKY DEVICES (upstream bridges, nearest first):")
        for d in r.devices:
            chain = " <- ".join([d.bdf[5:] if d.bdf.startswith("0000:") else d.bdf] + [b[5:] for b in d.upstream])
            mods = ",".join(d.modules) or "-"
            out.append(f"  {chain}  {_device_title(d, naming)} driver={d.driver or '-'} modules={mods}")
            for reason in d.reasons:
                out.append(f"      - {reason}")
    return "\n".join(out) + "\n"


def render_triage_rich(r: TriageReport, naming: Naming = NUMERIC) -> List[Any]:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    colour = {"ok": "green", "nothing": "green", "warning": "yellow", "error": "red"}[r.verdict]
    s = r.scenario
    head = Text()
    head.append(f"{_VERDICT_WORD[r.verdict]}\n", style=f"bold {colour}")
    head.append(r.headline + "\n\n")
    head.append(_state_line("first kernel:", s.first) + "\n")
    head.append(_state_line("kdump kernel:", s.kdump))
    if s.kernel_row is not None:
        head.append(f"\nkernel row:   {s.kernel_row.id} ({s.kernel_row.versions})", style="dim")
    if r.kdump_cmdline is not None:
        head.append(f"\nkdump cmdline: {r.kdump_cmdline}", style="dim")
    parts: List[Any] = [Panel(head, title=f"kdumptool triage: {r.source}", border_style=colour)]
    sev_style = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    table = Table(show_lines=True, expand=True, title="Findings")
    table.add_column("sev", no_wrap=True)
    table.add_column("finding")
    table.add_column("evidence / remedy")
    for f in r.findings:
        ev = "\n".join(str(e) for e in f.evidence)
        body = Text(ev, style="dim")
        if f.remedy:
            body.append("\n→ " + f.remedy, style="green")
        table.add_row(Text(f.severity, style=sev_style[f.severity]), Text(f"{f.id}\n", style="bold") + Text(f.title), body)
    parts.append(table)
    if r.devices:
        tree = Tree("Risky devices (by upstream bridge)")
        nodes: Dict[str, Any] = {}
        for d in sorted(r.devices, key=lambda d: (len(d.upstream), d.bdf)):
            parent = tree
            for b in reversed(d.upstream):
                key = b
                if key not in nodes:
                    nodes[key] = parent.add(Text(f"bridge {b[5:]}", style="magenta"))
                parent = nodes[key]
            worst = "red" if RISK_FAULTS in d.causes else "yellow"
            parent.add(Text(f"{d.bdf[5:]} {_device_title(d, naming)} {d.driver or ','.join(d.modules) or '-'}: " + "; ".join(d.reasons), style=worst))
        parts.append(tree)
    return parts


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_triage_prometheus(r: TriageReport) -> str:
    """node_exporter textfile-collector metrics (``*.prom``)."""
    s = r.scenario
    lines = [
        "# HELP kdumptool_triage_verdict Triage verdict: 0 ok or nothing to triage, 1 warning, 2 error.",
        "# TYPE kdumptool_triage_verdict gauge",
        f'kdumptool_triage_verdict{{scenario="{s.case}"}} {_VERDICT_VALUE[r.verdict]}',
        "# HELP kdumptool_triage_findings Findings by severity.",
        "# TYPE kdumptool_triage_findings gauge",
    ]
    for sev in ("error", "warning", "info"):
        lines.append(f'kdumptool_triage_findings{{severity="{sev}"}} {sum(1 for f in r.findings if f.severity == sev)}')
    lines += [
        "# HELP kdumptool_triage_finding One series per finding (value: 2 error, 1 warning, 0 info).",
        "# TYPE kdumptool_triage_finding gauge",
    ]
    seen = set()
    for f in r.findings:
        key = (f.id, ",".join(f.devices))
        if key in seen:
            continue
        seen.add(key)
        dev = f',device="{_esc(",".join(d[5:] for d in f.devices))}"' if f.devices else ""
        lines.append(f'kdumptool_triage_finding{{id="{_esc(f.id)}",severity="{f.severity}"{dev}}} {SEVERITY_RANK[f.severity]}')
    def b(v: Any) -> str:
        return "NaN" if v is None else ("1" if v else "0")

    lines += [
        "# HELP kdumptool_vtd_translation VT-d DMA translation on (1) or off (0), per kernel; NaN unknown.",
        "# TYPE kdumptool_vtd_translation gauge",
        f'kdumptool_vtd_translation{{kernel="first"}} {b(s.first.vtd)}',
        f'kdumptool_vtd_translation{{kernel="kdump"}} {b(s.kdump.vtd)}',
        "# HELP kdumptool_vtd_scalable_mode VT-d scalable mode (1) or legacy (0), per kernel; NaN unknown.",
        "# TYPE kdumptool_vtd_scalable_mode gauge",
        f'kdumptool_vtd_scalable_mode{{kernel="first"}} {b(s.first.scalable)}',
        f'kdumptool_vtd_scalable_mode{{kernel="kdump"}} {b(s.kdump.scalable)}',
        "# HELP kdumptool_triage_risky_devices Devices at risk (driverless bus masters, RMRR, faulting).",
        "# TYPE kdumptool_triage_risky_devices gauge",
        f"kdumptool_triage_risky_devices {len(r.devices)}",
    ]
    return "\n".join(lines) + "\n"
