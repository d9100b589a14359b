"""kdump-compressed headers, page descriptors and page decompression."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
from kdumptool.formats import diskdump as dd
from tests.conftest import FIXTURES
from tests.dumpwriter import compress, need

TRIM = FIXTURES / "vmcore" / "legacy_on.trim.kdump"


def test_header_of_trimmed_lab_dump():
    data = TRIM.read_bytes()
    h = dd.parse_disk_dump_header(data)
    assert h.header_version == 6 and h.block_size == 4096
    assert h.release == "6.1.0-56-amd64" and h.machine == "x86_64"
    assert h.compression == ("zlib",) and not h.incomplete
    sub = dd.parse_sub_header(data[4096:], h.header_version)
    # Oracle: NUMBER(phys_base) that the kernel itself wrote into VMCOREINFO.
    vmci = data[sub.offset_vmcoreinfo:sub.offset_vmcoreinfo + sub.size_vmcoreinfo].decode()
    assert f"NUMBER(phys_base)={sub.phys_base}" in vmci
    assert f"CRASHTIME={h.timestamp}" in vmci
    assert sub.max_mapnr == 262101 and sub.dump_level == 31


@pytest.mark.corpus
def test_header_of_full_lab_dump(shared):
    path = shared / "lab-captures" / "kdump" / "legacy_on" / "vmcore.d31.zlib.kdump"
    with open(path, "rb") as f:
        data = f.read(8192)
    h = dd.parse_disk_dump_header(data)
    sub = dd.parse_sub_header(data[h.block_size:], h.header_version)
    assert (h.bitmap_blocks, h.sub_hdr_size, h.nr_cpus) == (16, 2, 2)
    assert (sub.offset_note, sub.size_note) == (4200, 4036)
    assert (sub.offset_vmcoreinfo, sub.size_vmcoreinfo) == (4936, 3300)


def test_page_desc_struct_matches_construct_spec():
    raw = struct.pack("<qIIQ", 0x123456789, 1234, dd.DUMP_DH_COMPRESSED_ZSTD, 0xDEADBEEF)
    c = dd.PageDescStruct.parse(raw)
    p = dd.parse_page_desc(raw)
    assert (p.offset, p.size, p.flags, p.page_flags) == (c.offset, c.size, c.flags, c.page_flags)
    assert dd.PageDescStruct.sizeof() == dd.PAGE_DESC_SIZE == dd.PAGE_DESC.size
    assert dd.DiskDumpHeaderStruct.sizeof() == dd.DISK_DUMP_HEADER_SIZE
    assert dd.KdumpSubHeaderStruct.sizeof() == dd.KDUMP_SUB_HEADER_SIZE


def test_flattened_format_is_not_a_kdump_header():
    data = b"makedumpfile\0\0\0\0" + b"\0" * 4080
    with pytest.raises(UnsupportedFormat, match="flattened format .* not a kdump-compressed header"):
        dd.parse_disk_dump_header(data, "vmcore.flat")


def test_malformed_header():
    data = bytearray(TRIM.read_bytes()[:4096])
    with pytest.raises(DecodeError, match="truncated disk_dump_header"):
        dd.parse_disk_dump_header(bytes(data[:200]))
    bad = bytearray(data)
    struct.pack_into("<i", bad, 0x1AC, 3000)
    with pytest.raises(DecodeError, match="block_size 3000"):
        dd.parse_disk_dump_header(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 0x1B4, 3)
    with pytest.raises(DecodeError, match="bitmap_blocks 3"):
        dd.parse_disk_dump_header(bytes(bad))
    with pytest.raises(DecodeError, match="truncated kdump_sub_header"):
        dd.parse_sub_header(b"\0" * 20, 6)


def test_sub_header_fields_by_version():
    raw = struct.pack("<QiiQQqQqQqQQQQ", 2**64 - 5, 31, 1, 10, 20, 100, 50, 200, 60, 0, 0,
                      11, 21, 999)
    v1 = dd.parse_sub_header(raw, 1)
    assert v1.phys_base == -5 and v1.split is None and v1.offset_vmcoreinfo is None
    v3 = dd.parse_sub_header(raw, 3)
    assert (v3.start_pfn, v3.offset_vmcoreinfo, v3.offset_note) == (10, 100, None)
    v6 = dd.parse_sub_header(raw, 6)
    assert (v6.start_pfn, v6.end_pfn, v6.max_mapnr, v6.offset_note) == (11, 21, 999, 200)


PAGE = bytes(range(256)) * 8 + b"\0" * 2048


@pytest.mark.parametrize("method", ["zlib", "lzo", "snappy", "zstd"])
def test_decompress_each_method(method):
    need(method)
    flag = {"zlib": 1, "lzo": 2, "snappy": 4, "zstd": 0x20}[method]
    blob = compress(PAGE, method)
    assert len(blob) < len(PAGE)
    assert dd.decompress_page(blob, flag, 4096) == PAGE


@pytest.mark.parametrize("method", ["zlib", "lzo", "snappy", "zstd"])
def test_corrupt_compressed_page(method):
    need(method)
    flag = {"zlib": 1, "lzo": 2, "snappy": 4, "zstd": 0x20}[method]
    blob = bytearray(compress(PAGE, method))
    for i in range(len(blob) // 3, len(blob)):
        blob[i] ^= 0x5A
    with pytest.raises(DecodeError) as err:
        dd.decompress_page(bytes(blob), flag, 4096, "dump: pfn 0x10", 0x2000)
    assert "pfn 0x10" in str(err.value) and "offset 0x2000" in str(err.value)
    assert method in str(err.value)
    # Truncated stream: same kind of error.
    with pytest.raises(DecodeError):
        dd.decompress_page(compress(PAGE, method)[:10], flag, 4096)


def test_wrong_size_and_flags():
    with pytest.raises(DecodeError, match="expected 4096"):
        dd.decompress_page(zlib.compress(b"x" * 100), 1, 4096)
    with pytest.raises(DecodeError, match="raw page is 100 bytes"):
        dd.decompress_page(b"x" * 100, 0, 4096)
    with pytest.raises(DecodeError, match="several compressions"):
        dd.decompress_page(b"x" * 100, 3, 4096)


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_disk_dump_header(data):
    try:
        dd.parse_disk_dump_header(dd.KDUMP_SIGNATURE + data)
    except KdumptoolError:
        pass


@settings(deadline=None)
@given(st.binary(max_size=120), st.integers(1, 8))
def test_fuzz_sub_header(data, version):
    try:
        dd.parse_sub_header(data, version)
    except KdumptoolError:
        pass


@settings(deadline=None)
@given(st.binary(max_size=300), st.sampled_from([0, 1, 2, 4, 0x20, 0x21]))
def test_fuzz_decompress(data, flags):
    try:
        out = dd.decompress_page(data, flags, 4096)
        assert len(out) == 4096
    except KdumptoolError:
        pass


def test_fuzz_decompress_random_garbage_lzo():
    # lzo decoders are the classic crash source: feed many garbage streams.
    rng = random.Random(6)
    for i in range(300):
        data = bytes(rng.randrange(256) for _ in range(1 + i % 200))
        try:
            dd.decompress_page(data, dd.DUMP_DH_COMPRESSED_LZO, 4096)
        except KdumptoolError:
            pass
