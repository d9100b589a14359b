"""The physical memory picture of a crash, as the HTML report draws it: the crashed
kernel's RAM, the crashkernel reservation, what the dump holds, and what each device could
reach by DMA. Every part says where it came from, or that it is not known (never drawn
as empty when unknown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Tuple

#: [start, end) byte ranges, sorted
Ranges = Tuple[Tuple[int, int], ...]


def merge(ranges: Iterable[Tuple[int, int]]) -> Ranges:
    """Sorted, with overlapping and touching ranges joined (empty ones dropped)."""
    out: List[Tuple[int, int]] = []
    for s, e in sorted((s, e) for s, e in ranges if e > s):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return tuple(out)


@dataclass(frozen=True)
class Layer:
    """One row of the map: ranges and where they came from; ``ranges is None`` = unknown
    (``basis`` then says why)."""

    name: str
    ranges: Optional[Ranges]
    basis: str


@dataclass(frozen=True)
class DeviceReach:
    """What one device could reach by DMA at the crash.

    ``kind``: ``mapped`` (its IOMMU page table: ``ranges``, ``writable`` the part it may
    write), ``passthrough`` (identity/pass-through domain: all of memory), ``untranslated``
    (no DMA translation: all of memory), ``unknown`` (translated, but the page tables are
    not at hand: ``ranges`` is None)."""

    bdf: str
    kind: str
    ranges: Optional[Ranges]
    writable: Optional[Ranges]
    basis: str
    risky: bool = False
    label: str = ""  # driver or module, class, for the row's name
    dumped: Optional[bool] = None  # all of its ranges in the dump (True), none (False), part/unknown (None)


@dataclass(frozen=True)
class DumpLayout:
    """What a vmcore itself says about memory (read by :mod:`kdumptool.sources.memmap`)."""

    path: str
    ram: Optional[Ranges]  # the pages the dump covers (its RAM map), None: not said
    dumped: Ranges  # the pages it holds
    crashkernel: Optional[Ranges] = None  # from the crashed kernel's own log line
    crashkernel_basis: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    release: Optional[str] = None  # VMCOREINFO OSRELEASE
    crash_date: Optional[str] = None  # VMCOREINFO CRASHTIME, as a UTC date
    #: the crashed kernel's log records (seconds since boot, text), for its panic line
    log: Tuple[Tuple[Optional[float], str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class MemoryMap:
    ram: Layer
    crashkernel: Layer
    dumped: Layer
    devices: Tuple[DeviceReach, ...]
    end: int  # the map's right edge (bytes): end of RAM, or of whatever is known
    notes: Tuple[str, ...] = ()
    #: which crash (label, value): the dump's kernel release, crash date, panic line
    crash: Tuple[Tuple[str, str], ...] = ()
