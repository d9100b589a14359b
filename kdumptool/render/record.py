"""``kdumptool record``'s report: the record file's JSON parts rendered from the system
model (:func:`unit_json`, :func:`master_json`) and its text form (:func:`render_record_text`)
rendered from the :class:`~kdumptool.model.record.RecordFile`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence

from kdumptool.model.record import RECORD_JSON, JsonObj, RecordFile, hex_or_none
from kdumptool.model.system import IommuUnit, PciDevice
from kdumptool.render.names import Naming


def unit_json(u: IommuUnit) -> Dict[str, Any]:
    """One VT-d unit of the record: its registers (hex strings) and what they say."""
    regs = u.registers
    entry: Dict[str, Any] = {"name": u.name, "address": hex_or_none(u.address), "read_error": u.read_error}
    if regs is not None:
        entry["registers"] = {k: hex_or_none(v) for k, v in sorted(regs.values.items())}
        entry["translation_enabled"] = regs.translation_enabled
        entry["interrupt_remapping_enabled"] = regs.ir_enabled
        entry["queued_invalidation_enabled"] = regs.qi_enabled
        entry["root_table"] = hex_or_none(regs.root_table)
        entry["mode"] = regs.mode
        entry["fault_status"] = regs.fsts_flags()
        entry["pending_faults"] = [
            {"source": f.source_bdf, "reason": f.reason, "address": hex_or_none(f.fault_info << 12),
             "write": f.type_write}
            for f in regs.pending_faults
        ]
    return entry


def master_json(d: PciDevice, names: Naming) -> Dict[str, Any]:
    """One device with Bus Master set."""
    return {
        "bdf": d.bdf, "vendor_id": hex_or_none(d.vendor_id), "device_id": hex_or_none(d.device_id),
        "class": f"0x{d.class_code:06x}", **names.json(d.vendor_id, d.device_id, d.class_code),
        "command": hex_or_none(d.command), "driver": d.driver,
        "upstream": list(d.upstream), "iommu_group": d.iommu_group, "kdump_risk": d.kdump_risk,
    }


def render_record_text(rec: RecordFile, plan_text: str, dest: Path, files: Sequence[str]) -> str:
    """``kdumptool-record.txt`` (and the command's text output)."""
    lines = [
        f"kdumptool record {rec.time} kernel {rec.kernel} "
        f"({'kdump kernel' if rec.in_kdump_kernel else 'running system'})",
    ]
    for ue in rec.units:
        if "registers" in ue:
            lines.append(
                f"{ue['name']} @ {ue['address']}: RTADDR {rec.rtaddr.get(ue['name'])} ({ue['mode']}), "
                f"translation {'on' if ue['translation_enabled'] else 'off'}, "
                f"faults pending {len(ue['pending_faults'])} {' '.join(ue['fault_status'])}".rstrip()
            )
        else:
            lines.append(f"{ue['name']} @ {ue['address']}: registers not read: {ue['read_error']}")
    boot = rec.boot_record
    if boot is not None:
        lines.append(f"boot record {boot.path} ({boot.time}): RTADDR {dict(boot.rtaddr)}")
    lines.append(f"bus masters: {len(rec.bus_masters)}")
    for m in rec.bus_masters:
        lines.append(f"  {m['bdf']} COMMAND {m['command']} driver {m['driver'] or '-'}"
                     f"{'  (no driver: DMA may continue)' if m['kdump_risk'] else ''}")
    lines.append(plan_text.rstrip("\n"))
    tri = rec.triage
    if isinstance(tri, dict) and tri.get("error"):
        lines.append(f"triage: not available: {tri['error']}")
    elif isinstance(tri, dict):
        lines.append(f"triage: {tri.get('verdict')}: {tri.get('headline')}")
    warns = list(rec.warnings)
    lines.extend(f"warning: {w}" for w in warns[:10])
    if len(warns) > 10:
        lines.append(f"warning: ... {len(warns) - 10} more in {RECORD_JSON}")
    snap_info = rec.snapshot
    if isinstance(snap_info, dict) and snap_info.get("why"):
        lines.append(f"warning: snapshot not saved: {snap_info['why']}")
    parts = ", ".join(f"{k} {v}" for k, v in rec.timings_s.items())
    lines.append(f"recorded in {rec.elapsed_s} s ({parts}) into {dest}: {', '.join(files)}")
    return "\n".join(lines) + "\n"


def render_record_json(dest: Path, report: JsonObj) -> JsonObj:
    """What ``record -f json`` prints: the folder written, then the record file's object."""
    return {"out": str(dest), **report}
