"""Every makedumpfile page compression read identically, with the compiled decompressors
and with the pure-Python fallbacks; and a page that cannot be decompressed (decompressor
missing, data bad) is an error or a labelled partial result in every command.

Oracle: ``fixtures/vmcore/vtd/legacy_on.trim.kdump`` (zlib; its pages come from the lab's
makedumpfile ``-c`` dump and its log matches makedumpfile ``--dump-dmesg``). The LZO dump is
makedumpfile's own ``-l`` output of the same crash (fixtures/vmcore/lzo/PROVENANCE.md);
snappy and zstd dumps are built in code from the zlib dump's pages (makedumpfile 1.7.2 on
Debian is built without them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict

import pytest

from kdumptool.sources.vmcore import open_dump
from tests.cliutil import run
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, write_kdump

ZLIB = FIXTURES / "vmcore" / "vtd" / "legacy_on.trim.kdump"
LZO = FIXTURES / "vmcore" / "lzo" / "legacy_on.lzo.trim.kdump"
SAVED = FIXTURES / "vmcore" / "vtd" / "legacy_on"
KDUMP_SNAP = FIXTURES / "snapshots" / "kdump_legacy_on"
LIVE_SNAP = FIXTURES / "snapshots" / "live_legacy_on"


def _pages(path: Path) -> Dict[int, bytes]:
    with open_dump(str(path)) as d:
        ps = d.page_size
        return {a // ps: d.read(a, ps) for s, e in d.iter_dumped_ranges() for a in range(s, e, ps)}


def _built(method: str, tmp_path: Path) -> Path:
    """The zlib fixture's pages, notes and RAM map in a dump compressed with ``method``."""
    with open_dump(str(ZLIB)) as d:
        ps = d.page_size
        pages = _pages(ZLIB)
        ram = {a // ps for s, e in d.iter_ram_ranges() for a in range(s, e, ps)}
        spec = DumpSpec(pages=pages, filtered=ram - set(pages), vmcoreinfo=d.vmcoreinfo.raw.encode(),
                        prstatus=[(p.pid, dict(p.registers)) for p in d.prstatus],
                        max_mapnr=d.max_mapnr, phys_base=d.phys_base or 0)
    out = tmp_path / f"legacy_on.{method}.kdump"
    out.write_bytes(write_kdump(spec, method))
    return out


def _commands(dump: Path):
    return {
        "log": ["vmcore", "log", str(dump), "-f", "text"],
        "scan": ["vmcore", "scan", str(dump), "-f", "text"],
        "iommu": ["vmcore", "iommu", str(dump), "--saved", str(SAVED), "-f", "text"],
        "exposure": ["vmcore", "exposure", str(dump), "--saved", str(SAVED), "-f", "text"],
    }


def _outputs(capsys, dump: Path) -> Dict[str, str]:
    out = {}
    for name, args in _commands(dump).items():
        code, text, err = run(capsys, *args)
        assert code == 0, (name, err)
        out[name] = text.replace(str(dump), "DUMP")
    return out


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure-python"])
def test_makedumpfile_lzo_dump_reads_like_the_zlib_dump(capsys, monkeypatch, pure):
    if pure:
        monkeypatch.setitem(sys.modules, "lzokay", None)
        monkeypatch.setitem(sys.modules, "lzo", None)
    with open_dump(str(LZO)) as d:
        assert d.header.compression == ("lzo",)
        flags = {d.page_desc(p).flags & 0x27 for p in _pages(ZLIB)}
    assert flags == {0, 2}  # makedumpfile stored some pages LZO-compressed, some raw
    ref = _pages(ZLIB)
    assert _pages(LZO) == ref and len(ref) == 209
    got = _outputs(capsys, LZO)
    assert got == _outputs(capsys, ZLIB)
    assert "root table: 0x25d5000" in got["scan"] and got["log"].count("\n") > 500


@pytest.mark.parametrize("method,block", [("snappy", ["cramjam"]), ("snappy", []),
                                          ("zstd", ["zstandard"]), ("zstd", ["cramjam"])])
def test_snappy_and_zstd_dumps_read_like_the_zlib_dump(capsys, monkeypatch, tmp_path, method, block):
    pytest.importorskip("cramjam" if method == "snappy" else "zstandard")
    dump = _built(method, tmp_path)
    for mod in block:
        monkeypatch.setitem(sys.modules, mod, None)
    with open_dump(str(dump)) as d:
        assert d.header.compression == (method,)
    assert _pages(dump) == _pages(ZLIB)
    assert _outputs(capsys, dump) == _outputs(capsys, ZLIB)


def _triage(capsys, *args: str):
    code, out, err = run(capsys, "triage", "--offline", "--root", str(KDUMP_SNAP), *args, "-f", "json")
    return code, (json.loads(out) if code not in (1, 2) else None), err


def test_missing_decompressor_is_an_error_in_every_command(capsys, monkeypatch, tmp_path):
    pytest.importorskip("zstandard")
    dump = _built("zstd", tmp_path)
    saved = tmp_path / "crash"
    saved.mkdir()
    (saved / "vmcore").write_bytes(dump.read_bytes())
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "cramjam", None)
    for name, args in {**_commands(dump), "info": ["vmcore", "info", str(dump)]}.items():
        code, out, err = run(capsys, *args)
        assert code == 1 and "pip install zstandard" in err, name
        assert "no valid VT-d root table" not in out + err, name
    for extra in (["--vmcore", str(dump), "--saved", str(LIVE_SNAP)], ["--saved", str(saved)]):
        code, report, err = _triage(capsys, *extra)
        assert code == 1 and "zstd" in err and report is None


