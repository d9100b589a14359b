"""``kdumptool quiesce`` end to end on snapshot copies (plan, dry run, apply, knobs)."""

from __future__ import annotations

import json

import pytest

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


def test_plan_text(capsys):
    code, out, _ = run(capsys, "quiesce", "--plan", "--root", str(snapshot("kdump_legacy_on")), "-f", "text")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "dump target devices: none found (dump not finished)"
    assert lines[2].split()[:5] == ["1.", "0000:03:01.0", "COMMAND", "0x0107", "->"]
    assert "0000:00:00.0  host bridge: never touched" in out
    assert "0000:01:00.0  driver bound: driver virtio-pci" in out


def test_plan_json(capsys):
    code, out, _ = run(capsys, "quiesce", "--plan", "--root", str(snapshot("kdump_legacy_on")), "-f", "json")
    data = json.loads(out)
    assert [s["bdf"] for s in data["plan"]["steps"]][:2] == ["0000:03:01.0", "0000:02:00.0"]
    assert data["plan"]["steps"][0]["command"] == 0x0107


def test_dry_run_then_apply_with_journal(capsys, tmp_path):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    code, out, err = run(capsys, "quiesce", "--root", str(tree), "-f", "text")
    assert code == 0 and "would change" in out and command_of(tree, "0000:03:01.0") == 0x0107
    journal = tmp_path / "q.log"
    code, out, err = run(capsys, "quiesce", "--apply", "--root", str(tree), "--journal", str(journal), "-f", "text")
    assert code == 0
    assert "kdumptool: 0000:03:01.0 COMMAND 0x0107 -> 0x0103" in err
    assert "0000:03:01.0 COMMAND 0x0107 -> 0x0103  changed" in out
    assert command_of(tree, "0000:03:01.0") == 0x0103
    assert command_of(tree, "0000:00:02.0") == 0x0503
    assert len(journal.read_text().splitlines()) == 6  # the summary line and 5 changes
    # idempotent: a second run finds nothing mastering
    code, out, err = run(capsys, "quiesce", "--apply", "--root", str(tree), "-f", "text")
    assert code == 0 and "nothing to clear" in out and "->" not in err


@pytest.mark.parametrize("knob,expect", [("0", 0x0107), ("1", 0x0103)])
def test_if_enabled_follows_cmdline_knob(capsys, tmp_path, knob, expect):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    cmd = tree / "proc/cmdline"
    cmd.write_text(cmd.read_text().strip() + f" kdumptool.quiesce={knob}\n")
    code, out, err = run(capsys, "quiesce", "--apply", "--if-enabled", "--root", str(tree), "-f", "text")
    assert code == 0
    assert command_of(tree, "0000:03:01.0") == expect
    if knob == "0":
        assert "quiesce disabled" in err and "kernel command line" in out


def test_if_enabled_default_is_off(capsys, tmp_path):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    code, out, err = run(capsys, "quiesce", "--apply", "--if-enabled", "--root", str(tree))
    assert code == 0 and command_of(tree, "0000:03:01.0") == 0x0107 and "default" in out


def test_dump_target_option(capsys, tmp_path):
    tree = writable_copy("kdump_legacy_on", tmp_path)
    code, out, err = run(capsys, "quiesce", "--dump-target", "0000:03:01.0", "--root", str(tree), "-f", "json")
    data = json.loads(out)
    assert code == 0 and "0000:03:01.0" in data["plan"]["dump_targets"]
    code, out, err = run(capsys, "quiesce", "--dump-target", "nonsense", "--root", str(tree))
    assert code == 2


def test_missing_root_is_one_line_error(capsys, tmp_path):
    code, out, err = run(capsys, "quiesce", "--plan", "--root", str(tmp_path / "nope"))
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err
