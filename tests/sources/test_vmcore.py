"""The dump reader: every container and compression gives the same memory, missing pages
say why, malformed files give one clear error, memory stays bounded.

The memory comes from the trimmed real lab dump (fixtures/vmcore); tests/dumpwriter.py
rewrites it as ELF and as kdump-compressed with every compression and header version.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, NotMapped, SourceMissing, UnsupportedFormat
from kdumptool.formats.printk import decode_printk
from kdumptool.formats.vmcoreinfo import START_KERNEL_MAP
from kdumptool.sources.vmcore import KdumpDump, _bit_runs, open_dump
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, need, write_elf, write_kdump

TRIM = FIXTURES / "vmcore" / "legacy_on.trim.kdump"


def _spec_from_fixture() -> DumpSpec:
    with open_dump(str(TRIM)) as dump:
        assert isinstance(dump, KdumpDump)
        ps = dump.page_size
        pages: Dict[int, bytes] = {}
        for start, end in dump.iter_dumped_ranges():
            for pfn in range(start // ps, end // ps):
                pages[pfn] = dump.read(pfn * ps, ps)
        ram = {pfn for s, e in dump.iter_ram_ranges() for pfn in range(s // ps, e // ps)}
        return DumpSpec(pages=pages, filtered=ram - set(pages),
                        vmcoreinfo=dump.vmcoreinfo.raw.encode(),
                        prstatus=[(p.pid, dict(p.registers)) for p in dump.prstatus],
                        max_mapnr=dump.max_mapnr, phys_base=dump.sub.phys_base,
                        release="6.1.0-56-amd64", timestamp=dump.header.timestamp, nr_cpus=2)


@pytest.fixture(scope="module")
def spec() -> DumpSpec:
    return _spec_from_fixture()


def _probe(dump, addrs: List[int]):
    out = []
    for a in addrs:
        try:
            out.append(("ok", dump.read(a, 64)))
        except NotMapped as err:
            out.append(("missing", err.why))
    return out


def _summary(path: Path, probes: List[int]):
    with open_dump(str(path)) as dump:
        ranges = list(dump.iter_dumped_ranges())
        ps = dump.page_size
        data = b"".join(dump.read(s, e - s) for s, e in ranges)
        log = decode_printk(dump.vmcoreinfo, dump.read_virt)
        return {
            "ranges": ranges, "data": data, "records": log.records,
            "probes": _probe(dump, probes), "vmcoreinfo": dump.vmcoreinfo.raw,
            "cpus": [(p.pid, p.registers) for p in dump.prstatus], "page_size": ps,
            "dumped": [dump.is_dumped(a) for a in probes],
        }


@pytest.mark.parametrize("container", ["lzo", "snappy", "zstd", "none", "elf"])
def test_every_compression_and_elf_equal_zlib(tmp_path, spec, container):
    need(container)
    ref = tmp_path / "ref.kdump"
    ref.write_bytes(write_kdump(spec, "zlib"))
    other = tmp_path / f"dump.{container}"
    other.write_bytes(write_elf(spec) if container == "elf" else write_kdump(spec, container))
    pfns = sorted(spec.pages)
    probes = [pfns[0] * 4096, pfns[-1] * 4096 + 100, min(spec.filtered) * 4096,
              max(spec.filtered) * 4096, 0, 0x1C000000, 1 << 40, (spec.mapnr() + 5) * 4096]
    a, b = _summary(ref, probes), _summary(other, probes)
    assert a == b
    # And both equal the trimmed fixture written from the real dump.
    assert _summary(TRIM, probes) == a
    assert len(a["records"]) == 559
    whys = [p[1] for p in a["probes"] if p[0] == "missing"]
    assert whys == ["filtered", "filtered", "not in the dump", "not in the dump",
                    "not in the dump", "not in the dump"]


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_header_versions(tmp_path, spec, version):
    path = tmp_path / f"v{version}.kdump"
    path.write_bytes(write_kdump(spec, "zlib", header_version=version))
    with open_dump(str(path)) as dump:
        pfn = min(spec.pages)
        assert dump.read(pfn * 4096, 4096) == spec.pages[pfn]
        assert dump.vmcoreinfo.osrelease == ("6.1.0-56-amd64" if version >= 3 else None)
        assert len(dump.prstatus) == (2 if version >= 4 else 0)
        if version < 3:
            assert any("no VMCOREINFO" in w for w in dump.warnings)


def test_incomplete_dump(tmp_path, spec):
    path = tmp_path / "incomplete.kdump"
    path.write_bytes(write_kdump(spec, "zlib", incomplete_after=100))
    pfns = sorted(spec.pages)
    with open_dump(str(path)) as dump:
        assert dump.header.incomplete
        assert any("incomplete" in w for w in dump.warnings)
        assert dump.read(pfns[99] * 4096, 8) == spec.pages[pfns[99]][:8]
        with pytest.raises(NotMapped) as err:
            dump.read(pfns[100] * 4096 + 16, 8)
        assert err.value.why == "past the truncated end"
        assert err.value.paddr == pfns[100] * 4096 + 16
        assert not dump.is_dumped(pfns[100] * 4096)


def test_truncated_file_page_data(tmp_path, spec):
    blob = write_kdump(spec, "zlib")
    path = tmp_path / "cut.kdump"
    path.write_bytes(blob[:len(blob) - 20000])
    pfns = sorted(spec.pages)
    with open_dump(str(path)) as dump:
        assert dump.read(pfns[0] * 4096, 8) == spec.pages[pfns[0]][:8]
        with pytest.raises(NotMapped) as err:
            dump.read(pfns[-1] * 4096, 8)
        assert err.value.why == "past the truncated end"
        assert "past the truncated end" in str(err.value) and "0x" in str(err.value)


def test_truncated_in_descriptors_and_bitmap_and_header(tmp_path, spec):
    blob = write_kdump(spec, "zlib")
    bs = 4096
    sub_blocks, bitmap_blocks = struct.unpack_from("<iI", blob, 0x1B0)
    desc_off = (1 + sub_blocks + bitmap_blocks) * bs
    path = tmp_path / "cut.kdump"
    path.write_bytes(blob[:desc_off + 24 * 10])
    with open_dump(str(path)) as dump:
        assert any("page descriptors end" in w for w in dump.warnings)
        with pytest.raises(NotMapped) as err:
            dump.read(sorted(spec.pages)[50] * 4096, 1)
        assert err.value.why == "past the truncated end"
    path.write_bytes(blob[:(1 + sub_blocks) * bs + 100])
    with pytest.raises(DecodeError) as err2:
        open_dump(str(path))
    assert str(path) in str(err2.value) and "bitmaps" in str(err2.value)
    assert "past the end of the file" in str(err2.value)
    path.write_bytes(blob[:300])
    with pytest.raises(DecodeError, match="truncated disk_dump_header"):
        open_dump(str(path))


def _desc_pos(blob: bytes, index: int) -> int:
    sub_blocks, bitmap_blocks = struct.unpack_from("<iI", blob, 0x1B0)
    return (1 + sub_blocks + bitmap_blocks) * 4096 + 24 * index


def test_descriptor_pointing_past_end(tmp_path, spec):
    blob = bytearray(write_kdump(spec, "zlib"))
    pos = _desc_pos(blob, 3)
    struct.pack_into("<q", blob, pos, len(blob) + 4096)
    path = tmp_path / "bad.kdump"
    path.write_bytes(bytes(blob))
    pfn = sorted(spec.pages)[3]
    with open_dump(str(path)) as dump:
        with pytest.raises(NotMapped) as err:
            dump.read(pfn * 4096, 8)
        assert err.value.why == "past the truncated end"
        struct.pack_into("<q", blob, pos, -5)
    path.write_bytes(bytes(blob))
    with open_dump(str(path)) as dump:
        with pytest.raises(DecodeError, match=f"page descriptor of pfn 0x{pfn:x} is corrupt"):
            dump.read(pfn * 4096, 8)


def test_corrupt_compressed_page(tmp_path, spec):
    blob = bytearray(write_kdump(spec, "zlib"))
    pos = _desc_pos(blob, 7)
    off, size, flags, _ = struct.unpack_from("<qIIQ", blob, pos)
    assert flags == 1
    for i in range(off + size // 2, off + size):
        blob[i] ^= 0xFF
    path = tmp_path / "corrupt.kdump"
    path.write_bytes(bytes(blob))
    pfn = sorted(spec.pages)[7]
    with open_dump(str(path)) as dump:
        with pytest.raises(DecodeError) as err:
            dump.read(pfn * 4096, 8)
    msg = str(err.value)
    assert str(path) in msg and f"pfn 0x{pfn:x}" in msg and f"offset 0x{off:x}" in msg
    assert "corrupt zlib page" in msg


def test_split_file(tmp_path, spec):
    need("zstd")
    pfns = sorted(spec.pages)
    lo, hi = pfns[20], pfns[60]
    path = tmp_path / "split1.kdump"
    path.write_bytes(write_kdump(spec, "zstd", split=(lo, hi)))
    with open_dump(str(path)) as dump:
        assert dump.split_range == (lo, hi)
        assert dump.read(pfns[30] * 4096, 4096) == spec.pages[pfns[30]]
        assert dump.read(lo * 4096, 4096) == spec.pages[lo]
        with pytest.raises(NotMapped, match="not in the dump"):
            dump.read(pfns[70] * 4096, 8)
        ranges = list(dump.iter_dumped_ranges())
        assert ranges[0][0] == lo * 4096 and ranges[-1][1] <= hi * 4096
        assert sum(e - s for s, e in ranges) == 40 * 4096


def test_elf_truncated_and_filtered_tail(tmp_path, spec):
    blob = write_elf(spec)
    path = tmp_path / "cut.elf"
    path.write_bytes(blob[:-3 * 4096])
    pfns = sorted(spec.pages)
    with open_dump(str(path)) as dump:
        assert any("truncated" in w for w in dump.warnings)
        assert dump.read(pfns[0] * 4096, 8) == spec.pages[pfns[0]][:8]
        with pytest.raises(NotMapped) as err:
            dump.read(pfns[-1] * 4096, 8)
        assert err.value.why == "past the truncated end"
        assert not dump.is_dumped(pfns[-1] * 4096)
        # A page in p_memsz past p_filesz is filtered, not zeros.
        seg = next(s for s in dump.segments if s.memsz > s.filesz)
        with pytest.raises(NotMapped, match="filtered"):
            dump.read(seg.start + seg.filesz, 8)


def test_reads_spanning_pages_and_cache_bound(tmp_path, spec):
    pfns = sorted(spec.pages)
    run = next(p for p in pfns if p + 1 in spec.pages)
    with open_dump(str(TRIM), cache_pages=8) as dump:
        got = dump.read(run * 4096 + 4000, 200)
        assert got == spec.pages[run][4000:] + spec.pages[run + 1][:104]
        for p in pfns:
            dump.read(p * 4096, 8)
            assert len(dump._cache) <= 8
        before = dump.stats["pages_read"]
        dump.read(pfns[-1] * 4096, 8)
        assert dump.stats["pages_read"] == before and dump.stats["cache_hits"] > 0


def test_virtual_translation_routes_agree():
    with open_dump(str(TRIM)) as dump:
        vi = dump.vmcoreinfo
        checked = 0
        for name, vaddr in vi.symbols.items():
            if vaddr < START_KERNEL_MAP:
                continue
            assert dump._walk_kernel_pgt(vaddr) == dump.virt_to_phys(vaddr), name
            checked += 1
        assert checked >= 10
        # The direct-map address of mem_section goes through the page tables.
        ms = vi.symbol("mem_section")
        pa = dump.virt_to_phys(ms)
        assert pa < 1 << 30 and dump.read_virt(ms, 16) == dump.read(pa, 16)
        with pytest.raises(NotMapped, match="virtual address not mapped"):
            dump.virt_to_phys(0xFFFF800000000000 + (1 << 38) + 0x1234000)


def test_open_errors(tmp_path):
    with pytest.raises(SourceMissing, match="no such file"):
        open_dump(str(tmp_path / "nope"))
    with pytest.raises(SourceMissing, match="directory"):
        open_dump(str(tmp_path))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty file"):
        open_dump(str(empty))
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world, not a dump")
    with pytest.raises(UnsupportedFormat, match="not an ELF core nor a kdump-compressed"):
        open_dump(str(junk))
    flat = tmp_path / "vmcore.flat"
    flat.write_bytes(b"makedumpfile" + b"\0" * 4084)
    with pytest.raises(DecodeError, match="flat header type 0, not TYPE_FLAT_HEADER"):
        open_dump(str(flat))


@pytest.mark.parametrize("run", ["legacy_on", "sm_mismatch_vmcore"])
@pytest.mark.parametrize("ext", ["kdump", "elf"])
def test_panicking_cpu_note_matches_the_kernels_own_line(run, ext):
    """Oracle: panic() prints "CPU: <n> PID: <pid> Comm: ..."; that CPU's NT_PRSTATUS note
    (notes are in CPU order) saved the same pid."""
    import re

    with open_dump(str(FIXTURES / "vmcore" / f"{run}.trim.{ext}")) as dump:
        text = "\n".join(decode_printk(dump.vmcoreinfo, dump.read_virt).dmesg_lines())
        m = re.search(r"\] CPU: (\d+) PID: (\d+) Comm: sh Kdump: loaded", text)
        assert m is not None
        cpu, pid = int(m.group(1)), int(m.group(2))
        assert len(dump.prstatus) == 2
        assert dump.prstatus[cpu].pid == pid
        stext = dump.vmcoreinfo.symbol("_stext")
        assert stext is not None and stext <= dump.prstatus[cpu].reg("rip") < stext + (1 << 30)


@settings(deadline=None)
@given(st.binary(max_size=80), st.integers(0, 1000))
def test_bit_runs_match_a_naive_scan(data, base):
    naive = []
    for i in range(len(data) * 8):
        if data[i >> 3] >> (i & 7) & 1:
            if naive and naive[-1][1] == base + i:
                naive[-1][1] += 1
            else:
                naive.append([base + i, base + i + 1])
    assert [list(r) for r in _bit_runs(data, base)] == naive


def test_bitmaps_are_not_held_in_memory(spec, tmp_path):
    """Only the prefix counts (8 bytes per 512 pages) and a 16-block LRU stay resident."""
    path = tmp_path / "big.kdump"
    path.write_bytes(write_kdump(DumpSpec(pages=dict(list(spec.pages.items())[:50]),
                                          max_mapnr=1 << 22), "zlib"))   # 16 GiB of pfns
    with open_dump(str(path)) as dump:
        assert dump._bitmap_len == 512 << 10
        assert len(dump._prefix) == (512 << 10) // 64 + 1
        for pfn in list(spec.pages)[:50]:
            assert dump.read(pfn * 4096, 8) == spec.pages[pfn][:8]
        assert len(dump._bm_cache) <= 16
        assert sum(e - s for s, e in dump.iter_dumped_ranges()) == 50 * 4096


def test_a_1_gib_elf_is_read_only_where_asked(tmp_path, spec):
    """A sparse 1 GiB ELF core (one PT_LOAD over all of RAM, like /proc/vmcore) holding the
    lab crash's pages: open + the whole kernel log read well under 1 MiB of it."""
    from tests.dumpwriter import build_notes

    notes, _ = build_notes(spec)
    data_off = 0x10000
    size = spec.mapnr() * 4096
    path = tmp_path / "sparse.elf"
    with open(path, "wb") as f:
        ehdr = bytearray(64)
        ehdr[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
        struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 4, 62, 1, 0, 64, 0, 0, 64, 56, 2, 0, 0, 0)
        f.write(ehdr)
        f.write(struct.pack("<IIQQQQQQ", 4, 0, 64 + 112, 0, 0, len(notes), len(notes), 4))
        f.write(struct.pack("<IIQQQQQQ", 1, 7, data_off, 0xFFFF888000000000, 0, size, size, 4096))
        f.write(notes)
        for pfn, page in spec.pages.items():
            f.seek(data_off + pfn * 4096)
            f.write(page)
        f.truncate(data_off + size)
    assert path.stat().st_size > 1000 << 20          # max_mapnr 262,101 pages
    with open_dump(str(path)) as dump:
        opened = dump.stats["bytes_read"]
        log = decode_printk(dump.vmcoreinfo, dump.read_virt)
        assert len(log.records) == 559
        assert opened < 64 << 10 and dump.stats["bytes_read"] < 1 << 20
        # A filtered page of the lab dump is plain zeros in this image (as in /proc/vmcore
        # there is no filtering): the reader returns what the file holds.
        assert dump.read(min(spec.filtered) * 4096, 8) == bytes(8)


