"""DMA exposure: the physical memory each device could still read or write at the crash.

From the decoded VT-d tables (``vtd_walk.VtdTables``): per device, the physical ranges
its page table maps, merged (overlapping mappings OR their rights), with totals; the
union over all devices, naming the devices behind each range; and for every range
whether the dump holds those pages (``Dump.iter_dumped_ranges``). A crash analyst reads
it as: these vmcore pages may have been changed by in-flight DMA after the panic, and
these others that DMA could reach were not saved at all.

Pass-through devices (legacy TT=2, PGTT=4) reach all of physical memory: they are
reported as such, with one range [0, end of memory).
"""

from __future__ import annotations

import bisect
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from kdumptool.analysis.vtd_walk import DeviceTranslation, PageTableWalk, VtdTables
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up


@dataclass(frozen=True)
class PhysRange:
    start: int
    end: int  # exclusive
    read: bool
    write: bool
    dumped: Optional[bool]  # None: not known (no dump map given) or partly (pass-through)
    devices: Tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict:
        out: Dict[str, Any] = {"start": self.start, "end": self.end, "size": self.size, "read": self.read, "write": self.write,
               "dumped": self.dumped}
        if self.devices:
            out["devices"] = list(self.devices)
        return out


@dataclass(frozen=True)
class DeviceExposure:
    bdf: str
    domain_id: Optional[int]
    translation_type: str
    passthrough: bool
    ranges: Tuple[PhysRange, ...]
    readable_bytes: int
    writable_bytes: int
    not_dumped_bytes: Optional[int]
    unreadable_tables: int

    def to_json(self) -> dict:
        return {
            "bdf": self.bdf,
            "domain_id": self.domain_id,
            "translation_type": self.translation_type,
            "passthrough": self.passthrough,
            "readable_bytes": self.readable_bytes,
            "writable_bytes": self.writable_bytes,
            "not_dumped_bytes": self.not_dumped_bytes,
            "unreadable_tables": self.unreadable_tables,
            "ranges": [r.to_json() for r in self.ranges],
        }


@dataclass(frozen=True)
class Exposure:
    devices: Tuple[DeviceExposure, ...]
    union: Tuple[PhysRange, ...]
    readable_bytes: int
    writable_bytes: int
    writable_dumped_bytes: Optional[int]
    not_dumped_bytes: Optional[int]
    passthrough_devices: Tuple[str, ...]
    incomplete: bool  # some table pages were unreadable or a walk was truncated: exposure may be larger

    def to_json(self) -> dict:
        return {
            "totals": {
                "readable_bytes": self.readable_bytes,
                "writable_bytes": self.writable_bytes,
                "writable_dumped_bytes": self.writable_dumped_bytes,
                "not_dumped_bytes": self.not_dumped_bytes,
                "passthrough_devices": list(self.passthrough_devices),
                "incomplete": self.incomplete,
            },
            "devices": [d.to_json() for d in self.devices],
            "union": [r.to_json() for r in self.union],
        }


def merge_ranges(items: Iterable[Tuple[int, int, int]]) -> List[Tuple[int, int, int]]:
    """Merge (start, end, rights) intervals; overlaps OR their rights (bit 0 R, bit 1 W)."""
    events: List[Tuple[int, int, int]] = []
    for s, e, rw in items:
        if e > s and rw:
            events.append((s, 1, rw))
            events.append((e, -1, rw))
    events.sort(key=lambda x: x[0])
    out: List[Tuple[int, int, int]] = []
    count = {1: 0, 2: 0, 3: 0}
    prev: Optional[int] = None
    i = 0
    while i < len(events):
        pos = events[i][0]
        if prev is not None and pos > prev:
            rw = (1 if count[1] or count[3] else 0) | (2 if count[2] or count[3] else 0)
            if any(count.values()):
                if out and out[-1][1] == prev and out[-1][2] == rw:
                    out[-1] = (out[-1][0], pos, rw)
                else:
                    out.append((prev, pos, rw))
        while i < len(events) and events[i][0] == pos:
            count[events[i][2]] += events[i][1]
            i += 1
        prev = pos
    return out


class DumpMap:
    """Sorted dumped ranges with fast 'how much of [s, e) is dumped' and splitting."""

    def __init__(self, ranges: Iterable[Tuple[int, int]]) -> None:
        rs = sorted((s, e) for s, e in ranges if e > s)
        merged: List[Tuple[int, int]] = []
        for s, e in rs:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        self.ranges = merged
        self.starts = [s for s, _ in merged]
        self.end = merged[-1][1] if merged else 0

    def split(self, s: int, e: int) -> List[Tuple[int, int, bool]]:
        """[s, e) cut into (start, end, dumped) pieces."""
        out: List[Tuple[int, int, bool]] = []
        i = max(0, bisect.bisect_right(self.starts, s) - 1)
        pos = s
        while pos < e:
            if i < len(self.ranges):
                rs, re_ = self.ranges[i]
                if re_ <= pos:
                    i += 1
                    continue
                if rs > pos:
                    nxt = min(rs, e)
                    out.append((pos, nxt, False))
                    pos = nxt
                    continue
                nxt = min(re_, e)
                out.append((pos, nxt, True))
                pos = nxt
                i += 1
            else:
                out.append((pos, e, False))
                pos = e
        return out

    def dumped_bytes(self, s: int, e: int) -> int:
        return sum(b - a for a, b, d in self.split(s, e) if d)


