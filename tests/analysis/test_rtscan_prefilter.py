"""The bulk prefilter of the root-table scan (rtscan.chunk_prefilter, rewritten for issue
13's `vmcore scan` <= 6x `cat` goal) finds exactly the candidates the old one found: on
hypothesis-made pages, on every dump in fixtures/ and (corpus) on the lab's full dumps.

``_old_chunk_prefilter`` is the previous implementation, kept here as the reference."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.analysis import rtscan
from kdumptool.analysis.rtscan import chunk_prefilter, find_root_tables, prefilter
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES

PAGE = 4096
_BAD01 = bytes(0 if b in (0, 1) else 1 for b in range(256))
_BADNIB = bytes(1 if b & 0x0F else 0 for b in range(256))


def _old_chunk_prefilter(blob: bytes, n: int) -> List[int]:
    """rtscan.chunk_prefilter before issue 13's rewrite (commit 7de69db)."""
    bad = (int.from_bytes(blob[0::16].translate(_BAD01), "little")
           | int.from_bytes(blob[1::16].translate(_BADNIB), "little")).to_bytes(n * 256, "little")
    lo0 = blob[0::16]
    hi0 = blob[8::16]
    out = []
    for k in range(n):
        a = k * 256
        if bad.find(b"\x01", a, a + 256) >= 0:
            continue
        if lo0.find(b"\x01", a, a + 256) < 0 and hi0.find(b"\x01", a, a + 256) < 0:
            continue
        out.append(k)
    return out


def _exact(blob: bytes, n: int) -> List[int]:
    return [k for k in range(n) if any(prefilter(blob[k * PAGE:(k + 1) * PAGE]))]


def _after_prefilter(blob: bytes, ks: List[int]) -> List[int]:
    return [k for k in ks if any(prefilter(blob[k * PAGE:(k + 1) * PAGE]))]


def _check(blob: bytes) -> List[int]:
    n = len(blob) // PAGE
    new, old = chunk_prefilter(blob, n), _old_chunk_prefilter(blob, n)
    assert new == sorted(set(new))
    exact = _exact(blob, n)
    assert _after_prefilter(blob, new) == _after_prefilter(blob, old) == exact
    for k in new:  # and nothing else: byte 0 of every qword 0 or 1, one of them 1
        flags = blob[k * PAGE:(k + 1) * PAGE][0::8]
        assert not flags.translate(None, b"\x00\x01") and b"\x01" in flags
    return exact


# qwords a root table, its look-alikes and ordinary memory are made of
_qword = st.one_of(
    st.just(0), st.just(1), st.integers(0, 3),
    st.integers(0, (1 << 40) - 1).map(lambda a: (a << 12) | 1),          # present entry
    st.integers(0, (1 << 40) - 1).map(lambda a: (a << 12) | 0x100),      # reserved bit 8
    st.integers(0, (1 << 64) - 1),
)


@st.composite
def _page(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["zero", "sparse", "legacy", "scalable", "random", "ones"]))
    if kind == "zero":
        return bytes(PAGE)
    if kind == "random":
        return random.Random(draw(st.integers(0, 1 << 32))).randbytes(PAGE)
    if kind == "ones":   # every qword 0/1: passes the byte rules
        bits = random.Random(draw(st.integers(0, 1 << 32))).getrandbits(512)
        return struct.pack("<512Q", *((bits >> i) & 1 for i in range(512)))
    q = [0] * 512
    for _ in range(draw(st.integers(1, 12))):
        i = draw(st.integers(0, 511))
        if kind == "legacy":
            i &= ~1   # lower qwords only
        q[i] = draw(_qword)
    return struct.pack("<512Q", *q)


@settings(max_examples=100, deadline=None)
@given(st.lists(_page(), min_size=1, max_size=12))
def test_same_candidates_as_the_old_prefilter(pages):
    _check(b"".join(pages))


def test_edges_of_runs():
    """Good pages at the start and end of a chunk, next to bad bytes one byte away, a
    page whose only bad byte is its last qword's, runs shorter than a page."""
    good = bytearray(PAGE)
    good[0] = 1
    bad_last = bytearray(good)
    bad_last[PAGE - 8] = 2
    bad_first = bytearray(good)
    bad_first[0] = 0x63
    zero = bytes(PAGE)
    for pages in ([good], [good, good], [bad_last, good], [good, bad_last, good],
                  [bad_first, good, zero, good], [zero, zero, good], [zero] * 3):
        blob = b"".join(bytes(p) for p in pages)
        exact = _check(blob)
        assert exact == [i for i, p in enumerate(pages) if p[0] == 1 and p[PAGE - 8] == 0]


DUMPS = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("**/*.kdump")) + \
    sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("**/*.elf"))


def _scan_both(path: Path) -> None:
    with open_dump(str(path)) as dump:
        ranges = list(dump.iter_dumped_ranges())
        new = find_root_tables(dump, ranges, use_fast=False)
    old_cp = rtscan.chunk_prefilter
    rtscan.chunk_prefilter = _old_chunk_prefilter
    try:
        with open_dump(str(path)) as dump:
            old = find_root_tables(dump, ranges, use_fast=False)
    finally:
        rtscan.chunk_prefilter = old_cp
    assert new.candidates == old.candidates
    assert (new.prefilter_passed, new.pages_scanned, new.unreadable_pages) == \
        (old.prefilter_passed, old.pages_scanned, old.unreadable_pages)


@pytest.mark.parametrize("rel", DUMPS)
def test_fixture_dumps_same_candidates(rel):
    assert len(DUMPS) >= 10
    _scan_both(FIXTURES / rel)


@pytest.mark.corpus
@pytest.mark.parametrize("run", ["legacy_on", "sm_mismatch_vmcore"])
def test_lab_dumps_same_candidates(shared, run):
    path = shared / "lab-captures/kdump" / run / "vmcore.d31.zlib.kdump"
    if not path.is_file():
        pytest.skip(f"{path} not in ../shared")
    _scan_both(path)
