"""A small JSON Schema (draft 2020-12 subset) validator for the test tier, so it needs no
third-party package: type (one or a list), properties, required, additionalProperties
(bool or schema), items, enum, const, $ref to "#/$defs/..." or "common.schema.json#/$defs/...",
anyOf. tests/test_json_schema.py also runs the ``jsonschema`` package when it is installed,
as a cross-check of this one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class Validator:
    def __init__(self, schema_dir: Path) -> None:
        self.dir = schema_dir
        self.docs: Dict[str, Any] = {}

    def load(self, name: str) -> Any:
        if name not in self.docs:
            self.docs[name] = json.loads((self.dir / name).read_text())
        return self.docs[name]

    def errors(self, value: Any, schema: Any, doc: str, path: str = "$") -> List[str]:
        errs: List[str] = []
        if schema is True or schema == {}:
            return errs
        if "$ref" in schema:
            ref = schema["$ref"]
            file, _, frag = ref.partition("#")
            target_doc = file or doc
            target = self.load(target_doc)
            for part in frag.strip("/").split("/"):
                if part:
                    target = target[part]
            return self.errors(value, target, target_doc, path)
        if "anyOf" in schema:
            if all(self.errors(value, s, doc, path) for s in schema["anyOf"]):
                errs.append(f"{path}: matches none of anyOf")
            return errs
        t = schema.get("type")
        if t is not None:
            types = t if isinstance(t, list) else [t]
            if not any(_TYPES[x](value) for x in types):
                return [f"{path}: {type(value).__name__} is not {t}"]
        if "enum" in schema and value not in schema["enum"]:
            errs.append(f"{path}: {value!r} not in {schema['enum']}")
        if "const" in schema and value != schema["const"]:
            errs.append(f"{path}: {value!r} != {schema['const']!r}")
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for k in schema.get("required", []):
                if k not in value:
                    errs.append(f"{path}: missing {k!r}")
            extra = schema.get("additionalProperties", True)
            for k, v in value.items():
                if k in props:
                    errs += self.errors(v, props[k], doc, f"{path}.{k}")
                elif extra is False:
                    errs.append(f"{path}: unexpected key {k!r}")
                elif isinstance(extra, dict):
                    errs += self.errors(v, extra, doc, f"{path}.{k}")
        if isinstance(value, list) and "items" in schema:
            for i, v in enumerate(value):
                errs += self.errors(v, schema["items"], doc, f"{path}[{i}]")
        return errs
