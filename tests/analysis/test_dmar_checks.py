"""DMAR findings: each check fires on a table built to trip it (and on real tables
that trip it), and stays quiet on a clean one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from kdumptool.analysis.dmar_checks import check_dmar, range_is_reserved
from kdumptool.formats.dmar import parse_dmar
from kdumptool.sources.acpi import (
    read_dmar,
    read_iomem_ranges,
    read_pci_bridges,
    read_reserved_ranges,
)
from kdumptool.sources.root import open_root
from tests.conftest import FIXTURES
from tests.formats import dmar_builder as B

T = FIXTURES / "dmar" / "tables"
IOAPIC = B.scope(3, 0xF0, [(0x1F, 0)], enum_id=2)
EP = B.scope(1, 0, [(2, 0)])


def ids(structures: List[bytes], flags: int = 1, pci: Optional[dict] = None, **kw: int) -> List[str]:
    return [f.id for f in check_dmar(parse_dmar(B.table(structures, flags=flags, **kw)), pci)]


def test_clean_table_has_no_findings() -> None:
    # Register sets back to back (8 KiB then 4 KiB), an RMRR just below 2^39.
    assert ids([B.drhd(0xFED90000, [EP], size=1), B.drhd(0xFED92000, [IOAPIC], flags=1),
                B.rmrr(0x7F_FFFF_F000, 0x7F_FFFF_FFFF, [EP])]) == []
    assert ids([B.drhd(0xFED90000, [EP]), B.drhd(0xFED91000, [IOAPIC], flags=1),
                B.rmrr(0x8C000000, 0x8C0FFFFF, [B.scope(1, 0, [(0x14, 0)])])]) == []
    # Without an INCLUDE_PCI_ALL unit, an RMRR device that a DRHD lists is covered.
    assert ids([B.drhd(0xFED90000, [IOAPIC, EP]),
                B.rmrr(0x8C000000, 0x8C0FFFFF, [EP])]) == []


@pytest.mark.parametrize("structures,flags,want", [
    ([B.drhd(0xFED90800, [EP, IOAPIC])], 1, "drhd-base-unaligned"),
    ([B.drhd(0, [EP, IOAPIC])], 1, "drhd-base-zero"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.drhd(0xFED91000, flags=1)], 1, "multiple-include-all"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.drhd(0xFED91000, [EP])], 1, "include-all-not-last"),
    ([B.drhd(0xFED90000, [IOAPIC]), B.drhd(0xFED90000, [EP])], 1, "drhd-duplicate-base"),
    ([B.drhd(0xFED90000, [IOAPIC, EP], flags=1)], 1, "include-all-with-pci-scope"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x1800, 0x2FFF, [EP])], 1, "rmrr-base-unaligned"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x1000, 0x2000, [EP])], 1, "rmrr-end-unaligned"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x3000, 0x1FFF, [EP])], 1, "rmrr-end-before-base"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x1000, 0x4FFF, [EP]),
      B.rmrr(0x4000, 0x5FFF, [EP])], 1, "rmrr-overlap"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x1000, 0x1FFF)], 1, "rmrr-no-devices"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1)], 0, "intr-remap-not-supported"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1)], 3, "x2apic-opt-out"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1)], 5, "dma-ctrl-platform-opt-in"),
    ([B.drhd(0xFED90000, [EP], flags=0)], 1, "intr-remap-no-ioapic"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rhsa(0xFED99000, 0)], 1, "rhsa-no-drhd"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.atsr([EP])], 1, "scope-type-not-allowed"),
    ([B.drhd(0xFED90000, [IOAPIC, B.scope(5, 0, [(0x15, 0)], enum_id=1)], flags=1)], 1,
     "namespace-scope-no-andd"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.andd(3, "\\_SB.I2C3")], 1, "andd-unreferenced"),
    ([B.drhd(0xFED90000, [IOAPIC, B.scope(1, 0, [])], flags=0)], 1, "scope-empty-path"),
    ([B.drhd(0xFED90000, [IOAPIC, B.scope(7, 0, [(1, 0)])])], 1, "scope-unknown-type"),
    ([B.drhd(0xFED90000, [IOAPIC, EP]), B.drhd(0xFED91000, [EP])], 1, "scope-in-two-units"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.satc([EP], segment=1)], 1, "segment-no-drhd"),
    ([B.drhd(0xFED90000, [IOAPIC]), B.drhd(0xFED91000)], 1, "drhd-no-devices"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.unknown(9, b"abcd")], 1, "unknown-structure"),
    ([B.drhd(0xFED90000, [IOAPIC, EP]), B.rmrr(0x1000, 0x1FFF, [B.scope(1, 0, [(0x14, 0)])])],
     1, "scope-not-under-any-drhd"),
    ([B.drhd(0xFED90000, [IOAPIC], size=1), B.drhd(0xFED91000, [EP])], 1,
     "drhd-registers-overlap"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x80_0000_0000, 0x80_0000_0FFF, [EP])], 1,
     "rmrr-beyond-haw"),
    ([], 1, "no-structures"),
    ([B.rmrr(0x1000, 0x1FFF, [EP])], 1, "no-drhd"),
    ([B.drhd(0xFED90000, [IOAPIC], flags=1), B.drhd(0xFED91000, length=0x100)], 1,
     "malformed-structure"),
    ([B.drhd(0xFED90000, [IOAPIC, B.scope(1, 0, [(2, 0)], length=0x40)], flags=1)], 1,
     "malformed-device-scope"),
])
def test_check_fires(structures: List[bytes], flags: int, want: str) -> None:
    assert want in ids(structures, flags=flags)


def test_bad_checksum_and_haw() -> None:
    data = bytearray(B.table([B.drhd(0xFED90000, [IOAPIC], flags=1)], haw=12))
    data[9] ^= 1
    found = [f.id for f in check_dmar(parse_dmar(bytes(data)))]
    assert "bad-checksum" in found and "haw-implausible" in found


def test_reserved_bits() -> None:
    data = bytearray(B.table([B.drhd(0xFED90000, [IOAPIC], flags=1)], flags=0x09))
    data[0x2F] = 0x80
    data[9] = (data[9] - 0x80) & 0xFF  # keep the checksum right
    found = [f.id for f in check_dmar(parse_dmar(bytes(data)))]
    assert found == ["flags-reserved", "header-reserved-nonzero"]


def test_truncated() -> None:
    data = B.table([B.drhd(0xFED90000, [IOAPIC], flags=1)])
    found = [f.id for f in check_dmar(parse_dmar(data[:-4]))]
    assert "table-truncated" in found and "bad-checksum" not in found


def test_real_tables() -> None:
    def real(name: str) -> List[str]:
        path = next(T.glob(name + "*.dat"))
        return [f.id for f in check_dmar(parse_dmar(path.read_bytes()))]

    assert "drhd-base-zero" in real("208_")  # a ThinkPad whose DMAR names a unit at 0
    assert real("X02_").count("rhsa-no-drhd") == 2
    assert "scope-not-under-any-drhd" in real("X02_")  # its RMRR's 00:14.0 has no unit
    assert real("X01_").count("drhd-no-devices") == 6
    assert "x2apic-opt-out" in real("262_")
    assert real("263_") == []


def test_pci_tree_from_lab_root() -> None:
    with open_root(FIXTURES / "dmar" / "lab_root") as root:
        pci = read_pci_bridges(root)
        data = read_dmar(root)
    assert pci is not None and data is not None
    assert pci["0000:00:04.0"] == 1 and pci["0000:00:02.0"] is None
    dmar = parse_dmar(data)
    assert check_dmar(dmar, pci) == []
    # The same table on a machine without the e1000e, and with 00:03.0 seen as a bridge.
    gone = {k: v for k, v in pci.items() if k != "0000:00:02.0"}
    gone["0000:00:03.0"] = 9
    found = check_dmar(dmar, gone)
    assert [(f.id, f.offset) for f in found] == [
        ("scope-device-absent", 0x58), ("scope-type-mismatch", 0x60)]


def test_devices_not_covered() -> None:
    with open_root(FIXTURES / "dmar" / "lab_root") as root:
        pci = read_pci_bridges(root)
        dmar = parse_dmar(read_dmar(root) or b"")
    assert pci is not None
    # The lab lists 00:04.0 and 00:05.0 as bridges: 01:00.0, 02:00.0 and 03:01.0 (two
    # levels down) are covered. A device the table does not name is not.
    assert check_dmar(dmar, pci) == []
    more = dict(pci, **{"0000:00:07.0": None, "0000:04:00.0": None, "0000:00:08.0": 4,
                        "10000:e1:00.0": None})  # a VMD child: DMAs as the VMD endpoint
    found = [(f.id, f.title.split()[0]) for f in check_dmar(dmar, more)]
    assert found == [("device-not-covered", "0000:00:07.0"), ("device-not-covered", "0000:00:08.0"),
                     ("device-not-covered", "0000:04:00.0")]
    # With an INCLUDE_PCI_ALL unit nothing is uncovered.
    tbl = B.table([B.drhd(0xFED90000, [IOAPIC], flags=1)])
    assert check_dmar(parse_dmar(tbl), more) == []


def test_multi_hop_walk() -> None:
    scope = B.scope(1, 0, [(0x1C, 4), (0, 2)])
    tbl = [B.drhd(0xFED90000, [IOAPIC, scope])]
    pci = {"0000:00:1c.4": 5, "0000:05:00.2": None}
    # The endpoint is reached; the root port above it is listed by no unit.
    assert ids(tbl, pci=pci) == ["device-not-covered"]
    assert "scope-device-absent" in ids(tbl, pci={"0000:00:1c.4": 6, "0000:05:00.2": None})
    assert "scope-device-absent" in ids(tbl, pci={"0000:00:1c.4": None, "0000:05:00.2": None})


# -- RMRR inside firmware-reserved memory, judged against the kernel's own verdicts -----

_E820 = re.compile(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (.+?)\s*$")
_UPD = re.compile(r"e820: update \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\w+) ==> (\w+)")
_RMRR = re.compile(r"DMAR: RMRR base: 0x([0-9a-f]+) end: 0x([0-9a-f]+)")
_BUG = re.compile(r"No firmware reserved region can cover this RMRR \[0x([0-9a-f]+)-0x([0-9a-f]+)\]")
_VER = re.compile(r"Linux version (\d+)\.(\d+)")


def kernel_rmrr_verdicts(text: str) -> Optional[Tuple[List[Tuple[int, int]], Dict[Tuple[int, int], bool]]]:
    """(e820 reserved ranges, {rmrr: kernel flagged it}) from a kernel log, or None when
    the log cannot tell (no e820 map, no RMRR, or a kernel without the check: < 5.8)."""
    e820: List[Tuple[int, int, str]] = []
    rmrrs: List[Tuple[int, int]] = []
    bugs = set()
    ver = None
    for line in text.splitlines():
        m = _E820.search(line)
        if m:
            e820.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
            continue
        m = _UPD.search(line)
        if m and m.group(4) == "reserved":  # e820__range_update(): part of a type -> reserved
            a, b = int(m.group(1), 16), int(m.group(2), 16)
            e820 += [(max(a, s), min(b, e), "reserved") for s, e, t in list(e820)
                     if t == m.group(3) and s <= b and a <= e]
            continue
        m = _RMRR.search(line)
        if m:
            rmrrs.append((int(m.group(1), 16), int(m.group(2), 16)))
            continue
        m = _BUG.search(line)
        if m:
            bugs.add((int(m.group(1), 16), int(m.group(2), 16)))
            continue
        m = _VER.search(line)
        if m and ver is None:
            ver = (int(m.group(1)), int(m.group(2)))
    if not e820 or not rmrrs or not (bugs or (ver is not None and ver >= (5, 8))):
        return None
    reserved = [(s, e) for s, e, t in e820 if t == "reserved"]
    return reserved, {r: r in bugs for r in rmrrs}


def _agreement(paths: List[Path]) -> Tuple[int, int, List[str]]:
    judged = flagged = 0
    wrong: List[str] = []
    for p in paths:
        v = kernel_rmrr_verdicts(p.read_text(errors="replace"))
        if v is None:
            continue
        reserved, verdicts = v
        for (a, b), kernel_flagged in verdicts.items():
            judged += 1
            flagged += kernel_flagged
            if (not range_is_reserved(a, b, reserved)) != kernel_flagged:
                wrong.append(f"{p.name}: RMRR 0x{a:x}-0x{b:x}")
    return judged, flagged, wrong


def test_rmrr_reserved_agrees_with_kernel_fixtures() -> None:
    judged, flagged, wrong = _agreement(sorted((FIXTURES / "dmar" / "klog_rmrr").glob("*.txt")))
    assert wrong == []
    assert judged >= 20 and flagged == 3


@pytest.mark.corpus
def test_rmrr_reserved_agrees_with_kernel_corpus(shared: Path) -> None:
    judged, flagged, wrong = _agreement(sorted((shared / "corpus/dmesg/full").glob("*")))
    assert wrong == []
    assert judged >= 80 and flagged >= 3


def test_range_is_reserved_edges() -> None:
    res = [(0x1000, 0x1FFF), (0x2000, 0x2FFF), (0x5000, 0x5FFF)]
    assert range_is_reserved(0x1000, 0x2FFF, res)  # two contiguous pieces
    assert range_is_reserved(0x1800, 0x1FFF, res)
    assert not range_is_reserved(0x2000, 0x3FFF, res)  # runs past the end
    assert not range_is_reserved(0x3000, 0x3FFF, res)  # in a hole
    assert not range_is_reserved(0x2000, 0x1FFF, res)  # empty
    assert range_is_reserved(0x5000, 0x5FFF, res[::-1])  # order does not matter


def test_rmrr_not_reserved_finding(tmp_path: Path) -> None:
    tbl = [B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x8C000000, 0x8C0FFFFF, [EP])]
    assert "rmrr-not-reserved" in [f.id for f in check_dmar(
        parse_dmar(B.table(tbl)), reserved=[(0x8C000000, 0x8C07FFFF)])]
    assert "rmrr-not-reserved" not in [f.id for f in check_dmar(
        parse_dmar(B.table(tbl)), reserved=[(0x8B000000, 0x8CFFFFFF)])]
    assert "rmrr-not-reserved" not in [f.id for f in check_dmar(parse_dmar(B.table(tbl)))]


def test_read_reserved_ranges(tmp_path: Path) -> None:
    with open_root(FIXTURES / "dmar" / "lab_root") as root:
        res = read_reserved_ranges(root)
    assert res is not None
    assert (0x3FFD5000, 0x3FFFFFFF) in res and (0xB0000000, 0xBFFFFFFF) in res  # nested one
    # An unprivileged /proc/iomem (all zeros) falls back to /sys/firmware/memmap.
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/iomem").write_text("00000000-00000000 : Reserved\n"
                                         "00000000-00000000 : System RAM\n")
    for i, (s, e, t) in enumerate([(0, 0x9FFFF, "System RAM"), (0xA0000, 0xFFFFF, "Reserved")]):
        d = tmp_path / f"sys/firmware/memmap/{i}"
        d.mkdir(parents=True)
        (d / "start").write_text(f"0x{s:x}\n")
        (d / "end").write_text(f"0x{e:x}\n")
        (d / "type").write_text(t + "\n")
    with open_root(tmp_path) as root:
        assert read_reserved_ranges(root) == [(0xA0000, 0xFFFFF)]
    (tmp_path / "bare" / "sys").mkdir(parents=True)  # a tree with neither iomem nor memmap
    with open_root(tmp_path / "bare") as root:
        assert read_reserved_ranges(root) is None


def test_rmrr_in_crashkernel() -> None:
    with open_root(FIXTURES / "dmar" / "lab_root") as root:
        crash = read_iomem_ranges(root, "Crash kernel")
    assert crash == [(0x1C000000, 0x2BFFFFFF)]  # crashkernel=256M of the lab guest
    inside = [B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x2BFFF000, 0x2C000FFF, [EP])]
    found = check_dmar(parse_dmar(B.table(inside)), crashkernel=crash)
    assert [f.id for f in found] == ["rmrr-in-crashkernel"]
    outside = [B.drhd(0xFED90000, [IOAPIC], flags=1), B.rmrr(0x2C000000, 0x2C000FFF, [EP])]
    assert check_dmar(parse_dmar(B.table(outside)), crashkernel=crash) == []


@pytest.mark.corpus
def test_corpus_errors_are_the_known_firmware_bugs(shared: Path) -> None:
    """Over 190 real tables, error-severity findings appear only where the firmware is
    really wrong: a guard against checks that cry wolf."""
    base = shared / "corpus" / "dmar"
    errors: Dict[str, List[str]] = {}
    for p in sorted(base.glob("*.dat")) + sorted((base / "extra").glob("*.dat")):
        ids_ = [f.id for f in check_dmar(parse_dmar(p.read_bytes())) if f.severity == "error"]
        if ids_:
            errors[p.name[:4]] = ids_
    assert errors == {"208_": ["drhd-base-zero"], "X02_": ["rhsa-no-drhd", "rhsa-no-drhd"]}


def test_a_field_warning_is_not_a_device_scope_warning() -> None:
    """An RHSA with bytes past its body and an ANDD name without its NUL are field problems;
    only a structure with device scopes reports malformed-device-scope (keyed on the record
    type, not on the warning's wording)."""
    rhsa = bytearray(B.rhsa(0xFED90000, 0)) + b"\0" * 4
    rhsa[2:4] = (24).to_bytes(2, "little")
    andd = bytearray(B.andd(1, "\\_SB.PCI0.ANDD"))[:-1]
    andd[2:4] = len(andd).to_bytes(2, "little")
    found = ids([B.drhd(0xFED90000, [IOAPIC], flags=1), bytes(rhsa), bytes(andd)], flags=1)
    assert found.count("malformed-field") == 2 and "malformed-device-scope" not in found
