"""AMD-Vi register decoding, checked against what Linux writes into the registers
(drivers/iommu/amd/init.c: iommu_set_device_table, iommu_enable_command_buffer,
iommu_enable_event_buffer) and against a real kernel log line (QEMU's amd-iommu,
"Extended features (0x29d3, 0x0): PreF PPR GT IA GA HE", from issue 16's probe)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats.amdvi_regs import (
    REGISTERS,
    Efr,
    decode_amdvi_registers,
    registers_from_page,
)

MMIO_CMD_SIZE_512 = 0x9 << 56  # amd_iommu_types.h
EVT_LEN_MASK = 0x9 << 56
CONTROL = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 10) | (1 << 12) | (4 << 5)


def kernel_programmed(dev_table: int, size: int) -> dict:
    return {
        "DEV_TABLE": dev_table | ((size >> 12) - 1),  # iommu_set_device_table
        "CMD_BUF": 0x1_2345_6000 | MMIO_CMD_SIZE_512,
        "EVT_BUF": 0x1_2346_0000 | EVT_LEN_MASK,
        "CONTROL": CONTROL,
        "EXT_FEATURES": 0x29D3,
        "EVT_HEAD": 3 << 4,
        "EVT_TAIL": 7 << 4,
        "CMD_HEAD": 0x40,
        "CMD_TAIL": 0x40,
        "STATUS": (1 << 3) | (1 << 4),
    }


def test_what_the_kernel_wrote_reads_back() -> None:
    r = decode_amdvi_registers(kernel_programmed(0x4000_0000, 2 << 20))
    assert r.dev_table_base == 0x4000_0000 and r.dev_table_size == 2 << 20
    assert r.dev_table_entries == 65536
    assert r.iommu_en and r.event_log_en and r.cmd_buf_en and not r.ht_tun_en
    assert r.inv_timeout == "1 s"  # CTRL_INV_TO_1S
    assert r.control_names == ["IommuEn", "EventLogEn", "EventIntEn", "Coherent", "CmdBufEn"]
    cmd = r.log("CMD_BUF")
    assert cmd is not None and cmd.entries == 512 and cmd.base == 0x1_2345_6000
    assert r.ring("EVT_BUF", "EVT_HEAD", "EVT_TAIL") == (3, 7, 4)
    assert r.ring("CMD_BUF", "CMD_HEAD", "CMD_TAIL") == (4, 4, 0)
    assert r.status_names == ["EventLogRun", "CmdBufRun"]


def test_efr_as_the_kernel_prints_it() -> None:
    # The real line from QEMU 7.2's amd-iommu under Debian 6.12 (issue 16's probe).
    assert Efr(0x29D3).kernel_text() == "Extended features (0x29d3, 0x0): PreF PPR GT IA GA HE"
    e = Efr(0x29D3)
    assert (e.hats, e.gats) == (2, 2) and not e.snp
    assert Efr(1 << 63 | 1 << 21 | 1).kernel_text(5).endswith(", 0x5): PreF GA_vAPIC SNP")


def test_registers_from_mmio_bytes() -> None:
    page0 = bytearray(0x1000)
    page2 = bytearray(0x1000)
    page0[0:8] = (0x4000_01FF).to_bytes(8, "little")
    page0[0x18:0x20] = CONTROL.to_bytes(8, "little")
    page2[0x20:0x24] = (0x18).to_bytes(4, "little")
    vals = registers_from_page(bytes(page0), bytes(page2))
    assert vals["DEV_TABLE"] == 0x4000_01FF and vals["STATUS"] == 0x18
    assert set(vals) == set(REGISTERS)
    assert set(registers_from_page(bytes(page0))) == {k for k, (o, _) in REGISTERS.items()
                                                      if o < 0x1000}


def test_bad_values_raise_our_error() -> None:
    with pytest.raises(DecodeError, match="missing register"):
        decode_amdvi_registers({"DEV_TABLE": 0})
    with pytest.raises(DecodeError, match="32-bit"):
        decode_amdvi_registers({"DEV_TABLE": 0, "CONTROL": 0, "STATUS": 1 << 40})
    with pytest.raises(DecodeError, match="not a mapping"):
        decode_amdvi_registers([1, 2])  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(REGISTERS) + ["X"]),
                       st.one_of(st.integers(-5, 1 << 65), st.text(max_size=3), st.none())))
def test_fuzz_register_maps(values: dict) -> None:
    try:
        r = decode_amdvi_registers(values)
    except KdumptoolError:
        return
    r.control_names, r.status_names, r.dev_table_size, r.exclusion  # noqa: B018
    r.ring("EVT_BUF", "EVT_HEAD", "EVT_TAIL")
    if r.efr is not None:
        r.efr.kernel_text()
