"""VT-d units and registers of the lab snapshots against the kernel's own words: the
``DMAR: dmar0: reg_base_addr ... ver ... cap ... ecap ...`` boot line, the sysfs
``intel-iommu`` attributes, and the log lines that say what the kernel enabled."""

from __future__ import annotations

import json
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError, SourceMissing
from kdumptool.formats.vtd_regs import decode_vtd_registers, parse_devmem_dump
from kdumptool.sources.devmem import DevMemPage, read_vtd_page
from kdumptool.sources.iommu import parse_reserved_regions, read_registers_json
from kdumptool.sources.root import Root
from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES

SNAPSHOTS = FIXTURES / "snapshots"
RUNS = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())
BOOT_LINE = re.compile(r"DMAR: (dmar\d+): reg_base_addr ([0-9a-f]+) ver (\d+):(\d+) cap ([0-9a-f]+) ecap ([0-9a-f]+)")


def _dmesg(run: str) -> str:
    return (SNAPSHOTS / run / "_kdumptool" / "dmesg.txt").read_text()


@pytest.mark.parametrize("run", RUNS)
def test_registers_agree_with_kernel_boot_line(run):
    system = read_system(SNAPSHOTS / run)
    lines = BOOT_LINE.findall(_dmesg(run))
    assert len(system.units) == 1
    u = system.units[0]
    r = u.registers
    assert r is not None
    if not lines:  # intel_iommu=off: the kernel printed no unit line
        assert "IOMMU disabled" in _dmesg(run)
        assert r.translation_enabled is False
        return
    name, base, major, minor, cap, ecap = lines[-1]
    assert (u.name, u.address) == (name, int(base, 16))
    assert r.version == (int(major), int(minor))
    assert r.get("CAP") == int(cap, 16) and r.get("ECAP") == int(ecap, 16)


@pytest.mark.parametrize("run", RUNS)
def test_cap_fields_agree_with_sysfs(run):
    snap = SNAPSHOTS / run
    attr = snap / "sys/class/iommu/dmar0/intel-iommu"
    if not attr.exists():
        pytest.skip("no intel-iommu sysfs in this run (intel_iommu=off)")
    u = read_system(snap).units[0]
    assert u.registers.cap.domains == int((attr / "domains_supported").read_text())
    assert u.registers.get("CAP") == int((attr / "cap").read_text(), 16)
    assert u.registers.get("ECAP") == int((attr / "ecap").read_text(), 16)


@pytest.mark.parametrize("run", RUNS)
def test_state_agrees_with_kernel_log(run):
    log = _dmesg(run)
    r = read_system(SNAPSHOTS / run).units[0].registers
    if "Enabled IRQ remapping in xapic mode" in log:
        assert r.ir_enabled and r.irta_eime is False
    if "Using Queued invalidation" in log:
        assert r.qi_enabled
    if "IOMMU disabled" in log:
        assert not r.translation_enabled
    if "Copied translation tables from previous kernel" in log or "DMAR: Intel(R) Virtualization" in log:
        assert r.translation_enabled
    # Scalable mode shows as ECAP.SMTS and, once the kernel uses it, RTADDR bit 10.
    if r.scalable_mode:
        assert r.ecap.smts


def test_scalable_runs_show_rtaddr_bit_10():
    live = read_system(SNAPSHOTS / "live_sm_mismatch").units[0].registers
    kdump = read_system(SNAPSHOTS / "kdump_sm_mismatch").units[0].registers
    assert live.scalable_mode and live.mode == "scalable" and live.get("RTADDR") & (1 << 10)
    assert live.ecap.smts
    # The kdump kernel ran with sm_off: legacy root table on scalable-capable hardware.
    assert kdump.mode == "legacy" and kdump.ecap.smts
    legacy = read_system(SNAPSHOTS / "live_legacy_on").units[0].registers
    assert legacy.mode == "legacy" and not legacy.ecap.smts


def test_registers_json_bad_shapes(tmp_path):
    (tmp_path / "_kdumptool").mkdir()
    f = tmp_path / "_kdumptool" / "vtd_registers.json"
    for text, msg in (("{", "not JSON"), ("[]", "no 'units'"), ('{"units": [{}]}', "address")):
        f.write_text(text)
        with pytest.raises(DecodeError, match=msg):
            read_registers_json(Root(tmp_path))
    f.write_text(json.dumps({"units": [{"name": "dmar0", "address": 0xFED90000, "registers": {"GSTS": -1}}]}))
    system = read_system(tmp_path)
    assert system.units[0].registers is None and "GSTS" in system.units[0].read_error


def test_decode_rejects_wide_values_and_bad_frcd():
    with pytest.raises(DecodeError):
        decode_vtd_registers({"GSTS": 1 << 32})
    with pytest.raises(DecodeError):
        decode_vtd_registers({"FRCD": [[1]]})


def test_fault_record_fields():
    # A primary fault as the kernel logs it in the sm_mismatch kdump run:
    # "[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x06]"
    hi = (1 << 63) | (1 << 62) | (0x06 << 32) | 0x0010
    r = decode_vtd_registers({"FRCD": [[0xFFFFC000, hi]]})
    f = r.pending_faults[0]
    assert (f.source_bdf, f.reason, f.fault_info, f.type_write, f.pasid) == ("00:02.0", 6, 0xFFFFC000, False, None)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["VER", "CAP", "ECAP", "GSTS", "RTADDR", "IRTA", "FSTS", "FRCD", "X"]),
                       st.one_of(st.integers(-5, 1 << 70), st.none(), st.text(max_size=3),
                                 st.lists(st.lists(st.integers(-1, 1 << 65), max_size=3), max_size=3))))
