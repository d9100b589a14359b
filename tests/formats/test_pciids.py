"""pci.ids decoding: the fixture copy of the real database, hand-made damage, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.formats.pciids import MAX_MALFORMED, parse_pci_ids
from tests.conftest import PCI_IDS_FIXTURE


def test_fixture_database() -> None:
    ids = parse_pci_ids(PCI_IDS_FIXTURE.read_text(encoding="utf-8"))
    assert ids.version == "2023.04.10"
    assert ids.malformed_count == 0
    assert ids.vendors[0x8086] == "Intel Corporation"
    assert ids.vendors[0x1AF4] == "Red Hat, Inc."
    assert ids.devices[(0x8086, 0x10D3)] == "82574L Gigabit Network Connection"
    assert ids.subsystems[(0x8086, 0x29C0, 0x1AF4, 0x1100)] == "QEMU Virtual Machine"
    assert ids.classes[0x02] == "Network controller"
    assert ids.subclasses[(0x02, 0x00)] == "Ethernet controller"
    assert ids.prog_ifs[(0x01, 0x08, 0x02)] == "NVM Express"
    # every vendor line of the file is a vendor; every "C" line a class
    text = PCI_IDS_FIXTURE.read_text(encoding="utf-8").splitlines()
    assert len(ids.vendors) == sum(1 for x in text if x[:1] not in ("", "#", "\t", "C"))
    assert len(ids.classes) == sum(1 for x in text if x.startswith("C "))


def test_damaged_lines_are_counted_and_skipped() -> None:
    text = "\n".join([
        "8086  Intel Corporation",
        "\t10d3  82574L Gigabit Network Connection",
        "\t\t8086 00  short subsystem",   # bad subsystem
        "\tzzzz  not hex",                # bad device
        "\t\t\ttoo deep",                 # 3 tabs
        "C 02  Network controller",
        "\t00  Ethernet controller",
        "\t\t\t01  too deep",
        "C xyz  bad class",
        "\tff  orphan subclass",          # after a bad class: outside any block
        "1af4",                           # vendor without name
    ])
    ids = parse_pci_ids(text)
    assert ids.devices == {(0x8086, 0x10D3): "82574L Gigabit Network Connection"}
    assert ids.subclasses == {(0x02, 0x00): "Ethernet controller"}
    assert [n for n, _ in ids.malformed] == [3, 4, 5, 8, 9, 10, 11]
    assert ids.malformed_count == 7


def test_malformed_list_is_bounded() -> None:
    ids = parse_pci_ids("\n".join(["\tzz"] * 1000))
    assert ids.malformed_count == 1000 and len(ids.malformed) == MAX_MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdefC #\t\nxyz", max_size=400))
def test_fuzz_never_raises(text: str) -> None:
    ids = parse_pci_ids(text)
    assert ids.malformed_count >= len(ids.malformed)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_decoded_as_the_source_does(data: bytes) -> None:
    parse_pci_ids(data.decode("utf-8", errors="replace"))


# --- decoding for some vendors only (record and quiesce name a few devices) ----------------

def _same_for(full, part, vendors) -> None:
    """What the partial decode holds is exactly what the whole one holds for ``vendors``."""
    assert part.vendors == full.vendors
    assert (part.classes, part.subclasses, part.prog_ifs) == (full.classes, full.subclasses, full.prog_ifs)
    assert part.version == full.version
    assert part.devices == {k: v for k, v in full.devices.items() if k[0] in vendors}
    assert part.subsystems == {k: v for k, v in full.subsystems.items() if k[0] in vendors}
    assert part.malformed_count <= full.malformed_count
    assert set(part.malformed) <= set(full.malformed) or part.malformed_count > MAX_MALFORMED


def test_vendor_subset_of_the_fixture_database() -> None:
    text = PCI_IDS_FIXTURE.read_text(encoding="utf-8")
    full = parse_pci_ids(text)
    for vendors in ({0x8086}, {0x1AF4, 0x8086}, {0x1B36}, set(), set(full.vendors)):
        part = parse_pci_ids(text, vendors)
        _same_for(full, part, vendors)
        assert part.only_vendors == frozenset(vendors)
    part = parse_pci_ids(text, {0x8086})
    assert part.device(0x8086, 0x10D3) == "Intel Corporation 82574L Gigabit Network Connection"
    with pytest.raises(ValueError):
        part.device(0x1AF4, 0x1000)  # not decoded: never a silent "Device 1000"


_LINES = st.sampled_from([
    "8086  Intel Corporation", "1af4  Red Hat, Inc.", "1AF4\tupper", " 8086  leading space", "zzzz  bad",
    "\t10d3  82574L", "\t1000  virtio", "\tzzzz  bad device", "\t\t8086 0001  sub", "\t\t1af4 1100  QEMU",
    "\t\t\ttoo deep", "C 02  Network controller", "C 01  Storage", "C xyz  bad", "\t00  Ethernet",
    "\t08  NVM", "\t\t02  NVM Express", "#\tVersion: 2023.04.10", "#\tVersion:", "# comment", "", "   ",
    "\t", "C", "8086", "\xa0", "\r", "a\x0bb",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=40), st.sets(st.sampled_from([0x8086, 0x1AF4, 0x1234]), max_size=3),
       st.booleans())
def test_vendor_subset_equals_the_whole_decode(lines, vendors, trailing_newline) -> None:
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    _same_for(parse_pci_ids(text), parse_pci_ids(text, vendors), vendors)
