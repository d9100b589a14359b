"""Findings grouped by kind and cause, and risky devices ranked, so a 600-device server's
triage reads in about two screens of text. Grouping is for reading only: ``-v`` and JSON
keep every finding and every device.

A group is the findings with the same catalogue id, severity and remedy (the same kind of
problem with the same fix, e.g. "bus master whose module ixgbe is not in the kdump
initramfs"); a group of one prints as the finding itself.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from kdumptool.analysis.triage import DeviceRisk
from kdumptool.model.finding import Finding

#: How many device addresses a group line lists before "+N more".
GROUP_DEVICES_SHOWN = 6
#: How many evidence lines a single finding shows in the compact text.
EVIDENCE_SHOWN = 6
#: How many risky devices the compact text lists (all of them with -v and in JSON).
RISKY_SHOWN = 10


def group_findings(findings: Sequence[Finding]) -> List[List[Finding]]:
    """Findings in groups of (id, severity, remedy), in the order each group first appears."""
    groups: Dict[Tuple[str, str, Optional[str]], List[Finding]] = {}
    for f in findings:
        groups.setdefault((f.id, f.severity, f.remedy), []).append(f)
    return list(groups.values())


def short_bdf(bdf: str) -> str:
    return bdf[5:] if bdf.startswith("0000:") else bdf


def group_devices(group: Sequence[Finding]) -> List[str]:
    seen: Dict[str, None] = {}
    for f in group:
        for b in f.devices:
            seen.setdefault(b, None)
    return list(seen)


def class_counts(bdfs: Sequence[str], class_of: Callable[[str], Optional[str]]) -> str:
    """``263 Ethernet controller, 2 Non-Volatile memory controller``."""
    c = Counter(x for x in (class_of(b) for b in bdfs) if x)
    return ", ".join(f"{n} {name}" for name, n in c.most_common())


def device_list(bdfs: Sequence[str], shown: int = GROUP_DEVICES_SHOWN) -> str:
    head = ", ".join(short_bdf(b) for b in bdfs[:shown])
    more = len(bdfs) - shown
    return head + (f" (+{more} more: -v or JSON for all)" if more > 0 else "")


def rank_devices(devices: Sequence[DeviceRisk]) -> List[DeviceRisk]:
    """Most dangerous first: devices with DMAR faults, then by number of causes, then by
    how deep they sit (more bridges to keep forwarding), then by address."""
    return sorted(devices, key=lambda d: (-(len(d.faults) > 0), -len(d.reasons),
                                          -len(d.upstream), d.bdf))
