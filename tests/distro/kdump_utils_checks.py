"""Checks of a kdump-utils run in the QEMU lab (kdump_utils_quiesce / _noquiesce: the kdump
initramfs built by kdump-utils' own mkdumprd with 99kdumpbase and kdumptool's module),
shared by the lab tier (fresh runs) and the default tier (the kept evidence of real runs in
fixtures/distro/kdump-utils-lab/). The oracles are kdump-utils' own console lines, setpci
and lspci run in the guest after the hooks and again after kdumptool's shutdown hook, and
the host's makedumpfile reading the dump."""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

#: The order of events in the kdump kernel, as console lines: (what, a regex), in order.
ORDER: List[Tuple[str, str]] = [
    ("kdump_pre (kdump.sh starts)", r"LAB: t=\S+ init mode=kdump run=kdump_utils: kdump_pre"),
    ("pre.d: record starts", r"kdumptool: record start \(uptime"),
    ("pre.d: record done", r"kdumptool: record exit 0 \(uptime"),
    ("kdump.sh: dump starts", r"kdump\[\d+\]: saving vmcore$"),
    ("kdump.sh: dump done", r"kdump\[\d+\]: saving vmcore complete"),
    ("post.d: record beside the vmcore, quiesce", r"kdumptool: post \(dump status 0\): record in /kdumproot/crash/"),
    ("kdump_post (lab: setpci, lspci)", r"LAB: t=\S+ kdump_post: dump exit 0"),
    ("kdump.sh: final action", r"kdump\[\d+\]: Executing final action systemctl reboot -f"),
    ("systemd-shutdown: kdumptool.shutdown", r"kdumptool: shutdown \(reboot\): quiesce start"),
    ("kdumptool.shutdown done", r"kdumptool: shutdown \(reboot\): quiesce exit 0"),
    ("registers read after kdumptool.shutdown (lab)", r"LAB: t=\S+ after-shutdown "),
    ("reboot", r"reboot: Restarting system"),
]


def kdump_part(serial: str) -> str:
    """The console from the kdump kernel's first line on."""
    i = serial.find("lab.mode=kdump")
    assert i >= 0, "the kdump kernel never started"
    return serial[serial.rfind("\n", 0, i) + 1:]


def event_lines(serial: str) -> List[Tuple[str, str]]:
    """(what, the console line) for each event of :data:`ORDER`, first occurrence; asserts
    they all happened, in that order."""
    text = kdump_part(serial)
    out = []
    last = -1
    for what, rx in ORDER:
        m = re.search(rx, text, re.M)
        assert m, f"no console line for {what!r} ({rx})"
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        assert start > last, f"{what!r} came before the previous event"
        last = start
        out.append((what, text[start:end if end >= 0 else None].rstrip()))
    return out


def after_shutdown(serial: str) -> Dict[str, Tuple[int, str]]:
    """BDF -> (COMMAND, driver) read by setpci after kdumptool's shutdown hook finished."""
    out = {}
    for m in re.finditer(r"after-shutdown (\S+) COMMAND=0x([0-9a-fA-F]{4}) driver=(\S+) "
                         r"\(kdumptool\.shutdown exit (\S+)\)", serial):
        assert m.group(4) == "0", f"kdumptool.shutdown exit {m.group(4)}"
        out[m.group(1)] = (int(m.group(2), 16), m.group(3))
    assert out, "no after-shutdown register lines on the console"
    return out


def compare_on_off(plan: dict, on: Dict[str, Tuple[int, str]], off: Dict[str, Tuple[int, str]]) -> List[str]:
    """The functions whose COMMAND differs between the quiesce-on and -off runs must be
    exactly the planned ones, each differing only in Bus Master Enable (on: clear, off: as
    the crashed kernel left it). Returns the planned BDFs."""
    assert set(on) == set(off), (sorted(on), sorted(off))
    planned = {s["bdf"]: s for s in plan["steps"]}
    differ = sorted(b for b in on if on[b][0] != off[b][0])
    assert differ == sorted(planned), f"COMMAND differs on {differ}, planned {sorted(planned)}"
    for b, s in planned.items():
        assert off[b][0] == s["command"], f"{b}: quiesce off: COMMAND 0x{off[b][0]:04x}, recorded 0x{s['command']:04x}"
        assert on[b][0] == s["new_command"] == off[b][0] & ~0x4, f"{b}: quiesce on: 0x{on[b][0]:04x}"
        assert on[b][1] == off[b][1] == "-"
    for b in on:
        if b not in planned:
            assert on[b] == off[b], b  # drivers and every other bit alike
    return sorted(planned)
