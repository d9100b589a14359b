"""Every triage renderer (text, rich, html, JSON, prometheus) words the report for the
machine's IOMMU: on an AMD-Vi machine nothing of VT-d (RTADDR, DMAR, root/context table,
scalable/legacy mode, the VT-d kernel-table row), on a VT-d machine nothing of AMD-Vi
(IVRS, device table, DTE, IommuEn). A triage screen naming the other vendor's structures
contradicts the evidence.

Inputs: the real AMD-Vi lab cut (fixtures/lab_amdvi/amd_on: the kdump kernel's snapshot,
alone and with the crashed kernel's dump), first-kernel and kdump-kernel snapshots built
around the real ThinkPad T14 IVRS (tests/analysis/test_amdvi_scenario.py), and the VT-d
lab snapshots and dumps (fixtures/snapshots, fixtures/vmcore/vtd)."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest
from rich.console import Console

from kdumptool.analysis.memmap import find_triage_memory_map
from kdumptool.analysis.triage import TriageReport, triage
from kdumptool.render.html import render_triage_html
from kdumptool.render.triage import (
    render_triage_json,
    render_triage_prometheus,
    render_triage_rich,
    render_triage_text,
)
from kdumptool.sources.memmap import read_dump_layout
from kdumptool.sources.root import Root, open_root
from kdumptool.sources.triage import open_triage_input, read_triage_input
from tests.analysis.test_amdvi_scenario import COPIED, FAILED, PRE, _amd_kdump_root, _root
from tests.conftest import FIXTURES

AMD_LAB = FIXTURES / "lab_amdvi" / "amd_on"
VTD = FIXTURES / "vmcore" / "vtd"

#: VT-d's structures and words; none may appear in an AMD-Vi report
VTD_WORDS = re.compile(r"RTADDR|DMAR|DRHD|root[ -]table|context[ -](table|entr)|scalable|legacy mode|"
                       r"kernel row|rtaddr-|intel_iommu|VT-d|\bsm_on\b|\bsm_off\b|\bIRTA\b|\bGSTS\b", re.I)
#: AMD-Vi's; none may appear in a VT-d report
AMD_WORDS = re.compile(r"AMD-Vi|\bIVRS\b|\bIVHD\b|device table|\bDTE\b|IommuEn|amd_iommu|amdvi", re.I)


def _values(doc: object) -> List[str]:
    """Every string value of a JSON document (the keys are the schema's, one for both
    vendors: "scalable_mode" is null on AMD-Vi, not absent)."""
    if isinstance(doc, dict):
        return [v for x in doc.values() for v in _values(x)]
    if isinstance(doc, list):
        return [v for x in doc for v in _values(x)]
    return [doc] if isinstance(doc, str) else []


def _renders(report: TriageReport, inp: object, layout: object = None) -> Dict[str, str]:
    buf = io.StringIO()
    console = Console(file=buf, width=400, color_system=None, force_terminal=False)
    for part in render_triage_rich(report, verbose=True):
        console.print(part)
    page = render_triage_html(report, inp.system, find_triage_memory_map(inp, report, layout))  # type: ignore[attr-defined]
    page_text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", page, flags=re.S)))
    return {"text": render_triage_text(report, verbose=True), "rich": buf.getvalue(),
            "html": page_text, "json": "\n".join(_values(render_triage_json(report))),
            "_json": json.dumps(render_triage_json(report)),
            "prometheus": render_triage_prometheus(report)}


def _triage(root: Path, vmcore: Optional[Path] = None) -> Dict[str, str]:
    with open_root(str(root)) as r, open_triage_input(r, str(vmcore) if vmcore else None) as inp:
        rep = triage(inp)
        c = inp.crashed
        layout = read_dump_layout(c.memory, c.vmcore or c.source) if c is not None and c.memory is not None else None
        out = _renders(rep, inp, layout)
    out["_vendor"] = str(rep.vendor)
    out["_case"] = rep.scenario.case
    return out


def _live(root: Path) -> Dict[str, str]:
    inp = read_triage_input(Root(root), use_tools=False)
    rep = triage(inp)
    out = _renders(rep, inp)
    out["_vendor"] = str(rep.vendor)
    out["_case"] = rep.scenario.case
    return out


AMD_CASES: Dict[str, Callable[[Path], Dict[str, str]]] = {
    "lab-kdump-snapshot": lambda tmp: _triage(AMD_LAB / "kdump_snapshot.tar.gz"),
    "lab-offline-vmcore": lambda tmp: _triage(AMD_LAB / "kdump_snapshot.tar.gz", AMD_LAB / "vmcore.iommu.elf"),
    "t14-first-kernel-default": lambda tmp: _live(_root(tmp, "")),
    "t14-first-kernel-amd_iommu=off-in-kdump": lambda tmp: _live(_root(tmp, "amd_iommu=off")),
    "kdump-copied-with-fault": lambda tmp: _live(_amd_kdump_root(tmp, PRE + COPIED + (
        "[    6.000000] e1000e 0000:00:02.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 "
        "address=0xffffc000 flags=0x0000]\n"))),
    "kdump-copy-failed": lambda tmp: _live(_amd_kdump_root(tmp, PRE + FAILED)),
}

VTD_CASES: Dict[str, Callable[[Path], Dict[str, str]]] = {
    "kdump_sm_mismatch": lambda tmp: _triage(FIXTURES / "snapshots" / "kdump_sm_mismatch"),
    "live_legacy_on": lambda tmp: _triage(FIXTURES / "snapshots" / "live_legacy_on"),
    "kdump_legacy_off": lambda tmp: _triage(FIXTURES / "snapshots" / "kdump_legacy_off"),
    "offline-legacy_on-vmcore": lambda tmp: _triage(FIXTURES / "snapshots" / "kdump_legacy_on",
                                                    VTD / "legacy_on.trim.kdump"),
}


def _hits(pattern: re.Pattern[str], out: Dict[str, str]) -> List[str]:
    found = []
    for fmt, text in out.items():
        if fmt.startswith("_"):
            continue
        for ln in text.splitlines():
            m = pattern.search(ln)
            if m:
                found.append(f"{fmt}: {m.group(0)!r} in {ln.strip()[:200]}")
    return found


@pytest.mark.parametrize("name", sorted(AMD_CASES))
def test_amd_reports_say_nothing_of_vtd(name: str, tmp_path: Path) -> None:
    out = AMD_CASES[name](tmp_path)
    assert out["_vendor"] == "AMD-Vi" and out["_case"].startswith("amd-"), (out["_vendor"], out["_case"])
    assert not _hits(VTD_WORDS, out), "\n".join(_hits(VTD_WORDS, out)[:20])
    # and the AMD-Vi state is there, in every renderer's own form
    for fmt in ("text", "rich", "html"):
        assert re.search(r"kdump kernel:?\s+AMD-Vi (on|off|unknown)", out[fmt]), (fmt, out[fmt][:1500])
    doc = json.loads(out["_json"])
    assert doc["vendor"] == "AMD-Vi" and doc["scenario"]["kernel_row"] is None
    assert doc["scenario"]["first_kernel"]["scalable_mode"] is None
    assert "kdumptool_amdvi_translation" in out["prometheus"]


@pytest.mark.parametrize("name", sorted(VTD_CASES))
def test_vtd_reports_say_nothing_of_amd(name: str, tmp_path: Path) -> None:
    out = VTD_CASES[name](tmp_path)
    assert out["_vendor"] == "VT-d", out["_vendor"]
    assert not _hits(AMD_WORDS, out), "\n".join(_hits(AMD_WORDS, out)[:20])
    assert json.loads(out["_json"])["vendor"] == "VT-d" and "kdumptool_vtd_translation" in out["prometheus"]


def test_the_word_lists_catch_what_they_guard(tmp_path: Path) -> None:
    """The patterns are not vacuous: each finds its own vendor's words in that vendor's
    report (an AMD report names AMD-Vi things, a VT-d report VT-d things)."""
    assert _hits(AMD_WORDS, AMD_CASES["lab-offline-vmcore"](tmp_path))
    assert _hits(VTD_WORDS, VTD_CASES["offline-legacy_on-vmcore"](tmp_path))


def test_amd_copied_with_no_warning_is_ok_not_nothing(tmp_path: Path) -> None:
    """An AMD-Vi machine whose only finding is the (info) copy case is "ok", not VT-d's
    "nothing to triage" (the verdict the no-vtd scenario gives)."""
    from dataclasses import replace

    from kdumptool.analysis.triage import _report

    inp = read_triage_input(Root(_amd_kdump_root(tmp_path, PRE + COPIED)), use_tools=False)
    rep = triage(inp)
    infos = [f for f in rep.findings if f.severity == "info"]
    ok = _report(rep.scenario, infos, [], rep.source, rep.kdump_cmdline, rep.kdump_cmdline_basis)
    ok = replace(ok, vendor=rep.vendor)
    assert ok.verdict == "ok" and "VT-d" not in ok.headline and "AMD-Vi" in ok.headline, ok.headline


@pytest.mark.parametrize("vmcore,args,vendor", [
    (AMD_LAB / "vmcore.iommu.elf", [], "AMD-Vi"),
    (VTD / "legacy_on.trim.kdump", ["--saved", str(VTD / "legacy_on")], "VT-d"),
])
def test_exposure_html_names_its_vendors_table(vmcore: Path, args: List[str], vendor: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    from tests.cliutil import run

    page = tmp_path / "x.html"
    code, _, err = run(capsys, "vmcore", "exposure", str(vmcore), *args, "-f", "html", "-o", str(page))
    assert code in (0, 3), err
    # the summary's rows (a warning below them may say how the vendor was told apart)
    rows = re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)", page.read_text().split('<section id="devices">')[0])
    text = "\n".join(html.unescape(f"{k}: {v}") for k, v in rows)
    if vendor == "AMD-Vi":
        assert "device table: AMD-Vi device table 0x11d0000" in text and not VTD_WORDS.search(text), text
    else:
        assert "root table: " in text and not AMD_WORDS.search(text), text


@pytest.mark.parametrize("args", [
    ["iommu"], ["exposure"], ["iommu", "--device", "00:02.0", "--iova", "0xffdb5000"],
    ["iommu", "--faults", str(FIXTURES / "dmesg" / "amdvi" / "popos_853.txt")],
])
def test_vmcore_commands_on_amd_name_no_vtd_structure(args: List[str], capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """`vmcore iommu|exposure` (text and JSON values) on the real AMD-Vi cut with its
    Device Table Base: no VT-d structure named (the JSON keeps ``root_table`` with mode
    ``amd-vi`` for tools that read it: a key, not a word in the output)."""
    from tests.cliutil import run

    dt = "0x11d0007"  # live_drhd_regs_final.txt DEV_TABLE
    for fmt in ("text", "json"):
        code, out, err = run(capsys, "vmcore", *args, str(AMD_LAB / "vmcore.iommu.elf"), "--dev-table", dt, "-f", fmt)
        assert code in (0, 3), err
        text = out if fmt == "text" else "\n".join(_values(json.loads(out)))
        hits = [m.group(0) for m in VTD_WORDS.finditer(text)]
        assert not hits, (args, fmt, hits, text[:2000])
        assert "AMD-Vi" in text
