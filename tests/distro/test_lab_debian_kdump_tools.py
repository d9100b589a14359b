"""Debian's kdump-tools end to end in the QEMU lab (``pytest -m lab``; scenario
dracut/lab-scenarios/debian_kdump_tools.json): the kdump kernel boots a Debian 12 root
(mmdebstrap; kdumptool set up in it by README's ./install.sh, then ``kdumptool
install-integration``) where kdump-tools' own kdump-tools-dump.service runs ``kdump-config
savecore`` and ``reboot -f``. Checked: the events in order on the console (record before
the dump, kdump-tools' dump, kdumptool's quiesce after it and before the reboot), the dump
and dmesg kdump-tools wrote complete (the host's makedumpfile reassembles the dump and
reads its log; ``kdumptool vmcore info`` reads it), the record beside them, and every
COMMAND register read by setpci before the dump and after the quiesce: exactly the planned
functions changed, in Bus Master Enable only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.distro.kdump_tools_checks import NAME, check_registers, order_of_events, plan_of
from tests.labscenario import run_kdump_scenario, serial

pytestmark = pytest.mark.lab


def _run():
    return run_kdump_scenario(NAME, "kdump-tools' reboot was not reached")


def _stamp_dir(r) -> Path:
    dirs = sorted(p for p in r.guest.iterdir() if re.fullmatch(r"\d{12}", p.name))
    assert len(dirs) == 1, f"{NAME}: kdump-config's <stamp> folders in {r.guest}: {dirs}"
    return dirs[0]


def test_order_of_events_dump_then_quiesce_then_reboot():
    r = _run()
    d = _stamp_dir(r)
    plan = plan_of(d)
    assert len(plan) >= 4
    events = order_of_events(serial(r), d.name, plan)
    assert events[-1][0] == "reboot"


def test_registers_change_after_the_dump_exactly_as_planned():
    r = _run()
    d = _stamp_dir(r)
    plan = plan_of(d)
    assert len(check_registers(serial(r), plan, (d / "kdumptool/kdumptool-quiesce.log").read_text())) >= 4


def test_dump_and_dmesg_complete_and_readable(tmp_path):
    r = _run()
    d = _stamp_dir(r)
    stamp = d.name
    names = sorted(p.name for p in d.iterdir())
    assert names == [f"dmesg.{stamp}", f"dump.{stamp}", "kdumptool"], names  # no dump-incomplete
    dmesg = (d / f"dmesg.{stamp}").read_text(errors="replace")
    assert "sysrq: Trigger a crash" in dmesg
    need_tool("makedumpfile", "the oracle")
    # kdump-config wrote the flattened format (-F): makedumpfile -R reassembles it
    vmcore = tmp_path / "vmcore"
    with open(d / f"dump.{stamp}", "rb") as src:
        p = subprocess.run(["makedumpfile", "-R", str(vmcore)], stdin=src, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = tmp_path / "dmesg.txt"
    p2 = subprocess.run(["makedumpfile", "--dump-dmesg", str(vmcore), str(out)], capture_output=True, text=True,
                        timeout=300)
    assert p2.returncode == 0, p2.stderr[-2000:]
    text = out.read_text(errors="replace")
    assert "sysrq: Trigger a crash" in text
    tail = [re.sub(r"^\[\s*[\d.]+\]\s?", "", ln) for ln in text.splitlines() if ln.strip()][-10:]
    for ln in tail:  # the same log kdump-config's own --dump-dmesg saved
        assert ln in dmesg, f"{NAME}: makedumpfile's line {ln!r} not in dmesg.{stamp}"
    from tests.lab.labrun import kdumptool

    info = kdumptool("vmcore", "info", str(vmcore), "-f", "text")
    assert info.returncode == 0, info.stderr[-2000:]
    assert "kdump-compressed" in info.stdout and "dump level 31" in info.stdout, info.stdout
    assert "panic: Kernel panic - not syncing: sysrq triggered crash" in info.stdout, info.stdout
