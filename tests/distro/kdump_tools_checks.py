"""Checks of a debian_kdump_tools lab run (Debian's kdump-tools in the kdump kernel, see
docs/initramfs.md), shared by the lab tier (tests/distro/test_lab_debian_kdump_tools.py, a
fresh run) and the default tier (test_debian_kdump_tools_evidence.py, the kept run in
fixtures/distro/debian-kdump-tools-lab): the serial console's events in order, the COMMAND
registers setpci read before the dump and after kdumptool's quiesce."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

NAME = "debian_kdump_tools"


def plan_of(d: Path) -> Dict[str, dict]:
    """The quiesce plan of kdumptool's record in the crash folder ``d``, by BDF."""
    rec = json.loads((d / "kdumptool/kdumptool-record.json").read_text())
    assert rec["in_kdump_kernel"] is True and rec["rtaddr"].get("dmar0"), f"{NAME}: record not from the kdump kernel"
    return {s["bdf"]: s for s in rec["quiesce_plan"]["steps"]}


def order_of_events(text: str, stamp: str, plan: Dict[str, dict]) -> List[Tuple[str, str]]:
    """(what, console line) of every event in the kdump kernel, asserting their order."""
    want = [
        ("systemd of the Debian root", r"LAB: switch_root to the Debian root"),
        ("record start", r"kdumptool: record start \(uptime"),
        ("record end", r"kdumptool: record exit 0 "),
        ("setpci before the dump (lab)", r"LAB: t=\S+ before-dump "),
        ("kdump-tools starts", r"kdump-tools\[\d+\]: Starting kdump-tools:"),
        ("dmesg saved", rf"kdump-tools: saved dmesg content in /var/crash/{stamp}"),
        ("dump start", rf"running makedumpfile .*/proc/vmcore \| compress > /var/crash/{stamp}/dump-incomplete"),
        ("dump end", rf"kdump-tools: saved vmcore in /var/crash/{stamp}"),
        ("quiesce start", r"kdumptool: kdump-tools' savecore finished: quiesce start"),
        ("quiesce plan", rf"kdumptool: quiesce apply: {len(plan)} to clear"),
    ]
    want += [(f"quiesce {b}", rf"kdumptool: {re.escape(b)} COMMAND 0x{s['command']:04x} -> 0x{s['new_command']:04x}")
             for b, s in plan.items()]
    want += [
        ("quiesce end", rf"kdumptool: kdump-tools' savecore finished: quiesce exit 0 .*/var/crash/{stamp}/kdumptool"),
        ("setpci after the quiesce (lab)", r"LAB: t=\S+ after-dump "),
        ("reboot", r"reboot: Restarting system"),
    ]
    out = []
    last = -1
    for what, rx in want:
        m = re.compile(rx, re.M).search(text, last + 1)
        assert m, f"{NAME}: no console line for {what!r} after the previous event"
        last = m.start()
        line = text[text.rfind("\n", 0, m.start()) + 1:text.find("\n", m.start())]
        out.append((what, line))
    # the record was copied beside the dump before the quiesce finished
    pub = text.find(f"kdumptool: record published to /var/crash/{stamp}/kdumptool")
    assert 0 <= pub < text.find("kdump-tools' savecore finished: quiesce exit"), f"{NAME}: record not published"
    return out


def registers(text: str, when: str) -> Dict[str, Tuple[int, str]]:
    """COMMAND and driver of every function, as setpci read them (``before-dump`` or
    ``after-dump``)."""
    got = {m.group(1): (int(m.group(2), 16), m.group(3)) for m in re.finditer(
        rf"LAB: t=\S+ {when} (\S+) COMMAND=0x([0-9a-f]{{4}}) driver=(\S+)", text)}
    assert len(got) >= 10, f"{NAME}: {when}: {len(got)} functions read"
    return got


def check_registers(text: str, plan: Dict[str, dict], journal: str) -> Set[str]:
    """Exactly the planned functions changed between the dump's start and the reboot, each
    in Bus Master Enable only, as planned and as the quiesce journal says; returns them."""
    before, after = registers(text, "before-dump"), registers(text, "after-dump")
    assert sorted(before) == sorted(after)
    changed = {b for b in before if before[b][0] != after[b][0]}
    assert changed == set(plan), f"{NAME}: changed {sorted(changed)}, planned {sorted(plan)}"
    for b, s in plan.items():
        assert before[b] == (s["command"], "-") and after[b] == (s["new_command"], "-"), b
        assert before[b][0] ^ after[b][0] == 0x4, b  # Bus Master Enable only
        assert f"{b} COMMAND 0x{s['command']:04x} -> 0x{s['new_command']:04x}" in journal, b
    for b, (cmd, drv) in after.items():
        if drv != "-":
            assert cmd & 0x4, b  # driver-bound functions keep mastering
    return changed
