"""The page cache the VT-d walk and the root-table scan read through (its own module so
that ``vmcore scan`` does not import the whole walk: analysis/rtscan.py)."""

from __future__ import annotations

import struct

from kdumptool.errors import KdumptoolError, NotMapped
from kdumptool.formats.vtd_tables import VTD_PAGE_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

    from kdumptool.analysis.vtd_walk import PhysMemory


class PageReader:
    """4 KiB page cache over a memory source; remembers every page it was asked for."""

    def __init__(self, mem: PhysMemory) -> None:
        self.mem = mem
        self.cache: Dict[int, bytes] = {}
        self.missing: Dict[int, str] = {}
        self.touched: set = set()

    def page(self, paddr: int) -> bytes:
        """The 4 KiB page at ``paddr`` (page aligned); raises NotMapped."""
        self.touched.add(paddr)
        got = self.cache.get(paddr)
        if got is not None:
            return got
        if paddr in self.missing:
            raise NotMapped(paddr, self.missing[paddr])
        try:
            data = bytes(self.mem.read(paddr, VTD_PAGE_SIZE))
        except NotMapped as err:
            self.missing[paddr] = err.why
            raise
        except KdumptoolError as err:
            # A corrupt compressed page and the like: unreadable, with the reason.
            self.missing[paddr] = str(err)
            raise NotMapped(paddr, str(err)) from err
        if len(data) != VTD_PAGE_SIZE:
            self.missing[paddr] = f"short read ({len(data)} bytes)"
            raise NotMapped(paddr, self.missing[paddr])
        if len(self.cache) > 4096:
            self.cache.clear()
        self.cache[paddr] = data
        return data

    def qwords(self, paddr: int, n: int) -> Optional[Tuple[int, ...]]:
        """``n`` little-endian 64-bit words at ``paddr`` (within one page), or None when
        that page is not in the dump (the walks record it as unreadable)."""
        try:
            page = self.page(paddr & ~0xFFF)
        except NotMapped:
            return None
        return struct.unpack_from(f"<{n}Q", page, paddr & 0xFFF)
