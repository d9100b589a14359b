"""Issue 14, wrong answers given as right ones: an empty or unrelated folder is not a
system with "nothing to triage"; an lspci hex dump does not say which drivers are bound,
so none is "absent" and no device is a RISK for it; bounded reads of device nodes."""

from __future__ import annotations

from tests.cliutil import run
from tests.hostile.util import SNAPSHOTS

LSPCI = SNAPSHOTS / "kdump_legacy_on" / "_kdumptool" / "lspci_xxxx.txt"


def test_triage_on_an_empty_folder_is_an_error(tmp_path, capsys):
    code, out, err = run(capsys, "triage", "--root", str(tmp_path))
    assert code != 0 and "NOTHING TO TRIAGE" not in out
    assert "not a snapshot" in err and "sys/" in err


def test_triage_on_an_unrelated_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "etc").mkdir()
    code, out, err = run(capsys, "triage", "--root", str(tmp_path), "-f", "json")
    assert code != 0 and out == "" and err.startswith("error: ")


def test_lspci_hex_dump_drivers_are_unknown_not_absent(capsys):
    code, out, err = run(capsys, "pci", "--from-lspci", str(LSPCI), "-f", "text")
    assert code == 0, err
    assert "RISK" not in out and "no driver bound" not in out
    assert "driver=?" in out and "driver=-" not in out
    assert "unknown" in out


def test_device_nodes_as_input_files_are_refused(capsys):
    from tests.hostile.util import deadline

    for args in (["log", "/dev/zero"], ["log", "/dev/null"], ["pci", "--from-lspci", "/dev/zero"]):
        with deadline(20):
            code, out, err = run(capsys, *args)
        assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, (args, err)
        assert "not a regular file" in err


def test_kdump_log_with_remapping_off_after_a_remapping_kernel_is_not_ok(capsys):
    # the lab's kdump kernel booted with intel_iommu=off after a first kernel with
    # remapping on (its IR table was copied): not "OK"
    log = SNAPSHOTS / "kdump_legacy_off" / "_kdumptool" / "dmesg.txt"
    code, out, err = run(capsys, "log", str(log), "--no-system", "-f", "text", "--fail-on", "warning")
    verdict = out.splitlines()[1]
    assert verdict.startswith("WARNING: kdump kernel:") and "intel_iommu=off" in verdict, verdict
    assert code == 3


def test_kdump_log_with_remapping_off_and_nothing_known_is_not_ok(tmp_path, capsys):
    src = (SNAPSHOTS / "kdump_legacy_off" / "_kdumptool" / "dmesg.txt").read_text().splitlines()
    kept = [ln for ln in src if "DMAR-IR" not in ln]  # no sign of the crashed kernel's state
    (tmp_path / "d.txt").write_text("\n".join(kept) + "\n")
    code, out, err = run(capsys, "log", str(tmp_path / "d.txt"), "--no-system", "-f", "json")
    import json

    doc = json.loads(out)
    assert doc["summary"]["verdict_level"] == "warning" and "unknown" in doc["summary"]["verdict"]
