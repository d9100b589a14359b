"""``kdumptool collect``'s report: the snapshot written and what it holds, read back through
the system model (text), and the snapshot's ``collect.json`` metadata (JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from kdumptool.model.record import JsonObj
from kdumptool.model.system import System
from kdumptool.render.pci import no_vtd_reason


def render_collect_json(output: Path, meta: Mapping[str, object]) -> JsonObj:
    """Where the snapshot went, then its metadata (``collect.json``) as written."""
    return {"output": str(output), **meta}


def render_collect_text(output: Path, system: System, meta: Mapping[str, object]) -> str:
    """Counts of the snapshot read back, the no-VT-d note, every item not read, the notes."""
    lines = [
        f"Wrote {output}: {len(system.devices)} PCI devices, {len(system.groups)} IOMMU groups, "
        f"{len(system.units)} VT-d units."
    ]
    reason = no_vtd_reason(system)
    if reason:
        lines.append(f"Note: {reason}.")
    unread = meta.get("unreadable")
    if isinstance(unread, Mapping) and unread:
        lines.append(f"Could not read {len(unread)} item(s):")
        lines.extend(f"  {k}: {v}" for k, v in unread.items())
    notes = meta.get("notes")
    for n in notes if isinstance(notes, (list, tuple)) else ():
        lines.append(f"Note: {n}")
    return "\n".join(lines)
