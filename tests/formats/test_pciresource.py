"""sysfs ``resource`` (drivers/pci/pci-sysfs.c resource_show): lines read, sizes as lspci
counts them (pciutils lib/sysfs.c: end - start + 1 when end > start), bad files refused
with the line, and no input raising anything but DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError
from kdumptool.formats.pciresource import MAX_LINES, parse_pci_resource
from tests.conftest import FIXTURES

#: The ICH9 AHCI 00:1f.2 of a lab guest (Debian 6.1.0-57, fixtures/pci_resource/PROVENANCE.md);
#: lspci -vvv in the same guest: "Region 4: I/O ports at d0c0 [size=32]",
#: "Region 5: Memory at fe48d000 (32-bit, non-prefetchable) [size=4K]".
AHCI = FIXTURES / "pci_resource/live_legacy_on/sys/devices/pci0000:00/0000:00:1f.2/resource"


def test_lines_flags_and_sizes() -> None:
    res = parse_pci_resource(AHCI.read_text())
    assert len(res) == 13 and [r.index for r in res] == list(range(13))  # 6 BARs, ROM, 6 SR-IOV BARs
    io, mem = res[4], res[5]
    assert (io.io, io.mem, io.start, io.size) == (True, False, 0xD0C0, 32)
    assert (mem.io, mem.mem, mem.start, mem.size) == (False, True, 0xFE48D000, 4096)
    assert all(r.size == 0 for r in res[:4] + res[6:])


def test_one_port_and_reversed_ranges() -> None:
    # end == start: lspci counts no size (its rule is end > start); end < start likewise
    one, rev = parse_pci_resource("0x10 0x10 0x100\n0x20 0x1f 0x100\n")
    assert one.size == 0 and rev.size == 0


@pytest.mark.parametrize("text, where", [
    ("0x0 0x0\n", "line 1"),
    ("0x0 0x0 0x0\n0x0 0x0 zz\n", "line 2"),
    ("0 0 0\n", "line 1"),
    ("0x0 0x0 0xg0\n", "line 1"),
    ("0x0 0x0 0x0\n" * (MAX_LINES + 1), f"line {MAX_LINES + 1}"),
])
def test_bad_files_name_the_line(text: str, where: str) -> None:
    with pytest.raises(DecodeError, match=where):
        parse_pci_resource(text, "sys/bus/pci/devices/0000:00:1f.2/resource")


def test_too_big_is_refused() -> None:
    with pytest.raises(DecodeError, match="characters"):
        parse_pci_resource("0x0 0x0 0x0 " * 1000)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300),
                 st.lists(st.sampled_from(["0x", "0", "c060", " ", "\n", "\t", "fffffffffffffffff", "0x1_0", "-",
                                           "0x0000000000040101", "\r"]), max_size=40).map("".join)))
def test_fuzz_only_decode_errors(text: str) -> None:
    try:
        res = parse_pci_resource(text)
    except DecodeError:
        return
    assert all(r.size >= 0 and r.index == i for i, r in enumerate(res))


def test_every_fixture_resource_file_decodes() -> None:
    files = sorted(FIXTURES.glob("*/*/sys/devices/**/resource"))
    assert len(files) >= 14
    for f in files:
        assert parse_pci_resource(f.read_text(), str(f))
