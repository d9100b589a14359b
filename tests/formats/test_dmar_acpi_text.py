"""acpidump text form -> bytes, checked against the binaries acpidump read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
from kdumptool.formats.acpi_text import extract_table, looks_like_text, parse_acpi_text
from tests.conftest import FIXTURES

D = FIXTURES / "dmar"


def test_multi_table_dump() -> None:
    text = (D / "text" / "lab_acpidump.txt").read_text()
    tables = parse_acpi_text(text)
    assert [t.signature for t in tables] == ["APIC", "DMAR", "HPET"]
    root = D / "lab_root" / "sys/firmware/acpi/tables"
    for t in tables:
        assert t.data == (root / t.signature).read_bytes()


def test_extract_dmar_from_text() -> None:
    raw = (D / "text" / "lab_acpidump.txt").read_bytes()
    assert looks_like_text(raw)
    assert extract_table(raw, "DMAR") == (D / "lab_DMAR.bin").read_bytes()


def test_server_table_text() -> None:
    raw = (D / "text" / "X01_acpidump.txt").read_bytes()
    want = (D / "tables" / "X01_Server_Supermicro_SMCI-MB_SkylakeSP-2S_from-dsl.dat").read_bytes()
    assert len(want) == 640
    assert extract_table(raw, "DMAR") == want


def test_binary_passes_through() -> None:
    data = (D / "lab_DMAR.bin").read_bytes()
    assert not looks_like_text(data)
    assert extract_table(data) is data


def test_ivrs_text_is_named() -> None:
    with pytest.raises(UnsupportedFormat, match=r"AMD IOMMU \(IVRS\)"):
        extract_table((D / "text" / "ivrs_acpidump.txt").read_bytes(), "DMAR", "x.txt")


def test_text_without_tables() -> None:
    with pytest.raises(DecodeError, match="no acpidump hex table"):
        extract_table(b"hello world\n", "DMAR", "notes.txt")


def test_non_contiguous_offsets_name_the_line() -> None:
    text = "DMAR @ 0x0\n    0000: 44 4D 41 52\n    0010: 00 00\n"
    with pytest.raises(DecodeError, match="line 3"):
        parse_acpi_text(text, "t.txt")


def test_no_dmar_among_other_tables() -> None:
    text = (D / "text" / "lab_acpidump.txt").read_text()
    only_apic_hpet = "\n".join(
        block for block in text.split("\n\n") if not block.lstrip().startswith("DMAR")
    )
    with pytest.raises(UnsupportedFormat, match="no DMAR table"):
        extract_table(only_apic_hpet.encode(), "DMAR", "dump.txt")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789ABCDEFabcdef :@x\n DMARIVS/.", max_size=400))
def test_fuzz_text(text: str) -> None:
    try:
        extract_table(text.encode(), "DMAR", "fuzz.txt")
    except KdumptoolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 255))
def test_fuzz_mutated_dump(pos: int, val: int) -> None:
    raw = bytearray((D / "text" / "lab_acpidump.txt").read_bytes())
    raw[pos % len(raw)] = val
    try:
        extract_table(bytes(raw), "DMAR", "dump.txt")
    except KdumptoolError:
        pass
