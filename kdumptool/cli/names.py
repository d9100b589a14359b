"""How a command names devices (kept free of typer: the kdump initramfs imports it)."""

from __future__ import annotations

from typing import Iterable, Optional

from kdumptool.render.names import Naming
from kdumptool.sources.pciids import read_pci_names


def naming(numeric: bool = False, vendors: Optional[Iterable[int]] = None) -> Naming:
    """The system's pci.ids unless ``numeric`` (``-n``); a Naming without names says why.
    ``vendors``: the vendors of every device that will be named (pci.ids is then decoded
    for those only: a fraction of the time, bench/bench_record.py)."""
    return Naming(None if numeric else read_pci_names(vendors=vendors), numeric)
