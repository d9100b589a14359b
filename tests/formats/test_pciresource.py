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

# An AHCI function's first 7 lines in the kernel's format (resource_show: 6 BARs,
# the ROM); BAR4 is I/O ports c060-c07f, BAR5 4K of memory.
AHCI = """\
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x000000000000c060 0x000000000000c07f 0x0000000000040101
0x00000000fe857000 0x00000000fe857fff 0x0000000000040200
0x0000000000000000 0x0000000000000000 0x0000000000000000
"""


def test_lines_flags_and_sizes() -> None:
    res = parse_pci_resource(AHCI)
    assert len(res) == 7 and [r.index for r in res] == list(range(7))
    io, mem = res[4], res[5]
    assert (io.io, io.mem, io.start, io.size) == (True, False, 0xC060, 32)
    assert (mem.io, mem.mem, mem.start, mem.size) == (False, True, 0xFE857000, 4096)
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
    files = sorted(FIXTURES.glob("snapshots/*/sys/devices/**/resource"))
    for f in files:
        assert parse_pci_resource(f.read_text(), str(f))
