"""``kdumptool iommu``: VT-d units with decoded registers (translation and interrupt
remapping state, legacy or scalable mode, faults), and IOMMU groups with their devices and
reserved regions.

JSON shape (``render_iommu_json``)::

    {"source": str, "vtd": bool, "no_vtd_reason": str|null,
     "units": [{"name", "address", "segment", "include_pci_all", "version", "cap", "ecap",
                "read_error", "devices": [bdf],
                "registers": {NAME: int, "FRCD": [[lo, hi]]} | null,
                "decoded": {"translation_enabled", "root_table", "mode", "ir_enabled",
                            "irta", "irta_entries", "qi_enabled", "iq_address", "iq_head",
                            "iq_tail", "gsts": {TES: bool...}, "sagaw_levels", "mgaw",
                            "domains", "nfr", "fro", "ecap": {SMTS: bool...}, "pmr_enabled",
                            "fsts": [flag], "faults": [{"index", "source", "reason",
                            "address", "write", "pasid"}]} | null}],
     "groups": [{"number", "type", "devices": [bdf],
                 "reserved_regions": [{"start", "end", "type"}]}],
     "warnings": [str]}
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from kdumptool.formats.vtd_regs import CAP_BITS, ECAP_BITS, GSTS_BITS, VtdRegisters, gsts_words
from kdumptool.model.system import IommuUnit, System
from kdumptool.render.pci import no_vtd_reason


def _onoff(v: Optional[bool]) -> str:
    return "unknown" if v is None else ("enabled" if v else "disabled")


def _flags(raw: int, bits: Any) -> str:
    seen = set()
    words = []
    for b, n, _ in bits:
        if n in seen:
            continue
        seen.add(n)
        words.append(f"{n}{'+' if raw >> b & 1 else '-'}")
    return " ".join(words)


def unit_lines(u: IommuUnit) -> List[str]:
    head = f"{u.name} at {u.address:#x} (segment {u.segment}"
    if u.include_pci_all is not None:
        head += f", INCLUDE_PCI_ALL {'yes' if u.include_pci_all else 'no'}"
    head += ")"
    if u.version:
        head += f" version {u.version}"
    out = [head]
    r: Optional[VtdRegisters] = u.registers
    if r is None:
        out.append(f"  registers: not read ({u.read_error or 'unknown reason'})")
        if u.cap is not None:
            out.append(f"  CAP {u.cap:#018x} ECAP {u.ecap or 0:#018x} (from sysfs)")
    else:
        gsts = r.get("GSTS")
        mode = r.mode or "unknown"
        rt = r.root_table
        out.append(
            f"  DMA translation: {_onoff(r.translation_enabled)}; root table "
            f"{rt:#x} ({mode} mode, RTADDR {r.get('RTADDR') or 0:#x})" if rt is not None else
            f"  DMA translation: {_onoff(r.translation_enabled)}"
        )
        ir = f"  interrupt remapping: {_onoff(r.ir_enabled)}"
        if r.irta_address is not None:
            ir += f"; IRTA {r.irta_address:#x}, {r.irta_entries} entries, EIME{'+' if r.irta_eime else '-'}"
        out.append(ir)
        qi = f"  queued invalidation: {_onoff(r.qi_enabled)}"
        if r.iq_address is not None:
            qi += f"; IQA {r.iq_address:#x}, head {r.iq_head}, tail {r.iq_tail}"
        out.append(qi)
        if gsts is not None:
            out.append(f"  GSTS {gsts:#010x}: {' '.join(gsts_words(gsts))}")
        cap = r.cap
        if cap is not None:
            levels = "/".join(f"{lv}-level" for lv in cap.sagaw_levels) or "none"
            out.append(
                f"  CAP {cap.raw:#018x}: SAGAW {levels}, MGAW {cap.mgaw}, ND {cap.domains} domains, "
                f"NFR {cap.nfr} at {cap.fro:#x}; {_flags(cap.raw, CAP_BITS)}"
            )
        ecap = r.ecap
        if ecap is not None:
            out.append(f"  ECAP {ecap.raw:#018x}: {_flags(ecap.raw, ECAP_BITS)}")
        fsts = r.get("FSTS")
        if fsts is not None:
            flags = r.fsts_flags()
            out.append(f"  FSTS {fsts:#010x}: {' '.join(flags) if flags else 'no fault status'}")
        if r.pmr_enabled:
            out.append(f"  protected memory regions: enabled (PMEN {r.get('PMEN'):#010x}): DMA to them is blocked")
        pend = r.pending_faults
        out.append(f"  fault records: {len(r.frcd)} read, {len(pend)} pending")
        for f in pend:
            out.append(
                f"    FRCD{f.index}: {'write' if f.type_write else 'read'} from {f.source_bdf} "
                f"addr {f.fault_info:#x} reason {f.reason:#04x}"
                + (f" PASID {f.pasid:#x}" if f.pasid is not None else "")
            )
    shown = [d[5:] if d.startswith("0000:") else d for d in u.devices[:16]]
    more = f", ... {len(u.devices) - 16} more" if len(u.devices) > 16 else ""
    out.append(f"  devices: {len(u.devices)}" + (f" ({', '.join(shown)}{more})" if u.devices else ""))
    return out


def iommu_warnings(system: System) -> List[str]:
    """The system's warnings but a device's own (its config space reads): those belong to
    ``kdumptool pci``, which shows them with the device."""
    own = {w for d in system.devices.values() for w in d.warnings}
    return [w for w in system.warnings if w not in own]


def render_iommu_text(system: System) -> str:
    out: List[str] = []
    reason = no_vtd_reason(system)
    if reason:
        out.append(f"Note: {reason}.")
    else:
        out.append(f"VT-d units: {len(system.units)}")
    for u in system.units:
        out.extend(unit_lines(u))
    if system.groups:
        out.append(f"IOMMU groups: {len(system.groups)}")
        for g in system.groups.values():
            devs = " ".join(d[5:] if d.startswith("0000:") else d for d in g.devices)
            out.append(f"  group {g.number} ({g.type or 'type unknown'}): {devs}")
            for rr in g.reserved_regions:
                out.append(f"    reserved {rr.start:#x}-{rr.end:#x} {rr.type}")
    else:
        out.append("IOMMU groups: none (no IOMMU driver is active)")
    out += [f"warning: {w}" for w in iommu_warnings(system)]
    return "\n".join(out) + "\n"


def unit_json(u: IommuUnit) -> Dict[str, Any]:
    r: Optional[VtdRegisters] = u.registers
    decoded = None
    regs: Optional[Dict[str, Any]] = None
    if r is not None:
        regs = {**r.values, "FRCD": [[f.lo, f.hi] for f in r.frcd]}
        cap, ecap, gsts = r.cap, r.ecap, r.get("GSTS")
        decoded = {
            "translation_enabled": r.translation_enabled,
            "root_table": r.root_table,
            "mode": r.mode,
            "ir_enabled": r.ir_enabled,
            "irta": r.irta_address,
            "irta_entries": r.irta_entries,
            "qi_enabled": r.qi_enabled,
            "iq_address": r.iq_address,
            "iq_head": r.iq_head,
            "iq_tail": r.iq_tail,
            "gsts": {n: bool(gsts >> b & 1) for b, n, _ in GSTS_BITS} if gsts is not None else None,
            "sagaw_levels": list(cap.sagaw_levels) if cap else None,
            "mgaw": cap.mgaw if cap else None,
            "domains": cap.domains if cap else None,
            "nfr": cap.nfr if cap else None,
            "fro": cap.fro if cap else None,
            "ecap": {n: bool(ecap.raw >> b & 1) for b, n, _ in ECAP_BITS} if ecap else None,
            "fsts": r.fsts_flags(),
            "pmr_enabled": r.pmr_enabled,
            "faults": [
                {
                    "index": f.index,
                    "source": f.source_bdf,
                    "reason": f.reason,
                    "address": f.fault_info,
                    "write": f.type_write,
                    "pasid": f.pasid,
                }
                for f in r.pending_faults
            ],
        }
    return {
        "name": u.name,
        "address": u.address,
        "segment": u.segment,
        "include_pci_all": u.include_pci_all,
        "version": u.version,
        "cap": u.cap,
        "ecap": u.ecap,
        "read_error": u.read_error,
        "devices": list(u.devices),
        "registers": regs,
        "decoded": decoded,
    }


def render_iommu_json(system: System) -> Dict[str, Any]:
    return {
        "source": system.source,
        "vtd": system.has_vtd,
        "no_vtd_reason": no_vtd_reason(system),
        "units": [unit_json(u) for u in system.units],
        "groups": [
            {
                "number": g.number,
                "type": g.type,
                "devices": list(g.devices),
                "reserved_regions": [{"start": r.start, "end": r.end, "type": r.type} for r in g.reserved_regions],
            }
            for g in system.groups.values()
        ],
        "warnings": list(system.warnings),
    }


def render_iommu_rich(system: System) -> Any:
    """Units as panels, groups as a table."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: List[Any] = []
    reason = no_vtd_reason(system)
    if reason:
        parts.append(Text(f"Note: {reason}.", style="yellow"))
    for u in system.units:
        lines = unit_lines(u)
        r = u.registers
        style = "green" if r is not None and r.translation_enabled else "yellow"
        if r is not None and r.pending_faults:
            style = "red"
        parts.append(Panel("\n".join(x.strip() for x in lines[1:]), title=lines[0], border_style=style))
    if system.groups:
        table = Table(title="IOMMU groups")
        for col in ("group", "type", "devices", "reserved regions"):
            table.add_column(col)
        for g in system.groups.values():
            table.add_row(
                str(g.number),
                g.type or "?",
                " ".join(d[5:] if d.startswith("0000:") else d for d in g.devices),
                "\n".join(f"{rr.start:#x}-{rr.end:#x} {rr.type}" for rr in g.reserved_regions),
            )
        parts.append(table)
    else:
        parts.append(Text("IOMMU groups: none (no IOMMU driver is active)"))
    parts += [Text(f"warning: {w}", style="yellow") for w in iommu_warnings(system)]
    return Group(*parts)
