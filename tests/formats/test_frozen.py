"""kdumptool.formats.frozen: the records on the start-up path behave as the real
``@dataclass(frozen=True)`` records they replace, and the start-up path of ``vmcore log``
and ``vmcore scan`` does not import the heavy modules it was freed from (issue 13)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Dict, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdumptool.analysis import rtscan
from kdumptool.formats import diskdump, elf, frozen, printk, vmcoreinfo, vtd_tables
from kdumptool.sources import vmcore
from tests.conftest import FIXTURES, REPO


def _pair(body: Dict[str, object]) -> Tuple[type, type]:
    """The same class made by dataclasses and by formats.frozen."""
    ann = {k: v for k, v in body.items() if k != "__defaults__"}
    defaults = body.get("__defaults__", {})
    out = []
    for maker, fld in ((dataclasses.dataclass, dataclasses.field), (frozen.dataclass, frozen.field)):
        ns: dict = {"__annotations__": dict(ann)}
        for k, v in defaults.items():  # type: ignore[union-attr]
            ns[k] = fld(default_factory=v[1]) if isinstance(v, tuple) and v[0] == "factory" else v
        out.append(maker(frozen=True)(type("Rec", (), ns)))
    return out[0], out[1]


REAL, OURS = _pair({"a": "int", "b": "str", "c": "Optional[int]", "d": "dict",
                    "__defaults__": {"c": None, "d": ("factory", dict)}})
EMPTY_REAL, EMPTY_OURS = _pair({})
ONE_REAL, ONE_OURS = _pair({"x": "int"})

values = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.binary(max_size=8),
                   st.tuples(st.integers(), st.text(max_size=3)))


@given(a=values, b=values, c=values, a2=values, b2=values)
def test_same_behaviour_as_dataclasses(a, b, c, a2, b2):
    for args, kwargs in (((a, b), {}), ((a,), {"b": b}), ((), {"a": a, "b": b, "c": c}), ((a, b, c), {})):
        r, o = REAL(*args, **kwargs), OURS(*args, **kwargs)
        assert repr(r) == repr(o)
        assert (r.a, r.b, r.c, r.d) == (o.a, o.b, o.c, o.d)
        r2, o2 = REAL(a2, b2, c), OURS(a2, b2, c)
        assert (r == r2) == (o == o2)
        assert (r != r2) == (o != o2)
        assert o == OURS(*args, **kwargs)
        assert o != r and r != o   # another class: not equal, as two dataclasses
        assert o.d == {} and o.d is not OURS(a, b).d   # a fresh dict per record
    assert OURS.__match_args__ == ("a", "b", "c", "d")
    # dataclasses sets it from Python 3.10 on
    assert getattr(REAL, "__match_args__", OURS.__match_args__) == OURS.__match_args__


@given(x=st.one_of(st.integers(), st.text(max_size=5), st.none()))
def test_hash_and_frozen(x):
    r, o = ONE_REAL(x), ONE_OURS(x)
    assert hash(r) == hash(o) == hash((x,))
    assert repr(EMPTY_REAL()) == repr(EMPTY_OURS()) and EMPTY_OURS() == EMPTY_OURS()
    for obj in (r, o):
        with pytest.raises(AttributeError, match="cannot assign to field 'x'"):
            obj.x = 1  # type: ignore[misc]
        with pytest.raises(AttributeError):
            obj.y = 1  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            del obj.x  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(OURS(1, "b"))   # a dict field: unhashable, as with dataclasses
    with pytest.raises(TypeError):
        OURS()   # missing arguments
    with pytest.raises(TypeError):
        OURS(1, "b", c=2, e=3)   # unknown field


@given(a=values, b=values, c=values)
def test_dataclasses_functions_work_on_them(a, b, c):
    """dataclasses.replace/fields/asdict/astuple/is_dataclass: as on the real records."""
    r, o = REAL(a, b, c), OURS(a, b, c)
    assert dataclasses.is_dataclass(o) and dataclasses.is_dataclass(OURS)
    assert [(f.name, f.type) for f in dataclasses.fields(o)] == [(f.name, f.type) for f in dataclasses.fields(r)]
    assert [f.name for f in dataclasses.fields(OURS)] == ["a", "b", "c", "d"]
    assert dataclasses.asdict(o) == dataclasses.asdict(r) and dataclasses.astuple(o) == dataclasses.astuple(r)
    r2, o2 = dataclasses.replace(r, b=c), dataclasses.replace(o, b=c)
    assert type(o2) is OURS and repr(o2) == repr(r2) and o2.d == {}
    assert dataclasses.replace(o) == o
    with pytest.raises(TypeError):
        dataclasses.replace(o, e=1)
    assert dataclasses.replace(ONE_OURS(a), x=b) == ONE_OURS(b)


def _opts_pair() -> Tuple[type, type]:
    """A record with field(default=..., compare=False, repr=False) options, both ways."""
    out = []
    for maker, fld in ((dataclasses.dataclass, dataclasses.field), (frozen.dataclass, frozen.field)):
        ns: dict = {"__annotations__": {"a": "int", "b": "object", "c": "frozenset", "d": "dict", "e": "int"},
                    "b": fld(default=None, compare=False, repr=False), "c": fld(default=frozenset(), compare=False),
                    "d": fld(default_factory=dict, compare=False), "e": fld(default=7, repr=False)}
        out.append(maker(frozen=True)(type("Opt", (), ns)))
    return out[0], out[1]


OPT_REAL, OPT_OURS = _opts_pair()


@given(a=st.integers(), b=values, c=st.frozensets(st.integers(), max_size=3), e=st.integers(),
       a2=st.integers(), b2=values)
def test_field_options_as_dataclasses(a, b, c, e, a2, b2):
    """default=, compare=False (out of __eq__ and __hash__ too), repr=False."""
    r, o = OPT_REAL(a, b, c, {"x": b}, e), OPT_OURS(a, b, c, {"x": b}, e)
    assert repr(r) == repr(o)
    r2, o2 = OPT_REAL(a2, b2), OPT_OURS(a2, b2)
    assert repr(r2) == repr(o2) and (r2.b, r2.c, r2.d, r2.e) == (o2.b, o2.c, o2.d, o2.e)
    assert (r == r2) == (o == o2)
    assert (r == OPT_REAL(a, b2, frozenset(), {}, e)) == (o == OPT_OURS(a, b2, frozenset(), {}, e))
    assert hash(OPT_OURS(a, b2, c, {}, e)) == hash(OPT_REAL(a, b2, c, {}, e)) == hash((a, e))
    assert OPT_OURS.c == frozenset() and OPT_OURS.e == 7 and not hasattr(OPT_OURS, "d")
    assert ([(f.name, f.compare, f.repr) for f in dataclasses.fields(o)]
            == [(f.name, f.compare, f.repr) for f in dataclasses.fields(r)])
    assert repr(dataclasses.replace(o, a=a2)) == repr(dataclasses.replace(r, a=a2))


def test_refuses_what_it_does_not_do():
    with pytest.raises(ValueError):
        frozen.field(default=1, default_factory=list)
    with pytest.raises(TypeError):
        frozen.dataclass(frozen=False)
    with pytest.raises(TypeError):
        frozen.dataclass(frozen=True)(type("Bad", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))
    with pytest.raises(TypeError):
        frozen.dataclass(frozen=True)(type("Sub", (OURS,), {"__annotations__": {"e": "int"}}))


def test_the_hot_path_records_are_ours():
    """Every record of the modules on the vmcore log/scan start-up path is made here, not
    by dataclasses (the import test below would catch a module, this names the class)."""
    for mod in (diskdump, elf, printk, vmcoreinfo, vtd_tables, rtscan, vmcore):
        for name, obj in vars(mod).items():
            if isinstance(obj, type) and obj.__module__ == mod.__name__ and "__annotations__" in vars(obj):
                assert "__kdt_fields__" in vars(obj), f"{mod.__name__}.{name}"


HEAVY = ("dataclasses", "inspect", "typing", "construct", "json", "threading", "typer", "click",
         "pydantic", "rich", "ast", "tokenize", "kdumptool.formats.klog", "kdumptool.analysis.vtd_walk")


@pytest.mark.parametrize("argv", [
    ["vmcore", "log", str(FIXTURES / "vmcore/legacy_on.trim.kdump")],
    ["vmcore", "scan", str(FIXTURES / "vmcore/vtd/legacy_on.trim.elf")],
    ["vmcore", "scan", str(FIXTURES / "vmcore/vtd/legacy_on.trim.kdump")],
])
def test_hot_path_does_not_import_heavy_modules(argv):
    """`vmcore log` and `vmcore scan` (plain invocations: cli/hot.py) import none of
    HEAVY: each costs start-up time (bench/bench_ratios.py). Run without site, so that
    nothing (a .pth file of another install) loads them before main() runs."""
    code = ("import sys; before = set(sys.modules)\n"
            "from kdumptool.cli.main import main\n"
            "try: main(sys.argv[1:] + ['-f', 'text'])\n"
            "except SystemExit: pass\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules and m not in before)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    # -S: no site, so nothing (a .pth of some other install) preloads what we look for
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-S", "-c", code, *argv], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=60)
    assert r.stdout.strip() and "HEAVY [" in r.stderr, r.stderr[-500:]
    assert "HEAVY []" in r.stderr, r.stderr[-300:]


DMAR_HEAVY = ("dataclasses", "inspect", "construct", "json", "typer", "click", "pydantic", "rich")


def test_dmar_does_not_import_heavy_modules():
    """`kdumptool dmar FILE` (issue 13's ratio: bench/bench_ratios.py): the table is decoded
    with struct and its records, the checks' findings and the catalogue are made by
    formats/frozen.py, so none of DMAR_HEAVY gets imported."""
    table = FIXTURES / "dmar/tables/X01_Server_Supermicro_SMCI-MB_SkylakeSP-2S_from-dsl.dat"
    code = ("import sys; before = set(sys.modules)\n"
            "from kdumptool.cli.main import main\n"
            "try: main(['dmar', sys.argv[1], '-f', 'text'])\n"
            "except SystemExit: pass\n"
            f"heavy = sorted(m for m in {DMAR_HEAVY!r} if m in sys.modules and m not in before)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-S", "-c", code, str(table)], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=60)
    assert "DRHD" in r.stdout and "HEAVY [" in r.stderr, r.stderr[-500:]
    assert "HEAVY []" in r.stderr, r.stderr[-300:]


#: What `record` and `quiesce` (the kdump kernel's commands) must not import: the CLI
#: framework (typer, click, pydantic, rich: the hooks call the installed command, which
#: runs them without it) and construct (the decoders on their path use struct).
KDUMP_HEAVY = ("typer", "click", "pydantic", "rich", "construct", "argparse")
SNAP = FIXTURES / "snapshots" / "kdump_legacy_on"


@pytest.mark.parametrize("argv", [
    ["quiesce", "--root", str(SNAP), "--format", "text"],
    ["quiesce", "--root", str(SNAP), "--plan", "-f", "json", "--dump-target", "0000:00:02.0"],
    ["record", "--root", str(SNAP), "--out", "@OUT@", "--format", "text"],
], ids=["quiesce", "quiesce-plan", "record"])
def test_record_and_quiesce_do_not_import_the_cli_framework(argv, tmp_path):
    """The hooks' command lines (cli/hot.py's record/quiesce fast path), run in a fresh
    interpreter without site: none of KDUMP_HEAVY gets imported."""
    argv = [a.replace("@OUT@", str(tmp_path / "rec")) for a in argv]
    code = ("import sys; before = set(sys.modules)\n"
            "from kdumptool.cli.main import main\n"
            "try: main(sys.argv[1:])\n"
            "except SystemExit as e: print('EXIT', e.code, file=sys.stderr)\n"
            f"heavy = sorted(m for m in {KDUMP_HEAVY!r} if m in sys.modules and m not in before)\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-S", "-c", code, *argv], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=120)
    assert r.stdout.strip() and "HEAVY [" in r.stderr and "EXIT" not in r.stderr, r.stderr[-800:]
    assert "HEAVY []" in r.stderr, r.stderr[-300:]
    if argv[0] == "record":  # and the triage and snapshot inside it ran (they catch errors)
        import json

        rec = json.loads((tmp_path / "rec" / "kdumptool-record.json").read_text())
        assert "error" not in rec["triage"] and rec["triage"]["verdict"], rec["triage"]
        assert rec["snapshot"]["file"], rec["snapshot"]
