"""A sos report (``sos report``/``sosreport`` directory or tarball) as ``--root``.

sos copies files at their own paths (``proc/cmdline``, ``etc/kdump.conf``,
``sys/firmware/acpi/tables/DMAR``, ``proc/bus/pci/BB/DD.F``: config space as the kernel
gives it) and keeps command output under ``sos_commands/<plugin>/`` (sos's pci, kernel and
kdump plugins). What kdumptool needs and where a sos report has it:

===========================  ================================================  ==========
kdumptool reads              sos report                                        plugin
===========================  ================================================  ==========
PCI devices, config space    proc/bus/pci/BB/DD.F (+ sos_commands/pci/lspci_-nnvv) pci
drivers, IOMMU group numbers sos_commands/pci/lspci_-nnvv ("Kernel driver in use", "IOMMU group") pci
kernel log                   sos_commands/kernel/dmesg (or var/log/dmesg)      kernel
DMAR table                   sys/firmware/acpi/tables/DMAR                     kernel
kernel command line          proc/cmdline                                      kernel
kdump configuration          etc/kdump.conf, etc/sysconfig/kdump, etc/default/kdump-tools  kdump
crash kernel loaded/size     sys/kernel/kexec_crash_loaded, kexec_crash_size   kdump
/proc/iomem                  proc/iomem                                        pci
===========================  ================================================  ==========

Not in a sos report (said as missing): sysfs PCI device links (the bridge tree is rebuilt
from bus numbers), IOMMU groups' default domain types and reserved regions
(/sys/kernel/iommu_groups), the intel-iommu units in /sys/class/iommu, and the VT-d
registers (read through /dev/mem by ``kdumptool collect`` only).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from kdumptool.model.system import RawDevice

SOS_MARK = "sos_commands"
LSPCI = ("sos_commands/pci/lspci_-nnvv", "lspci")
DMESG = ("sos_commands/kernel/dmesg", "var/log/dmesg")
#: (what, the paths in a sos report that hold it) - checked by :func:`sos_inventory`
INVENTORY: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("PCI config space", ("proc/bus/pci",)),
    ("lspci -nnvv (drivers, IOMMU group numbers)", LSPCI),
    ("kernel log", DMESG),
    ("ACPI DMAR table", ("sys/firmware/acpi/tables/DMAR",)),
    ("kernel command line", ("proc/cmdline",)),
    ("kdump configuration", ("etc/kdump.conf", "etc/sysconfig/kdump", "etc/default/kdump-tools")),
    ("crash kernel state", ("sys/kernel/kexec_crash_loaded",)),
    ("/proc/iomem", ("proc/iomem",)),
)
#: never in a sos report, whatever its plugins
NEVER = ("IOMMU group types and reserved regions (/sys/kernel/iommu_groups)",
         "intel-iommu units (/sys/class/iommu)", "VT-d registers (kdumptool collect reads them)")
_PROC_DEV = re.compile(r"^[0-9a-f]{2}\.[0-7]$")


def is_sos_report(path: Path) -> bool:
    return (path / SOS_MARK).is_dir()


def _first(base: Path, cands: Tuple[str, ...]) -> Optional[Path]:
    for c in cands:
        p = base / c
        if p.exists():
            return p
    return None


def sos_extra(base: Path, name: str) -> Optional[Path]:
    """Where a sos report keeps what a snapshot has as ``_kdumptool/<name>``."""
    if name == "dmesg.txt":
        return _first(base, DMESG)
    if name == "lspci_vvv.txt":
        return _first(base, LSPCI)
    return None


def sos_inventory(base: Path) -> Tuple[List[str], List[str]]:
    """(what the report holds, what it lacks) in words, for the output's warnings."""
    have: List[str] = []
    lack: List[str] = []
    for what, cands in INVENTORY:
        p = _first(base, cands)
        (have if p is not None else lack).append(f"{what} ({p.relative_to(base) if p else ' or '.join(cands)})")
    return have, lack + list(NEVER)


def read_sos_pci(base: Path, warnings: List[str]) -> Dict[str, RawDevice]:
    """PCI devices of a sos report: config bytes from proc/bus/pci, drivers and group
    numbers from lspci -nnvv; a device only lspci names gets its text-rebuilt header."""
    from kdumptool.errors import KdumptoolError
    from kdumptool.sources.pci import _decode_config, read_lspci_text
    from kdumptool.sources.root import Root

    # every read through the confined resolver: links stay inside the report, FIFOs and
    # device nodes are refused, sizes are capped
    root = Root(base)
    text_devs: Dict[str, RawDevice] = {}
    lspci = _first(base, LSPCI)
    if lspci is not None:
        rel = str(lspci.relative_to(base))
        try:
            text_devs, tw = read_lspci_text(root.read_text("/" + rel), rel)
            warnings.extend(x for x in tw if "from lspci text" not in x)
        except KdumptoolError as err:
            warnings.append(f"{lspci}: {err}")
    out: Dict[str, RawDevice] = {}
    proc = base / "proc/bus/pci"
    if proc.is_dir():
        for bus in sorted(os.listdir(proc)):
            bdir = proc / bus
            if not bdir.is_dir():
                continue
            dom, _, b = bus.rpartition(":")
            if not re.fullmatch(r"[0-9a-f]{2}", b) or (dom and not re.fullmatch(r"[0-9a-f]{4}", dom)):
                continue
            for fn in sorted(os.listdir(bdir)):
                if not _PROC_DEV.match(fn):
                    continue
                bdf = f"{dom or '0000'}:{b}:{fn}"
                w: List[str] = []
                try:
                    data = root.read_bytes(f"/proc/bus/pci/{bus}/{fn}", 4096)
                except KdumptoolError as exc:
                    warnings.append(str(exc))
                    continue
                config = _decode_config(data, f"proc/bus/pci/{bus}/{fn}", w)
                t = text_devs.get(bdf)
                if t is None:
                    w.append(f"{bdf}: not in lspci -nnvv: driver unknown")
                out[bdf] = RawDevice(
                    bdf=bdf, config=config, config_size=len(data),
                    driver=t.driver if t else None, iommu_group=t.iommu_group if t else None,
                    driver_known=bool(t and t.driver_known), warnings=tuple(w),
                )
    for bdf, t in text_devs.items():
        if bdf not in out:
            out[bdf] = t  # config rebuilt from the text; its warnings say so
    if not out:
        warnings.append(f"{base}: sos report without proc/bus/pci or lspci -nnvv: no PCI devices")
    return out