def _corrupt_lzo_pages(tmp_path: Path) -> Path:
    blob = bytearray(LZO.read_bytes())
    with open_dump(str(LZO)) as d:
        for pfn in _pages(LZO):
            pd = d.page_desc(pfn)
            if pd.flags & 2:   # every LZO-compressed page (the raw ones stay readable)
                for i in range(pd.offset + pd.size // 3, pd.offset + pd.size):
                    blob[i] ^= 0x5A
    out = tmp_path / "bad.lzo.kdump"
    out.write_bytes(bytes(blob))
    return out


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure-python"])
def test_undecodable_pages_are_errors_or_labelled_partial_results(capsys, monkeypatch, tmp_path, pure):
    if pure:
        monkeypatch.setitem(sys.modules, "lzokay", None)
    bad = _corrupt_lzo_pages(tmp_path)
    cmds = _commands(bad)
    for name in ("log", "iommu", "exposure"):
        code, out, err = run(capsys, *cmds[name])
        assert code == 1 and "lzo" in err, name
    code, out, err = run(capsys, *cmds["scan"])
    assert code == 3 and "no valid VT-d root table found" in out   # a partial result, labelled
    assert "INCOMPLETE: 75 pages could not be read" in out
    assert "scan incomplete: 75 page(s) unreadable" in err
    # The issue's wrong answer was "0 devices, 0 of the risky devices still had mapped
    # pages" as a note: now the finding says INCOMPLETE, is a warning, and names the page.
    code, report, err = _triage(capsys, "--vmcore", str(bad), "--saved", str(LIVE_SNAP))
    assert code in (3, 4)
    f = {x["id"]: x for x in report["findings"]}
    ct = f["crashed-kernel-tables"]
    assert ct["severity"] == "warning" and ct["title"].startswith("INCOMPLETE: 1 table page")
    assert any("unreadable: root table at 0x25d5000" in e["text"] for e in ct["evidence"])
    assert f["offline-source"]["severity"] == "warning"
    # The same triage on the intact dump: 14 devices, 4 risky ones with mappings.
    code, report, err = _triage(capsys, "--vmcore", str(LZO), "--saved", str(LIVE_SNAP))
    ct = {x["id"]: x for x in report["findings"]}["crashed-kernel-tables"]
    assert ct["severity"] == "info" and "14 devices" in ct["title"]
    assert "4 of the risky devices still had mapped pages" in ct["title"]
