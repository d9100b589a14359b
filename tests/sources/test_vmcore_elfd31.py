"""A real ``makedumpfile -E -d 31`` dump, read like the zlib dump of the same crash.

Fixtures (fixtures/vmcore/elfd31/PROVENANCE.md): ``legacy_on.d31.elf.cut``, a sparse cut
(tests/sparsecut.py) of the lab's -E dump of /proc/vmcore (114,775,196 bytes: makedumpfile's
ELF header, its 21 program headers, the notes, and the pages the decoders read, each at its
original offset; everything else zero), restored here into a sparse temporary file; and
``legacy_on.d31.zlib.trim.kdump``, the same crash's ``makedumpfile -c -d 31`` dump with the
same pages kept verbatim (tools/trim_kdump_verbatim.py).

Oracles: ``readelf -lW`` (binutils) of the full -E dump; ``makedumpfile --dump-dmesg`` (in
the kdump kernel on /proc/vmcore, identical on the full -E dump); the live kernel's RTADDR
and IOMMU groups; a spec decode of the context entries (tests/vtd_spec.py) over bytes read
by a separate ELF reader; the zlib dump (another makedumpfile writer, another reader).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from kdumptool.formats import elf
from kdumptool.sources.vmcore import ElfDump, open_dump
from tests.cliutil import run
from tests.conftest import FIXTURES, need_tool
from tests.sparsecut import read_header, restore_cut
from tests.vtd_spec import elf_phys_offset, elf_phys_read, spec_contexts

E = FIXTURES / "vmcore" / "elfd31"
CUT = E / "legacy_on.d31.elf.cut"
ZLIB = E / "legacy_on.d31.zlib.trim.kdump"
SAVED = E / "legacy_on"


@pytest.fixture(scope="module")
def elfd31(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The -E dump restored from its cut (sparse: a few hundred KB on disk)."""
    out = tmp_path_factory.mktemp("elfd31") / "vmcore.d31.elf"
    restore_cut(CUT, out)
    return out


def _outputs(capsys: pytest.CaptureFixture, dump: Path) -> Dict[str, Tuple[int, str, str]]:
    cmds = {
        "log": ["vmcore", "log", str(dump), "-f", "text"],
        "iommu": ["vmcore", "iommu", str(dump), "--saved", str(SAVED), "-f", "text"],
        "scan": ["vmcore", "scan", str(dump), "-f", "text"],
        "info": ["vmcore", "info", str(dump), "-f", "text"],
    }
    out = {}
    for name, args in cmds.items():
        code, text, err = run(capsys, *args)
        out[name] = (code, text.replace(str(dump), "DUMP"), err)
    return out


def _readelf_phdrs(text: str) -> List[Tuple[str, int, int, int, int, int]]:
    """(type, offset, vaddr, paddr, filesz, memsz) of each line of ``readelf -lW``."""
    rows = []
    for m in re.finditer(r"^\s+(NOTE|LOAD)\s+(0x\S+)\s+(0x\S+)\s+(0x\S+)\s+(0x\S+)\s+(0x\S+)", text, re.M):
        rows.append((m.group(1), *(int(g, 16) for g in m.groups()[1:])))
    return rows


def test_restored_cut_has_makedumpfiles_layout(elfd31: Path) -> None:
    """Every program header as makedumpfile wrote it (readelf of the full dump), at the
    full dump's size: PT_NOTE, 5 kernel-text PT_LOADs, the RAM PT_LOADs split where
    makedumpfile split them, p_filesz < p_memsz where it dropped the tail."""
    text = (SAVED / "readelf_l.txt").read_text()
    want = _readelf_phdrs(text)
    assert int(re.search(r"There are (\d+) program headers", text).group(1)) == len(want) == 21
    assert elfd31.stat().st_size == read_header(CUT)["size"] == 114_775_196
    with open_dump(str(elfd31)) as d:
        assert isinstance(d, ElfDump)
        got = [("NOTE" if p.p_type == elf.PT_NOTE else "LOAD", p.p_offset, p.p_vaddr, p.p_paddr,
                p.p_filesz, p.p_memsz) for p in d.phdrs]
        assert got == want
        assert any(p.p_filesz < p.p_memsz for p in d.phdrs if p.p_type == elf.PT_LOAD)
        assert not d.truncated and not d.warnings


def test_log_is_makedumpfiles(capsys: pytest.CaptureFixture, elfd31: Path) -> None:
    code, out, err = run(capsys, "vmcore", "log", str(elfd31), "-f", "text")
    assert code == 0 and err == ""
    want = (SAVED / "makedumpfile_dmesg.txt").read_bytes().decode("utf-8", "surrogateescape")
    assert out.splitlines() == want.splitlines()
    assert "Kernel panic - not syncing: sysrq triggered crash" in out