def test_elf_program_header_count_past_the_file(tmp_path):
    blob = bytearray(write_elf(DumpSpec(pages={1: bytes(4096)})))
    struct.pack_into("<H", blob, 0x38, 0xFFFF)                    # PN_XNUM ...
    struct.pack_into("<Q", blob, 0x28, 0x80)                      # ... shdr 0 at 0x80
    struct.pack_into("<I", blob, 0x80 + 0x2C, 0x7FFFFFFF)         # sh_info: 2^31 - 1
    path = tmp_path / "xnum.elf"
    path.write_bytes(bytes(blob))
    with pytest.raises(DecodeError, match="2147483647 program headers at 0x40 run past the end"):
        open_dump(str(path))


def test_real_proc_vmcore_headers_cut_short():
    """The real layout of /proc/vmcore (lab run, its first 8 KiB): the RAM PT_LOADs are
    the live iomem's System RAM minus the Crash kernel range, the kernel-text PT_LOAD
    (at "Kernel code") is an alias, the notes decode, and every page is past the
    truncated end."""
    head = FIXTURES / "vmcore" / "lab_legacy_on.proc_vmcore.head"
    ram, crash, code = [], None, None
    for line in (FIXTURES / "vmcore" / "lab_legacy_on.live_iomem.txt").read_text().splitlines():
        rng, _, name = line.strip().partition(" : ")
        a, b = (int(x, 16) for x in rng.split("-"))
        if name == "System RAM":
            ram.append((a, b + 1))
        elif name == "Crash kernel":
            crash = (a, b + 1)
        elif name == "Kernel code":
            code = a
    assert crash is not None and code is not None
    expect = []
    for a, b in ram:
        if a <= crash[0] and crash[1] <= b:
            expect += [(a, crash[0]), (crash[1], b)]
        else:
            expect.append((a, b))
    with open_dump(str(head)) as dump:
        assert [(s.start, s.start + s.memsz) for s in dump.segments] == expect
        aliases = dump.describe()["kernel_text_aliases"]
        assert [a["paddr"] for a in aliases] == [code]
        assert dump.vmcoreinfo.osrelease == (FIXTURES / "vmcore" / "lab_legacy_on.live_uname.txt"
                                             ).read_text().strip()
        # The kernel-text segment encodes phys_base; VMCOREINFO says the same.
        assert aliases[0]["paddr"] - (aliases[0]["vaddr"] - START_KERNEL_MAP) == \
            dump.vmcoreinfo.phys_base
        assert aliases[0]["vaddr"] == dump.vmcoreinfo.symbol("_stext")
        assert len(dump.prstatus) == 2 and [n.name for n in dump.notes][-1] == "VMCOREINFO"
        assert any("truncated" in w for w in dump.warnings)
        for start, _end in expect:
            with pytest.raises(NotMapped) as err:
                dump.read(start, 8)
            assert err.value.why == "past the truncated end"
        # As in a kdump-compressed dump, the ranges are what the headers say was dumped
        # (here every RAM byte); none of it is in the file.
        assert list(dump.iter_dumped_ranges()) == expect
        assert not any(dump.is_dumped(s) for s, _ in expect)


