"""Vendor, device, subsystem and class names from the system's ``pci.ids``.

Searched where pciutils and hwdata install it (Debian's ``pci.ids`` package:
``/usr/share/misc/pci.ids``; RHEL/Fedora ``hwdata``: ``/usr/share/hwdata/pci.ids``), or the
file named by ``$KDUMPTOOL_PCI_IDS`` (the tests pin a trimmed copy from ``fixtures/pciids``).
Names read as lspci prints them: ``Intel Corporation 82574L Gigabit Network Connection``;
an id the database lacks reads ``Device 10d3`` (as lspci does). Without any pci.ids the
names are ``None`` and callers show numbers only, saying why once.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

from kdumptool.formats.pciids import PciIds, parse_pci_ids

#: Where distributions install the database, in the order lspci's builds look.
PCI_IDS_PATHS = (
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
    "/usr/local/share/pci.ids",
    "/usr/share/misc/pci.ids.gz",
    "/usr/share/hwdata/pci.ids.gz",
)
ENV = "KDUMPTOOL_PCI_IDS"

_cache: Dict[str, Tuple[float, PciNames]] = {}


class PciNames:
    """Look-ups over one decoded ``pci.ids``; ``path`` says where it came from."""

    def __init__(self, ids: PciIds, path: str) -> None:
        self.ids = ids
        self.path = path

    def vendor(self, vendor_id: int) -> Optional[str]:
        return self.ids.vendors.get(vendor_id)

    def device(self, vendor_id: int, device_id: int) -> str:
        """``Vendor Device`` as lspci prints it (``Device 10d3`` for an unknown device)."""
        v = self.ids.vendors.get(vendor_id)
        d = self.ids.devices.get((vendor_id, device_id))
        if v is None:
            return f"Device {vendor_id:04x}:{device_id:04x}"
        return f"{v} {d if d is not None else f'Device {device_id:04x}'}"

    def subsystem(self, vendor_id: int, device_id: int, sub_vendor: int, sub_device: int) -> str:
        """The subsystem as lspci -v prints it: ``Red Hat, Inc. QEMU Virtual Machine``."""
        name = self.ids.subsystems.get((vendor_id, device_id, sub_vendor, sub_device))
        if name is None and (vendor_id, device_id) == (sub_vendor, sub_device):
            name = self.ids.devices.get((vendor_id, device_id))  # lspci does the same
        v = self.ids.vendors.get(sub_vendor)
        if v is None:
            return f"Device {sub_vendor:04x}:{sub_device:04x}"
        if name is None:
            d = f"Device {sub_device:04x}"
        else:
            d = name
        return f"{v} {d}"

    def class_name(self, class_code: int) -> str:
        """As lspci: the subclass name (``Ethernet controller``); for a subclass the
        database lacks, the base class name and the number (``Unclassified device [0002]``);
        ``Class 0002`` when neither is known. ``class_code`` is the 24-bit register."""
        base, sub = class_code >> 16, (class_code >> 8) & 0xFF
        name = self.ids.subclasses.get((base, sub))
        if name is not None:
            return name
        b = self.ids.classes.get(base)
        return f"{b} [{base:02x}{sub:02x}]" if b is not None else f"Class {base:02x}{sub:02x}"

    def prog_if(self, class_code: int) -> Optional[str]:
        base, sub, pi = class_code >> 16, (class_code >> 8) & 0xFF, class_code & 0xFF
        return self.ids.prog_ifs.get((base, sub, pi))


def find_pci_ids() -> Optional[str]:
    """The pci.ids this host has (``$KDUMPTOOL_PCI_IDS`` first), or None."""
    env = os.environ.get(ENV)
    if env:
        return env
    for p in PCI_IDS_PATHS:
        if os.path.isfile(p):
            return p
    return None


def read_pci_names(path: Optional[str] = None) -> Optional[PciNames]:
    """Decode ``path`` (default: :func:`find_pci_ids`), cached per path and mtime.

    None when there is no database or it cannot be read; a damaged one still gives the
    names it holds (its malformed lines are counted on ``ids``).
    """
    path = path or find_pci_ids()
    if path is None:
        return None
    try:
        mtime = os.stat(path).st_mtime
        hit = _cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        raw = Path(path).read_bytes()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, ValueError):
        return None
    names = PciNames(parse_pci_ids(raw.decode("utf-8", errors="replace")), path)
    _cache[path] = (mtime, names)
    return names
