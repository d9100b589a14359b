#!/usr/bin/env python3
"""How much work `vmcore scan`'s AMD-Vi device-table search does (analysis/amdscan.py).

1. A synthetic huge machine, in memory (no file, so the figure is the scan's own CPU):
   RAM below 4 GiB made of a pool of random pages, zero pages, pages of small integers
   and v1 page-table pages, one real device table (tests/amdvi_memory.py's layout), and
   --above GiB of RAM above 4 GiB. Prints seconds, MiB/s of pages below 4 GiB, the pages
   that passed the byte prefilter, and how many pages above 4 GiB were read (0: the
   work is bounded by the 4 GiB a device table must sit in, whatever the RAM size).
2. Each dump given on the command line (ELF or kdump-compressed), read from its file.

Usage: python3 bench/bench_amdscan.py [--low-mib N] [--above GIB] [DUMP ...]
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.analysis.amdscan import find_device_tables  # noqa: E402
from kdumptool.errors import NotMapped  # noqa: E402

TABLE = 0x0200_0000


class Synthetic:
    """Pages by physical address: pool pages chosen by a hash of the page number."""

    def __init__(self, low: int, table: Dict[int, bytes]) -> None:
        rnd = [os.urandom(4096) for _ in range(61)]
        small = [struct.pack("<512Q", *[(i * 7 + k) % 4096 for k in range(512)]) for i in range(3)]
        pte = [struct.pack("<512Q", *[(0x1000_0000 + (k << 12)) | (1 << 9) | 1 | (3 << 61) if k % 3 == 0 else 0
                                      for k in range(512)])]
        self.pool = rnd + small + pte + [bytes(4096)] * 30
        self.low = low
        self.table = table
        self.reads_above = 0

    def read(self, paddr: int, size: int) -> bytes:
        if paddr >= 1 << 32:
            self.reads_above += 1
        out = bytearray()
        p = paddr & ~0xFFF
        while p < paddr + size:
            page = self.table.get(p)
            if page is None:
                if p >= self.low and p < 1 << 32:
                    raise NotMapped(p, "not in the dump")
                page = self.pool[(p >> 12) * 2654435761 % len(self.pool)]
            out += page
            p += 4096
        return bytes(out[paddr & 0xFFF:(paddr & 0xFFF) + size])


def synthetic_table() -> Dict[int, bytes]:
    sys.path.insert(0, str(REPO))
    from tests.amdvi_memory import AmdViMemory

    m = AmdViMemory(next_free=0x0300_0000)
    m.device_table(TABLE, 0xFFFF)
    for dev in range(16):
        root = m.new_table()
        m.map(root, 3, 0x1000_0000, 0x0400_0000 + dev * 4096)
        m.attach(TABLE, 0x100 + dev * 8, root, 3, dev + 1)
    return {p << 12: bytes(b) for p, b in m.pages.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--low-mib", type=int, default=1024, help="RAM below 4 GiB scanned (MiB)")
    ap.add_argument("--above", type=int, default=256, help="RAM above 4 GiB (GiB), never read")
    ap.add_argument("dumps", nargs="*")
    a = ap.parse_args()
    low = a.low_mib << 20
    mem = Synthetic(low, synthetic_table())
    ranges: List[Tuple[int, int]] = [(0, low), (1 << 32, (1 << 32) + (a.above << 30))]
    t0 = time.perf_counter()
    res = find_device_tables(mem, ranges)
    dt = time.perf_counter() - t0
    best = res.best
    print(f"synthetic: {a.low_mib} MiB below 4 GiB + {a.above} GiB above: {dt:.2f} s, "
          f"{a.low_mib / dt:.0f} MiB/s below 4 GiB, {res.prefilter_passed} pages past the prefilter, "
          f"{res.runs} runs, reads above 4 GiB: {mem.reads_above}; best: "
          + (f"0x{best.address:x} ({best.size >> 10} KiB, {best.translated} translated)" if best else "none"))
    from kdumptool.sources.vmcore import open_dump

    for d in a.dumps:
        with open_dump(d) as dump:
            rs = list(dump.iter_dumped_ranges())
            t0 = time.perf_counter()
            r = find_device_tables(dump, rs)
            dt = time.perf_counter() - t0
            b = r.best
            size = os.path.getsize(d)
            print(f"{d}: {size >> 20} MiB file, {r.pages_scanned:,} pages below 4 GiB in {dt:.2f} s "
                  f"({r.bytes_scanned / dt / (1 << 20):.0f} MiB/s of pages, fast path {r.fast_path}); "
                  f"{r.prefilter_passed} past the prefilter; best: "
                  + (f"0x{b.address:x} ({b.size >> 10} KiB, {b.translated} translated)" if b else "none"))


if __name__ == "__main__":
    main()
