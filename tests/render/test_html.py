"""``--format html`` for ``triage`` and ``vmcore exposure``: one self-contained page, every
value escaped, built from the same records as the other formats, checked against what
those records and independent oracles say (the live guest's /proc/iomem, a separate
decoder's page-table walk in roottable_check.txt)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import List, Tuple

import pytest

from tests.cliutil import run
from tests.htmldom import Element, parse

FIX = Path(__file__).resolve().parents[2] / "fixtures"
SNAP = FIX / "snapshots"
VTD = FIX / "vmcore" / "vtd"
#: The lab crash of issue 17's "Must show": scenario sm_mismatch_vmcore (first kernel
#: scalable mode, kdump kernel sm_off), its kdump kernel's snapshot and its vmcore cut
#: to the VT-d table pages (fixtures/vmcore/vtd/PROVENANCE.md).
SM_ARGS = ("triage", "--offline", "--root", str(SNAP / "kdump_sm_mismatch_vmcore"),
           "--vmcore", str(VTD / "sm_mismatch_vmcore.trim.kdump"))


def _hex(s: str) -> int:
    return int(s, 16)


def _iomem(path: Path, name: str) -> List[Tuple[int, int]]:
    out = []
    for line in path.read_text().splitlines():
        span, _, what = line.strip().partition(" : ")
        if what == name:
            a, b = span.split("-")
            out.append((int(a, 16), int(b, 16) + 1))
    return out


def check_self_contained(page: str) -> None:
    """No script, no external anything: the page reads offline and runs nothing."""
    low = page.lower()
    assert "<script" not in low
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:)""", low)
    assert "@import" not in low and "url(http" not in low
    for m in re.finditer(r"<[a-z][^>]*>", low):
        assert not re.search(r"\son[a-z]+\s*=", m.group(0)), m.group(0)


@pytest.fixture(scope="module")
def sm_page() -> str:
    import contextlib
    import io

    from kdumptool.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main(list(SM_ARGS) + ["-f", "html"])
        except SystemExit as e:
            assert e.code == 4  # AT RISK: the same exit as every other format
    return buf.getvalue()


def check_triage_dom(doc: Element, report: dict) -> None:
    """What a triage page must show, checked against the JSON report of the same run:
    shared by this test (our page) and the browser test (Chromium's DOM of it)."""
    (verdict,) = doc.find_all(id="verdict")
    assert verdict.attrs["data-verdict"] == report["verdict"]
    assert "AT RISK" in verdict.text() and report["headline"] in verdict.text()
    shown = [e.attrs["data-finding-id"] for e in doc.find_all("article", cls="finding")]
    assert sorted(shown) == sorted(f["id"] for f in report["findings"])
    for f in report["findings"]:
        art = [e for e in doc.find_all("article", cls="finding") if e.attrs["data-finding-id"] == f["id"]
               and f["title"] in e.text()]
        assert art, f["id"]
        if f["remedy"]:
            assert any(f["remedy"] in e.text() for e in art)
        for ev in f["evidence"]:
            assert any(ev["text"] in e.text() for e in art), (f["id"], ev["text"])
    risky = {d["bdf"] for d in report["devices"]}
    tree = doc.find_all(id="pci-tree")[0]
    marked = {e.attrs["data-bdf"] for e in tree.find_all("li", cls="risky")}
    assert marked == risky
    bridges = {b for d in report["devices"] for b in d["upstream_bridges"]}
    assert {e.attrs["data-bdf"] for e in tree.find_all("li", cls="bridge-risky")} == bridges
    assert bridges, "sm_mismatch has 03:01.0 behind two bridges"
    svg = doc.find_all("svg", id="memory-svg")
    assert len(svg) == 1
    for layer in ("ram", "crashkernel", "dumped"):
        (row,) = svg[0].find_all("g", data_layer=layer)
        assert row.attrs["data-known"] == "yes"
        assert row.find_all("rect", cls="seg"), layer
    rows = {e.attrs["data-bdf"]: e for e in svg[0].find_all("g", cls="device")}
    for bdf in risky:
        assert "risky" in rows[bdf].classes


