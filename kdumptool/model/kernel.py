"""Kernel build defaults that decide VT-d when the command line does not, read from a
kernel ``.config`` (``/boot/config-*``, ``/proc/config.gz``)."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.model.evidence import Evidence


@dataclass(frozen=True)
class KernelDefaults:
    """The build-time defaults that decide VT-d when the command line does not."""

    intel_iommu: Optional[bool] = None  # CONFIG_INTEL_IOMMU
    default_on: Optional[bool] = None  # CONFIG_INTEL_IOMMU_DEFAULT_ON
    sm_default_on: Optional[bool] = None  # CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON
    irq_remap: Optional[bool] = None  # CONFIG_IRQ_REMAP
    source: Optional[str] = None  # e.g. /boot/config-6.1.0-56-amd64
    lines: Tuple[Evidence, ...] = ()


_CONFIG_KEYS = {
    "CONFIG_INTEL_IOMMU": "intel_iommu",
    "CONFIG_INTEL_IOMMU_DEFAULT_ON": "default_on",
    "CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON": "sm_default_on",
    "CONFIG_IRQ_REMAP": "irq_remap",
}


def parse_kernel_config(text: str, source: str = "config") -> KernelDefaults:
    """Read the four VT-d switches from a kernel ``.config`` (``/boot/config-*``).

    ``# CONFIG_X is not set`` is an explicit no; a missing line stays unknown (None)
    unless ``CONFIG_INTEL_IOMMU`` itself is known, in which case its children are no.
    """
    vals: Dict[str, Optional[bool]] = {}
    lines: List[Evidence] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^(CONFIG_[A-Z0-9_]+)=(\S+)", line)
        if m and m.group(1) in _CONFIG_KEYS:
            vals[_CONFIG_KEYS[m.group(1)]] = m.group(2) in ("y", "m")
            lines.append(Evidence(source, line.strip(), n))
            continue
        m = re.match(r"^# (CONFIG_[A-Z0-9_]+) is not set", line)
        if m and m.group(1) in _CONFIG_KEYS:
            vals[_CONFIG_KEYS[m.group(1)]] = False
            lines.append(Evidence(source, line.strip(), n))
    if "intel_iommu" in vals or "irq_remap" in vals:
        for k in ("default_on", "sm_default_on"):
            vals.setdefault(k, False)
    return KernelDefaults(
        intel_iommu=vals.get("intel_iommu"),
        default_on=vals.get("default_on"),
        sm_default_on=vals.get("sm_default_on"),
        irq_remap=vals.get("irq_remap"),
        source=source,
        lines=tuple(lines),
    )