def test_direct_map_walk_agrees_with_the_kernels_own_elf_header():
    """page_offset_base is randomized (KASLR) and absent from VMCOREINFO; /proc/vmcore's
    RAM PT_LOADs carry it (p_vaddr - p_paddr). Our page-table walk of the same crash must
    put SYMBOL(mem_section), a direct-map address, at mem_section - that base."""
    v = FIXTURES / "vmcore"
    with open_dump(str(v / "lab_legacy_on.proc_vmcore.head")) as head:
        bases = {p.p_vaddr - p.p_paddr for p in head.phdrs
                 if p.p_type == 1 and p.p_memsz and p.p_vaddr < START_KERNEL_MAP}
        crashtime = head.vmcoreinfo.crashtime
    assert len(bases) == 1
    (page_offset_base,) = bases
    with open_dump(str(v / "lab_legacy_on.trim.kdump")) as dump:
        assert dump.vmcoreinfo.crashtime == crashtime          # the same crash
        ms = dump.vmcoreinfo.symbol("mem_section")
        assert ms is not None and ms >= page_offset_base
        assert dump.virt_to_phys(ms) == ms - page_offset_base
        lines = set(decode_printk(dump.vmcoreinfo, dump.read_virt).dmesg_lines())
    live = (v / "lab_legacy_on.live_dmesg.txt").read_text().splitlines()
    assert len(live) > 400 and [ln for ln in live if ln not in lines] == []


