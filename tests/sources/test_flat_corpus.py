"""makedumpfile -F streams of a whole lab crash, made here by makedumpfile itself (-c as
Debian's kdump-tools, -l as kdump-utils, -E for the ELF inner format): the image we
reassemble is byte-identical to what ``makedumpfile -R`` rebuilds, ``vmcore log`` of the
stream prints what ``makedumpfile --dump-dmesg`` prints of the rebuilt file, and
``triage --offline`` of the stream says what it says of the seekable dump. Corpus tier
(needs ../shared and the makedumpfile binary)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kdumptool.sources.flat import FlatImage
from kdumptool.sources.vmcore import open_dump
from tests.cliutil import run
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, write_elf


def _mdf(*args: str, stdin: Path = None, stdout: Path = None) -> None:
    src = open(stdin, "rb") if stdin else subprocess.DEVNULL
    dst = open(stdout, "wb") if stdout else subprocess.DEVNULL
    try:
        r = subprocess.run(["makedumpfile", *args], stdin=src, stdout=dst, stderr=subprocess.PIPE,
                           timeout=300)
    finally:
        for f in (src, dst):
            if hasattr(f, "close"):
                f.close()
    assert r.returncode == 0, r.stderr[-800:]


def _same_image(flat: Path, rebuilt: Path) -> None:
    fd = os.open(flat, os.O_RDONLY)
    try:
        im = FlatImage(str(flat), fd)
        assert not im.truncated and im.size == rebuilt.stat().st_size
        with open(rebuilt, "rb") as ref:
            for pos in range(0, im.size, 4 << 20):
                assert im.pread(4 << 20, pos) == ref.read(4 << 20), hex(pos)
    finally:
        os.close(fd)


def _log_is_makedumpfiles(capsys, flat: Path, rebuilt: Path, tmp_path: Path) -> str:
    out = tmp_path / f"{flat.name}.dmesg"
    _mdf("--dump-dmesg", str(rebuilt), str(out))
    code, text, err = run(capsys, "vmcore", "log", str(flat))
    assert (code, err) == (0, "")
    assert text == out.read_text()
    return text


@pytest.fixture
def mdf(shared):
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed")
    return shared / "lab-captures" / "kdump" / "legacy_on" / "vmcore.d31.zlib.kdump"


@pytest.mark.corpus
@pytest.mark.parametrize("comp", ["-c", "-l"])
def test_flat_kdump_compressed_of_a_lab_crash(capsys, tmp_path, mdf, comp):
    if comp == "-l":
        pytest.importorskip("lzokay")
    flat, rebuilt = tmp_path / "vmcore.flat", tmp_path / "vmcore"
    _mdf("-F", comp, "-d", "31", str(mdf), stdout=flat)
    _mdf("-R", str(rebuilt), stdin=flat)
    if comp == "-c":   # makedumpfile -F -c of the zlib dump rebuilds that very file
        assert rebuilt.read_bytes() == mdf.read_bytes()
    _same_image(flat, rebuilt)
    text = _log_is_makedumpfiles(capsys, flat, rebuilt, tmp_path)
    assert "Kernel panic - not syncing: sysrq triggered crash" in text
    # Every command reads it: info names both formats, triage --offline says the same as of the seekable file.
    code, out, err = run(capsys, "vmcore", "info", str(flat))
    assert code == 0 and "kdump-compressed in makedumpfile flattened format (-F)" in out
    snap = str(FIXTURES / "snapshots" / "kdump_legacy_on")
    res = {}
    for p in (flat, rebuilt):
        code, out, err = run(capsys, "triage", "--offline", "--root", snap, "--vmcore", str(p), "-f", "json")
        res[p] = (code, out.replace(str(p), "DUMP"))
    assert res[flat] == res[rebuilt]
    assert json.loads(res[flat][1])["findings"]
    saved = str(FIXTURES / "vmcore" / "vtd" / "legacy_on")
    for args in (["iommu", "--saved", saved], ["exposure", "--saved", saved], ["scan"]):
        got = [run(capsys, "vmcore", args[0], str(p), *args[1:], "-f", "json") for p in (flat, rebuilt)]
        assert got[0][0] == got[1][0] == 0, (args, got[0][2])
        a, b = (re.sub(r'"seconds": [\d.]+', "", g[1].replace(str(p), "DUMP"))   # scan's timing
                for g, p in zip(got, (flat, rebuilt)))
        assert a == b, args


@pytest.mark.corpus
def test_flat_elf_of_a_lab_crash(capsys, tmp_path, mdf):
    """-F -E: makedumpfile refuses -E on a kdump-compressed input, so it is given an ELF
    of every dumped page of the crash (as tests/sources/test_vmcore_makedumpfile.py)."""
    with open_dump(str(mdf)) as dump:
        ps = dump.page_size
        pages = {pfn: dump.read(pfn * ps, ps) for s, e in dump.iter_dumped_ranges()
                 for pfn in range(s // ps, e // ps)}
        spec = DumpSpec(pages=pages, vmcoreinfo=dump.vmcoreinfo.raw.encode(),
                        prstatus=[(p.pid, dict(p.registers)) for p in dump.prstatus],
                        max_mapnr=dump.max_mapnr)
    elf = tmp_path / "crash.elf"
    elf.write_bytes(write_elf(spec, filtered_in_memsz=False))
    del spec, pages
    flat, rebuilt = tmp_path / "vmcore.E.flat", tmp_path / "vmcore.E"
    _mdf("-F", "-E", "-d", "31", str(elf), stdout=flat)
    elf.unlink()
    _mdf("-R", str(rebuilt), stdin=flat)
    _same_image(flat, rebuilt)
    # makedumpfile -F -E writes the program headers first and again, changed, at the end:
    # only "the later block wins" gives -R's file (checked byte for byte just above).
    fd = os.open(flat, os.O_RDONLY)
    try:
        assert FlatImage(str(flat), fd).overlapping_blocks >= 1
    finally:
        os.close(fd)
    _log_is_makedumpfiles(capsys, flat, rebuilt, tmp_path)
    code, out, err = run(capsys, "vmcore", "info", str(flat))
    assert code == 0 and out.startswith(f"{flat}: elf in makedumpfile flattened format (-F)")
