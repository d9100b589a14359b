"""Rendering a :class:`~kdumptool.analysis.triage.TriageReport`: plain text (stable, for
golden files), JSON, rich (verdict first, then findings, then the topology of the risky
devices) and the Prometheus textfile-collector format for node_exporter.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from kdumptool.analysis.scenario import KernelState
from kdumptool.analysis.triage import RISK_FAULTS, DeviceRisk, TriageReport
from kdumptool.model.finding import SEVERITY_RANK
from kdumptool.render.grouping import (
    EVIDENCE_SHOWN,
    RISKY_SHOWN,
    class_counts,
    device_list,
    group_devices,
    group_findings,
    rank_devices,
)
from kdumptool.render.names import NUMERIC, Naming

#: Evidence lines an error shows in the compact rich view (warnings and info: none, counted).
RICH_EVIDENCE = 3
_MARK = {"error": "ERROR", "warning": "WARN ", "info": "info "}
_VERDICT_VALUE = {"ok": 0, "nothing": 0, "warning": 1, "error": 2}
_VERDICT_WORD = {"ok": "OK", "nothing": "NOTHING TO TRIAGE", "warning": "WARNING", "error": "AT RISK"}


def _ids(d: DeviceRisk) -> Tuple[int, int]:
    v, _, dev = d.ids.partition(":")
    return int(v, 16), int(dev, 16)


def _class_lookup(r: TriageReport, naming: Naming) -> Any:
    """bdf -> class name (or class number with -n) of the risky devices the report names."""
    by = {d.bdf: d for d in r.devices}

    def class_of(bdf: str) -> Any:
        d = by.get(bdf)
        if d is None:
            return None
        return naming.class_name(d.class_code) or f"class {d.class_code >> 8:04x}"

    return class_of


def _device_title(d: DeviceRisk, naming: Naming) -> str:
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


def _state(st: KernelState, vendor: Optional[str], copy: Optional[str] = None) -> str:
    """One kernel's IOMMU state in the report's vendor's words (VT-d: DMA remapping,
    legacy/scalable mode, IR, x2APIC; AMD-Vi: translation on/off and the device-table copy)."""
    if vendor == "AMD-Vi":
        word = {True: "AMD-Vi on", False: "AMD-Vi off", None: "AMD-Vi unknown"}[st.vtd]
        if st.role == "kdump" and st.vtd and copy:
            word += {"copied": ", device table copied", "failed": ", device table copy failed",
                     "expected": ", device table copy expected"}.get(copy, f", device table copy {copy}")
        return f"{word} ({st.basis})"
    bits = [st.mode]
    if st.ir is not None:
        bits.append("IR on" if st.ir else "IR off")
    if st.x2apic is not None:
        bits.append("x2APIC" if st.x2apic else "xAPIC")
    return f"{', '.join(bits)} ({st.basis})"


def kernel_state_rows(r: TriageReport) -> List[Tuple[str, str]]:
    """(label, value): the scenario and both kernels' states, worded for the report's
    IOMMU (text, rich and html share them: no VT-d words on an AMD-Vi machine)."""
    s = r.scenario
    if r.vendor == "AMD-Vi":
        scen = f"{s.case} (AMD-Vi" + (f"; device table copy: {s.table_copy})" if s.table_copy else ")")
    else:
        copies = [f"table copy: {s.table_copy}"] if s.table_copy else []
        if s.ir_copy:
            copies.append(f"IR table copy: {s.ir_copy}")
        scen = s.case + (f" ({'; '.join(copies)})" if copies else "")
    return [("scenario", scen), ("first kernel", _state(s.first, r.vendor, s.table_copy)),
            ("kdump kernel", _state(s.kdump, r.vendor, s.table_copy))]


def render_triage_text(r: TriageReport, naming: Naming = NUMERIC, verbose: bool = False) -> str:
    """Plain text; findings of one kind and cause are grouped (one line each, ``verbose``:
    every finding with its evidence) and the risky devices ranked (``verbose``: all)."""
    s = r.scenario
    out: List[str] = []
    out.append(f"VERDICT: {_VERDICT_WORD[r.verdict]} (exit {r.exit_code})")
    out.append(r.headline)
    out.append("")
    out.append(f"source:       {r.source}")
    for label, value in kernel_state_rows(r):
        out.append(f"{label + ':':<14}{value}")
    if s.kernel_row is not None:
        out.append(f"kernel row:   {s.kernel_row.id} ({s.kernel_row.versions}; {s.kernel_basis}): "
                   f"reads the old table's mode {s.kernel_row.reads_old_mode.split(':')[0]}")
    if r.kdump_cmdline is not None:
        out.append(f"kdump cmdline: {r.kdump_cmdline}")
        out.append(f"               ({r.kdump_cmdline_basis})")
    counts = {k: sum(1 for f in r.findings if f.severity == k) for k in ("error", "warning", "info")}
    out.append("")
    out.append(f"FINDINGS: {counts['error']} error, {counts['warning']} warning, {counts['info']} info")
    class_of = _class_lookup(r, naming)
    for group in ([[f] for f in r.findings] if verbose else group_findings(r.findings)):
        f = group[0]
        if len(group) == 1:
            out.append(f"[{_MARK[f.severity]}] {f.id}: {f.title}")
            ev = list(f.evidence)
            shown_ev = ev if verbose else ev[:EVIDENCE_SHOWN]
            for e in shown_ev:
                out.append(f"    evidence: {e}")
            if len(shown_ev) < len(ev):
                out.append(f"    evidence: +{len(ev) - len(shown_ev)} more lines (-v or JSON for all)")
        else:
            bdfs = group_devices(group)
            classes = class_counts(bdfs, class_of)
            what = f"{len(bdfs)} devices" + (f" ({classes})" if classes else "") if bdfs else f"{len(group)} findings"
            out.append(f"[{_MARK[f.severity]}] {f.id} x{len(group)}: {what}; e.g. {f.title}")
            if bdfs:
                out.append(f"    devices:  {device_list(bdfs)}")
            out.append(f"    evidence: {sum(len(g.evidence) for g in group)} lines (-v shows them)")
        if f.remedy:
            out.append(f"    remedy:   {f.remedy}")
    if r.devices:
        ranked = rank_devices(r.devices)
        shown = ranked if verbose else ranked[:RISKY_SHOWN]
        out.append("")
        out.append("RISKY DEVICES, most dangerous first (upstream bridges, nearest first):")
        for d in shown:
            chain = " <- ".join([d.bdf[5:] if d.bdf.startswith("0000:") else d.bdf] + [b[5:] for b in d.upstream])
            mods = ",".join(d.modules) or "-"
            out.append(f"  {chain}  {_device_title(d, naming)} driver={d.driver or '-'} modules={mods}")
            for reason in d.reasons:
                out.append(f"      - {reason}")
        if len(shown) < len(ranked):
            out.append(f"  ... {len(ranked) - len(shown)} more ({class_counts([d.bdf for d in ranked[len(shown):]], class_of)}): -v or JSON for all")
    return "\n".join(out) + "\n"


def render_triage_rich(r: TriageReport, naming: Naming = NUMERIC, verbose: bool = False) -> List[Any]:
    from rich.panel import Panel
    from rich.text import Text
    from rich.tree import Tree

    colour = {"ok": "green", "nothing": "green", "warning": "yellow", "error": "red"}[r.verdict]
    s = r.scenario
    head = Text()
    head.append(f"{_VERDICT_WORD[r.verdict]}\n", style=f"bold {colour}")
    head.append(r.headline + "\n\n")
    head.append("\n".join(f"{label + ':':<14}{value}" for label, value in kernel_state_rows(r)[1:]))
    if s.kernel_row is not None:
        head.append(f"\nkernel row:   {s.kernel_row.id} ({s.kernel_row.versions})", style="dim")
    from rich.console import Group

    header: List[Any] = [head]
    if r.kdump_cmdline is not None:
        # one screen line (the whole line: -f text, -v)
        header.append(Text(f"kdump cmdline: {r.kdump_cmdline}", style="dim", no_wrap=not verbose, overflow="ellipsis"))
    parts: List[Any] = [Panel(Group(*header), title=f"kdumptool triage: {r.source}", border_style=colour)]
    sev_style = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    # compact unless verbose (one screen for a typical triage): one row per group of
    # findings (same kind, severity and remedy); errors show RICH_EVIDENCE evidence lines
    # and their whole remedy, warnings and info their remedy on one screen line (-v, -f
    # text and -f html have everything); the RISKY_SHOWN most dangerous devices, one line
    # each. Lines, not a table: a three-column table wraps every cell at 80 columns.
    lines: List[Any] = []
    class_of = _class_lookup(r, naming)
    for group in ([[f] for f in r.findings] if verbose else _kind_groups(r.findings)):
        f = group[0]
        head = Text(f"{f.severity:<7} ", style=sev_style[f.severity])
        ev: List[str] = []
        if len(group) == 1:
            head.append(f.id, style="bold")
            head.append(f": {f.title}")
            ev = [str(e) for e in f.evidence]
            keep = EVIDENCE_SHOWN if verbose else (RICH_EVIDENCE if f.severity == "error" else 0)
            if not verbose and len(ev) > keep:
                more = len(f.evidence) - keep
                if keep:
                    ev = ev[:keep] + [f"+{more} more evidence line{'s' if more != 1 else ''} (-v)"]
                else:
                    ev = []
                    head.append(f"  [{more} evidence line{'s' if more != 1 else ''}: -v]", style="dim")
        else:
            bdfs = group_devices(group)
            classes = class_counts(bdfs, class_of)
            head.append(f"{f.id} x{len(group)}", style="bold")
            head.append(f": {len(bdfs) or len(group)} " + ("devices" if bdfs else "findings")
                        + (f" ({classes})" if classes else "") + f"; e.g. {f.title}")
            head.append(f"  [{sum(len(g.evidence) for g in group)} evidence lines: -v]", style="dim")
        lines.append(head)
        # evidence one screen line each (cut at the edge; -f text or -v has it whole)
        lines.extend(Text(f"    {e}", style="dim", no_wrap=True, overflow="ellipsis") for e in ev)
        whole = verbose or f.severity == "error"
        remedies: Dict[str, List[str]] = {}
        for g in group:
            if g.remedy:
                remedies.setdefault(g.remedy, []).extend(g.devices)
        for remedy, devs in remedies.items():
            who = f"{device_list(devs, 3)}: " if len(remedies) > 1 and devs else ""
            lines.append(Text(f"    → {who}{remedy}", style="green", no_wrap=not whole, overflow="ellipsis"))
    parts.append(Panel(Group(*lines), title="Findings", border_style="dim") if r.findings else Text("No findings."))
    if r.devices:
        ranked = rank_devices(r.devices)
        shown = ranked if verbose else ranked[:RISKY_SHOWN]
        more = len(ranked) - len(shown)
        tree = Tree("Risky devices, most dangerous first (by upstream bridge)"
                    + (f"; {more} more: -v or JSON" if more else ""))
        nodes: Dict[str, Any] = {}
        for d in shown:
            parent = tree
            for b in reversed(d.upstream):
                key = b
                if key not in nodes:
                    nodes[key] = parent.add(Text(f"bridge {b[5:]}", style="magenta"))
                parent = nodes[key]
            worst = "red" if RISK_FAULTS in d.causes else "yellow"
            # what and why first: the name (long) last, cut at the screen's edge unless -v
            parent.add(Text(f"{d.bdf[5:]} {d.driver or ','.join(d.modules) or '-'}: " + "; ".join(d.reasons)
                            + f" - {_device_title(d, naming)}", style=worst, no_wrap=not verbose, overflow="ellipsis"))
        parts.append(tree)
    return parts


def _kind_groups(findings: Any) -> List[List[Any]]:
    """The compact rich view's groups: one per (id, severity), whatever the remedy (each
    distinct remedy is printed under it with the devices it is for)."""
    groups: Dict[Any, List[Any]] = {}
    for f in findings:
        groups.setdefault((f.id, f.severity), []).append(f)
    return list(groups.values())


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

    if r.vendor == "AMD-Vi":
        lines += [
            "# HELP kdumptool_amdvi_translation AMD-Vi DMA translation on (1) or off (0), per kernel; NaN unknown.",
            "# TYPE kdumptool_amdvi_translation gauge",
            f'kdumptool_amdvi_translation{{kernel="first"}} {b(s.first.vtd)}',
            f'kdumptool_amdvi_translation{{kernel="kdump"}} {b(s.kdump.vtd)}',
            "# HELP kdumptool_triage_risky_devices Devices at risk (driverless bus masters, faulting).",
            "# TYPE kdumptool_triage_risky_devices gauge",
            f"kdumptool_triage_risky_devices {len(r.devices)}",
        ]
        return "\n".join(lines) + "\n"
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
