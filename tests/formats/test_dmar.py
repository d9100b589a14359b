"""DMAR decoder against iasl's disassembly of real tables (fixtures, and the whole
corpus when ../shared is present), plus the QEMU lab table."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.formats.acpi_text import parse_acpi_text
from kdumptool.formats.dmar import (
    DmarHeaderStruct,
    Drhd,
    DrhdStruct,
    Rmrr,
    RmrrStruct,
    parse_dmar,
)
from tests.conftest import FIXTURES
from tests.dsl_oracle import compare_with_dsl, parse_dsl_file

DMAR_FIX = FIXTURES / "dmar"
TABLES = sorted((DMAR_FIX / "tables").glob("*.dat"))
ALL_TYPES = {"DRHD", "RMRR", "ATSR", "RHSA", "ANDD", "SATC", "SIDP"}
ALL_SCOPES = {"PCI_ENDPOINT", "PCI_BRIDGE", "IOAPIC", "HPET", "ACPI_NAMESPACE"}


def test_fixture_set_covers_every_type() -> None:
    assert len(TABLES) >= 25
    types, scopes = set(), set()
    servers = 0
    for f in TABLES:
        d = parse_dmar(f.read_bytes(), f.name)
        types |= {s.type for s in d.structures}
        scopes |= {sc.type for s in d.structures for sc in s.device_scopes}
        servers += "Server" in f.name
    assert types == ALL_TYPES
    assert scopes == ALL_SCOPES
    assert servers >= 5


@pytest.mark.parametrize("path", TABLES, ids=[p.stem[:40] for p in TABLES])
def test_fixture_matches_iasl(path: Path) -> None:
    dmar = parse_dmar(path.read_bytes(), path.name)
    oracle = parse_dsl_file(path.with_suffix(".dsl"))
    assert oracle["structures"], "oracle read no structures"
    assert compare_with_dsl(dmar, oracle) == []
    assert dmar.checksum_valid
    assert dmar.warnings == ()


@pytest.mark.parametrize("path", TABLES[:8], ids=[p.stem[:40] for p in TABLES[:8]])
def test_iasl_raw_table_data_is_the_binary(path: Path) -> None:
    """The hex dump at the end of the .dsl, read by acpi_text, is the .dat byte for byte."""
    tables = parse_acpi_text(path.with_suffix(".dsl").read_text(encoding="latin-1"))
    assert len(tables) == 1
    assert tables[0].data == path.read_bytes()


def test_oracle_catches_a_difference() -> None:
    """The comparison is not vacuous: a one-byte change shows up as a named field."""
    path = DMAR_FIX / "tables" / "X01_Server_Supermicro_SMCI-MB_SkylakeSP-2S_from-dsl.dat"
    data = bytearray(path.read_bytes())
    data[0x38] ^= 0x10  # first DRHD's register base, low byte
    diffs = compare_with_dsl(parse_dmar(bytes(data)), parse_dsl_file(path.with_suffix(".dsl")))
    assert any("register_base_address" in d for d in diffs)


def test_lab_qemu_table() -> None:
    dmar = parse_dmar((DMAR_FIX / "lab_DMAR.bin").read_bytes(), "lab")
    assert compare_with_dsl(dmar, parse_dsl_file(DMAR_FIX / "lab_DMAR.dsl")) == []
    assert [s.type for s in dmar.structures] == ["DRHD"]
    drhd = dmar.structures[0]
    assert isinstance(drhd, Drhd)
    assert drhd.register_base_address == 0xFED90000
    assert not drhd.include_pci_all
    assert dmar.host_address_width == 39 and dmar.intr_remap
    eps = [(sc.start_bus, sc.path) for sc in drhd.device_scopes if sc.type == "PCI_ENDPOINT"]
    assert (0, ((2, 0),)) in eps and (0, ((3, 0),)) in eps  # e1000e, nvme
    bridges = [sc.path for sc in drhd.device_scopes if sc.type == "PCI_BRIDGE"]
    assert bridges == [((4, 0),), ((5, 0),)]
    ioapic = [sc for sc in drhd.device_scopes if sc.type == "IOAPIC"]
    assert len(ioapic) == 1 and ioapic[0].start_bus == 0xFF


def test_multi_hop_path() -> None:
    path = DMAR_FIX / "tables" / "264_Server_Hewlett-Packard_ProLiant-DL360-G7_60DCEE46526A.dat"
    dmar = parse_dmar(path.read_bytes())
    paths = [sc.path for s in dmar.structures for sc in s.device_scopes if len(sc.path) == 2]
    assert ((0x1C, 4), (0, 2)) in paths


def test_construct_spec_agrees_with_records() -> None:
    """The construct specs are the documented layout: cross-check them on a real table."""
    path = DMAR_FIX / "tables" / "001_All-In-One_Acer_Aspire-Z3-715_9F6A5601CE04.dat"
    data = path.read_bytes()
    dmar = parse_dmar(data)
    hdr = DmarHeaderStruct.parse(data)
    assert hdr.acpi.length == dmar.length == len(data)
    for s in dmar.structures:
        raw = data[s.offset : s.offset + s.length]
        if isinstance(s, Drhd):
            c = DrhdStruct.parse(raw)
            assert (c.register_base_address, c.segment, c.flags) == (
                s.register_base_address, s.segment, s.flags)
        if isinstance(s, Rmrr):
            c = RmrrStruct.parse(raw)
            assert (c.base_address, c.end_address) == (s.base_address, s.end_address)


def _corpus_tables(shared: Path) -> List[Path]:
    base = shared / "corpus" / "dmar"
    return sorted(base.glob("*.dat")) + sorted((base / "extra").glob("*.dat"))


@pytest.mark.corpus
def test_whole_corpus_matches_iasl(shared: Path) -> None:
    tables = _corpus_tables(shared)
    assert len(tables) == 190
    failures = {}
    n_struct = n_scope = 0
    for path in tables:
        dmar = parse_dmar(path.read_bytes(), path.name)
        oracle = parse_dsl_file(path.with_suffix(".dsl"))
        n_struct += len(oracle["structures"])
        n_scope += sum(len(s["scopes"]) for s in oracle["structures"])
        diffs = compare_with_dsl(dmar, oracle)
        if diffs:
            failures[path.name] = diffs[:3]
    assert failures == {}
    assert n_struct > 700 and n_scope > 1000


@pytest.mark.corpus
def test_lab_capture_tables(shared: Path) -> None:
    lab = shared / "lab-captures"
    oracle = parse_dsl_file(lab / "dsl" / "DMAR.dsl")
    bins = sorted(lab.glob("*/*/DMAR.bin"))
    assert bins
    for b in bins:
        dmar = parse_dmar(b.read_bytes(), str(b))
        assert compare_with_dsl(dmar, oracle) == []


@pytest.mark.corpus
def test_corpus_ivrs_tables_are_named(shared: Path) -> None:
    from kdumptool.errors import UnsupportedFormat

    ivrs = sorted((shared / "corpus" / "dmar" / "ivrs").glob("*.dat"))
    assert len(ivrs) == 5
    for p in ivrs:
        with pytest.raises(UnsupportedFormat, match=r"AMD IOMMU \(IVRS\): not an Intel VT-d table"):
            parse_dmar(p.read_bytes(), p.name)


# --- the struct decoding against the construct specs (the documented layouts) ---------

def _agree(data: bytes) -> int:
    """Every fixed layout the struct decoder read in ``data`` equals construct's parse of
    the same bytes, field by field; returns how many layouts were compared."""
    from kdumptool.formats import dmar as d

    hdr = d.DmarHeaderStruct.parse(data[:d.DMAR_HEADER_LEN])
    ours = dict(zip(d._DMAR_HEADER_FIELDS, d._DMAR_HEADER.unpack_from(data)))
    theirs = {**{k: hdr.acpi[k] for k in d._ACPI_HEADER_FIELDS},
              **{k: hdr[k] for k in ("host_address_width", "flags", "reserved")}}
    assert ours == theirs
    n = 1
    table = parse_dmar(data)
    for s in table.structures:
        if s.type_id not in d._FIXED or s.type in ("MALFORMED", "UNKNOWN"):
            continue
        raw = data[s.offset:s.offset + s.length]
        fmt, fields = d._FIXED[s.type_id]
        spec = getattr(d, f"{d.STRUCTURE_NAMES[s.type_id].capitalize()}Struct")
        c = spec.parse(raw)
        assert dict(zip(fields, fmt.unpack_from(raw))) == {k: c[k] for k in fields}, s
        n += 1
        for sc in s.device_scopes:
            at = sc.offset - s.offset
            c = d.DeviceScopeStruct.parse(raw[at:at + d.DEVICE_SCOPE_HEADER_LEN])
            assert (dict(zip(d._DEVICE_SCOPE_FIELDS, d._DEVICE_SCOPE.unpack_from(raw, at)))
                    == {k: c[k] for k in d._DEVICE_SCOPE_FIELDS})
            assert (sc.type_id, sc.length, sc.flags, sc.enumeration_id, sc.start_bus) == (
                c.type, c.length, c.flags, c.enumeration_id, c.start_bus)
            n += 1
    return n


def test_struct_decoding_agrees_with_construct_on_every_fixture_table() -> None:
    assert sum(_agree(f.read_bytes()) for f in TABLES) >= 490  # 60 tables: every type, 400+ scopes


@settings(deadline=None, max_examples=200)
@given(st.binary(min_size=12, max_size=12), st.lists(st.tuples(
    st.integers(0, 7), st.binary(min_size=4, max_size=60)), max_size=6))
def test_struct_decoding_agrees_with_construct_on_random_tables(head, bodies) -> None:
    """Random structures (every type, random fields and scopes) in a DMAR frame."""
    import struct as st_

    out = b""
    for t, body in bodies:
        out += st_.pack("<HH", t, len(body) + 4) + body
    data = b"DMAR" + st_.pack("<I", 48 + len(out)) + head + b"\0" * 28 + out
    _agree(data)
