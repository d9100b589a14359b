"""How a command names devices (kept free of typer: the kdump initramfs imports it)."""

from __future__ import annotations

from kdumptool.render.names import Naming
from kdumptool.sources.pciids import read_pci_names


def naming(numeric: bool = False) -> Naming:
    """The system's pci.ids unless ``numeric`` (``-n``); a Naming without names says why."""
    return Naming(None if numeric else read_pci_names(), numeric)
