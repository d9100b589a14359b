"""Every command's JSON, on every fixture it applies to (tests/schema_cases.py), carries
``schema_version`` and validates against its JSON Schema in docs/schema/ - with the small
validator in tests/jsonschema_lite.py, and with the ``jsonschema`` package too when it is
installed. Every finding of every document has the one Finding shape
(docs/schema/common.schema.json)."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from kdumptool.render.output import SCHEMA_VERSION
from tests.cliutil import run
from tests.conftest import REPO
from tests.jsonschema_lite import Validator
from tests.schema_cases import cases

SCHEMAS = REPO / "docs" / "schema"
CASES = cases()
V = Validator(SCHEMAS)


def _findings(doc: Any) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "findings" and isinstance(v, list):
                out += v
            else:
                out += _findings(v)
    elif isinstance(doc, list):
        for v in doc:
            out += _findings(v)
    return out


@pytest.mark.parametrize("name,argv", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_output_validates(capsys: pytest.CaptureFixture, name: str, argv: List[str]) -> None:
    code, out, err = run(capsys, *argv, "-f", "json")
    assert code in (0, 3, 4), err
    doc = json.loads(out)
    assert doc["schema_version"] == SCHEMA_VERSION
    errs = V.errors(doc, V.load(f"{name}.schema.json"), f"{name}.schema.json")
    assert not errs, errs[:5]
    finding = V.load("common.schema.json")["$defs"]["finding"]
    for f in _findings(doc):
        assert not V.errors(f, finding, "common.schema.json"), f


def test_every_schema_is_used_and_catches_a_wrong_shape(capsys: pytest.CaptureFixture) -> None:
    names = {n for n, _ in CASES}
    files = {p.name[: -len(".schema.json")] for p in SCHEMAS.glob("*.schema.json")} - {"common"}
    assert names == files
    code, out, _ = run(capsys, "triage", "--root", str(REPO / "fixtures/snapshots/kdump_sm_mismatch"), "-f", "json")
    doc = json.loads(out)
    schema = V.load("triage.schema.json")
    assert not V.errors(doc, schema, "triage.schema.json")
    bad = json.loads(out)
    bad["findings"][0]["severity"] = "fatal"
    assert V.errors(bad, schema, "triage.schema.json")
    del bad["verdict"]
    assert any("verdict" in e for e in V.errors(bad, schema, "triage.schema.json"))


def test_jsonschema_package_agrees(capsys: pytest.CaptureFixture) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    resources = [(f"https://kdumptool/schema/{p.name}", referencing.Resource.from_contents(json.loads(p.read_text())))
                 for p in SCHEMAS.glob("*.schema.json")]
    registry = referencing.Registry().with_resources(resources)
    seen = set()
    for name, argv in CASES:
        if name in seen:
            continue
        seen.add(name)
        _, out, _ = run(capsys, *argv, "-f", "json")
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema, registry=registry).validate(json.loads(out))
