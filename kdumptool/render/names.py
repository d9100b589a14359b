"""Device names the way lspci prints them, or numbers only (``-n``).

Every renderer that names a PCI device goes through :func:`device_title`, so ``pci``,
``triage``, ``quiesce`` and records read alike. ``names`` is the
system's decoded pci.ids (:func:`kdumptool.sources.pciids.read_pci_names`; the CLI picks it
with :func:`kdumptool.cli.names.naming`) or None.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from kdumptool.formats.pciids import PciIds

#: Used when there is no pci.ids at all (numbers are still printed beside them).
BUILTIN_CLASSES = {
    0x00: "Unclassified device", 0x01: "Mass storage controller", 0x02: "Network controller",
    0x03: "Display controller", 0x04: "Multimedia controller", 0x05: "Memory controller",
    0x06: "Bridge", 0x07: "Communication controller", 0x08: "Generic system peripheral",
    0x09: "Input device controller", 0x0A: "Docking station", 0x0B: "Processor",
    0x0C: "Serial bus controller", 0x0D: "Wireless controller", 0x0E: "Intelligent controller",
    0x0F: "Satellite communications controller", 0x10: "Encryption controller",
    0x11: "Signal processing controller", 0x12: "Processing accelerators",
    0x13: "Non-Essential Instrumentation", 0x40: "Coprocessor", 0xFF: "Unassigned class",
}

NO_PCI_IDS = ("no pci.ids found (/usr/share/misc/pci.ids, /usr/share/hwdata/pci.ids: install "
              "pciutils, pci.ids or hwdata): devices are shown by number")


class Naming:
    """Which names to print: ``numeric`` (``-n``) or those of ``names`` (None: no pci.ids)."""

    def __init__(self, names: Optional[PciIds], numeric: bool) -> None:
        self.names = names
        self.numeric = numeric

    @property
    def note(self) -> Optional[str]:
        """One sentence when names were wanted but no database was found."""
        return NO_PCI_IDS if (self.names is None and not self.numeric) else None

    def class_name(self, class_code: int) -> Optional[str]:
        if self.numeric:
            return None
        if self.names is not None:
            return self.names.class_name(class_code)
        base, sub = class_code >> 16, (class_code >> 8) & 0xFF
        b = BUILTIN_CLASSES.get(base)
        return f"{b} [{base:02x}{sub:02x}]" if b else f"Class {base:02x}{sub:02x}"

    def device_name(self, vendor_id: int, device_id: int) -> Optional[str]:
        if self.numeric or self.names is None:
            return None
        return self.names.device(vendor_id, device_id)

    def subsystem_name(self, vendor_id: int, device_id: int, sv: Optional[int], sd: Optional[int]) -> Optional[str]:
        if self.numeric or self.names is None or sv is None or sd is None:
            return None
        return self.names.subsystem(vendor_id, device_id, sv, sd)

    def title(self, vendor_id: int, device_id: int, class_code: int) -> str:
        """``Ethernet controller: Intel Corporation 82574L Gigabit Network Connection
        [8086:10d3]``; numeric: ``0200: 8086:10d3`` (lspci -n)."""
        ids = f"{vendor_id:04x}:{device_id:04x}"
        if self.numeric:
            return f"{class_code >> 8:04x}: {ids}"
        cls = self.class_name(class_code)
        dev = self.device_name(vendor_id, device_id)
        return f"{cls}: {dev} [{ids}]" if dev else f"{cls}: [{ids}]"

    def json(self, vendor_id: int, device_id: int, class_code: int) -> Dict[str, Any]:
        """The name fields of a device's JSON object (null with -n or no pci.ids)."""
        v = None
        if not self.numeric and self.names is not None:
            v = self.names.vendor(vendor_id)
        d = None
        if v is not None and self.names is not None:
            d = self.names.device_only(vendor_id, device_id)
        return {"vendor_name": v, "device_name": d, "class_name": self.class_name(class_code)}


NUMERIC = Naming(None, True)
