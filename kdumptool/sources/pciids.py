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
from typing import AbstractSet, Dict, Iterable, Optional, Tuple

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

_cache: Dict[Tuple[str, Optional[AbstractSet[int]]], Tuple[float, PciIds]] = {}


def find_pci_ids() -> Optional[str]:
    """The pci.ids this host has (``$KDUMPTOOL_PCI_IDS`` first), or None."""
    env = os.environ.get(ENV)
    if env:
        return env
    for p in PCI_IDS_PATHS:
        if os.path.isfile(p):
            return p
    return None


def read_pci_names(path: Optional[str] = None, vendors: Optional[Iterable[int]] = None) -> Optional[PciIds]:
    """Decode ``path`` (default: :func:`find_pci_ids`), cached per path and mtime; with
    ``vendors``, only those vendors' devices (``parse_pci_ids``: a few devices to name).

    None when there is no database or it cannot be read; a damaged one still gives the
    names it holds (its malformed lines are counted on ``ids``).
    """
    path = path or find_pci_ids()
    if path is None:
        return None
    only = None if vendors is None else frozenset(vendors)
    try:
        mtime = os.stat(path).st_mtime
        hit = _cache.get((path, only)) or _cache.get((path, None))
        if hit is not None and hit[0] == mtime:
            return hit[1]
        raw = Path(path).read_bytes()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, ValueError):
        return None
    names = parse_pci_ids(raw.decode("utf-8", errors="replace"), only)
    _cache[(path, only)] = (mtime, names)
    return names