def _segs(row: Element) -> List[Tuple[int, int]]:
    return [(_hex(r.attrs["data-start"]), _hex(r.attrs["data-end"])) for r in row.find_all("rect", cls="seg")]


def _covers(segs: List[Tuple[int, int]], addr: int) -> bool:
    return any(s <= addr < e for s, e in segs)


def test_sm_mismatch_page(sm_page: str, capsys: pytest.CaptureFixture) -> None:
    check_self_contained(sm_page)
    code, out, _ = run(capsys, *SM_ARGS, "-f", "json")
    assert code == 4
    report = json.loads(out)
    doc = parse(sm_page)
    check_triage_dom(doc, report)
    svg = doc.find_all("svg", id="memory-svg")[0]
    # crashkernel: read from the crashed kernel's own log line in the dump; the oracle is
    # the live guest's /proc/iomem 'Crash kernel' of the same run (another file, another kernel interface)
    ck = _segs(svg.find_all("g", data_layer="crashkernel")[0])
    assert ck == _iomem(SNAP / "live_sm_mismatch_vmcore" / "proc" / "iomem", "Crash kernel") == [(0x2F000000, 0x3F000000)]
    # device reach: phys pages a separate decoder (roottable_check.txt) found mapped for each device
    check = (VTD / "sm_mismatch_vmcore" / "roottable_check.txt").read_text()
    rows = {e.attrs["data-bdf"]: e for e in svg.find_all("g", cls="device")}
    seen = 0
    for m in re.finditer(r"^\s+(\S\S:\S\S\.\S) P=1 .*?\n\s+PASID 0 entry:.*?first=(.*?)(?:\s\|\s|$)", check, re.M):
        bdf, first = "0000:" + m.group(1), m.group(2)
        for phys in re.findall(r"->(0x[0-9a-f]+)", first):
            assert _covers(_segs(rows[bdf]), int(phys, 16)), (bdf, phys)
            seen += 1
    assert seen == 27  # 3 first mappings of each of the 9 devices with pages
    # the fault the kdump kernel logged maps (separate decoder: LOOKUP ... pte 0x3b6b003) inside 00:02.0's reach
    assert _covers(_segs(rows["0000:00:02.0"]), 0x3B6B000)
    # which crash: the panic line as makedumpfile --dump-dmesg read the same dump, the
    # CRASHTIME a separate decoder read from its VMCOREINFO, the kernel release
    summary = {tr.find_all("th")[0].text(): tr.find_all("td")[0].text()
               for tr in doc.find_all(id="summary")[0].find_all("tr")}
    mdf = (FIX / "vmcore" / "sm_mismatch_vmcore.makedumpfile_dmesg.txt").read_text()
    m = re.search(r"^\[\s*(\d+\.\d+)\] (Kernel panic - not syncing: .*?)\s*$", mdf, re.M)
    assert m and summary["panic"] == f"{m.group(2)} (at {m.group(1)} s)"
    import datetime

    crashtime = int(re.search(r"CRASHTIME=(\d+)", check).group(1))  # type: ignore[union-attr]
    when = datetime.datetime.fromtimestamp(crashtime, datetime.timezone.utc)
    assert summary["crash date"] == when.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert summary["crashed kernel"] == re.search(r"OSRELEASE=(\S+)", check).group(1)  # type: ignore[union-attr]
    # the dump layer is the dump's own page list
    dumped = _segs(svg.find_all("g", data_layer="dumped")[0])
    assert _covers(dumped, 0x2411000)  # the root table page is in the cut


def test_live_snapshot_page_says_what_is_unknown(capsys: pytest.CaptureFixture) -> None:
    """Without a vmcore the reach of translated devices is unknown (hatched, with the
    reason), RAM and crashkernel come from the live /proc/iomem, nothing is 'dumped'."""
    code, page, _ = run(capsys, "triage", "--root", str(SNAP / "live_sm_mismatch"), "-f", "html")
    code_t, _, _ = run(capsys, "triage", "--root", str(SNAP / "live_sm_mismatch"), "-f", "text")
    assert code == code_t == 3
    check_self_contained(page)
    doc = parse(page)
    svg = doc.find_all("svg", id="memory-svg")[0]
    ram = _segs(svg.find_all("g", data_layer="ram")[0])
    iomem = SNAP / "live_sm_mismatch" / "proc" / "iomem"
    top_ram = [(a, b) for a, b in _iomem(iomem, "System RAM")]
    assert ram[0][0] == top_ram[0][0] and ram[-1][1] == top_ram[-1][1]
    assert _segs(svg.find_all("g", data_layer="crashkernel")[0]) == _iomem(iomem, "Crash kernel")
    assert svg.find_all("g", data_layer="dumped")[0].attrs["data-known"] == "no"
    for row in svg.find_all("g", cls="device"):
        assert row.attrs["data-kind"] == "unknown"
        assert "vmcore" in row.find_all("rect", cls="unknown")[0].text()


