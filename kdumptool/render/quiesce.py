"""``kdumptool quiesce``'s JSON: the plan (with lspci's names on each step when pci.ids is
at hand), the dump target, and the dry run's or the writes' result, built whole here from
the parts the command has (the plan and the result render themselves in actions/quiesce.py,
the dump target in sources/dumptarget.py: render may import neither). Shape:
docs/schema/quiesce.schema.json.

Kept light: the kdump initramfs runs ``quiesce`` (names stay off there: no pci.ids)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Tuple

from kdumptool.model.record import JsonObj

if TYPE_CHECKING:
    from kdumptool.model.system import System
    from kdumptool.render.names import Naming


def render_named_plan(plan: JsonObj, system: System, names: Optional[Naming]) -> Tuple[Dict[str, str], JsonObj]:
    """(bdf -> device title, the plan's JSON with name fields on each step); the plan as it
    is and no titles when ``names`` is None or has no pci.ids."""
    if names is None or names.names is None:
        return {}, plan
    titles: Dict[str, str] = {}
    steps = []
    for step in plan["steps"]:
        dev = system.devices.get(step["bdf"])
        if dev is None:
            steps.append(step)
            continue
        titles[step["bdf"]] = names.title(dev.vendor_id, dev.device_id, dev.class_code)
        steps.append({**step, **names.json(dev.vendor_id, dev.device_id, dev.class_code)})
    return titles, {**plan, "steps": steps}


def render_quiesce_json(plan: JsonObj, dump_target: JsonObj, result: Optional[JsonObj] = None) -> JsonObj:
    """``quiesce --plan`` (no ``result``), a dry run or ``--apply`` (the writes' result)."""
    out: JsonObj = {"plan": plan, "dump_target": dump_target}
    if result is not None:
        out["result"] = result
    return out


def render_quiesce_disabled_json(source: str) -> JsonObj:
    """``quiesce --if-enabled`` when kdumptool.quiesce is off: where that was said."""
    return {"enabled": False, "source": source}
