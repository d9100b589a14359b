#!/usr/bin/env python3
"""Draft docs/schema/<name>.schema.json from the JSON every case of tests/schema_cases.py
prints (run from the checkout: ``PYTHONPATH=. python3 tools/gen_schema.py``).

Types are merged over all samples; a key is required when every sample has it; objects
keyed by data (PCI addresses, unit names, numbers, paths) become ``additionalProperties``;
every ``findings`` array and ``evidence`` item points at common.schema.json. The drafts are
then read and kept in git: the test validates every output against them, so a change of
shape shows up as a failing test and a schema diff."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kdumptool.cli.main import main  # noqa: E402
from tests.schema_cases import cases  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "schema"
DATA_KEY = re.compile(r"^([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$|^\d+$|^dmar\d+$|^/|^0x[0-9a-f]+$|^[A-Z_]+$")
FINDING = {"$ref": "common.schema.json#/$defs/finding"}


def tname(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def infer(samples: List[Any], key: str = "") -> Dict[str, Any]:
    if key == "findings":
        return {"type": "array", "items": FINDING}
    types = sorted({tname(s) for s in samples})
    if "number" in types and "integer" in types:
        types.remove("integer")
    out: Dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    objs = [s for s in samples if isinstance(s, dict)]
    if objs:
        keys = set().union(*objs)
        if keys and all(DATA_KEY.match(k) for k in keys) and len(keys) > 1:
            out["additionalProperties"] = infer([v for o in objs for v in o.values()])
        else:
            order: List[str] = []
            for o in objs:
                order += [k for k in o if k not in order]
            out["properties"] = {k: infer([o[k] for o in objs if k in o], k) for k in order}
            req = [k for k in order if all(k in o for o in objs)]
            if req:
                out["required"] = req
    arrs = [s for s in samples if isinstance(s, list)]
    items = [v for a in arrs for v in a]
    if arrs and items:
        out["items"] = infer(items)
    return out


def run(argv: List[str]) -> Any:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv + ["-f", "json"])
        except SystemExit:
            pass
    return json.loads(buf.getvalue())


def main_() -> int:
    by: Dict[str, List[Any]] = {}
    for name, argv in cases():
        by.setdefault(name, []).append(run(argv))
    for name, docs in sorted(by.items()):
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://kdumptool/schema/{name}.schema.json",
                  "title": f"kdumptool {name.replace('-', ' ')} -f json",
                  **infer(docs)}
        schema["properties"]["schema_version"] = {"const": 1}
        (OUT / f"{name}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
        print(f"{name}: {len(docs)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
