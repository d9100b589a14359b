"""Malformed IVRS input: the outer framing raises one of our errors, everything inside
becomes a warning or a Malformed record with the table offset, and a hypothesis fuzz
shows that only KdumptoolError subclasses escape (decoder, checks and renderers)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
from kdumptool.formats.ivrs import Ivhd, Malformed, parse_ivrs
from tests.conftest import FIXTURES
from tests.formats import ivrs_builder as B

REAL = (FIXTURES / "ivrs" / "ivrs_Notebook_Lenovo_ThinkPad-T14-Gen-3-21CF004PGE_"
        "696E48381F84.dat").read_bytes()


def test_short_and_foreign_input_raises() -> None:
    with pytest.raises(DecodeError):
        parse_ivrs(b"")
    with pytest.raises(DecodeError, match="IVRS header needs 48"):
        parse_ivrs(REAL[:40])
    with pytest.raises(UnsupportedFormat, match="'APIC'"):
        parse_ivrs(b"APIC" + bytes(60))
    with pytest.raises(DecodeError, match="not an ACPI IVRS table"):
        parse_ivrs(b"\x7fELF" + bytes(60))
    bad = bytearray(REAL)
    bad[4:8] = (20).to_bytes(4, "little")
    with pytest.raises(DecodeError, match="shorter than the 48-byte"):
        parse_ivrs(bytes(bad))


def test_truncated_keeps_what_fits() -> None:
    from kdumptool.analysis.ivrs_checks import check_ivrs

    t = parse_ivrs(REAL[:0x100])
    assert t.truncation is not None and t.truncation in t.warnings and not t.checksum_valid
    assert [f.title for f in check_ivrs(t) if f.id == "ivrs-truncated"] == [t.truncation]  # title: "{reason}"
    whole = parse_ivrs(REAL)
    assert whole.truncation is None and "ivrs-truncated" not in [f.id for f in check_ivrs(whole)]
    assert [b.type for b in t.blocks] == ["IVHD", "IVHD", "IVMD", "MALFORMED"]
    assert isinstance(t.blocks[-1], Malformed) and t.blocks[-1].offset == 0xF0
    assert "overruns the table" in t.blocks[-1].reason


def test_bad_checksum_decodes_anyway() -> None:
    bad = bytearray(REAL)
    bad[9] ^= 1
    t = parse_ivrs(bytes(bad))
    assert not t.checksum_valid and any("bad checksum" in w for w in t.warnings)
    assert len(t.blocks) == len(parse_ivrs(REAL).blocks)


def test_zero_length_block_stops_with_malformed() -> None:
    t = parse_ivrs(B.table([B.ivhd10(1, [B.dev4(2, 8)]), b"\x10\x00\x00\x00"]))
    assert isinstance(t.blocks[-1], Malformed) and "shorter than the 4-byte" in t.blocks[-1].reason
    assert t.blocks[-1].offset == 48 + 28


def test_block_shorter_than_its_header() -> None:
    t = parse_ivrs(B.table([B.ivhd11(1, length=24) + bytes(16)]))
    m = t.blocks[0]
    assert isinstance(m, Malformed) and "40-byte fixed part" in m.reason


def test_entry_overrun_and_unknown_length_entries() -> None:
    t = parse_ivrs(B.table([B.ivhd10(1, [B.dev4(2, 8), b"\x46\x00\x01\x00"])]))
    h = t.blocks[0]
    assert isinstance(h, Ivhd) and len(h.device_entries) == 1
    assert any("overruns its IVHD" in w and "0x4c" in w for w in h.warnings)
    t = parse_ivrs(B.table([B.ivhd10(1, [B.dev4(2, 8), b"\x81\x00\x00\x00", B.dev4(2, 9)])]))
    h = t.blocks[0]
    assert isinstance(h, Ivhd) and [e.type for e in h.device_entries] == ["SELECT", "UNKNOWN"]
    assert h.device_entries[1].length == 8
    assert any("no known length" in w for w in h.warnings)
    # A HID entry whose UID length runs past the IVHD.
    t = parse_ivrs(B.table([B.ivhd11(1, [B.hid(5, b"AMDI0020", uid=b"\\_SB", uid_length=40)],
                                     type_id=0x40)]))
    h = t.blocks[0]
    assert isinstance(h, Ivhd) and h.device_entries == () and h.warnings


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        parse_ivrs(b"IVRS" + data)
    except KdumptoolError:
        pass


def _pipeline(data: bytes) -> None:
    from kdumptool.analysis.ivrs_checks import check_ivrs
    from kdumptool.render.ivrs import ivrs_json, render_ivrs_text

    try:
        t = parse_ivrs(data)
    except KdumptoolError:
        return
    for b in t.blocks:
        if not isinstance(b, Malformed):
            assert b.offset + b.length <= len(data)
        for e in b.device_entries:
            assert b.offset <= e.offset < b.offset + b.length
    f = check_ivrs(t)
    render_ivrs_text(t, f)
    ivrs_json(t, f)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), max_size=8),
       st.integers(min_value=0, max_value=len(REAL) + 8))
def test_fuzz_mutated_real_table(edits: list, cut: int) -> None:
    data = bytearray(REAL)
    for pos, val in edits:
        data[pos] = val
    _pipeline(bytes(data[:cut]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    B.dev4(1, 0), B.dev4(2, 8), B.dev4(3, 8), B.dev4(4, 0xFF), B.alias(0x42, 1, 2),
    B.alias(0x43, 1, 2), B.ext(0x46, 3, 0), B.ext(0x47, 3, 0), B.special(1, 0xA0, 1),
    B.special(2, 0xA0, 7), B.hid(5, b"AMDI0020", uid=b"\\_SB.X"), b"\x81\0\0\0",
    b"\xf0\x01", B.dev4(0x3F, 1),
]), max_size=8), st.sampled_from([0x10, 0x11, 0x40]))
def test_fuzz_entry_soup(entries: list, htype: int) -> None:
    blk = B.ivhd10(0xFEB80000, entries) if htype == 0x10 else B.ivhd11(
        0xFEB80000, entries, type_id=htype)
    _pipeline(B.table([blk, B.ivmd(0x21, 0x1000, 0x1000, devid=8)]))
