"""kdump-utils end to end in the QEMU lab (``pytest -m lab``; scenarios
dracut/lab-scenarios/kdump_utils_{quiesce,noquiesce}.json): the kdump initramfs is built
by kdump-utils 1.0.61's own mkdumprd (99kdumpbase, kdump.sh) with kdumptool's module added
by ``dracut_args --add kdumptool``; kdump.sh does the dump, runs kdump_pre, pre.d, post.d,
kdump_post and its final action. Checked: the events in order on the console, the dump
complete (makedumpfile on the host reads its log), kdumptool's record beside the vmcore,
and the COMMAND registers after kdumptool's shutdown hook: with quiesce on and off they
differ on exactly the planned functions, in Bus Master Enable only."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.distro.kdump_utils_checks import after_shutdown, compare_on_off, event_lines
from tests.dracut.e2e_checks import check_quiesced, check_record, check_untouched, crash_dir, record
from tests.labscenario import run_kdump_scenario, serial

pytestmark = pytest.mark.lab
ON, OFF = "kdump_utils_quiesce", "kdump_utils_noquiesce"


def _run(name: str):
    return run_kdump_scenario(name, "kdump.sh did not reach kdump_post")


@pytest.mark.parametrize("name", [ON, OFF])
def test_kdump_utils_dump_and_record(name, tmp_path):
    r = _run(name)
    event_lines(serial(r))  # every event, in order
    d = crash_dir(r.guest)
    assert (d / "vmcore").is_file() and not (d / "vmcore-incomplete").exists(), f"{name}: no complete vmcore"
    assert "sysrq: Trigger a crash" in (d / "vmcore-dmesg.txt").read_text(errors="replace")
    assert (d / "kexec-dmesg.log").is_file()  # kdump.sh's save_log ran after kdump_post
    check_record(d)
    if shutil.which("makedumpfile"):
        # the host's makedumpfile reads the dump kdump.sh wrote: its log ends with the panic
        out = tmp_path / "dmesg.txt"
        p = subprocess.run(["makedumpfile", "--dump-dmesg", str(d / "vmcore"), str(out)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        text = out.read_text(errors="replace")
        assert "sysrq: Trigger a crash" in text
        tail = [re.sub(r"^\[\s*[\d.]+\]\s?", "", ln) for ln in text.splitlines() if ln.strip()][-10:]
        vd = (d / "vmcore-dmesg.txt").read_text(errors="replace")
        for ln in tail:
            assert ln in vd, f"{name}: makedumpfile's line {ln!r} not in vmcore-dmesg.txt"


def test_quiesce_on_clears_planned_bus_masters():
    r = _run(ON)
    assert check_quiesced(crash_dir(r.guest), serial(r)) >= 4


def test_quiesce_off_leaves_them():
    r = _run(OFF)
    assert check_untouched(crash_dir(r.guest), serial(r)) >= 4


def test_registers_after_shutdown_differ_exactly_as_planned():
    on, off = _run(ON), _run(OFF)
    plan = record(crash_dir(on.guest))["quiesce_plan"]
    planned = compare_on_off(plan, after_shutdown(serial(on)), after_shutdown(serial(off)))
    assert len(planned) >= 4
