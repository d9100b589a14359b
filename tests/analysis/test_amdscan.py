"""``vmcore scan``'s AMD-Vi listing (analysis/amdscan.py): the crashed kernel's device
table found with no hint, validated by structure.

Oracles: on the real QEMU amd-iommu cut (fixtures/lab_amdvi/amd_on) the Device Table Base
busybox devmem read in the live kernel (DEV_TABLE, base and size), collect's
amdvi_registers.json, and the kdump kernel's own lines ("Copied DEV table from previous
kernel." for a table of its own size); on dumps built in code (tests/amdvi_memory.py,
laid out as Linux writes them) the layout they were built with, counted again by a plain
loop over the raw ELF bytes (tests/amdvi_memory.elf_reader), not by kdumptool's readers.
"""

from __future__ import annotations

import json
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.analysis.amdscan import (
    check_dte_page,
    dte_head_ok,
    dte_prefilter,
    find_device_tables,
)
from kdumptool.errors import KdumptoolError
from kdumptool.formats.amdvi_tables import dte_from_qwords
from tests.amdvi_memory import IR, IW, TV, AmdViMemory, V, elf_reader
from tests.analysis.test_amdvi_walk import BASE, Mem, build, dump_pages
from tests.cliutil import run
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, write_elf, write_kdump
from tests.lab.test_fixtures import regs

CUT = FIXTURES / "lab_amdvi" / "amd_on"


def _ranges(pages: Dict[int, bytes]) -> List[Tuple[int, int]]:
    return [(p << 12, (p + 1) << 12) for p in sorted(pages)]


def _oracle_counts(read, base: int, size: int) -> Tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """(V=1, translated, pass-through, distinct domains of both) by a plain loop over the raw bytes."""
    valid = tr = pt = 0
    doms = set()
    for off in range(0, size, 32):
        q0, q1 = struct.unpack("<2Q", read(base + off, 16))
        if not q0 & 1:
            continue
        valid += 1
        mode = (q0 >> 9) & 7
        if q0 & 2 and 1 <= mode <= 6:
            tr += 1
            doms.add(q1 & 0xFFFF)
        elif q0 >> 61 & 3:
            pt += 1
            doms.add(q1 & 0xFFFF)
    return valid, tr, pt, len(doms)


# --- the real lab cut ----------------------------------------------------------------------

