"""``kdumptool install-integration``'s JSON: the prefix, dry run or not, what
:func:`kdumptool.actions.integration.run_install` decided (stacks, the kdumptool and Python
the hooks run, kdump-tools' dump folder) and each file written, kept or (dry run) with its
content."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from kdumptool.model.record import JsonObj


def render_integration_json(prefix: Path, dry_run: bool, meta: Mapping[str, object],
                            files: Sequence[JsonObj]) -> JsonObj:
    return {"prefix": str(prefix), "dry_run": dry_run, **meta, "files": list(files)}
