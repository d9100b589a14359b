"""Malformed DMAR tables: what raises (outer framing), what becomes a Malformed record
or a warning (everything inside), and a hypothesis fuzz: only our errors escape."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.analysis.dmar_checks import check_dmar
from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
from kdumptool.formats.dmar import Andd, Drhd, Malformed, Rmrr, UnknownStructure, parse_dmar
from kdumptool.render.dmar import dmar_json, render_dmar_text
from tests.conftest import FIXTURES
from tests.formats import dmar_builder as B

LAB = (FIXTURES / "dmar" / "lab_DMAR.bin").read_bytes()
GOOD = [
    B.drhd(0xFED90000, [B.scope(1, 0, [(2, 0)]), B.scope(3, 0xF0, [(0x1F, 0)], enum_id=2)]),
    B.rmrr(0x8C000000, 0x8C0FFFFF, [B.scope(1, 0, [(0x14, 0)])]),
]


def test_synthetic_good_table() -> None:
    d = parse_dmar(B.table(GOOD))
    assert d.checksum_valid and d.warnings == ()
    assert [s.type for s in d.structures] == ["DRHD", "RMRR"]


def test_wrong_signature_is_refused() -> None:
    with pytest.raises(DecodeError, match="signature"):
        parse_dmar(b"\x00\x01\x02\x03" + LAB[4:])


def test_ivrs_is_named() -> None:
    ivrs = sorted((FIXTURES / "dmar" / "ivrs").glob("*.dat"))
    assert len(ivrs) >= 2
    for p in ivrs:
        with pytest.raises(UnsupportedFormat, match=r"AMD IOMMU \(IVRS\): not an Intel VT-d table"):
            parse_dmar(p.read_bytes(), p.name)


def test_other_acpi_table_is_named() -> None:
    apic = (FIXTURES / "dmar" / "lab_root" / "sys/firmware/acpi/tables/APIC").read_bytes()
    with pytest.raises(UnsupportedFormat, match="APIC"):
        parse_dmar(apic)


@pytest.mark.parametrize("n", [0, 3, 20, 47])
def test_shorter_than_header_raises(n: int) -> None:
    with pytest.raises(DecodeError):
        parse_dmar(LAB[:n])


def test_header_length_below_48_raises() -> None:
    with pytest.raises(DecodeError, match="shorter than the 48-byte"):
        parse_dmar(B.table(GOOD, length=40))


def test_truncated_table_keeps_the_good_part() -> None:
    data = B.table(GOOD)
    cut = data[: 48 + len(GOOD[0]) + 10]  # DRHD whole, RMRR cut short
    d = parse_dmar(cut)
    assert not d.checksum_valid
    assert isinstance(d.structures[0], Drhd) and len(d.structures[0].device_scopes) == 2
    assert isinstance(d.structures[1], Malformed) and "overruns" in d.structures[1].reason
    assert any("truncated" in w for w in d.warnings)


def test_zero_length_structure_stops_the_walk() -> None:
    d = parse_dmar(B.table([GOOD[0], B.drhd(0xFED91000, length=0), GOOD[1]]))
    assert isinstance(d.structures[0], Drhd)
    assert isinstance(d.structures[1], Malformed)
    assert "shorter than the 4-byte" in d.structures[1].reason
    assert len(d.structures) == 2
    assert d.checksum_valid  # the checksum covers the bytes as they are


def test_structure_length_past_the_end() -> None:
    d = parse_dmar(B.table([GOOD[0], B.rmrr(0x1000, 0x1FFF, length=0x400)]))
    assert isinstance(d.structures[0], Drhd)
    m = d.structures[1]
    assert isinstance(m, Malformed) and m.type_id == 1 and "overruns" in m.reason
    assert any("overruns" in w for w in d.warnings)


def test_structure_shorter_than_fixed_part() -> None:
    d = parse_dmar(B.table([GOOD[0], B.rmrr(0x1000, 0x1FFF, length=16)]))
    assert isinstance(d.structures[1], Malformed)
    assert "fixed part" in d.structures[1].reason


def test_device_scope_longer_than_structure() -> None:
    bad = B.drhd(0xFED90000, [B.scope(1, 0, [(2, 0)]), B.scope(1, 0, [(3, 0)], length=0x20)])
    d = parse_dmar(B.table([bad, GOOD[1]]))
    drhd = d.structures[0]
    assert isinstance(drhd, Drhd)
    assert [sc.path for sc in drhd.device_scopes] == [((2, 0),)]
    assert any("overruns its structure" in w for w in drhd.warnings)
    assert isinstance(d.structures[1], Rmrr)  # the next structure still decodes


def test_device_scope_length_zero() -> None:
    bad = B.drhd(0xFED90000, [B.scope(1, 0, [(2, 0)], length=0)])
    d = parse_dmar(B.table([bad]))
    assert d.structures[0].device_scopes == ()
    assert any("shorter than its 6-byte header" in w for w in d.structures[0].warnings)


def test_bad_checksum_decodes_with_warning() -> None:
    data = bytearray(LAB)
    data[9] ^= 0xFF
    d = parse_dmar(bytes(data))
    assert not d.checksum_valid
    assert any("bad checksum" in w for w in d.warnings)
    assert d.structures[0].register_base_address == 0xFED90000  # type: ignore[union-attr]


def test_unknown_type_kept_raw_and_walk_continues() -> None:
    d = parse_dmar(B.table([GOOD[0], B.unknown(0x77, b"\xaa" * 12), GOOD[1]]))
    u = d.structures[1]
    assert isinstance(u, UnknownStructure) and u.type_id == 0x77 and u.raw[4:] == b"\xaa" * 12
    assert isinstance(d.structures[2], Rmrr)


def test_unknown_scope_type_kept() -> None:
    d = parse_dmar(B.table([B.drhd(0xFED90000, [B.scope(9, 0, [(1, 0)])])]))
    sc = d.structures[0].device_scopes[0]
    assert sc.type == "UNKNOWN" and sc.type_id == 9 and sc.path == ((1, 0),)


def test_andd_without_nul() -> None:
    raw = bytearray(B.andd(1, "\\_SB.I2C0"))
    raw = raw[:-1]
    raw[2] = len(raw)
    d = parse_dmar(B.table([bytes(raw)]))
    a = d.structures[0]
    assert isinstance(a, Andd) and a.acpi_object_name == "\\_SB.I2C0"
    assert a.warnings


def test_trailing_bytes_after_table_ignored() -> None:
    d = parse_dmar(LAB + b"\0" * 7)
    assert d.checksum_valid and any("ignored" in w for w in d.warnings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        parse_dmar(data)
    except KdumptoolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(LAB) - 1), st.integers(0, 255)), max_size=8),
       st.integers(min_value=0, max_value=len(LAB) + 8))
def test_fuzz_mutated_real_table(edits: list, cut: int) -> None:
    """Byte flips and truncation of a real table: only our errors escape, and every
    structure that starts before the first damaged byte is still reported."""
    data = bytearray(LAB)
    for pos, val in edits:
        data[pos] = val
    data = data[:cut]
    try:
        d = parse_dmar(bytes(data))
    except KdumptoolError:
        return
    for s in d.structures:
        assert s.offset + (s.length if not isinstance(s, Malformed) else 0) <= len(data)
        for sc in s.device_scopes:
            assert s.offset <= sc.offset < s.offset + s.length
    # The rest of the pipeline takes whatever the decoder returns.
    findings = check_dmar(d, {"0000:00:02.0": None, "0000:00:04.0": 1}, [(0, 0xFFFFF)],
                          [(0x1C000000, 0x2BFFFFFF)])
    render_dmar_text(d, findings)
    dmar_json(d, findings)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    GOOD[0], GOOD[1], B.atsr([B.scope(2, 0, [(1, 0)])]), B.rhsa(0xFED90000, 1),
    B.andd(1, "\\_SB.PCI0.I2C0"), B.satc([B.scope(1, 0, [(2, 0)])], flags=1),
    B.sidp([B.scope(1, 0, [(2, 0)], flags=0x1F)]), B.unknown(9, b"xyzw"),
]), max_size=6), st.integers(0, 64))
def test_fuzz_good_structures_before_a_bad_one(parts: list, junk_len: int) -> None:
    """Well-formed structures followed by a structure whose length overruns: all the
    good ones are reported, then one Malformed."""
    bad = B.drhd(0xFED90000, length=0xFFFF)[: 4 + junk_len]
    d = parse_dmar(B.table(parts + [bad]))
    assert len(d.structures) == len(parts) + 1
    assert all(not isinstance(s, Malformed) for s in d.structures[:-1])
    assert isinstance(d.structures[-1], Malformed)
