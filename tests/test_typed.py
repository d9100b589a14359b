"""Modules that once read records duck-typed (``Any`` parameters, ``getattr``/``hasattr``
probes, analysis/log.py's ``_get(obj, *names)``) and now take the model's real records: this
test fails when one of those comes back, so a stand-in object in a test cannot quietly
stand for a record again. mypy checks the types, and pyproject.toml forbids an explicit
``Any`` in these modules (disallow_any_explicit); this also catches the probes.

JSON objects are ``kdumptool.model.record.JsonObj``: the one named place where values are
of any type.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import List

import pytest

PKG = Path(__file__).resolve().parent.parent / "kdumptool"
TYPED = (
    "actions/quiesce.py",
    "analysis/log.py",
    "render/collect.py",
    "render/grouping.py",
    "render/html.py",
    "render/integration.py",
    "render/pci.py",
    "render/quiesce.py",
    "sources/memmap.py",
)
DUCK_CALLS = ("getattr", "hasattr", "_get")


def duck_typing(source: str) -> List[str]:
    """Each use of ``Any`` and each getattr/hasattr/_get call, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "Any":
            found.append(f"{node.lineno}: Any")
        elif isinstance(node, ast.Attribute) and node.attr == "Any":
            found.append(f"{node.lineno}: .Any")
        elif isinstance(node, ast.alias) and node.name == "Any":
            found.append(f"{getattr(node, 'lineno', 0)}: import Any")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DUCK_CALLS:
            found.append(f"{node.lineno}: {node.func.id}()")
        elif isinstance(node, ast.Constant) and node.value == "Any":
            found.append(f"{node.lineno}: 'Any' in a string annotation")
    return found


@pytest.mark.parametrize("rel", TYPED)
def test_no_duck_typing_comes_back(rel: str) -> None:
    assert duck_typing((PKG / rel).read_text()) == [], rel


def test_the_check_sees_what_it_forbids() -> None:
    # each form once: an import, an annotation, a string annotation, the probes
    src = ("from typing import Any\nimport typing\n"
           "def f(x: Any, y: 'Any', z: typing.Any) -> None:\n"
           "    getattr(x, 'a', None); hasattr(x, 'b'); _get(x, 'c')\n")
    found = duck_typing(src)
    assert [f.split(": ")[1] for f in found].count("Any") == 1
    assert {"import Any", ".Any", "'Any' in a string annotation", "getattr()", "hasattr()", "_get()"} <= {
        f.split(": ")[1] for f in found}
