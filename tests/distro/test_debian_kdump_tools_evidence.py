"""The kept evidence of a real Debian kdump-tools run in the QEMU lab
(fixtures/distro/debian-kdump-tools-lab/, see its PROVENANCE.md), checked the way the lab
tier checks a fresh run (tests/distro/kdump_tools_checks.py): the events in order on the
console (record before kdump-tools' dump; kdumptool's quiesce after `kdump-config savecore`
finished and before kdump-tools' `reboot -f`), the record beside kdump-tools' dmesg and
dump, and the COMMAND registers setpci read before the dump and after the quiesce."""

from __future__ import annotations

import re

from tests.conftest import FIXTURES
from tests.distro.kdump_tools_checks import check_registers, order_of_events, plan_of

EVID = FIXTURES / "distro/debian-kdump-tools-lab"
STAMP = "202612060735"


def _serial() -> str:
    return (EVID / "serial-kdump.log").read_text(errors="replace")


def test_events_in_order():
    plan = plan_of(EVID / STAMP)
    events = dict(order_of_events(_serial(), STAMP, plan))
    assert "saved vmcore in /var/crash/202612060735" in events["dump end"]
    assert "quiesce apply: 5 to clear, 9 left alone" in events["quiesce plan"]
    # kdump-tools' reboot -f does not go through systemd-shutdown: nothing after it
    tail = _serial()[_serial().index("kdump done (lab checks"):]
    assert "systemd-shutdown" not in tail and "kdumptool: shutdown" not in tail


def test_order_check_catches_a_quiesce_before_the_dump():
    """The order check can fail: the same console with the quiesce moved before the dump."""
    text = _serial()
    q0 = text.rfind("\n", 0, text.index("kdump-tools' savecore finished: quiesce start")) + 1
    q1 = text.index("\n", text.index("kdump-tools' savecore finished: quiesce exit"))
    moved = text[q0:q1 + 1]
    d0 = text.rfind("\n", 0, text.index("]: Starting kdump-tools:")) + 1
    swapped = text[:d0] + moved + text[d0:q0] + text[q1 + 1:]
    try:
        order_of_events(swapped, STAMP, plan_of(EVID / STAMP))
    except AssertionError as exc:
        assert "quiesce start" in str(exc)
    else:
        raise AssertionError("a quiesce before the dump passed the order check")


def test_record_beside_kdump_tools_files():
    d = EVID / STAMP
    listing = (d / "ls-l.txt").read_text()
    for name in (f"dmesg.{STAMP}", f"dump.{STAMP}", "kdumptool", "kdumptool-record.json", "kdumptool-quiesce.log"):
        assert re.search(rf" {re.escape(name)}$", listing, re.M), name
    assert "dump-incomplete" not in listing
    assert "sysrq: Trigger a crash" in (d / f"dmesg.{STAMP}").read_text(errors="replace")
    # the host's makedumpfile -R of kdump-tools' dump, then --dump-dmesg: kdump-tools' own log
    mk = [re.sub(r"^\[\s*[\d.]+\]\s?", "", ln) for ln in
          (EVID / "makedumpfile-R-dump-dmesg.txt").read_text(errors="replace").splitlines() if ln.strip()]
    assert any("sysrq: Trigger a crash" in ln for ln in mk)
    dmesg = (d / f"dmesg.{STAMP}").read_text(errors="replace")
    assert all(ln in dmesg for ln in mk[-10:])
    info = (EVID / "kdumptool-vmcore-info.txt").read_text()
    assert "kdump-compressed" in info and "panic: Kernel panic - not syncing: sysrq triggered crash" in info


def test_registers_after_the_dump_as_planned():
    d = EVID / STAMP
    plan = plan_of(d)
    assert sorted(plan) == ["0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:02:00.0", "0000:03:01.0"]
    assert check_registers(_serial(), plan, (d / "kdumptool/kdumptool-quiesce.log").read_text()) == set(plan)
