"""Helpers for tests on the lab snapshots (fixtures/snapshots/, from the system stream):
temporary writable copies, and an independent reading of lspci's output as the oracle."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tests.conftest import FIXTURES

SNAPSHOTS = FIXTURES / "snapshots"
KDUMP_RUNS = ("legacy_on", "legacy_off", "legacy_drv", "sm_mismatch", "sm_mismatch_vmcore")


def snapshot(name: str) -> Path:
    return SNAPSHOTS / name


def writable_copy(name: str, dest: Path) -> Path:
    """A copy of a snapshot tree whose config files are plain writable files."""
    out = dest / name
    shutil.copytree(snapshot(name), out, symlinks=True)
    return out


def config_file(tree: Path, bdf: str) -> Path:
    return tree / "sys/bus/pci/devices" / bdf / "config"


def command_of(tree: Path, bdf: str) -> int:
    return int.from_bytes(config_file(tree, bdf).read_bytes()[4:6], "little")


@dataclass
class LspciDevice:
    """What pciutils (run inside the guest) printed about one function."""

    bdf: str
    host_bridge: bool
    bus_master: bool
    driver: Optional[str]
    bus_range: Optional[Tuple[int, int]]  # a bridge's secondary..subordinate
    command: Optional[int] = None  # from lspci -xxxx


def read_lspci_oracle(tree: Path) -> Dict[str, LspciDevice]:
    """Parse ``lspci -vvv`` and ``lspci -xxxx`` saved in the snapshot (pciutils 3.9)."""
    extra = tree / "_kdumptool"
    devs: Dict[str, LspciDevice] = {}
    cur: Optional[LspciDevice] = None
    for line in (extra / "lspci_vvv.txt").read_text().splitlines():
        m = re.match(r"^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) (.*)$", line)
        if m:
            cur = LspciDevice("0000:" + m.group(1), "Host bridge [0600]" in m.group(2), False, None, None)
            devs[cur.bdf] = cur
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("Control:") and line.startswith("\tControl:"):
            cur.bus_master = "BusMaster+" in s
        elif s.startswith("Kernel driver in use:"):
            cur.driver = s.split(":", 1)[1].strip()
        elif s.startswith("Bus: primary="):
            f = dict(kv.split("=") for kv in s[5:].replace(",", "").split())
            cur.bus_range = (int(f["secondary"], 16), int(f["subordinate"], 16))
    cur = None
    for line in (extra / "lspci_xxxx.txt").read_text().splitlines():
        m = re.match(r"^([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", line)
        if m:
            cur = devs.get("0000:" + m.group(1))
        elif cur is not None and line.startswith("00: "):
            b = bytes.fromhex(line[4:].replace(" ", ""))
            cur.command = int.from_bytes(b[4:6], "little")
    return devs


def oracle_upstream(devs: Dict[str, LspciDevice]) -> Dict[str, List[str]]:
    """Bridges above each function, nearest first, from the bridges' bus ranges."""
    out: Dict[str, List[str]] = {}
    for bdf in devs:
        bus = int(bdf[5:7], 16)
        above = [b for b, d in devs.items() if d.bus_range and d.bus_range[0] <= bus <= d.bus_range[1] and b != bdf]
        # nearest first: the narrowest range is the nearest bridge
        above.sort(key=lambda b: (devs[b].bus_range[1] - devs[b].bus_range[0], -devs[b].bus_range[0]))  # type: ignore[index]
        out[bdf] = above
    return out