def test_kdump_snapshot_without_dump(capsys: pytest.CaptureFixture) -> None:
    """In the kdump kernel's snapshot, the crashed kernel's RAM is unknown (said so), the
    crashkernel range is the kdump kernel's own RAM."""
    code, page, _ = run(capsys, "triage", "--root", str(SNAP / "kdump_sm_mismatch"), "-f", "html")
    assert code == 4
    doc = parse(page)
    svg = doc.find_all("svg", id="memory-svg")[0]
    ram = svg.find_all("g", data_layer="ram")[0]
    assert ram.attrs["data-known"] == "no" and "vmcore" in ram.text()
    own = [(a, b) for a, b in _iomem(SNAP / "kdump_sm_mismatch" / "proc" / "iomem", "System RAM") if a >= 1 << 20]
    # the map merges gaps below a pixel (elfcorehdr's 2 KiB); the table lists every range
    ck = _segs(svg.find_all("g", data_layer="crashkernel")[0])
    assert ck[0][0] == own[0][0] and ck[-1][1] == own[-1][1]
    (row,) = doc.find_all("tr", data_layer="crashkernel")
    assert all(f"0x{a:x}-0x{b - 1:x}" in row.text() for a, b in own) and len(own) == 2


def test_exposure_page(capsys: pytest.CaptureFixture) -> None:
    dump = str(VTD / "sm_mismatch_vmcore.trim.kdump")
    code, page, _ = run(capsys, "vmcore", "exposure", dump, "-f", "html")
    code_j, out, _ = run(capsys, "vmcore", "exposure", dump, "-f", "json")
    assert code == code_j == 0
    check_self_contained(page)
    obj = json.loads(out)
    doc = parse(page)
    rows = {e.attrs["data-bdf"]: e for e in doc.find_all("svg", id="memory-svg")[0].find_all("g", cls="device")}
    assert set(rows) == {d["bdf"] for d in obj["devices"] if d["ranges"]}
    for d in obj["devices"]:
        for r in d["ranges"]:
            assert _covers(_segs(rows[d["bdf"]]), r["start"]) and _covers(_segs(rows[d["bdf"]]), r["end"] - 1)
    table = doc.find_all(id="ranges")[0]
    assert len(table.find_all("tr")) == 1 + len(obj["union"])


def test_passthrough_is_all_memory(capsys: pytest.CaptureFixture) -> None:
    """A pass-through device reaches all of memory: one full-width row."""
    cut = FIX / "lab" / "passthrough@6.12" / "vmcore.trim.kdump"
    code_j, out, _ = run(capsys, "vmcore", "exposure", str(cut), "-f", "json")
    obj = json.loads(out)
    pt = obj["totals"]["passthrough_devices"]
    if not pt:
        pytest.fail("the passthrough@6.12 cut has no pass-through device in its tables")
    code, page, _ = run(capsys, "vmcore", "exposure", str(cut), "-f", "html")
    assert code == code_j
    svg = parse(page).find_all("svg", id="memory-svg")[0]
    end = _hex(svg.attrs["data-end"])
    for bdf in pt:
        (row,) = svg.find_all("g", data_bdf=bdf)
        assert row.attrs["data-kind"] == "passthrough"
        assert _segs(row) == [(0, end)]
        assert "all of memory" in row.text()


