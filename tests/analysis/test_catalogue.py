"""The findings catalogue: one id style, one severity order, every template field
supplied, and the docs' finding tables generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdumptool.analysis import catalogue as cat
from kdumptool.model.finding import SEVERITIES, Finding, at_least, worst
from tests.cliutil import REGEN

TOP = Path(__file__).resolve().parent.parent.parent
DOCS = {"triage": TOP / "docs/triage.md", "dmar": TOP / "docs/dmar.md", "ivrs": TOP / "docs/amd.md"}


def test_ids_are_unique_and_kebab_case():
    ids = [k.id for k in cat.CATALOGUE]
    assert len(ids) == len(set(ids))
    assert all(cat.ID_STYLE.match(i) for i in ids), [i for i in ids if not cat.ID_STYLE.match(i)]


def test_every_entry_is_complete():
    for k in cat.CATALOGUE:
        assert k.severities and all(s in SEVERITIES for s in k.severities), k.id
        assert k.doc.strip() and k.title.strip(), k.id
        assert k.remedy is None or k.remedy in cat.REMEDIES or k.remedy in cat.COMPUTED_REMEDIES, k.id
        assert all(s in k.severities for s, _ in k.titles), k.id


@pytest.mark.parametrize("command", sorted(DOCS))
def test_docs_tables_are_generated_from_the_catalogue(command):
    path = DOCS[command]
    doc = path.read_text()
    want = cat.splice(doc, command)
    if REGEN:
        path.write_text(want)
    assert doc == want, f"{path.name}: findings table out of date (KDUMPTOOL_REGEN_GOLDEN=1 to update)"
    for k in cat.CATALOGUE:
        if k.command == command:
            assert f"| `{k.id}` |" in want


def test_every_id_the_code_makes_is_in_the_catalogue():
    """Every literal id passed to make() in kdumptool/ exists (a typo would be a KeyError
    only when that finding fires)."""
    used = set()
    for p in (TOP / "kdumptool").rglob("*.py"):
        used |= set(re.findall(r'\bmake\(\s*"([a-z0-9-]+)"', p.read_text()))
    assert used, "no make() calls found"
    assert used <= set(cat.BY_ID), sorted(used - set(cat.BY_ID))


def test_make_fills_title_and_fixed_remedy():
    f = cat.make("crashkernel-small", size_mib=128, need_mib=256, ram_gib=16,
                 min_mib=256)
    assert f.title == "crashkernel reservation 128 MiB is below the ~256 MiB a kdump kernel needs for 16 GiB of RAM"
    assert f.remedy == "raise crashkernel= to at least 256M" and f.severity == "warning"
    mitigated = cat.make("bridge-shutdown-order", severity="info", n=1, bridges="00:1c.0", quiesce="x")
    assert mitigated.remedy is None and mitigated.title.endswith("on the devices below first")


def test_make_refuses_what_the_catalogue_does_not_allow():
    with pytest.raises(ValueError):
        cat.make("no-crashkernel", severity="info")
    with pytest.raises(ValueError):
        cat.make("no-crashkernel", remedy="reboot")  # a fixed remedy is the catalogue's
    with pytest.raises(KeyError):
        cat.make("no-such-finding")


def test_one_severity_order_and_json_shape():
    fs = [cat.make("rmrr-no-devices", offset=0x40, range="0x1000-0x1fff"),
          cat.make("no-crashkernel"), cat.make("dump-target-unchecked", why="nfs")]
    assert worst(fs) == "error" and at_least(fs, "warning") and not at_least(fs[2:], "warning")
    assert sorted(fs, key=lambda f: -f.rank)[0].id == "no-crashkernel"
    j = fs[0].to_json()
    assert list(j) == ["id", "severity", "title", "evidence", "remedy", "devices", "offset"] and j["offset"] == 0x40
    assert "offset" not in fs[1].to_json()
    assert Finding("x", "info", "t").to_json()["evidence"] == []


def test_findings_are_built_only_through_the_catalogue():
    """No module but the catalogue calls Finding(...) itself: a finding made by hand would
    escape the id, severity and docs checks above."""
    import ast

    bad = []
    for p in (TOP / "kdumptool").rglob("*.py"):
        if p.name == "catalogue.py" and p.parent.name == "analysis":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Finding":
                bad.append(f"{p.relative_to(TOP)}:{node.lineno}")
    assert not bad, bad