def test_real_cut_finds_the_live_kernels_table(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """No hint: the scan's best candidate is the table the live kernel's DEV_TABLE named
    (busybox devmem), of that size; with collect's registers as --saved it is candidate 1."""
    dev_table = regs(CUT / "live_drhd_regs_final.txt")["DEV_TABLE"]
    code, out, err = run(capsys, "vmcore", "scan", str(CUT / "vmcore.iommu.elf"), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    best = doc["amdvi"]["best"]
    assert best is not None and best["address"] == dev_table & ~0xFFF
    assert best["size"] == ((dev_table & 0x1FF) + 1) << 12
    read = elf_reader(str(CUT / "vmcore.iommu.elf"))
    assert (best["valid_entries"], best["translated_entries"], best["passthrough_entries"], best["domains"]) == \
        _oracle_counts(read, best["address"], best["size"])
    assert best["page_tables_ok"] == best["translated_entries"] and not best["violations"]
    (tmp_path / "_kdumptool").mkdir()
    shutil.copyfile(CUT / "live_amdvi_registers.json", tmp_path / "_kdumptool" / "amdvi_registers.json")
    code, out, err = run(capsys, "vmcore", "scan", str(CUT / "vmcore.iommu.elf"), "--saved", str(tmp_path),
                         "-f", "json")
    doc = json.loads(out)
    assert doc["vendor"] == "AMD-Vi" and not doc["vtd_scanned"], doc["vendor_evidence"]
    assert doc["amdvi"]["saved"] == [{"unit": "ivhd0", "address": dev_table & ~0xFFF, "size": best["size"],
                                      "kernel": "first", "candidate": 1, "same_size_as_best": True}]


def test_real_cut_with_the_kdump_kernels_snapshot(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """The kdump kernel's snapshot: its DEV_TABLE is its own copy (not in the dump), of
    the size of the table found, and its copy lines are quoted as evidence."""
    with tarfile.open(CUT / "kdump_snapshot.tar.gz") as tf:
        tf.extractall(tmp_path, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(tmp_path)
    snap = next(p.parent.parent for p in tmp_path.rglob("amdvi_registers.json"))
    code, out, err = run(capsys, "vmcore", "scan", str(CUT / "vmcore.iommu.elf"), "--saved", str(snap))
    assert code == 0, err
    assert "of the kdump kernel: 0xb1d0000 (32 KiB): its own copy, outside the dump; the same size" in out
    assert "AMD-Vi: Copied DEV table from previous kernel." in out
    assert "device table: 0x11d0000 (32 KiB, 1024 entries; 15 translated" in out
    # and the text names no VT-d structure: the vendor is known
    assert "root table" not in out and "VT-d" not in out.split("\n", 1)[1]


# --- dumps built in code -------------------------------------------------------------------

def test_built_dump_elf_and_kdump_agree_with_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """The 2 MiB table of tests/analysis/test_amdvi_walk.build(), in an ELF core and a
    zlib kdump-compressed file (the fast path): found at its base, its size, its counts
    equal to the plain loop over the raw ELF; the JSON validates (tests/test_json_schema)."""
    pages = dump_pages(build())
    elf = tmp_path / "a.elf"
    elf.write_bytes(write_elf(DumpSpec(pages)))
    kd = tmp_path / "a.kdump"
    kd.write_bytes(write_kdump(DumpSpec(pages), "zlib"))
    read = elf_reader(str(elf))
    want = _oracle_counts(read, BASE, 2 << 20)
    for path, fast in ((elf, False), (kd, True)):
        code, out, err = run(capsys, "vmcore", "scan", str(path), "--vendor", "amd", "-f", "json")
        assert code == 0, err
        a = json.loads(out)["amdvi"]
        assert a["fast_path"] is fast
        b = a["best"]
        assert (b["address"], b["size"], b["entries"]) == (BASE, 2 << 20, 65536)
        assert (b["valid_entries"], b["translated_entries"], b["passthrough_entries"], b["domains"]) == want
        assert b["page_tables_ok"] == b["translated_entries"] == 4 and b["last_valid_devid"] == 0xFFFF


def _small_table(m: AmdViMemory, base: int, last_bdf: int, domain: int = 1, devid: int = 0x10) -> int:
    m.device_table(base, last_bdf)
    root = m.new_table()
    m.map(root, 3, 0x1000_0000, 0x0300_0000)
    m.attach(base, devid, root, 3, domain)
    return root


def test_small_tables_two_segments_and_trailing_zero_pages() -> None:
    """Linux sizes the table from the IVRS (tbl_size: (last_bdf + 1) x 32 rounded up to a
    power of two pages): QEMU's 1024 entries are 32 KiB; last_bdf 0x5ff gives 48 KiB of
    entries in a 64 KiB block whose last 16 KiB are zero. Two segments: two tables."""
    m = AmdViMemory()
    _small_table(m, 0x0400_0000, 0x3FF)
    _small_table(m, 0x0500_0000, 0x5FF, domain=2)
    pages = {p: bytes(b) for p, b in m.pages.items()}
    res = find_device_tables(Mem(pages), _ranges(pages))
    got = sorted((c.address, c.size, c.last_valid) for c in res.candidates if c.valid_table)
    assert got == [(0x0400_0000, 32 << 10, 0x3FF), (0x0500_0000, 64 << 10, 0x5FF)]
    # the zero pages were not dumped at all (makedumpfile -d 1): the same answer
    for p in [p for p, b in pages.items() if not any(b)]:
        del pages[p]
    res = find_device_tables(Mem(pages), _ranges(pages))
    assert sorted((c.address, c.size) for c in res.candidates if c.valid_table) == [
        (0x0400_0000, 32 << 10), (0x0500_0000, 64 << 10)]


@pytest.mark.parametrize("spoil,why", [
    ("misaligned", "not aligned to its size"),
    ("domain0", "translates in domain 0"),
    ("two_roots", "page-table roots (one domain, one page table)"),
    ("bad_level", "is not below Mode"),
    ("root_off_table", "page-table root 0x7000000"),
])
def test_violations(spoil: str, why: str) -> None:
    """Tables Linux would never write are listed with the reason and not taken."""
    m = AmdViMemory()
    base = 0x0400_0000 + (0x1000 if spoil == "misaligned" else 0)
    root = _small_table(m, base, 0x3FF, domain=0 if spoil == "domain0" else 1)
    if spoil == "two_roots":
        r2 = m.new_table()
        m.map(r2, 3, 0x2000_0000, 0x0300_0000)
        m.attach(base, 0x18, r2, 3, 1)
    if spoil == "bad_level":
        m.put_q(root + 8, 0x0300_0000 | (5 << 9) | 1)  # NextLevel 5 in a 3-level table
    if spoil == "root_off_table":
        m.attach(base, 0x10, 0x0700_0000, 3, 1)  # a root page that is not in the dump
    pages = {p: bytes(b) for p, b in m.pages.items()}
    res = find_device_tables(Mem(pages), _ranges(pages))
    assert res.best is None
    assert any(why in v for c in res.candidates for v in c.violations), [c.violations for c in res.candidates]


def test_no_table_above_4g_and_blocked_only_tables() -> None:
    """A table above 4 GiB is not looked for (GFP_DMA32; the kdump kernel would refuse
    it): the bytes above are counted, not read. A table of only blocked IDs is listed but
    needs a whole page of them to count."""
    m = AmdViMemory()
    _small_table(m, (5 << 30), 0x3FF)
    pages = {p: bytes(b) for p, b in m.pages.items()}
    res = find_device_tables(Mem(pages), _ranges(pages))
    assert res.best is None and res.above_4g_bytes == sum(4096 for p in pages if p << 12 >= 1 << 32)
    m = AmdViMemory()
    m.device_table(0x0400_0000, 0x3FF)  # 1024 blocked entries, no device attached
    pages = {p: bytes(b) for p, b in m.pages.items()}
    best = find_device_tables(Mem(pages), _ranges(pages)).best
    assert best is not None and best.blocked == 1024 and best.translated == 0


def test_vtd_dump_has_no_amd_table(capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """The lab's VT-d dump: its log says VT-d, so only the VT-d scan runs; asked for AMD-Vi
    anyway, nothing valid is found (and the text says so)."""
    vtd = FIXTURES / "vmcore" / "vtd" / "legacy_on.trim.kdump"
    code, out, _ = run(capsys, "vmcore", "scan", str(vtd), "-f", "json")
    doc = json.loads(out)
    assert doc["vendor"] == "VT-d" and doc["amdvi"] is None and doc["best"] is not None
    code, out, _ = run(capsys, "vmcore", "scan", str(vtd), "--vendor", "amd")
    assert code == 0 and "no valid AMD-Vi device table found" in out and "root table:" not in out


# --- the byte prefilter and the entry checks ---------------------------------------------

DTE = st.builds(
    lambda v, tv, mode, root, rw, dom, iv, irt: (
        (v | tv << 1 | ((mode << 9 | root << 12) if tv and mode else 0) | rw << 61) if v else 0,
        dom if v else 0, (iv | irt << 6) if v else 0, 0),
    st.integers(0, 1), st.integers(0, 1), st.integers(0, 6), st.integers(1, (1 << 40) - 1), st.integers(0, 3),
    st.integers(0, 0xFFFF), st.integers(0, 1), st.integers(0, (1 << 46) - 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DTE, min_size=16, max_size=16))
def test_prefilter_never_drops_a_page_the_entry_check_takes(some: List[Tuple[int, int, int, int]]) -> None:
    """The bytes-only prefilter is a necessary condition of the entry-by-entry check (on
    entries laid out as Linux writes them), and the check agrees with the formats decoder."""
    entries = some * 8  # a page of 128 (generating 128 distinct entries is slow)
    page = b"".join(struct.pack("<4Q", *e) for e in entries)
    ok, valid, used = check_dte_page(page)
    if ok and valid:
        assert dte_prefilter(page) and dte_head_ok(page[:256])
    decoded = [dte_from_qwords(*e) for e in entries]
    assert ok  # every entry is one Linux could write
    assert valid == sum(1 for d in decoded if d.v)
    assert used == sum(1 for d in decoded if d.translation in ("translated", "pass-through"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(0, 64), st.binary(min_size=4096, max_size=4096), max_size=6),
       st.lists(st.tuples(st.integers(0, 511), st.integers(0, 2**64 - 1)), max_size=32))
def test_fuzz_scan(noise: Dict[int, bytes], qwords: List[Tuple[int, int]]) -> None:
    """Random pages and a Linux-default table page with random qwords: only our errors,
    every candidate inside the dumped pages and in order."""
    pages = {0x1000 + p: b for p, b in noise.items()}
    buf = bytearray(struct.pack("<Q", V | TV) * 512)
    for i, v in qwords:
        struct.pack_into("<Q", buf, 8 * i, v)
    pages[0x4000] = bytes(buf)
    pages[0x4001] = struct.pack("<Q", V | TV | IR | IW) * 512
    try:
        res = find_device_tables(Mem(pages), _ranges(pages))
    except KdumptoolError:
        return
    for c in res.candidates:
        assert c.address >> 12 in pages and c.size >= 4096
    ranks = [(not c.valid_table, -c.score) for c in res.candidates]
    assert ranks == sorted(ranks)