def test_fuzz_register_decode(values):
    try:
        r = decode_vtd_registers(values)
    except KdumptoolError:
        return
    for attr in ("mode", "translation_enabled", "irta_entries", "iq_head", "cap", "ecap", "pending_faults"):
        getattr(r, attr)


def test_parse_devmem_dump_errors():
    with pytest.raises(DecodeError):
        parse_devmem_dump("nothing here")
    with pytest.raises(DecodeError):
        parse_devmem_dump("# dmar0 base=0xzz\n")


def test_reserved_regions_parse_and_errors():
    rr = parse_reserved_regions("0x0000000000000000 0x0000000000ffffff direct-relaxable\n")
    assert (rr[0].start, rr[0].end, rr[0].type) == (0, 0xFFFFFF, "direct-relaxable")
    with pytest.raises(DecodeError):
        parse_reserved_regions("0x0 msi\n")


def test_devmem_reads_aligned_registers_from_a_mapped_page(tmp_path):
    """The /dev/mem reader on a plain file standing in for physical memory: registers at
    their offsets, fault records at the CAP-given offset."""
    page = bytearray(8192)
    base = 4096
    cap = 0x00D2008C22260206  # FRO 0x220, NFR 1
    struct.pack_into("<I", page, base + 0x00, 0x10)
    struct.pack_into("<Q", page, base + 0x08, cap)
    struct.pack_into("<I", page, base + 0x1C, 0xC7000000)
    struct.pack_into("<Q", page, base + 0x20, 0x25CF400)
    struct.pack_into("<QQ", page, base + 0x220, 0xFFFFC000, (1 << 63) | (6 << 32) | 0x10)
    mem = tmp_path / "mem"
    mem.write_bytes(bytes(page))
    values = read_vtd_page(base, path=str(mem))
    r = decode_vtd_registers(values)
    assert r.get("CAP") == cap and r.version == (1, 0) and r.translation_enabled
    assert r.mode == "scalable" and r.root_table == 0x25CF000
    assert [f.reason for f in r.pending_faults] == [6]
    with DevMemPage(base, path=str(mem)) as p, pytest.raises(ValueError):
        p.read64(4)


def test_devmem_refusal_is_named(tmp_path):
    with pytest.raises(SourceMissing, match="no such device"):
        DevMemPage(0xFED90000, path=str(tmp_path / "nope"))


def test_refusals_say_which(tmp_path, monkeypatch):
    from kdumptool.sources import devmem

    sec = tmp_path / "sys/kernel/security"
    sec.mkdir(parents=True)
    (sec / "lockdown").write_text("none [integrity] confidentiality\n")
    root = Root(tmp_path)
    assert devmem.lockdown_mode(root) == "integrity"
    monkeypatch.setattr(devmem.os, "geteuid", lambda: 0)
    assert "lockdown (integrity)" in str(devmem._refusal(PermissionError(1, "x"), "open", root))
    assert "lockdown" in str(devmem._refusal(PermissionError(1, "x"), "mmap", root))
    (sec / "lockdown").write_text("[none] integrity confidentiality\n")
    assert "STRICT_DEVMEM" in str(devmem._refusal(PermissionError(1, "Operation not permitted"), "mmap", root))
    assert "iomem=relaxed" in str(devmem._refusal(PermissionError(1, "x"), "mmap", root))
    monkeypatch.setattr(devmem.os, "geteuid", lambda: 1000)
    assert "not root" in str(devmem._refusal(PermissionError(13, "x"), "open", root))


class _LiveLike(Root):
    """A tree that says it is the live host, so the /dev/mem path is taken."""

    @property
    def is_live(self) -> bool:
        return True


def test_live_register_refusal_carries_on(tmp_path, monkeypatch):
    from kdumptool.sources import devmem

    src = SNAPSHOTS / "live_legacy_on"
    unit = tmp_path / "sys/devices/virtual/iommu/dmar0/intel-iommu"
    unit.mkdir(parents=True)
    for f in (src / "sys/class/iommu/dmar0/intel-iommu").iterdir():
        (unit / f.name).write_text(f.read_text())
    (tmp_path / "sys/class/iommu").mkdir(parents=True)
    (tmp_path / "sys/class/iommu/dmar0").symlink_to("../../devices/virtual/iommu/dmar0")

    def refuse(address, root=None, max_frcd=256, path=devmem.DEV_MEM):
        raise devmem._refusal(PermissionError(1, "Operation not permitted"), "mmap", Root(tmp_path))

    monkeypatch.setattr(devmem, "read_vtd_page", refuse)
    system = read_system(_LiveLike(tmp_path), use_udev=False)
    u = system.units[0]
    assert u.name == "dmar0" and u.registers is None
    assert "iomem=relaxed" in u.read_error
    assert u.cap == 0xD2008C22260206  # still known from sysfs
    from kdumptool.render.iommu import render_iommu_text

    text = render_iommu_text(system)
    assert "registers: not read" in text and "CAP 0x00d2008c22260206" in text


def test_pmen_and_fectl_bits():
    r = decode_vtd_registers({"PMEN": 0x80000001, "FECTL": 0x80000000, "FSTS": 0x0102})
    assert r.pmr_enabled and r.fault_interrupt_masked
    assert r.fsts_flags() == ["PPF"] and r.fault_record_index == 1
    assert decode_vtd_registers({"PMEN": 0}).pmr_enabled is False
