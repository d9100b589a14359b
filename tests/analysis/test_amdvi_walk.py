"""AMD-Vi device table and v1 page tables out of a dump built in code with Linux's own
layouts (tests/amdvi_memory.py, citing amd_iommu_types.h / io_pgtable.c), checked
against the tests' own few-line decoder reading the raw ELF file, through
``kdumptool vmcore iommu`` / ``exposure`` (scan, --dev-table, --saved).

QEMU's amd-iommu model was not run here (no lab scenario yet): these dumps stand in
for it, and docs/amd.md says so."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.analysis.amdscan import find_device_tables
from kdumptool.analysis.amdvi_walk import (
    lookup_iova_amd,
    walk_device_table,
    walk_v1,
)
from kdumptool.analysis.vtd_walk import PageReader
from kdumptool.errors import KdumptoolError, NotMapped
from kdumptool.formats.amdvi_tables import (
    DteQ0Struct,
    DteQ1Struct,
    DteQ2Struct,
    decode_dte,
    dte_from_qwords,
    mode7_page_size,
)
from tests.amdvi_memory import (
    IR,
    IW,
    PR,
    TV,
    AmdViMemory,
    V,
    elf_reader,
    oracle_device,
    oracle_translate,
)
from tests.cliutil import run
from tests.dumpwriter import DumpSpec, write_elf

BASE = 0x0100_0000
E1000E, E1000E_F1, NVME, SKIP, AHCI = 0x0010, 0x0011, 0x0018, 0x0020, 0x00FA


class Mem:
    def __init__(self, pages: Dict[int, bytes]) -> None:
        self.pages = pages

    def read(self, paddr: int, size: int) -> bytes:
        p = self.pages.get(paddr >> 12)
        if p is None:
            raise NotMapped(paddr, "not in the dump")
        return bytes(p[paddr & 0xFFF : (paddr & 0xFFF) + size])


def build() -> AmdViMemory:
    m = AmdViMemory()
    m.device_table(BASE)
    # e1000e and its second function share domain 1 (one page table): rx ring buffers
    # read/write, one tx buffer read-only (DMA_TO_DEVICE maps IR only).
    r1 = m.new_table()
    for i in range(15):
        m.map(r1, 3, 0x1000_0000 + i * 4096, 0x0300_0000 + i * 4096)
    m.map(r1, 3, 0x1000_0000 + 15 * 4096, 0x0300_F000, prot=IR)
    m.attach(BASE, E1000E, r1, 3, 1)
    m.attach(BASE, E1000E_F1, r1, 3, 1)
    # nvme: a 2 MiB page (level-2 leaf) and an 8 KiB page (mode-7 entries, replicated).
    r2 = m.new_table()
    m.map(r2, 3, 0x4000_0000, 0x0400_0000, size=2 << 20)
    m.map(r2, 3, 0x5000_0000, 0x0500_0000, size=8192)
    m.attach(BASE, NVME, r2, 3, 2, q2=(2 << 60) | (9 << 1) | 1 | 0x0700_0040)
    # a 4-level table whose root entry skips straight to a level-2 table
    r3 = m.new_table()
    child = m.skip_to(r3, 4, 0, 2)
    m.put_q(child + 8 * 5, 0x0600_0000 | PR | (1 << 60) | IR | IW)
    m.attach(BASE, SKIP, r3, 4, 4)
    # ahci in an identity (pass-through) domain: V|TV|IR|IW, mode 0
    m.put_q(BASE + 32 * AHCI, V | TV | IR | IW)
    m.put_q(BASE + 32 * AHCI + 8, 3)
    return m


def dump_pages(m: AmdViMemory) -> Dict[int, bytes]:
    pages = {pfn: bytes(b) for pfn, b in m.pages.items()}
    for i in range(16):  # e1000e's buffers are RAM in the dump; nvme's are not
        pages[(0x0300_0000 >> 12) + i] = bytes(4096)
    return pages


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("amdvi") / "amdvi.elf"
    p.write_bytes(write_elf(DumpSpec(dump_pages(build()))))
    return p


def test_walk_matches_the_tests_own_decoder(elf: Path) -> None:
    t = walk_device_table(Mem(dump_pages(build())), BASE)
    read = elf_reader(str(elf))
    got = {(d.bus << 8) | d.devfn: d for d in t.devices}
    assert set(got) == {E1000E, E1000E_F1, NVME, SKIP, AHCI}
    for devid, d in got.items():
        dom, mode, small, large = oracle_device(read, BASE, devid)
        w = d.walk
        assert (d.domain_id, d.aw) == (dom, mode)
        assert ((w.mapped_4k_pages, w.mapped_large_pages) if w else (0, 0)) == (small, large)
    assert t.blocked == 65536 - 5 and t.untranslated == () and t.unreadable == ()
    assert len(t.domains) == 3  # e1000e's two functions share one walk


def test_extents_rights_and_large_pages() -> None:
    t = walk_device_table(Mem(dump_pages(build())), BASE)
    by = {(d.bus << 8) | d.devfn: d for d in t.devices}
    e = by[E1000E].walk
    assert e is not None
    assert [(x.iova, x.phys, x.size, x.read, x.write) for x in e.extents] == [
        (0x1000_0000, 0x0300_0000, 15 * 4096, True, True),
        (0x1000_F000, 0x0300_F000, 4096, True, False)]
    n = by[NVME].walk
    assert n is not None
    assert [(x.iova, x.phys, x.size) for x in n.extents] == [
        (0x4000_0000, 0x0400_0000, 2 << 20), (0x5000_0000, 0x0500_0000, 8192)]
    assert (n.mapped_4k_pages, n.mapped_large_pages) == (2, 1)
    s = by[SKIP].walk
    assert s is not None and [(x.iova, x.phys, x.size) for x in s.extents] == [
        (5 << 21, 0x0600_0000, 2 << 20)]
    a = by[AHCI]
    assert a.translation_type == "pass-through" and a.passthrough and a.walk is None
    dte = t.dtes[NVME]
    assert (dte.iv, dte.int_ctl, dte.int_tab_len, dte.int_table_root) == (True, 2, 9, 0x0700_0040)


def test_dte_construct_spec_agrees_with_the_fast_decoder() -> None:
    m = build()
    for devid in (E1000E, NVME, AHCI, 0x0002):
        raw = bytes(m.page(BASE + 32 * devid & ~0xFFF))[(32 * devid) & 0xFFF:][:32]
        d = decode_dte(raw)
        c0, c1, c2 = DteQ0Struct.parse(raw[0:8]), DteQ1Struct.parse(raw[8:16]), DteQ2Struct.parse(raw[16:24])
        assert (c0.v, c0.tv, c0.mode, c0.pt_root << 12, c0.ir, c0.iw) == (
            d.v, d.tv, d.mode, d.pt_root, d.ir, d.iw)
        assert (c1.domain_id, c2.iv, c2.int_ctl, c2.int_tab_len, c2.int_table_root << 6) == (
            d.domain_id, d.iv, d.int_ctl, d.int_tab_len, d.int_table_root)
    with pytest.raises(KdumptoolError):
        decode_dte(b"\0" * 10)


def test_translation_kinds_follow_the_spec() -> None:
    assert dte_from_qwords(0, 0, 0, 0).translation == "untranslated"
    assert dte_from_qwords(V | TV, 0, 0, 0).translation == "blocked"   # Linux's default
    assert dte_from_qwords(V, 0, 0, 0).translation == "blocked"        # SNP: TV stays 0
    assert dte_from_qwords(V | TV | IR, 0, 0, 0).translation == "pass-through"
    assert dte_from_qwords(V | TV | 7 << 9, 0, 0, 0).translation == "invalid"
    assert dte_from_qwords(V | TV | 3 << 9 | 0x5000, 0, 0, 0).translation == "translated"
    assert mode7_page_size(0x0500_0000 | 0xFFF) == 8192
    assert mode7_page_size(0x0500_1000 | 0xFFF) == 16384


def test_unreadable_and_looped_tables_are_reported() -> None:
    m = build()
    pages = dump_pages(m)
    by_root = walk_device_table(Mem(pages), BASE)
    root = next(d.pt_root for d in by_root.devices if (d.bus << 8 | d.devfn) == NVME)
    assert root is not None
    lvl2 = struct.unpack_from("<Q", pages[root >> 12], 8 * ((0x4000_0000 >> 30) & 0x1FF))[0] & 0x000FFFFFFFFFF000
    del pages[lvl2 >> 12]
    t = walk_device_table(Mem(pages), BASE, only=[NVME])
    nv = t.devices[0]
    assert nv.walk is not None and nv.walk.unreadable and nv.walk.unreadable[0].paddr == lvl2
    del pages[(BASE >> 12) + 3]
    t = walk_device_table(Mem(pages), BASE)
    assert [u.paddr for u in t.unreadable] == [BASE + 3 * 4096]
    # a table that points at itself at a lower level (a loop) ends at level 1
    m2 = AmdViMemory()
    r = m2.new_table()
    m2.put_q(r, r | (2 << 9) | PR | IR | IW)
    w = walk_v1(PageReader(Mem({p: bytes(b) for p, b in m2.pages.items()})), r, 3)
    assert w.table_pages == 2 and any("does not decrease" in p for p in w.problems)


def test_scan_finds_the_table() -> None:
    pages = dump_pages(build())
    ranges = [(p << 12, (p + 1) << 12) for p in sorted(pages)]
    res = find_device_tables(Mem(pages), ranges)
    assert res.best is not None and (res.best.address, res.best.size) == (BASE, 2 << 20)


def test_vmcore_iommu_cli_scan_names_the_vendor(elf: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "vmcore", "iommu", str(elf), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["vendor"] == "AMD-Vi" and doc["device_table"]["source"] == "scan"
    assert doc["device_table"]["address"] == BASE and doc["device_table"]["entries"] == 65536
    read = elf_reader(str(elf))
    for d in doc["devices"]:
        b, dv, fn = int(d["bdf"][5:7], 16), int(d["bdf"][8:10], 16), int(d["bdf"][11], 16)
        dom, mode, small, large = oracle_device(read, BASE, b << 8 | dv << 3 | fn)
        assert (d["domain_id"], d["mapped_4k_pages"], d["mapped_large_pages"]) == (dom, small, large)
        assert d["dte"]["domain_id"] == dom and d["dte"]["mode"] == mode
    assert any("found no VT-d root table" in w for w in doc["warnings"])
    code, out, _ = run(capsys, "vmcore", "iommu", str(elf), "-f", "text")
    assert out.startswith("AMD-Vi device table 0x1000000 (65536 entries, segment 0000), found by scanning")
    assert "0000:00:1f.2  y pass-through" in out


def test_vmcore_iommu_dev_table_and_saved(elf: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "vmcore", "iommu", str(elf), "--dev-table", "0x10001ff",
                       "--device", "00:03.0", "-f", "json")
    doc = json.loads(out)
    assert code == 0 and doc["device_table"]["source"] == "argument"
    assert [d["bdf"] for d in doc["devices"]] == ["0000:00:03.0"]
    assert doc["devices"][0]["dte"]["interrupt_remapping"]["int_ctl"] == "remap"
    (tmp_path / "_kdumptool").mkdir()
    (tmp_path / "_kdumptool" / "amdvi_registers.json").write_text(json.dumps({"units": [
        {"name": "ivhd0", "address": 0xFD300000, "read_error": None,
         "registers": {"DEV_TABLE": BASE | 0x1FF, "CONTROL": 0x1405}}]}))
    code, out, _ = run(capsys, "vmcore", "iommu", str(elf), "--saved", str(tmp_path), "-f", "json")
    doc = json.loads(out)
    assert code == 0 and doc["device_table"]["source"] == "saved" and len(doc["devices"]) == 5


def test_vmcore_exposure_amd(elf: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "vmcore", "exposure", str(elf), "--vendor", "amd", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["vendor"] == "AMD-Vi"
    assert doc["totals"]["passthrough_devices"] == ["0000:00:1f.2"]
    e = next(d for d in doc["devices"] if d["bdf"] == "0000:00:02.0")
    assert e["writable_bytes"] == 15 * 4096 and e["readable_bytes"] == 16 * 4096
    assert e["not_dumped_bytes"] == 0
    n = next(d for d in doc["devices"] if d["bdf"] == "0000:00:03.0")
    assert n["not_dumped_bytes"] == (2 << 20) + 8192


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 511), st.integers(0, 2**64 - 1)), max_size=24),
       st.integers(1, 6))
def test_fuzz_page_tables(entries: list, levels: int) -> None:
    """Random entries in a few table pages that point at each other: the walk ends, and
    only our records come out."""
    pages: Dict[int, bytearray] = {p: bytearray(4096) for p in range(0x100, 0x104)}
    for i, (idx, v) in enumerate(entries):
        v = (v & ~0x000FFFFFFFFFF000) | ((0x100 + i % 5) << 12)
        struct.pack_into("<Q", pages[0x100 + i % 4], 8 * idx, v)
    w = walk_v1(PageReader(Mem({p: bytes(b) for p, b in pages.items()})), 0x100000, levels)
    assert w.table_pages <= 4 * levels + 4


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 511), st.integers(0, 2**64 - 1)), max_size=64))
def test_fuzz_device_table_page(qwords: list) -> None:
    buf = bytearray(struct.pack("<Q", 3) * 512)  # Linux's default entries, then noise
    for i, v in qwords:
        struct.pack_into("<Q", buf, 8 * i, v)
    page = bytes(buf)
    t = walk_device_table(Mem({0x100: page}), 0x100000, 4096)
    assert len(t.devices) + t.blocked + sum(b - a + 1 for a, b in t.untranslated) == 128
    res = find_device_tables(Mem({0x100: page}), [(0x100000, 0x101000)])
    assert len(res.candidates) <= 1


def test_lookup_iova_equals_the_tests_own_decoder(elf: Path) -> None:
    mem = Mem(dump_pages(build()))
    read = elf_reader(str(elf))
    t = walk_device_table(mem, BASE)
    probes = [(AHCI, 0x1234_5000), (0x0100, 0x1000), (E1000E, 0x2000_0000), (NVME, 0x4010_0000)]
    for d in t.devices:
        devid = (d.bus << 8) | d.devfn
        for x in (d.walk.extents if d.walk else ()):
            probes += [(devid, x.iova), (devid, x.iova + x.size - 1), (devid, x.iova + x.size)]
    for devid, iova in probes:
        r = lookup_iova_amd(mem, BASE, devid, iova)
        want = oracle_translate(read, BASE, devid, iova)
        got = None if r.phys is None else (r.phys, (1 if r.read else 0) | (2 if r.write else 0))
        assert got == want, (hex(devid), hex(iova), r.reason)
        assert r.steps[0].name == "device table entry" and r.steps[0].paddr == BASE + 32 * devid
    r = lookup_iova_amd(mem, BASE, NVME, 0x5000_1234)
    assert (r.phys, r.page_size, [s.level for s in r.steps[1:]]) == (0x0500_1234, 8192, [3, 2, 1])
    # the skipping PDE: the bits of the skipped level must be zero, else no translation
    assert lookup_iova_amd(mem, BASE, SKIP, (5 << 21) + 7).phys == 0x0600_0007
    r = lookup_iova_amd(mem, BASE, SKIP, (1 << 30) | (5 << 21))
    assert r.phys is None and "skipped IOVA bits" in (r.reason or "")
    assert "above the 3-level" in (lookup_iova_amd(mem, BASE, E1000E, 1 << 40).reason or "")
    assert "blocks DMA" in (lookup_iova_amd(mem, BASE, 0x0100, 0x1000).reason or "")
    pages = dump_pages(build())
    del pages[(BASE >> 12) + (NVME * 32 >> 12)]
    assert "not in the dump" in (lookup_iova_amd(Mem(pages), BASE, NVME, 0x4000_0000).reason or "")


FAULT_LOG = """\
[   12.000001] e1000e 0000:00:02.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x10000040 flags=0x0020]
[   12.000002] e1000e 0000:00:02.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x10000040 flags=0x0020]
[   12.000003] e1000e 0000:00:02.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x1000f000 flags=0x0020]
[   12.000004] nvme 0000:00:03.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0x60000000 flags=0x0000]
[   12.000005] nvme 0000:00:03.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0000 address=0xfee00000 flags=0x0008]
"""


def test_vmcore_iommu_iova_and_faults_amd(elf: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "vmcore", "iommu", str(elf), "--device", "00:03.0", "--iova", "0x40012345",
                         "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["vendor"] == "AMD-Vi" and doc["phys"] == 0x0401_2345 and doc["page_size"] == 2 << 20
    assert [s["name"] for s in doc["steps"]] == ["device table entry", "pte", "pte"]
    code, out, _ = run(capsys, "vmcore", "iommu", str(elf), "--device", "00:03.0", "--iova", "0x40012345")
    assert "  DTE[0]: " in out and "=> phys 0x4012345 (2 MiB page), RW" in out
    log = tmp_path / "kdump-dmesg.txt"
    log.write_text(FAULT_LOG)
    code, out, err = run(capsys, "vmcore", "iommu", str(elf), "--faults", str(log), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    got = {(f["bdf"], f["address"], f["access"]): f for f in doc["faults"]}
    assert set(got) == {("0000:00:02.0", 0x1000_0040, "write"), ("0000:00:02.0", 0x1000_F000, "write"),
                        ("0000:00:03.0", 0x6000_0000, "read")}  # the interrupt fault (flag I) is not DMA
    a = got[("0000:00:02.0", 0x1000_0040, "write")]
    assert a["count"] == 2 and a["mapped"] and a["phys"] == 0x0300_0040 and "in-flight" in a["verdict"]
    assert "without write access" in got[("0000:00:02.0", 0x1000_F000, "write")]["verdict"]
    assert "not mapped" in got[("0000:00:03.0", 0x6000_0000, "read")]["verdict"]
