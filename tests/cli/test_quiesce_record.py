"""``kdumptool record`` and the initramfs entry point (kdumptool.cli.initrd), on the lab's
kdump snapshots; RTADDR and GSTS checked against the lab's devmem reads (drhd_regs.txt)."""

from __future__ import annotations

import json
import os
import re
import tarfile

import pytest

from kdumptool.cli import initrd
from kdumptool.cli.main import main
from tests.actions.snapshots import command_of, snapshot, writable_copy


def run(capsys, *args):
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_record_writes_report_and_snapshot(capsys, tmp_path):
    out = tmp_path / "crash"
    code, text, _ = run(capsys, "record", "--root", str(snapshot("kdump_legacy_on")), "--out", str(out), "-f", "text")
    assert code == 0
    data = json.loads((out / "kdumptool-record.json").read_text())
    assert data["in_kdump_kernel"] is True
    assert data["kernel"] == "6.1.0-56-amd64"
    assert data["rtaddr"] == {"dmar0": "0x1d836000"}
    unit = data["units"][0]
    assert unit["translation_enabled"] is True and unit["mode"] == "legacy"
    risky = sorted(m["bdf"] for m in data["bus_masters"] if m["kdump_risk"])
    assert risky == ["0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:03:01.0"]
    assert [s["bdf"] for s in data["quiesce_plan"]["steps"]][0] == "0000:03:01.0"
    assert "verdict" in data["triage"], data["triage"]
    with tarfile.open(out / "kdumptool-snapshot.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("0000:03:01.0/config") for n in names)
    assert (out / "kdumptool-record.txt").read_text() == text
    assert "dmar0 @ 0xfed90000: RTADDR 0x1d836000 (legacy), translation on" in text
    total = sum(f.stat().st_size for f in out.iterdir())
    assert total < 512 * 1024  # small: a few tens of kB
    assert data["elapsed_s"] < 30


@pytest.mark.corpus
@pytest.mark.parametrize("run_name", ["legacy_on", "legacy_off", "sm_mismatch"])
def test_record_registers_match_devmem_oracle(shared, capsys, tmp_path, run_name):
    regs = (shared / "lab-captures/kdump" / run_name / "drhd_regs.txt").read_text()
    want = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^(RTADDR|GSTS)\s+off=\S+ w=\d+ 0x([0-9A-F]+)", regs, re.M)}
    out = tmp_path / "r"
    run(capsys, "record", "--no-snapshot", "--root", str(snapshot(f"kdump_{run_name}")), "--out", str(out))
    data = json.loads((out / "kdumptool-record.json").read_text())
    assert int(data["rtaddr"]["dmar0"], 16) == want["RTADDR"]
    assert int(data["units"][0]["registers"]["GSTS"], 16) == want["GSTS"]
    assert data["units"][0]["translation_enabled"] == bool(want["GSTS"] >> 31 & 1)


def test_boot_record_found_on_mounted_root(capsys, tmp_path):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    boot = tree / "sysroot/var/lib/kdumptool/boot"
    boot.mkdir(parents=True)
    (boot / "kdumptool-record.json").write_text(json.dumps({"rtaddr": {"dmar0": "0x1c7e7000"}, "time": "t"}))
    out = tmp_path / "o"
    run(capsys, "record", "--no-snapshot", "--root", str(tree), "--out", str(out))
    data = json.loads((out / "kdumptool-record.json").read_text())
    assert data["boot_record"]["rtaddr"] == {"dmar0": "0x1c7e7000"}
    assert data["boot_record"]["path"] == "/sysroot/var/lib/kdumptool/boot"


def test_publish_into_newest_dump_folder(capsys, tmp_path):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    (tree / "etc").mkdir()
    (tree / "etc/kdump.conf").write_text("path /var/crash\n")
    (tree / "proc/mounts").write_text("/dev/vda1 /kdumproot xfs rw 0 0\n")
    old = tree / "kdumproot/var/crash/127.0.0.1-2026-11-20-10:00:00"
    new = tree / "kdumproot/var/crash/127.0.0.1-2026-11-21-08:00:00"
    for d in (old, new):
        d.mkdir(parents=True)
        (d / "vmcore").write_bytes(b"x")
    os.utime(old, (1, 1))
    rec = tmp_path / "run-record"
    run(capsys, "record", "--no-snapshot", "--root", str(tree), "--out", str(rec))
    code, out, err = run(capsys, "record", "--root", str(tree), "--publish", str(rec))
    assert code == 0 and out.strip() == str(new / "kdumptool")
    assert (new / "kdumptool/kdumptool-record.json").is_file()
    code, out, err = run(capsys, "record", "--root", str(tmp_path / "none"), "--publish", str(rec))
    assert code == 1 and err.startswith("error:")


def test_record_knob_off(capsys, tmp_path):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    (tree / "proc/cmdline").write_text("kdumptool.record=0\n")
    out = tmp_path / "o"
    code, _, err = run(capsys, "record", "--if-enabled", "--root", str(tree), "--out", str(out))
    assert code == 0 and not out.exists() and "disabled" in err


def test_initrd_entry_point_same_results(capsys, tmp_path):
    """The argparse entry used in the initramfs gives the same plan and writes the same way."""
    tree = writable_copy("kdump_legacy_on", tmp_path)
    assert initrd.main(["quiesce", "--plan", "--root", str(tree), "-f", "json"]) == 0
    a = json.loads(capsys.readouterr().out)
    _, out, _ = run(capsys, "quiesce", "--plan", "--root", str(tree), "-f", "json", "-n")
    b = json.loads(out)
    assert a["plan"] == b["plan"]
    assert initrd.main(["quiesce", "--apply", "--root", str(tree), "--journal", str(tmp_path / "j")]) == 0
    assert command_of(tree, "0000:03:01.0") == 0x0103
    assert len((tmp_path / "j").read_text().splitlines()) == 6
    assert initrd.main(["record", "--no-snapshot", "--root", str(tree), "--out", str(tmp_path / "r")]) == 0
    assert initrd.main(["quiesce", "--plan", "--root", str(tmp_path / "missing")]) == 1
    assert "error: " in capsys.readouterr().err
