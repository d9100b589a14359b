"""The pure-Python LZO1X and snappy decoders (formats/lzo.py, formats/snappy.py): the
fallbacks a plain install uses where no compiled decompressor exists for its Python.

Oracles: streams written by independent compressors (lzokay's LZO1X, cramjam's snappy)
over real pages from the trimmed lab dumps and over edge-case data; and, in
tests/sources/test_plain_install_formats.py, pages that makedumpfile itself compressed.
"""

from __future__ import annotations

import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats import diskdump as dd
from kdumptool.formats import lzo, snappy
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES


def _real_pages(limit: int = 60):
    """Pages of a real crashed kernel (printk ring, page tables, VT-d tables)."""
    out = []
    with open_dump(str(FIXTURES / "vmcore" / "vtd" / "legacy_on.trim.kdump")) as d:
        ps = d.page_size
        for s, e in d.iter_dumped_ranges():
            for addr in range(s, e, ps):
                out.append(d.read(addr, ps))
                if len(out) >= limit:
                    return out
    return out


def _edge_inputs():
    rng = random.Random(13)
    yield b"\0" * 4096
    yield bytes(range(256)) * 16
    yield bytes(rng.randrange(256) for _ in range(4096))          # incompressible
    yield b"ab" * 2048                                             # overlapping copies
    yield b"x" + b"\0" * 70000 + b"y"                              # long runs, far distances
    yield bytes(rng.randrange(4) for _ in range(65536))            # 16..48 kB distances
    yield b"".join(bytes([rng.randrange(256)]) * rng.randrange(1, 300) for _ in range(400))
    yield b"a"
    yield b"abc"


def test_lzo_matches_lzokay_on_real_pages_and_edge_cases():
    lzokay = pytest.importorskip("lzokay")
    n = 0
    for page in _real_pages() + list(_edge_inputs()):
        blob = bytes(lzokay.compress(page))
        assert lzo.decompress(blob, len(page)) == page
        n += 1
    assert n > 60


def test_snappy_matches_cramjam_on_real_pages_and_edge_cases():
    cramjam = pytest.importorskip("cramjam")
    for page in _real_pages() + list(_edge_inputs()):
        blob = bytes(cramjam.snappy.compress_raw(page))
        assert snappy.decompress(blob, len(page)) == page


def test_lzo_hand_written_stream():
    # First byte 22..255: literal run of byte-17; 0x11 0 0: end of stream.
    assert lzo.decompress(bytes([17 + 5]) + b"hello" + b"\x11\x00\x00", 100) == b"hello"
    # 4 literals, then 01LDDDSS: L=1 -> copy 4 bytes from distance (H<<3)+D+1 = 4.
    blob = bytes([17 + 4]) + b"abcd" + bytes([0b01_1_011_00, 0]) + b"\x11\x00\x00"
    assert lzo.decompress(blob, 100) == b"abcdabcd"


def test_lzo_bad_streams_are_decode_errors():
    lzokay = pytest.importorskip("lzokay")
    page = _real_pages(1)[0]
    blob = bytes(lzokay.compress(page))
    for cut in (0, 1, len(blob) // 2, len(blob) - 1):
        with pytest.raises(DecodeError, match="LZO1X"):
            lzo.decompress(blob[:cut], len(page))
    with pytest.raises(DecodeError, match="exceeds"):
        lzo.decompress(blob, len(page) - 1)
    with pytest.raises(DecodeError, match="after the end marker"):
        lzo.decompress(blob + b"\0", len(page))
    # A match reaching before the output's start (distance 4 with 1 byte written).
    with pytest.raises(DecodeError, match="before the start"):
        lzo.decompress(bytes([18]) + b"a" + bytes([0b01_0_011_00, 0]), 100)


def test_snappy_bad_streams_are_decode_errors():
    cramjam = pytest.importorskip("cramjam")
    page = _real_pages(1)[0]
    blob = bytes(cramjam.snappy.compress_raw(page))
    for cut in (0, 1, len(blob) // 2, len(blob) - 1):
        with pytest.raises(DecodeError, match="snappy"):
            snappy.decompress(blob[:cut], len(page))
    with pytest.raises(DecodeError, match="exceeds"):
        snappy.decompress(blob, len(page) - 1)
    with pytest.raises(DecodeError, match="offset 0"):
        snappy.decompress(b"\x08\x00a\x01\x00", 8)   # copy with offset 0


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_lzo(data):
    try:
        assert len(lzo.decompress(data, 4096)) <= 4096
    except KdumptoolError:
        pass


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_snappy(data):
    try:
        assert len(snappy.decompress(data, 4096)) <= 4096
    except KdumptoolError:
        pass


@pytest.mark.parametrize("method,module", [("lzo", "lzokay"), ("snappy", "cramjam")])
def test_decompress_page_falls_back_without_the_compiled_module(monkeypatch, method, module):
    lib = pytest.importorskip(module)
    page = _real_pages(3)[2]
    if method == "lzo":
        blob, flag = bytes(lib.compress(page)), dd.DUMP_DH_COMPRESSED_LZO
    else:
        blob, flag = bytes(lib.snappy.compress_raw(page)), dd.DUMP_DH_COMPRESSED_SNAPPY
    monkeypatch.setitem(sys.modules, module, None)     # import now raises ImportError
    assert dd.decompress_page(blob, flag, 4096) == page
    with pytest.raises(DecodeError, match=f"corrupt {method} page"):
        dd.decompress_page(blob[:-3], flag, 4096, "dump: pfn 0x1", 0x1000)
