"""Checks of a dracut kdump run in the QEMU lab (99kdumptool + 99kdumptool-lab), shared by
the lab tier (fresh runs) and the default tier (the kept evidence of real runs in
fixtures/quiesce-lab/). Expectations come from the record written before the dump (its
quiesce plan, from the kdump kernel's own sysfs); the after-state from setpci and lspci run
in the guest after the hooks, independent of kdumptool."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Tuple


def setpci_after(d: Path) -> Dict[str, Tuple[int, str]]:
    out = {}
    for m in re.finditer(r"verify (\S+) COMMAND=0x([0-9a-fA-F]{4}) driver=(\S+)", (d / "verify-setpci.txt").read_text()):
        out[m.group(1)] = (int(m.group(2), 16), m.group(3))
    assert out, f"no setpci lines in {d}/verify-setpci.txt"
    return out


def lspci_busmaster(d: Path) -> Dict[str, bool]:
    out: Dict[str, bool] = {}
    cur = None
    for line in (d / "lspci-vvv-after.txt").read_text().splitlines():
        m = re.match(r"^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", line)
        if m:
            cur = "0000:" + m.group(1)
        elif cur and line.startswith("\tControl:"):
            out[cur] = "BusMaster+" in line
    return out


def record(d: Path) -> dict:
    return json.loads((d / "kdumptool/kdumptool-record.json").read_text())  # type: ignore[no-any-return]


def check_record(d: Path) -> dict:
    rec = record(d)
    assert rec["in_kdump_kernel"] is True
    assert rec["rtaddr"].get("dmar0"), f"no RTADDR in the record: {rec['units']}"
    # the dump target found from the mounted dump path: the 9p share "out" (00:01.0)
    assert [t["bdf"] for t in rec["dump_target"]["devices"]] == ["0000:00:01.0"], rec["dump_target"]
    steps = [s["bdf"] for s in rec["quiesce_plan"]["steps"]]
    # the e1000e (receiving traffic at the crash), the NVMe, and the e1000 behind two
    # bridges have no driver in this initramfs and master the bus
    assert {"0000:00:02.0", "0000:00:03.0", "0000:03:01.0"} <= set(steps), steps
    assert steps.index("0000:03:01.0") < steps.index("0000:02:00.0")  # device before bridge
    return rec


def check_quiesced(d: Path, serial: str) -> int:
    plan = record(d)["quiesce_plan"]
    after = setpci_after(d)
    lspci = lspci_busmaster(d)
    for s in plan["steps"]:
        cmd, drv = after[s["bdf"]]
        assert cmd == s["command"] & ~0x4, f"{s['bdf']}: COMMAND 0x{cmd:04x} after, planned 0x{s['new_command']:04x}"
        assert drv == "-"
        assert lspci[s["bdf"]] is False, f"{s['bdf']}: lspci still says BusMaster+"
    for k in plan["skips"]:
        if k["reason"] == "driver bound":
            assert after[k["bdf"]][1] != "-", k
    for bdf, (cmd, drv) in after.items():
        if drv != "-" and bdf in lspci:
            assert bool(cmd & 0x4) == lspci[bdf], bdf  # setpci and lspci agree
    for s in plan["steps"]:
        line = f"kdumptool: {s['bdf']} COMMAND 0x{s['command']:04x} -> 0x{s['new_command']:04x}"
        assert line in serial, f"serial log lacks {line!r}"
    journal = (d / "kdumptool/kdumptool-quiesce.log").read_text()
    assert len([ln for ln in journal.splitlines() if "->" in ln]) == len(plan["steps"])
    return len(plan["steps"])


def check_untouched(d: Path, serial: str) -> int:
    plan = record(d)["quiesce_plan"]
    after = setpci_after(d)
    lspci = lspci_busmaster(d)
    for s in plan["steps"]:
        assert after[s["bdf"]][0] == s["command"], f"{s['bdf']}: changed although kdumptool.quiesce=0"
        assert lspci[s["bdf"]] is True
    assert "quiesce disabled (kdumptool.quiesce=0, from kernel command line)" in serial
    assert not re.search(r"kdumptool: \S+ COMMAND 0x[0-9a-f]{4} -> 0x", serial), "a COMMAND write was logged"
    return len(plan["steps"])


def crash_dir(guest: Path) -> Path:
    dirs = sorted((guest / "crash").glob("127.0.0.1-*"))
    assert dirs, f"no crash folder under {guest}/crash"
    return dirs[-1]