def test_hostile_names_and_log_lines_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A driver name, a log line and the snapshot's own path carrying markup and control
    characters come out as text: no element, no raw control character."""
    snap = tmp_path / "snap<b>&\"x'"
    shutil.copytree(SNAP / "kdump_sm_mismatch", snap, symlinks=True)
    drv = snap / "sys" / "bus" / "pci" / "devices" / "0000:00:04.0" / "driver"
    evil_drv = "<img src=x onerror=alert(1)>\x1b[2J"
    drv.unlink()
    drv.symlink_to("../../../bus/pci/drivers/" + evil_drv)
    log = snap / "_kdumptool" / "dmesg.txt"
    evil_line = ("[    9.000000] DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xdead000 "
                 "[fault reason 0x06] PTE Read access is not set <script>alert('x')</script>\x1b]0;owned\x07\x01")
    with log.open("a") as fh:
        fh.write(evil_line + "\n")
    code, page, _ = run(capsys, "triage", "--root", str(snap), "-f", "html")
    assert code == 4
    check_self_contained(page)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", page)
    assert "<img" not in page and "<b>" not in page
    doc = parse(page)
    text = doc.text()
    assert "<script>alert('x')</script>\\x1b]0;owned\\x07\\x01" in text  # shown, escaped
    assert "<img src=x onerror=alert(1)>\\x1b[2J" in text
    assert "snap<b>&\"x'" in doc.find_all(id="verdict")[0].text()
    assert not doc.find_all("img") and not doc.find_all("script")


def test_output_file_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture, sm_page: str) -> None:
    """-o writes the same page through the atomic writer, refuses to overwrite without
    --force, keeps the verdict's exit code; --exit-zero turns it into 0."""
    out = tmp_path / "report.html"
    code, stdout, _ = run(capsys, *SM_ARGS, "-o", str(out))  # auto: .html -> html
    assert code == 4 and stdout == ""
    assert out.read_text() == sm_page
    code, _, err = run(capsys, *SM_ARGS, "-o", str(out))
    assert code == 1 and "exists" in err
    link = tmp_path / "link.html"
    os.symlink(tmp_path / "target", link)
    code, _, _ = run(capsys, *SM_ARGS, "-o", str(link), "--force", "--exit-zero")
    assert code == 0 and link.is_file() and not link.is_symlink() and not (tmp_path / "target").exists()
    code, _, _ = run(capsys, *SM_ARGS, "-f", "json", "-o", str(tmp_path / "r.json"))
    assert code == 4 and json.loads((tmp_path / "r.json").read_text())["verdict"] == "error"


def test_html_is_deterministic(sm_page: str) -> None:
    import contextlib
    import io

    from kdumptool.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        main(list(SM_ARGS) + ["-f", "html"])
    assert buf.getvalue() == sm_page


def test_passthrough_crash_triage_page(capsys: pytest.CaptureFixture) -> None:
    """The passthrough@6.12 lab crash (iommu=pt): the crashed kernel's tables give every
    device a pass-through context entry; the live guest's own sysfs (live_iommu_groups.txt,
    written in the guest before the crash) says each of those groups was 'identity'. Each is
    one full-width 'all of memory' row, the risky ones marked."""
    run_dir = FIX / "lab" / "passthrough@6.12"
    args = ("triage", "--offline", "--root", str(run_dir / "kdump_snapshot.tar.gz"),
            "--vmcore", str(run_dir / "vmcore.trim.kdump"))
    code, page, _ = run(capsys, *args, "-f", "html")
    code_j, out, _ = run(capsys, *args, "-f", "json")
    assert code == code_j
    report = json.loads(out)
    check_self_contained(page)
    svg = parse(page).find_all("svg", id="memory-svg")[0]
    end = _hex(svg.attrs["data-end"])
    identity = {b for m in re.findall(r"^group \d+ type=identity devices=(.*)$", (run_dir / "live_iommu_groups.txt").read_text(),
                                      re.M) for b in m.split()}
    rows = {e.attrs["data-bdf"]: e for e in svg.find_all("g", cls="device")}
    live = {ln.split()[0] for ln in (run_dir / "live_pci_sysfs.txt").read_text().splitlines() if ln.strip()}
    # every identity-group device has its row; a row for a requester ID that is no device
    # (03:00.0: the alias the PCIe-to-PCI bridge 02:00.0 puts on DMA from behind it) is
    # the table's own context entry
    assert identity and identity <= set(rows) and not (set(rows) - identity) & live
    for bdf, row in rows.items():
        assert row.attrs["data-kind"] == "passthrough" and _segs(row) == [(0, end)]
        assert ("risky" in row.classes) == (bdf in {d["bdf"] for d in report["devices"]})
    ram = _segs(svg.find_all("g", data_layer="ram")[0])
    assert end == ram[-1][1]