def test_makedumpfile_reads_the_restored_cut(elfd31: Path, tmp_path: Path) -> None:
    """The cut keeps what makedumpfile itself needs: --dump-dmesg prints what it printed
    for the whole dump."""
    need_tool("makedumpfile", "the oracle")
    out = tmp_path / "dmesg.txt"
    r = subprocess.run(["makedumpfile", "--dump-dmesg", str(elfd31), str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-800:] + r.stderr[-800:]
    assert out.read_bytes() == (SAVED / "makedumpfile_dmesg.txt").read_bytes()


def test_reads_like_the_zlib_dump_of_the_same_crash(capsys: pytest.CaptureFixture, elfd31: Path) -> None:
    """vmcore log, iommu --saved, scan and info: the same output from the -E dump and from
    the zlib dump, but for the lines that describe the file (format, segments or bitmap,
    how many pages it holds)."""
    e, z = _outputs(capsys, elfd31), _outputs(capsys, ZLIB)
    for name in ("log", "iommu"):
        assert e[name] == z[name], name
        assert e[name][0] == 0 and e[name][2] == ""
    # scan: the page counts describe the file (-E keeps makedumpfile's 19,725 RAM pages,
    # the zlib cut 213): the candidates and why are the same
    assert re.match(r"scanned 19,725 pages .*; 10 passed the byte prefilter\n", e["scan"][1])
    assert e["scan"][1].split("\n", 1)[1] == z["scan"][1].split("\n", 1)[1]
    assert "0x2328000 legacy    yes" in e["scan"][1]
    # info: from the kernel line on (release, crash time, panic, VMCOREINFO, registers)
    tail = [t[1][t[1].index("  kernel: "):] for t in (e["info"], z["info"])]
    assert tail[0] == tail[1] and "6.1.0-57-amd64" in tail[0]
    assert e["info"][0] == e["scan"][0] == 0


def test_iommu_is_the_spec_decode_and_the_live_groups(capsys: pytest.CaptureFixture, elfd31: Path) -> None:
    """The root table is the live kernel's RTADDR; every present context entry and DID is
    what a spec decode over a separate ELF reader finds; every device the live kernel had
    in an IOMMU group has one (extra entries: the DMA alias 03:00.0 of the PCIe-to-PCI
    bridge)."""
    rtaddr = int(re.search(r"^RTADDR\s+off=0x020 w=64 (0x[0-9A-F]+)", (SAVED / "drhd_regs.txt").read_text(),
                           re.M).group(1), 16)
    code, out, err = run(capsys, "vmcore", "iommu", str(elfd31), "--saved", str(SAVED), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["root_table"]["address"] == rtaddr & ~0xFFF and doc["root_table"]["mode"] == "legacy"
    got = {d["bdf"]: d.get("domain_id") for d in doc["devices"] if d.get("present")}
    assert got == spec_contexts(lambda a, n: elf_phys_read(str(elfd31), a, n), rtaddr)
    groups = {b for m in re.finditer(r"devices=(.*)", (SAVED / "iommu_groups.txt").read_text())
              for b in m.group(1).split()}
    assert groups <= set(got) and set(got) - groups == {"0000:03:00.0"}
    nic = next(d for d in doc["devices"] if d["bdf"] == "0000:00:02.0")
    assert nic["mapped_4k_pages"] > 0   # the e1000e was receiving at the crash


def _cut_points(elfd31: Path) -> Dict[str, int]:
    """File sizes that cut the -E dump: just past the root table (its context tables
    lost), just past the first context table (the other buses lost), and 8 MiB short of
    the end (past every VT-d table and the printk ring)."""
    rtaddr = int(re.search(r"^RTADDR\s+off=0x020 w=64 (0x[0-9A-F]+)", (SAVED / "drhd_regs.txt").read_text(),
                           re.M).group(1), 16) & ~0xFFF
    root = elf_phys_read(str(elfd31), rtaddr, 4096)
    ctps = [int.from_bytes(root[b * 16:b * 16 + 8], "little") & ~0xFFF for b in range(256)
            if root[b * 16] & 1]
    first = min(elf_phys_offset(str(elfd31), c) for c in ctps)
    return {"root": elf_phys_offset(str(elfd31), rtaddr) + 4096, "context": first + 4096,
            "tail": elfd31.stat().st_size - (8 << 20)}


@pytest.mark.parametrize("where", ["root", "context", "tail"])
def test_truncated_is_a_labelled_partial_result(capsys: pytest.CaptureFixture, elfd31: Path, tmp_path: Path,
                                                where: str) -> None:
    """A copy of the -E dump cut short (file shorter than a PT_LOAD's p_offset + p_filesz):
    every command says so and exits non-zero; what could be read is shown (exit 3), what
    could not is an error naming the truncated end (exit 1); never "0 devices" or exit 0."""
    size = _cut_points(elfd31)[where]
    cut = tmp_path / "cut.elf"
    restore_cut(CUT, cut)
    os.truncate(cut, size)
    out = _outputs(capsys, cut)
    for name, (code, text, err) in out.items():
        assert code in (1, 3), (where, name, code, err)
        assert "truncated" in err and "Traceback" not in err, (where, name, err)
        if code == 1:
            # one error line, last, naming the file (warnings before it are allowed)
            assert text == "" and err.count("error: ") == 1, (where, name, err)
            assert err.rstrip().splitlines()[-1].startswith(f"error: {cut}"), (where, name, err)
    assert re.search(r"^INCOMPLETE: [1-9][\d,]* pages could not be read", out["scan"][1], re.M)
    iommu = out["iommu"]
    assert not re.search(r"^0 devices", iommu[1], re.M)
    if where == "root":
        assert iommu[0] == 1 and "context table(s) are not in the dump: past the truncated end" in iommu[2]
        return
    assert iommu[0] == 3 and "VT-d tables incomplete" in iommu[2] and "the dump file is truncated" in iommu[2]
    code, text, err = run(capsys, "vmcore", "iommu", str(cut), "--saved", str(SAVED), "-f", "json")
    devices = [d for d in json.loads(text)["devices"] if d.get("present")]
    if where == "context":
        assert 0 < len(devices) < 15 and "unreadable: context table bus 01" in iommu[1]
        assert all(u["why"] == "past the truncated end" for u in json.loads(text)["unreadable_tables"])
    else:  # every table was read; the log too, and it says the file is damaged
        assert len(devices) == 15 and out["log"][0] == 3
        assert out["log"][1].splitlines() == (SAVED / "makedumpfile_dmesg.txt").read_text(
            errors="surrogateescape").splitlines()