@pytest.mark.parametrize("compression", ["zlib", "lzo", "zstd", "none"])
def test_iter_pages_gives_every_dumped_page_as_stored(tmp_path, spec, compression):
    """The reader's paged reading (what `vmcore scan` reads a kdump-compressed dump with):
    every dumped page once, in pfn order, each decompressing to what read() gives."""
    from kdumptool.formats.diskdump import decompress_page

    need(compression)
    path = tmp_path / f"d.{compression}"
    path.write_bytes(write_kdump(spec, compression))
    with open_dump(str(path)) as dump:
        ranges = list(dump.iter_dumped_ranges())
        stored = dump.iter_pages(ranges)
        assert stored is not None
        got = [(paddr, decompress_page(data, flags, 4096)) for paddr, flags, data in stored]
        assert [p for p, _ in got] == [pfn * 4096 for pfn in sorted(spec.pages)]
        assert all(page == dump.read(p, 4096) == spec.pages[p // 4096] for p, page in got)
        assert (stored.pages, stored.unreadable) == (len(spec.pages), 0)
        assert dump.compressed == (compression != "none")


def test_iter_pages_counts_a_truncated_end_and_declines_what_it_cannot_line_up(tmp_path, spec):
    blob = write_kdump(spec, "zlib")
    path = tmp_path / "cut.kdump"
    path.write_bytes(blob[:len(blob) - 20000])
    with open_dump(str(path)) as dump:
        ranges = list(dump.iter_dumped_ranges())
        stored = dump.iter_pages(ranges)
        assert stored is not None
        n = sum(1 for _ in stored)
        assert stored.pages == len(spec.pages) and stored.unreadable > 0
        assert n == stored.pages - stored.unreadable
        # ranges that do not start at the first dumped page do not line up with the descriptors
        assert dump.iter_pages(ranges[1:]) is None
    need("zstd")
    pfns = sorted(spec.pages)
    split = tmp_path / "split.kdump"
    split.write_bytes(write_kdump(spec, "zstd", split=(pfns[20], pfns[60])))
    with open_dump(str(split)) as dump:
        assert dump.iter_pages(list(dump.iter_dumped_ranges())) is None  # read page by page
    with open_dump(str(FIXTURES / "vmcore" / "legacy_on.trim.elf")) as dump:
        assert dump.iter_pages(list(dump.iter_dumped_ranges())) is None
