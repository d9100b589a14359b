"""``kdumptool ivrs``: a real table in text and JSON, --root with the MADT, the live
path's refusals, and the JSON contract (absolute offsets of every block and entry)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.cliutil import run
from tests.conftest import FIXTURES
from tests.formats import ivrs_builder as B

FIX = FIXTURES / "ivrs"
T14 = FIX / "ivrs_Notebook_Lenovo_ThinkPad-T14-Gen-3-21CF004PGE_696E48381F84.dat"


def madt(ioapic_ids: list) -> bytes:
    body = b"".join(struct.pack("<BBBBII", 1, 12, i, 0, 0xFEC00000 + 0x1000 * n, 24 * n)
                    for n, i in enumerate(ioapic_ids))
    data = bytearray(b"APIC" + struct.pack("<I", 44 + len(body)) + bytes(28)
                     + struct.pack("<II", 0xFEE00000, 1) + body)
    data[9] = (-sum(data)) & 0xFF
    return bytes(data)


def test_json_contract_offsets_are_absolute(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "ivrs", str(T14), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    data = T14.read_bytes()
    assert doc["vendor"] == "AMD-Vi" and doc["target_ivhd_type"] == 0x40
    assert [b["type"] for b in doc["blocks"]] == ["IVHD", "IVHD", "IVMD", "IVHD", "UNKNOWN"]
    for b in doc["blocks"]:
        # The type byte and length word at the block's offset are the table's own.
        assert data[b["offset"]] == b["type_id"]
        assert int.from_bytes(data[b["offset"] + 2 : b["offset"] + 4], "little") == b["length"]
        for e in b["device_entries"]:
            assert data[e["offset"]] == e["type_id"]
            assert int.from_bytes(data[e["offset"] + 1 : e["offset"] + 3], "little") == e["device_id"]
    hid = [e for e in doc["blocks"][3]["device_entries"] if e["type"] == "HID"]
    assert [h["uid"] for h in hid] == ["\\_SB.FUR0", "\\_SB.FUR1", "\\_SB.FUR2", "\\_SB.FUR3"]
    assert {f["id"] for f in doc["findings"]} >= {"ivrs-unknown-block", "ivmd-unity"}


def test_text_names_every_entry(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "ivrs", str(T14), "-f", "text")
    assert code == 0
    assert "@0x138 SPECIAL      IOAPIC 32 -> 00:14.0" in out
    assert "@0x1c4 UNKNOWN 51h" in out and "Linux uses the IVHD type 40h blocks" in out


def test_root_with_madt(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    tables = tmp_path / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True)
    (tables / "IVRS").write_bytes(T14.read_bytes())
    (tables / "APIC").write_bytes(madt([32, 33]))
    code, out, _ = run(capsys, "ivrs", "--root", str(tmp_path), "-f", "json")
    ids = {f["id"] for f in json.loads(out)["findings"]}
    assert code == 0 and "ivrs-ioapic-missing" not in ids and "ivrs-no-sb-ioapic" not in ids
    (tables / "APIC").write_bytes(madt([32, 33, 34]))
    code, out, _ = run(capsys, "ivrs", "--root", str(tmp_path), "-f", "json", "--fail-on",
                       "warning")
    doc = json.loads(out)
    miss = [f for f in doc["findings"] if f["id"] == "ivrs-ioapic-missing"]
    assert code == 3 and len(miss) == 1 and "IOAPIC[34] not in IVRS table" in miss[0]["title"]
    assert doc["source"].endswith(":/sys/firmware/acpi/tables/IVRS")


def test_root_without_ivrs(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    tables = tmp_path / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True)
    code, _, err = run(capsys, "ivrs", "--root", str(tmp_path))
    assert code == 1 and "no IVRS table: the firmware reports no AMD IOMMU" in err
    (tables / "DMAR").write_bytes((FIXTURES / "dmar" / "lab_DMAR.bin").read_bytes())
    code, _, err = run(capsys, "ivrs", "--root", str(tmp_path))
    assert code == 1 and "Intel VT-d (DMAR table)" in err and "kdumptool dmar" in err


def test_broken_table_findings(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """What the kernel refuses: bad checksum, an IVHD without devices, an unknown special
    variety; exit 3 with --fail-on error."""
    p = tmp_path / "bad.dat"
    data = bytearray(B.table([B.ivhd11(0xFEB80000, [B.special(1, 0xA0, 7)], type_id=0x40)]))
    data[9] ^= 0x55
    p.write_bytes(bytes(data))
    code, out, _ = run(capsys, "ivrs", str(p), "-f", "json", "--fail-on", "error")
    ids = [f["id"] for f in json.loads(out)["findings"]]
    assert code == 3
    assert {"ivrs-checksum", "ivhd-no-devices", "ivhd-special-variety", "ivrs-no-sb-ioapic"} <= set(ids)


def test_acpidump_text(capsys: pytest.CaptureFixture) -> None:
    # iasl's .dsl ends with the same hex dump acpidump prints: read as text.
    code, out, err = run(capsys, "ivrs", str(T14.with_suffix(".dsl")), "-f", "json")
    assert code == 0, err
    assert json.loads(out)["length"] == 484
