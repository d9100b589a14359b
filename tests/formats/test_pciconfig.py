"""PCI config decoder: agreement with lspci -vvv on the lab's dumps (fixtures), the sysfs
config files against lspci -xxxx's bytes, synthetic edge cases (looped and broken chains,
pointers out of range, 64-byte unprivileged reads) and hypothesis fuzzing."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats.lspci_dump import parse_lspci_dump
from kdumptool.formats.pciconfig import (
    COMMAND_BITS,
    PCI_EXT_CAP_ID_ACS,
    PCI_EXT_CAP_ID_ATS,
    PCI_EXT_CAP_ID_ERR,
    PCI_EXT_CAP_ID_PASID,
    PCI_EXT_CAP_ID_PRI,
    PCI_EXT_CAP_ID_SRIOV,
    flag_words,
    parse_pci_config,
)
from tests.conftest import FIXTURES

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sources"))
sys.path.insert(0, str(HERE))
from lspci_oracle import parse_vvv  # noqa: E402
from pci_agreement import disagreements  # noqa: E402

SNAPSHOTS = FIXTURES / "snapshots"
RUNS = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())


@pytest.mark.parametrize("run", RUNS)
def test_lab_dumps_agree_with_lspci_vvv(run):
    extra = SNAPSHOTS / run / "_kdumptool"
    dumps = parse_lspci_dump((extra / "lspci_xxxx.txt").read_text())
    vvv = parse_vvv((extra / "lspci_vvv.txt").read_text())
    assert {d.bdf for d in dumps} == set(vvv)
    for d in dumps:
        assert disagreements(d.data, vvv[d.bdf]) == [], d.bdf


@pytest.mark.parametrize("run", RUNS)
def test_sysfs_config_matches_lspci_bytes(run):
    snap = SNAPSHOTS / run
    for d in parse_lspci_dump((snap / "_kdumptool" / "lspci_xxxx.txt").read_text()):
        raw = (snap / "sys/bus/pci/devices" / d.bdf / "config").read_bytes()
        assert raw[: len(d.data)] == d.data, d.bdf


def test_lab_control_words_match_lspci_text():
    extra = SNAPSHOTS / "live_legacy_on" / "_kdumptool"
    text = (extra / "lspci_vvv.txt").read_text()
    for d in parse_lspci_dump((extra / "lspci_xxxx.txt").read_text()):
        words = " ".join(flag_words(parse_pci_config(d.data).command, COMMAND_BITS))
        assert f"Control: {words}" in text


# ---- synthetic edge cases -------------------------------------------------------------


def header(cap_ptr: int = 0x40, status: int = 0x10, htype: int = 0, size: int = 256) -> bytearray:
    b = bytearray(size)
    struct.pack_into("<HHHH", b, 0, 0x8086, 0x1234, 0x0406, status)
    b[0x0B] = 0x02  # network
    b[0x0E] = htype
    b[0x34] = cap_ptr
    return b


def test_64_byte_unprivileged_read_says_access_denied():
    cfg = parse_pci_config(bytes(header()[:64]))
    assert cfg.capabilities == ()
    assert cfg.malformed and "access denied" in cfg.malformed[0].reason
    assert cfg.bus_master and cfg.intx_disable and cfg.memory_space and not cfg.io_space


def test_looped_chain_is_reported_once():
    b = header()
    b[0x40:0x42] = bytes([0x01, 0x50])
    b[0x50:0x52] = bytes([0x05, 0x40])  # back to 0x40
    cfg = parse_pci_config(bytes(b))
    assert [c.offset for c in cfg.capabilities] == [0x40, 0x50]
    assert [m.reason for m in cfg.malformed] == ["chain looped"]


def test_broken_chain_and_out_of_range_pointer():
    b = header()
    b[0x40:0x42] = bytes([0xFF, 0x00])
    assert [m.reason for m in parse_pci_config(bytes(b)).malformed] == ["chain broken"]
    b = header(cap_ptr=0x10)
    assert "out of range" in parse_pci_config(bytes(b)).malformed[0].reason


def test_no_cap_list_bit_means_no_walk():
    b = header(status=0)
    b[0x40:0x42] = bytes([0x01, 0x00])
    assert parse_pci_config(bytes(b)).capabilities == ()


def test_bridge_header():
    b = header(htype=0x81)
    b[0x18:0x1B] = bytes([0, 2, 3])
    b[0x40:0x42] = bytes([0x00, 0x00])
    cfg = parse_pci_config(bytes(b))
    assert cfg.is_bridge and cfg.multifunction
    assert (cfg.primary_bus, cfg.secondary_bus, cfg.subordinate_bus) == (0, 2, 3)
    assert cfg.subsystem_vendor_id is None


def _pcie_with_ext(ext: list) -> bytes:
    b = header(size=4096)
    b[0x40:0x44] = bytes([0x10, 0x00, 0x02, 0x00])  # Express v2, endpoint
    off = 0x100
    for i, (cid, body) in enumerate(ext):
        nxt = off + 0x40 if i + 1 < len(ext) else 0
        struct.pack_into("<I", b, off, cid | (1 << 16) | (nxt << 20))
        b[off + 4 : off + 4 + len(body)] = body
        off = nxt
    return bytes(b)


def test_extended_capabilities_decoded():
    data = _pcie_with_ext(
        [
            (PCI_EXT_CAP_ID_ERR, struct.pack("<IIIIII", 0x100000, 0, 0x62030, 0x2000, 0x2000, 0xA0)),
            (PCI_EXT_CAP_ID_ACS, struct.pack("<HH", 0x5F, 0x1D)),
            (PCI_EXT_CAP_ID_ATS, struct.pack("<HH", 0x20, 0x8000)),
            (PCI_EXT_CAP_ID_PASID, struct.pack("<HH", 0x1406, 0x1)),
            (PCI_EXT_CAP_ID_PRI, struct.pack("<HHII", 0x1, 0x100, 512, 32)),
            (PCI_EXT_CAP_ID_SRIOV, struct.pack("<IHHHHHHHHHH", 0, 0x9, 0, 8, 8, 4, 0, 0x80, 2, 0, 0x154C)),
        ]
    )
    cfg = parse_pci_config(data)
    assert cfg.pcie is not None and cfg.pcie.port_type_name == "Endpoint"
    assert [c.offset for c in cfg.ext_capabilities] == [0x100, 0x140, 0x180, 0x1C0, 0x200, 0x240]
    assert cfg.aer is not None and cfg.aer.uncor_status == 0x100000 and cfg.aer.first_error_pointer == 0
    assert cfg.acs is not None and cfg.acs.ctrl == 0x1D
    assert cfg.ats is not None and cfg.ats.enabled and cfg.ats.page_aligned and cfg.ats.invalidate_queue_depth == 32
    assert cfg.pasid is not None and cfg.pasid.enabled and cfg.pasid.max_width == 20 and cfg.pasid.exec_perm
    assert cfg.pri is not None and cfg.pri.enabled and cfg.pri.stopped and cfg.pri.max_requests == 512
    assert cfg.sriov is not None and cfg.sriov.vf_enabled and cfg.sriov.vf_memory_space
    assert (cfg.sriov.total_vfs, cfg.sriov.num_vfs, cfg.sriov.first_vf_offset, cfg.sriov.vf_device_id) == (8, 4, 0x80, 0x154C)


def test_extended_chain_loop():
    b = bytearray(_pcie_with_ext([(PCI_EXT_CAP_ID_ERR, b""), (PCI_EXT_CAP_ID_ACS, b"")]))
    struct.pack_into("<I", b, 0x140, PCI_EXT_CAP_ID_ACS | (1 << 16) | (0x100 << 20))
    cfg = parse_pci_config(bytes(b))
    assert [m.reason for m in cfg.malformed] == ["chain looped"]


def test_short_header_raises_decode_error():
    with pytest.raises(DecodeError) as ei:
        parse_pci_config(b"\x86\x80" * 10, "0000:00:02.0 config")
    assert "0000:00:02.0 config" in str(ei.value)


# ---- fuzz -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_fuzz_random_bytes(data):
    try:
        cfg = parse_pci_config(data)
    except KdumptoolError:
        return
    assert len(cfg.capabilities) <= 48


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from([64, 128, 256, 4096]),
    ptrs=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)), max_size=20),
    ext=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 0xFFFFFFFF)), max_size=20),
    first=st.integers(0, 255),
)
def test_fuzz_chains(size, ptrs, ext, first):
    """Capability chains made of arbitrary pointers (loops, out of range, past the read
    length): the walk ends, and only our errors escape."""
    b = header(cap_ptr=first, size=size)
    for where, cid, nxt in ptrs:
        if where + 1 < size:
            b[where] = cid
            b[where + 1] = nxt
    if size > 0x40:
        b[0x40:0x43] = bytes([0x10, first, 0x42])
    for where, val in ext:
        where &= ~3
        if where + 4 <= size:
            struct.pack_into("<I", b, where, val)
    cfg = parse_pci_config(bytes(b))
    offs = [c.offset for c in cfg.capabilities]
    assert len(offs) == len(set(offs))
    eoffs = [c.offset for c in cfg.ext_capabilities]
    assert len(eoffs) == len(set(eoffs))
    assert all(o + 2 <= size for o in offs)
