"""Parsers for the independent oracles that sit beside the lab captures: ``lspci -vvv``,
``lspci -tv`` and the lab's ``iommu_groups.txt`` listing. Test helpers only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

_DEV = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7]) ")
_CAP = re.compile(r"^Capabilities: \[([0-9a-f]+)(?: v(\d+))?\] (.*)$")
_EXPRESS = re.compile(r"^Express \(v\d+\) (.+?)(?: \(Slot[+-]\))?, (?:MSI|IntMsgNum) ")


EXT_FLAG_LINES = ("UESta", "UEMsk", "UESvrt", "CESta", "CEMsk", "ACSCap", "ACSCtl")


@dataclass
class VvvDevice:
    bdf: str
    control: Dict[str, bool] = field(default_factory=dict)
    status: Dict[str, bool] = field(default_factory=dict)
    driver: Optional[str] = None
    iommu_group: Optional[int] = None
    port_type: Optional[str] = None
    caps: List[Tuple[int, str]] = field(default_factory=list)  # (offset, text)
    ext_caps: List[Tuple[int, str]] = field(default_factory=list)
    ext_flags: Dict[str, Dict[str, bool]] = field(default_factory=dict)  # UESta, ACSCtl...
    ext_values: Dict[str, int] = field(default_factory=dict)  # ATS/PASID/PRI/SR-IOV fields


_VALUE_LINES = (
    ("ats_qdep", re.compile(r"^ATSCap:\s+Invalidate Queue Depth: ([0-9a-f]+)"), 16),
    ("ats_enable", re.compile(r"^ATSCtl:\s+Enable([+-])"), 0),
    ("ats_stu", re.compile(r"^ATSCtl:.*Smallest Translation Unit: ([0-9a-f]+)"), 16),
    ("pasid_exec", re.compile(r"^PASIDCap:\s+Exec([+-])"), 0),
    ("pasid_priv", re.compile(r"^PASIDCap:.*Priv([+-])"), 0),
    ("pasid_width", re.compile(r"^PASIDCap:.*Max PASID Width: ([0-9a-f]+)"), 16),
    ("pasid_enable", re.compile(r"^PASIDCtl:\s+Enable([+-])"), 0),
    ("pri_enable", re.compile(r"^PRICtl:\s+Enable([+-])"), 0),
    ("pri_stopped", re.compile(r"^PRISta:.*Stopped([+-])"), 0),
    ("pri_capacity", re.compile(r"^Page Request Capacity: ([0-9a-f]+)"), 16),
    ("iov_enable", re.compile(r"^IOVCtl:\s+Enable([+-])"), 0),
    ("iov_mse", re.compile(r"^IOVCtl:.*MSE([+-])"), 0),
    ("iov_initial", re.compile(r"^Initial VFs: (\d+)"), 10),
    ("iov_total", re.compile(r"^Initial VFs: \d+, Total VFs: (\d+)"), 10),
    ("iov_num", re.compile(r"^Initial VFs: .*Number of VFs: (\d+)"), 10),
    ("iov_offset", re.compile(r"^VF offset: (\d+)"), 10),
    ("iov_stride", re.compile(r"^VF offset: \d+, stride: (\d+)"), 10),
    ("iov_devid", re.compile(r"^VF offset: .*Device ID: ([0-9a-f]+)"), 16),
)


def _flags(text: str) -> Dict[str, bool]:
    out = {}
    for word in text.split():
        if word[-1:] in "+-" and "=" not in word:
            out[word[:-1]] = word[-1] == "+"
    return out


def parse_vvv(text: str, quoted: bool = False) -> Dict[str, VvvDevice]:
    devices: Dict[str, VvvDevice] = {}
    cur: Optional[VvvDevice] = None
    for raw in text.splitlines():
        line = re.sub(r"^(?:\s*>)+\s?", "", raw) if quoted else raw
        m = _DEV.match(line)
        if m:
            bdf = f"{m.group(1) or '0000'}:{m.group(2)}:{m.group(3)}.{m.group(4)}"
            cur = devices.setdefault(bdf, VvvDevice(bdf))
            continue
        s = line.strip()
        if cur is None or not s:
            continue
        if s.startswith("Control:") and not cur.control:
            cur.control = _flags(s[8:])
        elif s.startswith("Status:") and not cur.status and not cur.caps:
            cur.status = _flags(s[7:])
        elif s.startswith("Kernel driver in use:"):
            cur.driver = s.split(":", 1)[1].strip()
        elif any(rx.match(s) for _, rx, _ in _VALUE_LINES):
            for key, rx, base in _VALUE_LINES:
                vm = rx.match(s)
                if vm and key not in cur.ext_values:
                    v = vm.group(1)
                    cur.ext_values[key] = (v == "+") if base == 0 else int(v, base)
        elif s.split(":", 1)[0] in EXT_FLAG_LINES and ":" in s:
            cur.ext_flags.setdefault(s.split(":", 1)[0], _flags(s.split(":", 1)[1]))
        elif s.startswith("IOMMU group:"):
            cur.iommu_group = int(s.split(":", 1)[1])
        else:
            cm = _CAP.match(s)
            if cm:
                off = int(cm.group(1), 16)
                (cur.ext_caps if off >= 0x100 else cur.caps).append((off, cm.group(3)))
                em = _EXPRESS.match(cm.group(3))
                if em:
                    cur.port_type = em.group(1)
    return devices


_TREE_TOKEN = re.compile(r"\[([0-9a-f]{4}:)?([0-9a-f]{2})(?:-([0-9a-f]{2}))?\]|([0-9a-f]{2})\.([0-7])")


def parse_tree(text: str) -> Dict[str, Optional[str]]:
    """``lspci -t`` -> {bdf: parent bridge bdf or None}."""
    col_bus: Dict[int, Tuple[str, int]] = {}
    parent: Dict[str, Optional[str]] = {}
    bridge_of_bus: Dict[Tuple[str, int], str] = {}
    for line in text.splitlines():
        last: Optional[Tuple[str, int]] = None
        last_dev: Optional[str] = None
        for m in _TREE_TOKEN.finditer(line):
            if m.group(2) is not None:  # [SSSS:BB] or [BB-BB]
                seg = (m.group(1) or "").rstrip(":") or (last[0] if last else "0000")
                bus = int(m.group(2), 16)
                last = (seg, bus)
                col_bus[m.end() + 1] = last
                if last_dev is not None:
                    bridge_of_bus[last] = last_dev
                continue
            x = m.start()
            if x >= 2 and line[x - 2] in "+\\" and x - 2 in col_bus:
                seg, bus = col_bus[x - 2]
            elif last is not None:
                seg, bus = last
            else:
                continue
            bdf = f"{seg}:{bus:02x}:{m.group(4)}.{m.group(5)}"
            parent[bdf] = bridge_of_bus.get((seg, bus))
            last_dev = bdf
    return parent


@dataclass
class GroupListing:
    number: int
    type: str
    devices: List[Tuple[str, str]]  # (bdf, driver)
    reserved: List[Tuple[int, int, str]]


def parse_groups_listing(text: str) -> Dict[int, GroupListing]:
    out: Dict[int, GroupListing] = {}
    cur = None
    for line in text.splitlines():
        p = line.split()
        if not p:
            continue
        if p[0] == "group":
            cur = out[int(p[1])] = GroupListing(int(p[1]), p[2].split("=", 1)[1], [], [])
        elif p[0] == "device" and cur is not None:
            drv = next((x.split("=", 1)[1] for x in p if x.startswith("driver=")), "")
            cur.devices.append((p[1], drv))
        elif p[0] == "reserved" and cur is not None:
            cur.reserved.append((int(p[1], 16), int(p[2], 16), p[3]))
    return out
