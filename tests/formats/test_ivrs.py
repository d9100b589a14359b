"""IVRS decoder against iasl's disassembly of real tables (fixtures, and the whole
corpus when ../shared is present), plus the entry kinds no real table has, built in
code from the spec's layout."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from kdumptool.errors import UnsupportedFormat
from kdumptool.formats.acpi_text import parse_acpi_text
from kdumptool.formats.ivrs import (
    Ivhd,
    Ivhd10Struct,
    Ivhd11Struct,
    Ivmd,
    UnknownBlock,
    parse_ivrs,
)
from tests.conftest import FIXTURES
from tests.formats import ivrs_builder as B
from tests.ivrs_dsl_oracle import compare_with_dsl, parse_dsl_file

FIX = FIXTURES / "ivrs"
TABLES = sorted(FIX.glob("*.dat"))


def _check(path: Path) -> dict:
    ivrs = parse_ivrs(path.read_bytes(), path.name)
    oracle = parse_dsl_file(path.with_suffix(".dsl"))
    assert oracle["blocks"], "oracle read no blocks"
    assert compare_with_dsl(ivrs, oracle) == []
    assert ivrs.checksum_valid
    assert ivrs.warnings == ()
    return oracle


@pytest.mark.parametrize("path", TABLES, ids=[p.stem[5:40] for p in TABLES])
def test_fixture_matches_iasl(path: Path) -> None:
    _check(path)


def test_fixture_set_covers_the_corpus_kinds() -> None:
    blocks, entries = set(), set()
    for f in TABLES:
        t = parse_ivrs(f.read_bytes(), f.name)
        blocks |= {(b.type, b.type_id) for b in t.blocks}
        entries |= {e.type for b in t.blocks for e in b.device_entries}
    assert {(t, i) for t, i in blocks} >= {("IVHD", 0x10), ("IVHD", 0x11), ("IVHD", 0x40),
                                          ("IVMD", 0x21), ("IVMD", 0x22), ("UNKNOWN", 0x51)}
    assert entries >= {"PAD4", "SELECT", "START", "END", "ALIAS_START", "SPECIAL", "HID"}
    assert max(len(parse_ivrs(f.read_bytes()).ivhds) for f in TABLES) == 8


@pytest.mark.corpus
def test_corpus_every_table_matches_iasl(shared: Path) -> None:
    paths = sorted((shared / "corpus" / "ivrs").glob("*.dat"))
    paths += sorted((shared / "corpus" / "dmar" / "ivrs").glob("*.dat"))
    assert len(paths) == 81
    nblocks = nentries = unknown = 0
    for p in paths:
        o = _check(p)
        nblocks += len(o["blocks"])
        nentries += sum(len(b["entries"]) for b in o["blocks"])
        unknown += sum(1 for b in o["blocks"] if b.get("unknown"))
    # Counted by the oracle from iasl's text: 225 blocks (5 of them type 51h, which
    # iasl does not know), 1839 device entries.
    assert (nblocks, nentries, unknown) == (225, 1839, 5)


def test_oracle_catches_a_difference() -> None:
    path = FIX / "ivrs_Convertible_ASUSTek-Computer_Zenbook-UX562UG-Q508UG_5D5FF43757A7.dat"
    oracle = parse_dsl_file(path.with_suffix(".dsl"))
    data = bytearray(path.read_bytes())
    data[0x3A] ^= 0x10  # first IVHD's base address, byte 2
    assert any("base_address" in d for d in compare_with_dsl(parse_ivrs(bytes(data)), oracle))
    data = bytearray(path.read_bytes())
    data[0x6D] ^= 0x01  # the IOAPIC special entry's source device ID
    assert any("source_device_id" in d
               for d in compare_with_dsl(parse_ivrs(bytes(data)), oracle))


@pytest.mark.parametrize("path", TABLES[:3], ids=[p.stem[5:40] for p in TABLES[:3]])
def test_iasl_raw_table_data_is_the_binary(path: Path) -> None:
    tables = parse_acpi_text(path.with_suffix(".dsl").read_text(encoding="latin-1"))
    assert [t.data for t in tables] == [path.read_bytes()]


def test_zenbook_fields() -> None:
    t = parse_ivrs((FIX / "ivrs_Convertible_ASUSTek-Computer_Zenbook-UX562UG-Q508UG_"
                    "5D5FF43757A7.dat").read_bytes())
    assert t.iv_info == 0x00203041 and t.efr_sup and not t.dma_remap
    assert (t.pa_size, t.va_size, t.gva_size) == (48, 64, 2)
    assert [b.type_id for b in t.blocks] == [0x10, 0x11, 0x40]
    assert t.target_ivhd_type() == 0x40
    h40 = t.blocks[2]
    assert isinstance(h40, Ivhd) and h40.base_address == 0xFD300000
    assert h40.efr_image == 0x206D73EF22254ADE and h40.attributes == 0x00040200
    sp = [(e.handle, e.source_device_id, e.special_name) for e in h40.device_entries
          if e.type == "SPECIAL"]
    assert sp == [(0x00, 0x00A0, "HPET"), (0x21, 0x00A0, "IOAPIC"), (0x22, 0x0001, "IOAPIC")]
    hids = [(e.acpi_hid, e.acpi_cid, e.uid) for e in h40.device_entries if e.type == "HID"]
    assert hids[0] == ("AMDI0020", 0, "\\_SB.FUR0") and len(hids) == 4


def test_constructs_match_kernel_sizes() -> None:
    assert Ivhd10Struct.sizeof() == 24 and Ivhd11Struct.sizeof() == 40


# ------------------------------------------------------------ kinds built in code

def test_every_entry_kind_built_in_code() -> None:
    entries = [
        B.dev4(0x01, 0, data=0x01),
        B.dev4(0x02, 0x0010, data=0xC0),
        B.alias(0x42, 0x0300, 0x0208),
        B.alias(0x43, 0x0400, 0x0210),
        B.dev4(0x04, 0x04FF),
        B.ext(0x46, 0x0500, 0x10000000),
        B.ext(0x47, 0x0600, 0x80000000),
        B.dev4(0x04, 0x06FF),
        B.ext(0x40, 0x0000, 0),
        B.special(5, 0x00A0, 1, data=0xD7),
        B.special(0, 0x00A5, 2),
        B.hid(0x00A5, b"AMDI0010", uid_format=1, uid=(3).to_bytes(8, "little")),
        B.hid(0x00A6, (0x0105D041).to_bytes(4, "little"), cid=b"PNP0C50", uid_format=0),
    ]
    data = B.table([B.ivhd11(0xFEB80000, entries, type_id=0x40, efr=0x1234),
                    B.ivmd(0x20, 0x1000_0000, 0x2000, flags=0x07),
                    B.ivmd(0x22, 0x2000_0000, 0x1000, devid=0x100, aux=0x1FF)])
    t = parse_ivrs(data)
    assert t.warnings == () and t.checksum_valid
    h = t.blocks[0]
    assert isinstance(h, Ivhd) and h.type_id == 0x40 and h.efr_image == 0x1234
    got = [(e.type, e.offset, e.length) for e in h.device_entries]
    off = 48 + 40
    want: List[tuple] = []
    for raw, name in zip(entries, ["ALL", "SELECT", "ALIAS_SELECT", "ALIAS_START", "END",
                                   "EXT_SELECT", "EXT_START", "END", "PAD8", "SPECIAL",
                                   "SPECIAL", "HID", "HID"]):
        want.append((name, off, len(raw)))
        off += len(raw)
    assert got == want
    e = h.device_entries
    assert e[2].device_id == 0x0300 and e[2].source_device_id == 0x0208
    assert e[5].extended_data == 0x10000000
    assert e[9].handle == 5 and e[9].source_device_id == 0xA0 and e[9].variety == 1
    assert e[9].data_setting == 0xD7
    assert (e[11].acpi_hid, e[11].uid_format, e[11].uid) == ("AMDI0010", 1, 3)
    assert (e[12].acpi_hid, e[12].acpi_cid, e[12].uid) == (0x0105D041, "PNP0C50", None)
    m20, m22 = t.blocks[1], t.blocks[2]
    assert isinstance(m20, Ivmd) and m20.devices is None and m20.flags == 7
    assert isinstance(m22, Ivmd) and m22.devices == (0x100, 0x1FF)
    assert m22.start_address == 0x2000_0000 and m22.memory_length == 0x1000


def test_unknown_block_kept_raw_and_walk_goes_on() -> None:
    t = parse_ivrs(B.table([B.block(0x51, b"\xaa" * 28), B.ivhd10(0xFEB80000,
                                                                  [B.dev4(2, 8)])]))
    assert isinstance(t.blocks[0], UnknownBlock) and t.blocks[0].raw[4:] == b"\xaa" * 28
    assert isinstance(t.blocks[1], Ivhd) and t.blocks[1].device_entries[0].device_id == 8


def test_target_type_follows_the_kernel() -> None:
    # Linux get_highest_supported_ivhd_type: the last type <= 40h seen for the first
    # block's device ID; a type above 40h stops the walk.
    t = parse_ivrs(B.table([B.ivhd10(1), B.ivhd11(1), B.block(0x51, b"\0" * 4),
                            B.ivhd11(1, type_id=0x40)]))
    assert t.target_ivhd_type() == 0x11
    t = parse_ivrs(B.table([B.ivhd10(1, devid=2), B.ivhd11(1, devid=3)]))
    assert t.target_ivhd_type() == 0x10


def test_dmar_is_named() -> None:
    data = (FIXTURES / "dmar" / "lab_DMAR.bin").read_bytes()
    with pytest.raises(UnsupportedFormat, match="kdumptool dmar"):
        parse_ivrs(data)
