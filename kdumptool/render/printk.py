"""The crashed kernel's printk records as ``vmcore log`` prints them: JSON, and text the
way ``makedumpfile --dump-dmesg`` does (render/output.dump_dmesg_lines). Imports nothing
heavy: ``vmcore log`` is on the fast start-up path."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

    from kdumptool.formats.printk import PrintkLog


def printk_json(path: str, klog: PrintkLog, warnings: List[str]) -> Dict[str, Any]:
    """``complete`` is false when the decoder warned (the log is damaged or cut)."""
    return {"path": path, "kind": klog.kind, "records": [r.to_json() for r in klog.records],
            "complete": not klog.warnings, "warnings": warnings}


def render_printk_text(klog: PrintkLog) -> str:
    from kdumptool.render.output import dump_dmesg_lines

    return "\n".join(ln for r in klog.records for ln in dump_dmesg_lines(r.ts_nsec, r.text))
