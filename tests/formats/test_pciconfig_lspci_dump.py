"""The lspci -x/-xxx/-xxxx text reader: quoting, domains, gaps, repeats, bad text, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats.lspci_dump import normalise_bdf, parse_lspci_dump
from kdumptool.formats.pciconfig import parse_pci_config
from kdumptool.formats.vtd_regs import parse_devmem_dump
from kdumptool.sources.iommu import parse_reserved_regions
from kdumptool.sources.system import parse_iomem
from tests.conftest import FIXTURES

LAB = FIXTURES / "snapshots" / "live_legacy_on"


def _hex_block(data: bytes) -> str:
    return "\n".join(
        f"{off:02x}: " + " ".join(f"{b:02x}" for b in data[off : off + 16]) for off in range(0, len(data), 16)
    )


def test_lab_dump_bytes_equal_sysfs_config():
    for d in parse_lspci_dump((LAB / "_kdumptool" / "lspci_xxxx.txt").read_text()):
        raw = (LAB / "sys/bus/pci/devices" / d.bdf / "config").read_bytes()
        assert d.data == raw[: len(d.data)] and len(d.data) in (256, 4096)


def test_mail_quoting_and_domain():
    cfg = (LAB / "sys/bus/pci/devices/0000:00:02.0/config").read_bytes()[:64]
    text = "> > 0001:02:00.0 Ethernet controller: Intel\n" + "\n".join("> > " + x for x in _hex_block(cfg).splitlines())
    (d,) = parse_lspci_dump(text)
    assert d.bdf == "0001:02:00.0" and d.data == cfg and d.description.startswith("Ethernet")
    assert parse_pci_config(d.data).vendor_id == 0x8086


def test_gap_repeat_and_odd_offsets_warn():
    block = _hex_block(bytes(range(64)) * 1)
    lines = block.splitlines()
    text = "00:01.0 x\n" + "\n".join([lines[0], lines[0].replace("00 01", "ff ff"), lines[1], lines[3], "08: 00 00"])
    (d,) = parse_lspci_dump(text)
    assert len(d.data) == 32
    assert any("repeated" in w for w in d.warnings)
    assert any("gap at 0x20" in w for w in d.warnings)
    assert any("odd hex offset" in w for w in d.warnings)


def test_no_hex_raises_one_line_error():
    with pytest.raises(DecodeError) as ei:
        parse_lspci_dump("00:01.0 Host bridge\n\tControl: I/O+\n", "report.txt")
    assert str(ei.value).startswith("report.txt: ")
    with pytest.raises(DecodeError):
        normalise_bdf("not a bdf")


_LINES = st.one_of(
    st.text(max_size=60),
    st.builds(lambda b, d, f: f"{b:02x}:{d:02x}.{f} dev", st.integers(0, 255), st.integers(0, 31), st.integers(0, 7)),
    st.builds(
        lambda off, bs: f"{off:02x}: " + " ".join(f"{x:02x}" for x in bs),
        st.integers(0, 0xFFF),
        st.lists(st.integers(0, 255), max_size=17),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_LINES, max_size=40))
def test_fuzz_lspci_dump(lines):
    try:
        devs = parse_lspci_dump("\n".join(lines))
    except KdumptoolError:
        return
    for d in devs:
        assert len(d.data) <= 4096
        try:
            parse_pci_config(d.data)
        except KdumptoolError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_other_text_readers(text):
    for fn in (parse_devmem_dump, parse_reserved_regions):
        try:
            fn(text)
        except KdumptoolError:
            pass
    parse_iomem(text)  # skips what it cannot read
