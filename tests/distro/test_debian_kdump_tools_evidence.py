"""The kept evidence of a real Debian kdump-tools run in the QEMU lab
(fixtures/distro/debian-kdump-tools-lab/, see its PROVENANCE.md): the events in order on
the console (record and quiesce before kdump-tools' dump, the record copied beside it,
kdump-tools' own `reboot -f` with no systemd-shutdown after it), the record beside
kdump-tools' dmesg, and the COMMAND registers setpci read after the quiesce equal to the
record's plan."""

from __future__ import annotations

import json
import re

from tests.conftest import FIXTURES

EVID = FIXTURES / "distro/debian-kdump-tools-lab"
STAMP = "202612060552"

ORDER = [
    ("systemd of the Debian root", r"LAB: switch_root to the Debian root"),
    ("record starts", r"kdumptool: record start \(uptime"),
    ("record done", r"kdumptool: record exit 0"),
    ("quiesce", r"kdumptool: quiesce apply: 5 to clear, 9 left alone"),
    ("setpci after the quiesce (lab)", r"LAB: t=\S+ after-quiesce "),
    ("kdump-tools starts", r"kdump-tools\[\d+\]: Starting kdump-tools:"),
    ("kdump-config: dmesg saved", rf"kdump-tools: saved dmesg content in /var/crash/{STAMP}"),
    ("kdump-config: dump starts", rf"running makedumpfile -F -c -d 31 /proc/vmcore \| compress > /var/crash/{STAMP}"),
    ("record beside the dump", rf"kdumptool: record published to /var/crash/{STAMP}/kdumptool"),
    ("kdump-config: dump saved", rf"kdump-tools: saved vmcore in /var/crash/{STAMP}"),
    ("reboot -f", r"reboot: Restarting system"),
]


def _serial() -> str:
    return (EVID / "serial-kdump.log").read_text(errors="replace")


def test_events_in_order():
    text = _serial()
    last = -1
    for what, rx in ORDER:
        m = re.search(rx, text, re.M)
        assert m, f"no console line for {what!r}"
        assert m.start() > last, f"{what!r} out of order"
        last = m.start()
    # kdump-tools' reboot -f does not go through systemd-shutdown
    tail = text[text.index("kdump-tools: saved vmcore in"):]
    assert "systemd-shutdown" not in tail and "kdumptool: shutdown" not in tail


def test_record_beside_kdump_tools_files():
    d = EVID / STAMP
    listing = (d / "ls-l.txt").read_text()
    for name in (f"dmesg.{STAMP}", f"dump.{STAMP}", "kdumptool"):
        assert re.search(rf" {re.escape(name)}$", listing, re.M), name
    rec = json.loads((d / "kdumptool/kdumptool-record.json").read_text())
    assert rec["in_kdump_kernel"] is True and rec["rtaddr"].get("dmar0")
    assert "sysrq: Trigger a crash" in (d / f"dmesg.{STAMP}").read_text(errors="replace")
    assert "sysrq: Trigger a crash" in (EVID / "makedumpfile-R-dump-dmesg.txt").read_text(errors="replace")


def test_registers_after_quiesce_as_planned():
    plan = json.loads((EVID / STAMP / "kdumptool/kdumptool-record.json").read_text())["quiesce_plan"]
    after = {m.group(1): (int(m.group(2), 16), m.group(3)) for m in re.finditer(
        r"after-quiesce (\S+) COMMAND=0x([0-9a-f]{4}) driver=(\S+)", _serial())}
    steps = {s["bdf"]: s for s in plan["steps"]}
    assert sorted(steps) == ["0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:02:00.0", "0000:03:01.0"]
    for b, s in steps.items():
        assert after[b] == (s["new_command"], "-") and s["new_command"] == s["command"] & ~0x4, b
    journal = (EVID / STAMP / "kdumptool/kdumptool-quiesce.log").read_text()
    for b, s in steps.items():
        assert f"{b} COMMAND 0x{s['command']:04x} -> 0x{s['new_command']:04x}" in journal
    for b, (cmd, drv) in after.items():
        if b not in steps and drv != "-":
            assert cmd & 0x4, b  # driver-bound functions keep mastering
