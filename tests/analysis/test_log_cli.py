"""``kdumptool log``: golden text and JSON on real logs, stdin, errors, the JSON contract.
Regenerate goldens with KDUMPTOOL_REGEN_GOLDEN=1 (then read the diff)."""

from __future__ import annotations

import io
import json
import sys

import pytest

from tests.cliutil import check_golden, run
from tests.conftest import FIXTURES, REPO

GOLDEN = FIXTURES / "dmesg" / "golden"




def golden(name: str, text: str) -> None:
    check_golden(GOLDEN, name, text)


CASES = [
    ("snapshot_kdump_sm_mismatch", ["--root", "fixtures/snapshots/kdump_sm_mismatch"]),
    ("snapshot_kdump_legacy_on", ["--root", "fixtures/snapshots/kdump_legacy_on"]),
    ("excerpt_030", ["fixtures/dmesg/corpus/excerpts/030_iommu_5429b7f131_p1_body.log"]),
    ("web_W01", ["fixtures/dmesg/corpus/web_excerpts/W01_OpenNetworkLinux-PR897_as4630_54te.log"]),
    ("full_060", ["fixtures/dmesg/corpus/full/060_kexec_3c955ceb2d_p1_body.log"]),
    ("excerpt_026", ["fixtures/dmesg/corpus/excerpts/026_iommu_d1d63e6199_p2_direct-mappings.log"]),
    ("excerpt_173", ["fixtures/dmesg/corpus/excerpts/173_linux-usb_aeb32671f1_p1_body.log"]),
    ("excerpt_046", ["fixtures/dmesg/corpus/excerpts/046_iommu_e7c23eaba2_p1_body.log"]),
]


@pytest.mark.parametrize("name, args", CASES, ids=[c[0] for c in CASES])
def test_golden(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, name: str, args: list) -> None:
    monkeypatch.chdir(REPO)
    code, out, err = run(capsys, "log", *args, "-f", "text")
    assert code == 0, err
    golden(f"{name}.txt", out)
    code, out, err = run(capsys, "log", *args, "-f", "json")
    assert code == 0, err
    golden(f"{name}.json", out)


def test_json_contract_sm_mismatch(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run(capsys, "log", "--root", "fixtures/snapshots/kdump_sm_mismatch", "-f", "json")
    doc = json.loads(out)
    assert set(doc) == {"schema_version", "events", "summary"}
    (fault,) = [e for e in doc["events"] if e["kind"] == "dma_fault"]
    assert {k: fault[k] for k in ("line", "bdf", "access", "address", "reason_code", "reason", "pasid", "timestamp")} == {
        "line": 406, "bdf": "0000:00:02.0", "access": "read", "address": "0xffffc000",
        "reason_code": "0x06", "reason": "PTE Read access is not set", "pasid": None, "timestamp": 1.344813,
    }
    s = doc["summary"]
    assert s["lines"] == 493 and s["in_kdump_kernel"] is True and s["verdict_level"] == "fault"
    assert s["devices"]["0000:00:02.0"]["iommu_group"] == 2
    assert [m["kind"] for m in s["markers"]][-4:] == ["ir_copied", "translation_preenabled", "copy_failed", "vtd_ready"]


def test_stdin(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (FIXTURES / "dmesg" / "corpus" / "web_excerpts" / "W08_lkml-2013-1302.0-01541.log").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(capsys, "log", "-", "-f", "json")
    doc = json.loads(out)
    assert code == 0 and doc["summary"]["source"] == "<stdin>"
    assert [(e["kind"], e["line"], e.get("end_line"), e["reason_code"]) for e in doc["events"]][0] == (
        "dma_fault", 1, 2, "0x0c")


def test_missing_file_is_one_line_error(capsys: pytest.CaptureFixture, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "log", str(tmp_path / "nope.log"))
    assert code == 1 and err == f"error: {tmp_path / 'nope.log'}: no such file\n"
    code, out, err = run(capsys, "log", str(tmp_path))
    assert code == 1 and err.startswith("error: ") and "directory" in err
    code, out, err = run(capsys, "log", "--root", str(tmp_path))
    assert code == 1 and "not a snapshot" in err
    (tmp_path / "sys").mkdir()
    code, out, err = run(capsys, "log", "--root", str(tmp_path))
    assert code == 1 and "holds no kernel log" in err


def test_binary_garbage_file(capsys: pytest.CaptureFixture, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "junk.bin"
    p.write_bytes(bytes(range(256)) * 50 + b"\nDMAR: IOMMU disabled\n\xff\xfe")
    code, out, err = run(capsys, "log", str(p), "-f", "text")
    assert code == 0 and "iommu_disabled 1" in out


def test_rich_output_keeps_brackets(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out, _ = run(capsys, "log", "fixtures/dmesg/corpus/excerpts/030_iommu_5429b7f131_p1_body.log", "-f", "rich")
    assert code == 0 and "[Firmware Bug]" in out.replace("\n", " ") or "Firmware" in out


def test_system_root_ties_kdump_fault_to_crashed_kernels_driver(
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    code, out, err = run(capsys, "log", "--root", "fixtures/snapshots/kdump_sm_mismatch",
                         "--system-root", "fixtures/snapshots/live_sm_mismatch", "-f", "json")
    assert code == 0, err
    dev = json.loads(out)["summary"]["devices"]["0000:00:02.0"]
    assert (dev["driver"], dev["iommu_group"], dev["drhd"]) == ("e1000e", 2, "0xfed90000")
    code, out, err = run(capsys, "log", "--root", "fixtures/snapshots/kdump_sm_mismatch", "--no-system", "-f", "text")
    assert "most: 0000:00:02.0 group 2 (from the log), 0x06" in out



def test_fail_on_exit_codes(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    sm = ["--root", "fixtures/snapshots/kdump_sm_mismatch", "-f", "json"]
    ok = ["--root", "fixtures/snapshots/kdump_legacy_on", "-f", "json"]
    assert run(capsys, "log", *sm, "--fail-on", "fault")[0] == 3
    assert run(capsys, "log", *sm, "--fail-on", "warning")[0] == 3
    assert run(capsys, "log", *ok, "--fail-on", "warning")[0] == 0
    code, out, err = run(capsys, "log", *ok, "--fail-on", "bogus")
    assert code == 2 and "bogus" in err


def test_root_tar_snapshot(capsys: pytest.CaptureFixture, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tarfile

    tgz = tmp_path / "snap.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(FIXTURES / "snapshots" / "kdump_sm_mismatch", arcname="kdump_sm_mismatch")
    code, out, err = run(capsys, "log", "--root", str(tgz), "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["summary"]["lines"] == 493 and doc["summary"]["counts"]["dma_fault"] == 1
    assert doc["summary"]["source"] == f"{tgz}:_kdumptool/dmesg.txt"
    assert doc["summary"]["devices"]["0000:00:02.0"]["iommu_group"] == 2
