"""``kdumptool pci -vv`` against ``lspci -vvv`` (pciutils 3.9.0, in the lab guest) on every
device of every lab snapshot, field by field, for what matters to DMA: Control/Status
(BusMaster), the BARs and expansion ROM, MSI and MSI-X state and addresses, DevCap
(FLReset), DevCtl (error reporting, MaxPayload/MaxReadReq), DevSta (TransPend) and the AER
status words. Sizes are not in config space: ours come from the snapshot's /proc/iomem
(the kernel's resource tree, which sysfs ``resource`` and so lspci read too) for the memory
BARs and the expansion ROM, and from the devices' sysfs ``resource`` files (lspci's own
source) for the I/O BARs. Snapshots taken before ``collect`` kept ``resource`` have no I/O
sizes: lspci's ``[size=...]`` of an I/O BAR is compared only where the snapshot holds the
device's ``resource`` file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

from kdumptool.render.names import NUMERIC
from kdumptool.render.pci import render_config_lines
from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES

#: the lab snapshots, and a later lab snapshot holding every device's sysfs ``resource``
SNAPS = sorted(p for d in ("snapshots", "pci_resource") for p in (FIXTURES / d).iterdir()
               if (p / "_kdumptool/lspci_vvv.txt").is_file())
#: lines compared whole (both ways: ours must be in lspci's block and lspci's in ours)
WHOLE = re.compile(r"^(Control:|Status:|Region \d|Expansion ROM|Capabilities: \[[0-9a-f]+\] MSI(-X)?:|"
                   r"Address:|Vector table:|PBA:|DevSta:|UESta:|UEMsk:|CESta:|MaxPayload \d+ bytes, MaxReadReq)")


def norm(line: str, io_sizes: bool = True) -> str:
    line = line.strip()
    if "I/O ports at" in line and not io_sizes:
        line = re.sub(r" \[size=[^\]]*\]", "", line)
    return re.sub(r"\s+", " ", line)


def lspci_blocks(path: Path) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    cur: List[str] = []
    for line in path.read_text().splitlines():
        if line and not line[0].isspace():
            cur = out.setdefault(line.split()[0], [])
        elif line.strip():
            cur.append(line)
    return out


def section_tokens(block: List[str], head: str) -> Set[str]:
    """The words of lspci's ``DevCap:`` (or ``DevCtl:``) lines up to the next field."""
    toks: Set[str] = set()
    on = False
    for raw in block:
        s = raw.strip()
        if s.startswith(head):
            on = True
            s = s[len(head):]
        elif re.match(r"^[A-Za-z]+:", s):
            on = False
        if on:
            toks.update(t.rstrip(",") for t in s.split())
    return toks


@pytest.mark.parametrize("snap", SNAPS, ids=[s.name for s in SNAPS])
def test_vv_equals_lspci(snap: Path) -> None:
    system = read_system(snap)
    blocks = lspci_blocks(snap / "_kdumptool/lspci_vvv.txt")
    compared = 0
    sized = io_sized = io_bars = 0
    for d in system.devices.values():
        block = blocks[d.short_bdf]
        # the device's own Control/Status (one tab), not Power Management's nested Status
        io = bool(d.resources)
        theirs = {norm(x, io) for x in block if WHOLE.match(norm(x))
                  and not (x.startswith("\t\t") and norm(x).startswith(("Control:", "Status:")))}
        ours_lines = render_config_lines(d, NUMERIC, 2, system.resource_sizes(d.bdf))
        sized += sum(1 for x in ours_lines if "[size=" in x and "I/O ports" not in x)
        io_sized += sum(1 for x in ours_lines if "[size=" in x and "I/O ports" in x)
        io_bars += sum(1 for b in d.config.bars if b.io) if io and d.config is not None else 0
        ours = {norm(x) for x in ours_lines if WHOLE.match(norm(x))}
        assert ours == theirs, d.bdf
        compared += len(ours)
        # DevCap/DevCtl second lines: our words are a subset of lspci's (it adds slot/latency words)
        for i, x in enumerate(ours_lines):
            s = x.strip()
            for head in ("DevCap:", "DevCtl:"):
                if s.startswith(head):
                    words = set(ours_lines[i + 1].split())
                    assert words <= section_tokens(block, head), (d.bdf, head, words - section_tokens(block, head))
                    compared += len(words)
    assert compared > 50
    # every memory BAR and ROM of these guests has its size in /proc/iomem
    assert sized == sum(1 for d in system.devices.values() if d.config is not None
                        for b in d.config.bars if not b.io) + sum(
        1 for d in system.devices.values() if d.config is not None and d.config.rom is not None)
    assert sized > 0
    # every I/O BAR of a device whose resource file the snapshot holds has its size
    assert io_sized == io_bars
    if snap.parent.name == "pci_resource":
        assert io_sized == 7  # lspci -vvv shows 7 I/O BARs with [size=...] in that guest


def test_size_text_and_hidden_iomem() -> None:
    """lspci's size words (4K, 256K, 2M, 32) and no sizes from an unprivileged /proc/iomem."""
    import dataclasses

    from kdumptool.render.pci import size_text

    assert [size_text(n) for n in (32, 4096, 256 << 10, 2 << 20, 1 << 30, 3 << 40, 1536, 1000)] == \
        ["32", "4K", "256K", "2M", "1G", "3T", "1536", "1000"]
    system = read_system(FIXTURES / "snapshots" / "live_sm_mismatch")
    assert system.resource_sizes("0000:00:02.0")[0xFE400000] == 256 << 10
    hidden = dataclasses.replace(system, iomem=tuple(dataclasses.replace(r, start=0, end=0) for r in system.iomem))
    assert hidden.resource_sizes("0000:00:02.0") == {}
