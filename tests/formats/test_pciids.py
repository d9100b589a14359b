"""pci.ids decoding: the fixture copy of the real database, hand-made damage, and fuzzing."""

from __future__ import annotations

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
