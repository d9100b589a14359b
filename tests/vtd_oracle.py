"""Read the lab's independent root-table decode (``kdump/<run>/roottable_check*.txt``).

That file was written by a separate decoder run on the same vmcore; we parse only what it
states (per device P/TT/AW/DID/SLPTPTR or the PASID-0 entry, mapped page counts, its
first three IOVA->phys pairs and its LOOKUP lines) to compare against our walk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

_ROOT = re.compile(r"root table @ (0x[0-9a-f]+) \((legacy|scalable) mode\)")
_DEV = re.compile(r"^\s+([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) P=(\d) FPD=(\d) (.*)$")
_KV = re.compile(r"(\w+)=(0x[0-9a-f]+|\d+|-)")
_MAPPED = re.compile(r"mapped 4K=(\d+) large=(\d+)")
_FIRST = re.compile(r"first=([^|]*)")
_PAIR = re.compile(r"(0x[0-9a-f]+)->(0x[0-9a-f]+)")
_LOOKUP = re.compile(r"LOOKUP iova (0x[0-9a-f]+) -> pte (0x[0-9a-f]+) \(R=(\d) W=(\d)\)")


@dataclass
class OracleDevice:
    bdf: str
    present: bool
    fields: Dict[str, int] = field(default_factory=dict)  # TT/AW/DID/SLPTPTR or PGTT/AW/DID/SLPTPTR
    mapped_4k: Optional[int] = None
    mapped_large: Optional[int] = None
    first: List[Tuple[int, int]] = field(default_factory=list)
    lookups: List[Tuple[int, int, bool, bool]] = field(default_factory=list)


@dataclass
class Oracle:
    root: int
    mode: str
    devices: Dict[str, OracleDevice]


def _tail(dev: OracleDevice, text: str) -> None:
    m = _MAPPED.search(text)
    if m:
        dev.mapped_4k, dev.mapped_large = int(m.group(1)), int(m.group(2))
    m = _FIRST.search(text)
    if m:
        dev.first = [(int(a, 16), int(b, 16)) for a, b in _PAIR.findall(m.group(1))]
    for iova, pte, r, w in _LOOKUP.findall(text):
        dev.lookups.append((int(iova, 16), int(pte, 16), r == "1", w == "1"))


def parse_roottable_check(text: str) -> Oracle:
    root = mode = None
    devices: Dict[str, OracleDevice] = {}
    last: Optional[OracleDevice] = None
    for line in text.splitlines():
        m = _ROOT.search(line)
        if m:
            root, mode = int(m.group(1), 16), m.group(2)
            continue
        m = _DEV.match(line)
        if m:
            last = OracleDevice(m.group(1), m.group(2) == "1")
            head = m.group(4).split("|", 1)[0]
            last.fields = {k: int(v, 0) for k, v in _KV.findall(head) if v != "-"}
            _tail(last, m.group(4))
            devices[last.bdf] = last
            continue
        if "PASID" in line and "entry:" in line and last is not None:
            head = line.split("entry:", 1)[1].split("|", 1)[0]
            last.fields.update({k: int(v, 0) for k, v in _KV.findall(head) if v != "-"})
            _tail(last, line)
    if root is None or mode is None:
        raise ValueError("no 'root table @ ... mode' line")
    return Oracle(root, mode, devices)