def _hostile_report(texts: List[str]):  # type: ignore[no-untyped-def]
    """The sm_mismatch report with foreign text in every string a page shows."""
    import dataclasses

    from kdumptool.analysis.triage import triage
    from kdumptool.model.evidence import Evidence
    from kdumptool.sources.root import open_root
    from kdumptool.sources.triage import open_triage_input

    with open_root(SNAP / "kdump_sm_mismatch") as r, open_triage_input(r, None, None) as inp:
        rep = triage(inp)
        system = inp.system
    import itertools

    t = itertools.cycle(texts)
    findings = tuple(dataclasses.replace(f, title=next(t), remedy=next(t), evidence=(Evidence(next(t), next(t), 1),))
                     for f in rep.findings)
    devices = tuple(dataclasses.replace(d, driver=next(t), reasons=(next(t),), modules=(next(t),)) for d in rep.devices)
    return dataclasses.replace(rep, findings=findings, devices=devices, headline=next(t), source=next(t),
                               kdump_cmdline=next(t)), system


_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "span", "section", "table",
         "tr", "th", "td", "article", "details", "summary", "pre", "ul", "li", "a", "i", "b", "br", "svg", "defs",
         "pattern", "rect", "line", "text", "g", "footer"}


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(max_size=40), st.sampled_from([
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'onmouseover='x", "</style><b>x",
    "]]><!--", "&amp;&#0;&lt;", "\x1b[31m\x07\x00\x9b", "\u202etxt", "<svg onload=alert(1)>", "</textarea>"])),
    min_size=1, max_size=12))
def test_fuzz_every_shown_string_is_text(texts: List[str]) -> None:
    """Whatever the strings, the page's elements are only ours, no attribute is an event
    handler, no raw control character is in it, and each string reads back as text."""
    from kdumptool.render.escape import escape_control
    from kdumptool.render.html import render_triage_html

    report, system = _hostile_report(texts)
    page = render_triage_html(report, system, None)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", page)
    doc = parse(page)
    for e in doc.iter():
        if e.tag != "#document":
            assert e.tag in _TAGS, e.tag
            assert not any(k.startswith("on") for k in e.attrs), e.attrs
    body = doc.text()
    for s in texts:
        assert escape_control(s).strip() in body


def test_many_devices_share_rows() -> None:
    """Past MAX_DEVICE_ROWS, devices with the same reach share one row that names them all
    (risky if any is); up to it, one row each."""
    from kdumptool.model.memmap import DeviceReach, Layer, MemoryMap
    from kdumptool.render.html import MAX_DEVICE_ROWS, render_memory_svg

    def mm(n: int) -> MemoryMap:
        devs = tuple(DeviceReach(f"0000:{i:02x}:00.0", "unknown", None, None, "translated", risky=(i == 7))
                     for i in range(n)) + (DeviceReach("0000:ff:00.0", "mapped", ((0x1000, 0x2000),), (), "tables"),)
        return MemoryMap(Layer("RAM", ((0, 1 << 30),), "x"), Layer("crashkernel", None, "y"), Layer("in the dump", None, "z"),
                         devs, 1 << 30)

    few = parse(render_memory_svg(mm(MAX_DEVICE_ROWS - 1))).find_all("g", cls="device")
    assert len(few) == MAX_DEVICE_ROWS and all("data-bdfs" not in g.attrs for g in few)
    many = parse(render_memory_svg(mm(600))).find_all("g", cls="device")
    assert len(many) == 2
    assert many[0].attrs["data-count"] == "600" and len(many[0].attrs["data-bdfs"].split()) == 600
    assert "risky" in many[0].classes and "600 devices" in many[0].text()
    assert many[1].attrs["data-bdf"] == "0000:ff:00.0" and _segs(many[1]) == [(0x1000, 0x2000)]