def _walk_ranges(walk: PageTableWalk) -> List[Tuple[int, int, int]]:
    return merge_ranges(
        (x.phys, x.phys + x.size, (1 if x.read else 0) | (2 if x.write else 0)) for x in walk.extents
    )


def find_exposure(
    tables: VtdTables,
    dumped: Optional[Iterable[Tuple[int, int]]] = None,
    memory_end: Optional[int] = None,
    devices: Optional[Sequence[DeviceTranslation]] = None,
) -> Exposure:
    """Physical DMA exposure per device and overall; ``dumped`` is the dump's range list."""
    dmap = DumpMap(dumped) if dumped is not None else None
    end = memory_end if memory_end is not None else (dmap.end if dmap else 0)
    per_walk: Dict[int, List[Tuple[int, int, int]]] = {}
    out: List[DeviceExposure] = []
    union_items: List[Tuple[int, int, int, str]] = []
    passthrough: List[str] = []
    incomplete = bool(tables.unreadable)
    for d in devices if devices is not None else tables.devices:
        if not d.present:
            continue
        unread = len(d.all_unreadable)
        incomplete = incomplete or unread > 0
        if d.passthrough or any(p.translation_type == "pass-through" for p in d.other_pasids):
            passthrough.append(d.bdf)
            dumped_b = dmap.dumped_bytes(0, end) if dmap else None
            rng = PhysRange(0, end, True, True, None)
            out.append(DeviceExposure(d.bdf, d.domain_id, d.translation_type, True, (rng,), end, end,
                                      (end - dumped_b) if dumped_b is not None else None, unread))
            union_items.append((0, end, 3, d.bdf))
            continue
        walks = d.walks
        incomplete = incomplete or d.pasids_truncated or bool(d.not_walked) or any(w.truncated for w in walks)
        if not walks:
            out.append(DeviceExposure(d.bdf, d.domain_id, d.translation_type, False, (), 0, 0,
                                      0 if dmap else None, unread))
            continue
        for w in walks:
            if id(w) not in per_walk:
                per_walk[id(w)] = _walk_ranges(w)
        if len(walks) == 1:
            merged = per_walk[id(walks[0])]
        else:  # several PASIDs: their ranges together
            merged = merge_ranges(x for w in walks for x in per_walk[id(w)])
        ranges: List[PhysRange] = []
        for s, e, rw in merged:
            union_items.append((s, e, rw, d.bdf))
            if dmap is None:
                ranges.append(PhysRange(s, e, bool(rw & 1), bool(rw & 2), None))
            else:
                ranges.extend(PhysRange(a, b, bool(rw & 1), bool(rw & 2), dd) for a, b, dd in dmap.split(s, e))
        out.append(DeviceExposure(
            d.bdf, d.domain_id, d.translation_type, False, tuple(ranges),
            sum(r.size for r in ranges if r.read), sum(r.size for r in ranges if r.write),
            sum(r.size for r in ranges if r.dumped is False) if dmap else None, unread))
    union = _union(union_items, dmap)
    readable = sum(r.size for r in union if r.read)
    writable = sum(r.size for r in union if r.write)
    wd: Optional[int] = None
    nd: Optional[int] = None
    if dmap is not None:
        wd = sum(r.size for r in union if r.write and r.dumped)
        nd = sum(r.size for r in union if not r.dumped)
    return Exposure(tuple(out), tuple(union), readable, writable, wd, nd, tuple(passthrough), incomplete)


def _union(items: List[Tuple[int, int, int, str]], dmap: Optional[DumpMap]) -> List[PhysRange]:
    """Union over devices: rights OR-ed, each piece naming the devices that reach it, cut
    where the dump's coverage changes."""
    points = sorted({p for s, e, _, _ in items for p in (s, e)})
    by_start = sorted(items)
    merged: List[PhysRange] = []
    active: List[Tuple[int, int, int, str]] = []
    j = 0
    for a, b in zip(points, points[1:]):
        while j < len(by_start) and by_start[j][0] <= a:
            active.append(by_start[j])
            j += 1
        active = [x for x in active if x[1] > a]
        if not active:
            continue
        rw = 0
        devs = set()
        for _, _, r, dev in active:
            rw |= r
            devs.add(dev)
        dt = tuple(sorted(devs))
        prev = merged[-1] if merged else None
        if prev and prev.end == a and prev.read == bool(rw & 1) and prev.write == bool(rw & 2) and prev.devices == dt:
            merged[-1] = PhysRange(prev.start, b, prev.read, prev.write, None, dt)
        else:
            merged.append(PhysRange(a, b, bool(rw & 1), bool(rw & 2), None, dt))
    if dmap is None:
        return merged
    return [PhysRange(x, y, r.read, r.write, d, r.devices) for r in merged for x, y, d in dmap.split(r.start, r.end)]
