"""AMD-Vi registers through the /dev/mem reader (a sparse file stands in for physical
memory: the same os.open + read-only mmap path runs) and from a snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumptool.sources.amdvi import read_amdvi_live, read_amdvi_mmio
from kdumptool.sources.root import Root
from tests.cliutil import run
from tests.conftest import FIXTURES

BASE = 0xFD30_0000
T14 = FIXTURES / "ivrs" / "ivrs_Notebook_Lenovo_ThinkPad-T14-Gen-3-21CF004PGE_696E48381F84.dat"


def fake_mem(tmp_path: Path) -> Path:
    mem = tmp_path / "mem"
    with open(mem, "wb") as fh:
        fh.seek(BASE)
        page0 = bytearray(0x1000)
        page0[0:8] = (0x4000_01FF).to_bytes(8, "little")
        page0[0x18:0x20] = (0x1405).to_bytes(8, "little")
        page0[0x30:0x38] = (0x29D3).to_bytes(8, "little")
        fh.write(page0)
        fh.seek(BASE + 0x2000)
        page2 = bytearray(0x1000)
        page2[0x20:0x24] = (0x8).to_bytes(4, "little")
        fh.write(page2)
    return mem


def test_mmio_read_through_the_devmem_path(tmp_path: Path) -> None:
    vals = read_amdvi_mmio(BASE, Root("/"), str(fake_mem(tmp_path)))
    assert vals["DEV_TABLE"] == 0x4000_01FF and vals["CONTROL"] == 0x1405
    assert vals["EXT_FEATURES"] == 0x29D3 and vals["STATUS"] == 8 and vals["EVT_HEAD"] == 0


def test_refusals_are_kept_per_unit(tmp_path: Path) -> None:
    out = read_amdvi_live([("ivhd0", BASE + 1), ("ivhd1", BASE)], Root("/"),
                          str(tmp_path / "nope"))
    assert out[0]["registers"] is None and "not page aligned" in out[0]["read_error"]
    assert "no such device" in out[1]["read_error"]


def snapshot(tmp_path: Path, regs: dict) -> Path:
    tables = tmp_path / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True)
    (tables / "IVRS").write_bytes(T14.read_bytes())
    extra = tmp_path / "_kdumptool"
    extra.mkdir()
    (extra / "amdvi_registers.json").write_text(json.dumps(
        {"units": [{"name": "ivhd0", "address": 0xFE00_0000, "read_error": None,
                    "registers": regs}]}))
    return tmp_path


def test_snapshot_registers_and_kdump_checks(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    # The T14's IVHD 40h names devices up to ff:1f.7: Linux allocates a 2 MiB table.
    # A register that says 1 MiB (Size 0xff) is what a kdump kernel refuses to copy.
    regs = {"DEV_TABLE": 0x1_2000_0000 | 0xFF, "CONTROL": 0x1405,
            "EXT_FEATURES": 0x246577EFA2254AFA, "STATUS": 1, "EVT_BUF": 0x9 << 56 | 0x5000,
            "EVT_HEAD": 0, "EVT_TAIL": 2 << 4}
    root = snapshot(tmp_path, regs)
    code, out, err = run(capsys, "ivrs", "--root", str(root), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    u = doc["iommus"][0]
    assert u["name"] == "ivhd0" and u["registers"]["device_table"]["size"] == 1 << 20
    assert u["registers"]["control"]["iommu_en"] is True
    ids = {f["id"] for f in doc["findings"]}
    assert {"amdvi-translation", "amdvi-dev-table-size", "amdvi-dev-table-above-4g",
            "amdvi-event-overflow", "amdvi-events-pending"} <= ids
    assert "amdvi-efr-mismatch" not in ids
    code, out, _ = run(capsys, "ivrs", "--root", str(root), "-f", "text")
    assert "Device table  0x120000000, 1 MiB (32768 entries)" in out
    assert "Event log     0x5000, 512 entries, head 0 tail 2 (2 pending)" in out


def test_snapshot_without_registers_says_unknown(capsys: pytest.CaptureFixture,
                                                 tmp_path: Path) -> None:
    tables = tmp_path / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True)
    (tables / "IVRS").write_bytes(T14.read_bytes())
    code, out, _ = run(capsys, "ivrs", "--root", str(tmp_path), "-f", "json")
    f = [x for x in json.loads(out)["findings"] if x["id"] == "amdvi-registers-unread"]
    assert code == 0 and len(f) == 1 and "state is unknown" in f[0]["title"]
    code, out, _ = run(capsys, "ivrs", "--root", str(tmp_path), "-f", "json", "--no-registers")
    assert json.loads(out)["iommus"] is None


def test_amdvi_units_follow_the_kernels_ivhd_type(tmp_path: Path) -> None:
    from kdumptool.sources.amdvi import amdvi_units

    assert amdvi_units(Root(str(tmp_path))) == []
    tables = tmp_path / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True)
    (tables / "IVRS").write_bytes(T14.read_bytes())
    assert amdvi_units(Root(str(tmp_path))) == [("ivhd0", 0xFE00_0000)]
    zen = FIXTURES / "ivrs" / "ivrs_Desktop_ASUSTek-Computer_ROG-ZENITH-II-EXTREME-ALPHA_BF6A37F4A7D0.dat"
    (tables / "IVRS").write_bytes(zen.read_bytes())
    units = amdvi_units(Root(str(tmp_path)))
    assert [n for n, _ in units] == ["ivhd0", "ivhd1", "ivhd2", "ivhd3"]
    assert len({a for _, a in units}) == 4
    (tables / "IVRS").write_bytes(b"IVRS" + bytes(20))
    assert amdvi_units(Root(str(tmp_path))) == []
