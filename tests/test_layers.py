"""The layer rules of docs/CONTRIBUTING.md, read from the code (every import, including the
ones inside functions):

    formats <- model <- sources, analysis <- render, actions <- cli

- ``formats/`` imports only ``errors`` and other formats;
- ``model/`` imports formats and model only (records, no reading, no reasoning);
- ``sources/`` never imports ``analysis/`` (sources only read and return records);
- ``analysis/`` never imports sources, render, actions or cli (it is given records);
- ``render/`` and ``actions/`` never import cli, and not each other;
- no ``cli/`` module opens a file or parses a format itself (no ``formats`` import, no
  ``open()``/``read_text()``/``json.load()``...): it calls a source, an analysis and a
  renderer, and hands ``emit`` the JSON object a ``render/`` function built, never a dict
  of its own. (The list of exceptions this once had, CLI_DEBT, is empty and gone.)
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Set, Tuple

PKG = Path(__file__).resolve().parent.parent / "kdumptool"
LAYERS = ("formats", "model", "sources", "analysis", "render", "actions", "cli")

#: layer -> the layers it may import (besides itself and kdumptool.errors / __version__)
ALLOWED: Dict[str, Set[str]] = {
    "formats": set(),
    "model": {"formats"},
    "sources": {"formats", "model"},
    "analysis": {"formats", "model"},
    "render": {"formats", "model", "analysis"},
    "actions": {"formats", "model", "sources", "analysis"},
    "cli": {"formats", "model", "sources", "analysis", "render", "actions", "cli"},
}

FILE_CALLS = ("read_text", "read_bytes", "write_text", "write_bytes")
PARSE_CALLS = ("loads", "load")  # json.loads / json.load


def _modules() -> Iterator[Tuple[str, str, ast.Module]]:
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).as_posix()
        layer = rel.split("/", 1)[0] if "/" in rel else ""
        yield rel, layer, ast.parse(p.read_text(), rel)


def _imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kdumptool":
                for a in node.names:
                    yield f"kdumptool.{a.name}"
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name


def _layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "kdumptool" or len(parts) < 2:
        return ""
    return parts[1] if parts[1] in LAYERS else ""


def test_every_module_is_in_a_layer():
    odd = [rel for rel, layer, _ in _modules() if layer and layer not in LAYERS]
    assert not odd, odd


def test_imports_follow_the_layers():
    bad: List[str] = []
    for rel, layer, tree in _modules():
        if layer not in ALLOWED:
            continue
        for mod in _imports(tree):
            target = _layer_of(mod)
            if target and target != layer and target not in ALLOWED[layer]:
                bad.append(f"{rel} imports {mod} ({layer} may not import {target})")
    assert not bad, "\n".join(bad)


def test_no_source_imports_analysis():
    bad = [f"{rel}: {mod}" for rel, layer, tree in _modules() if layer == "sources"
           for mod in _imports(tree) if _layer_of(mod) == "analysis"]
    assert not bad, bad


def _cli_work(rel: str, tree: ast.Module) -> Set[Tuple[str, str]]:
    """What one cli module does that belongs to a source or a format."""
    found: Set[Tuple[str, str]] = set()
    for mod in _imports(tree):
        if _layer_of(mod) == "formats":
            found.add((rel, f"imports {mod}"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if _builds_json(node):
            found.add((rel, "builds a JSON object for emit() (a render_*_json function's work)"))
        if isinstance(f, ast.Name) and f.id == "open":
            found.add((rel, "calls open()"))
        elif isinstance(f, ast.Attribute):
            if f.attr in FILE_CALLS:
                found.add((rel, f"calls .{f.attr}()"))
            elif f.attr in PARSE_CALLS and isinstance(f.value, ast.Name) and f.value.id == "json":
                found.add((rel, f"calls json.{f.attr}()"))
    return found


def _builds_json(call: ast.Call) -> bool:
    """``emit(..., json_obj=lambda: {...})``: a dict literal, comprehension or dict() call
    handed to emit, instead of the object a render/ function builds whole."""
    for kw in call.keywords:
        if kw.arg == "json_obj" and isinstance(kw.value, ast.Lambda):
            body = kw.value.body
            return isinstance(body, (ast.Dict, ast.DictComp)) or (
                isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == "dict")
    return False


def _cli_findings(modules: Iterable[Tuple[str, str, ast.Module]]) -> Set[Tuple[str, str]]:
    return {w for rel, layer, tree in modules if layer == "cli" for w in _cli_work(rel, tree)}


def test_cli_neither_opens_files_nor_parses_formats():
    found = sorted(_cli_findings(_modules()))
    assert not found, "cli modules doing a source's, a format's or a renderer's work:\n" + "\n".join(f"{a}: {b}" for a, b in found)


def test_the_cli_checker_sees_each_kind_of_work():
    """A formats import inside a function, open(), Path.read_text() and json.loads() in a
    cli module are each reported (the rule the test above enforces can fail)."""
    src = ("import json\n"
           "def f(p):\n"
           "    from kdumptool.formats.klog import parse_log\n"
           "    with open(p) as fh:\n"
           "        emit('json', json_obj=lambda: {'out': p, **fh})\n"
           "        return json.loads(fh.read()), p.read_text()\n")
    found = _cli_findings([("cli/x.py", "cli", ast.parse(src))])
    assert found == {("cli/x.py", "imports kdumptool.formats.klog"), ("cli/x.py", "calls open()"),
                     ("cli/x.py", "calls .read_text()"), ("cli/x.py", "calls json.loads()"),
                     ("cli/x.py", "builds a JSON object for emit() (a render_*_json function's work)")}
    assert not _cli_findings([("cli/y.py", "cli", ast.parse("emit('json', json_obj=lambda: render_x_json(p))"))])
    assert not _cli_findings([("render/x.py", "render", ast.parse(src))])


def test_the_checker_sees_a_violation(tmp_path):
    """The import walk catches an import inside a function (the common hiding place)."""
    tree = ast.parse("def f():\n    from kdumptool.analysis.triage import triage\n")
    assert [m for m in _imports(tree)] == ["kdumptool.analysis.triage"]
    assert _layer_of("kdumptool.analysis.triage") == "analysis"
