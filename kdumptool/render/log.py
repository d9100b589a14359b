"""Rendering a :class:`~kdumptool.analysis.log.LogReport`: plain text, rich, JSON."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from kdumptool.analysis.log import LogReport


def _ts(t: Optional[float]) -> str:
    return "" if t is None else f"[{t:.6f}]"


def _span(first: Optional[float], last: Optional[float]) -> str:
    if first is None:
        return ""
    if last is None or last == first:
        return f"at {first:.6f}s"
    return f"{first:.6f}s..{last:.6f}s"


def _head(source: str, lines: Optional[int]) -> str:
    return f"kernel log: {source}" + ("" if lines is None else f" ({lines} lines)")


def _wspan(first: Optional[str], last: Optional[str]) -> str:
    if first is None:
        return ""
    return f"at {first}" if last in (None, first) else f"{first} .. {last}"


def render_log_json(report: LogReport, source: str, lines: Optional[int] = None) -> Dict[str, Any]:
    out = report.to_json()
    out["summary"] = {"source": source, "lines": lines, **out["summary"]}
    return out


def render_log_text(report: LogReport, source: str, nlines: Optional[int] = None) -> str:
    """Stable plain text (no colour, no wall-clock of ours) for golden files."""
    lines: List[str] = [_head(source, nlines), report.verdict, ""]
    if report.boots > 1:
        lines[2:2] = [f"(the log holds {report.boots} boots; "
                      + ("only the last is summarised)" if report.last_boot_only else "all are summarised: --last-boot for the last)")]
    if report.markers:
        lines.append("kdump / IOMMU markers, in log order:")
        for m in report.markers:
            lines.append(f"  line {m.line:<6} {_ts(m.timestamp):<16} {m.kind:<22} {m.text}")
        lines.append("")
    if report.faults:
        lines.append("faults by device and reason:")
        for g in report.faults:
            info = report.devices.get(g.bdf) if g.bdf else None
            who = info.label() if info is not None else (g.bdf or "?")
            code = f"0x{g.reason_code:02x}" if g.reason_code is not None else "----"
            acc = []
            if g.reads:
                acc.append(f"{g.reads} read")
            if g.writes:
                acc.append(f"{g.writes} write")
            lines.append(
                f"  {who}: {g.kind} x{g.count} reason {code} {g.reason or '(not printed)'}"
                f"{' (' + ', '.join(acc) + ')' if acc else ''}"
            )
            where = f"lines {g.first_line}-{g.last_line}" if g.last_line != g.first_line else f"line {g.first_line}"
            span = _span(g.first_timestamp, g.last_timestamp)
            lines.append(f"      {where}{', ' + span if span else ''}")
            if g.addresses:
                lines.append("      addresses: " + " ".join(f"0x{a:x}" for a in g.addresses))
            if g.fault_indexes:
                lines.append("      IRTE indexes: " + " ".join(f"0x{a:x}" for a in g.fault_indexes))
            if g.pasids:
                lines.append("      PASIDs: " + " ".join(f"0x{a:x}" for a in g.pasids))
            if info is not None and info.known:
                extra = []
                if info.drhd is not None:
                    extra.append(f"DRHD 0x{info.drhd:x}" + (f" ({info.unit})" if info.unit else ""))
                if info.rmrrs:
                    extra.append("RMRR " + ", ".join(f"0x{a:x}-0x{b:x}" for a, b in info.rmrrs))
                if extra:
                    lines.append("      " + "; ".join(extra))
                if g.addresses and not g.address_notes:
                    lines.append("      no fault address is in an RMRR or reserved region of the device")
            for note in g.address_notes:
                lines.append(f"      {note}")
            for dump in g.table_dumps:
                lines.append(f"      kernel's table dump: {dump[0]}")
                lines.extend(f"        {d}" for d in dump[1:])
        lines.append("")
    if report.bursts:
        lines.append("bursts:")
        for b in report.bursts:
            where = f"lines {b.first_line}-{b.last_line}"
            span = _span(b.first_timestamp, b.last_timestamp) or _wspan(b.first_wallclock, b.last_wallclock)
            lines.append(
                f"  {where}{', ' + span if span else ''}: {b.count} printed, {b.suppressed} suppressed;"
                f" {', '.join(b.devices) or 'no device'}"
            )
        if report.bursts_omitted:
            lines.append(f"  ... {report.bursts_omitted} more bursts")
        lines.append("")
    if report.units:
        lines.append("IOMMU units:")
        for u in report.units:
            d = u.details
            lines.append(
                f"  {u.unit}: reg_base_addr 0x{d.get('reg_base_addr', 0):x} ver {d.get('ver')}"
                f" cap 0x{d.get('cap', 0):x} ecap 0x{d.get('ecap', 0):x}"
            )
        lines.append("")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    lines.append(f"events: {counts or 'none'}")
    if report.events_omitted:
        lines.append(f"({report.events_omitted} events not listed in JSON output)")
    for w in report.warnings[:20]:
        lines.append(f"warning: {w}")
    if len(report.warnings) > 20:
        lines.append(f"... {len(report.warnings) - 20} more warnings")
    return "\n".join(lines).rstrip() + "\n"


def render_log_rich(report: LogReport, source: str, nlines: Optional[int] = None) -> List[Any]:
    from rich.table import Table
    from rich.text import Text

    style = {"ok": "green", "warning": "yellow", "fault": "bold red"}.get(report.verdict_level, "")
    out: List[Any] = [Text(_head(source, nlines)), Text(report.verdict, style=style)]
    if report.markers:
        t = Table(title="kdump / IOMMU markers", show_lines=False)
        for col in ("line", "time", "kind", "message"):
            t.add_column(col)
        for m in report.markers:
            t.add_row(str(m.line), _ts(m.timestamp), m.kind, Text(m.text))
        out.append(t)
    if report.faults:
        t = Table(title="faults by device and reason")
        for col in ("device", "kind", "count", "reason", "lines", "addresses", "notes"):
            t.add_column(col)
        for g in report.faults:
            info = report.devices.get(g.bdf) if g.bdf else None
            t.add_row(
                Text(info.label() if info else (g.bdf or "?")),
                g.kind,
                str(g.count),
                Text((f"0x{g.reason_code:02x} " if g.reason_code is not None else "") + (g.reason or "")),
                f"{g.first_line}-{g.last_line}",
                " ".join(f"0x{a:x}" for a in g.addresses),
                Text("\n".join(g.address_notes)),
            )
        out.append(t)
    if report.bursts:
        t = Table(title="bursts")
        for col in ("lines", "time", "printed", "suppressed", "devices"):
            t.add_column(col)
        for b in report.bursts:
            t.add_row(f"{b.first_line}-{b.last_line}",
                      _span(b.first_timestamp, b.last_timestamp) or _wspan(b.first_wallclock, b.last_wallclock),
                      str(b.count), str(b.suppressed), ", ".join(b.devices))
        out.append(t)
    for w in report.warnings[:20]:
        out.append(Text(f"warning: {w}", style="yellow"))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    out.append(Text(f"events: {counts or 'none'}"))
    return out
