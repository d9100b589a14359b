#!/usr/bin/env python3
"""Benchmark the vmcore VT-d features on the lab dumps (or any dump given).

    python3 bench/bench_vtd.py [DUMP RTADDR ...]

For each dump, in separate child processes (so peak RSS is per phase):
  cat      `cat DUMP > /dev/null` (file already in the page cache: 2nd run)
  read     every dumped page read through Dump.read in 256 KiB chunks (the decompression floor)
  scan     find_root_tables over every dumped page (what `vmcore scan` does)
  decode   walk_root_table from RTADDR + find_exposure (what `vmcore iommu/exposure` do)
the byte prefilter alone on 64 MiB of random pages, and the page-table walk on big
synthetic tables. The lab dumps are also rewritten as uncompressed ELF cores (same pages,
cached in /tmp) to measure the scan where there is nothing to inflate. Prints seconds, MB/s of dumped
(uncompressed) memory, and peak RSS (ru_maxrss) of the phase.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LAB = REPO.parent / "shared" / "lab-captures"
if not LAB.is_dir():
    LAB = Path("/work/shared/lab-captures")


def phase(name: str, path: str, rtaddr: int) -> dict:
    from kdumptool.sources.vmcore import open_dump

    t0 = time.perf_counter()
    out: dict = {}
    with open_dump(path) as dump:
        ranges = list(dump.iter_dumped_ranges())
        out["dumped_bytes"] = sum(e - s for s, e in ranges)
        if name == "read":
            for s, e in ranges:
                p = s
                while p < e:
                    n = min(256 << 10, e - p)
                    dump.read(p, n)
                    p += n
        elif name == "scan":
            from kdumptool.analysis.rtscan import find_root_tables

            res = find_root_tables(dump, ranges)
            out["prefilter_passed"] = res.prefilter_passed
            out["best"] = hex(res.best.address) if res.best else None
        elif name == "decode":
            from kdumptool.analysis.exposure import find_exposure
            from kdumptool.analysis.vtd_walk import walk_root_table
            from kdumptool.formats.vtd_tables import decode_rtaddr

            rt = decode_rtaddr(rtaddr)
            t = walk_root_table(dump, rt.address, rt.mode)
            find_exposure(t, ranges)
            out["devices"] = len(t.devices)
            out["table_pages"] = len(t.pages_read)
            out["mapped_pages"] = sum(w.mapped_4k_pages + w.mapped_large_pages for w in t.domains)
    out["seconds"] = time.perf_counter() - t0
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def child(name: str, path: str, rtaddr: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--phase", name, path, hex(rtaddr)], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout)


def cat_seconds(path: str) -> float:
    for _ in range(2):
        t0 = time.perf_counter()
        with open(path, "rb") as f, open(os.devnull, "wb") as null:
            subprocess.run(["cat"], stdin=f, stdout=null, check=True)
        dt = time.perf_counter() - t0
    return dt


def prefilter_rate() -> float:
    from kdumptool.analysis.rtscan import prefilter

    data = os.urandom(64 << 20)
    t0 = time.perf_counter()
    for i in range(0, len(data), 4096):
        prefilter(data[i : i + 4096])
    return (len(data) / (1 << 20)) / (time.perf_counter() - t0)


def synthetic_walks() -> None:
    """Walk time of big in-memory page tables: 4 GiB mapped with 4 KiB pages, linear
    (identity-style) and scattered (every page elsewhere), and 64 GiB of 2 MiB pages."""
    import random

    from kdumptool.analysis.vtd_walk import walk_page_table
    from tests.vtd_memory import PageTable, VtdMemory

    for name, n, size, scatter in (("4 GiB linear 4K", 1 << 20, 4096, False),
                                   ("4 GiB scattered 4K", 1 << 20, 4096, True),
                                   ("64 GiB of 2M", 1 << 15, 2 << 20, False)):
        mem = VtdMemory(base=1 << 40)
        pt = PageTable(mem, 4)
        rnd = random.Random(1)
        for i in range(n):
            phys = (rnd.randrange(1 << 24) * 4096) if scatter else i * size
            pt.map(i * size, phys & ~(size - 1), size)
        t0 = time.perf_counter()
        w = walk_page_table(mem, pt.root, 4)
        dt = time.perf_counter() - t0
        print(f"  {name:<20} {n:>8} leaves, {w.table_pages:>5} table pages, {len(w.extents):>8} extents: "
              f"{dt:.3f} s ({n / dt / 1e6:.2f} M leaves/s)")


def make_elf(src: str) -> str:
    """The same dumped pages as ``src`` written as an ELF core (uncompressed), cached in /tmp."""
    from kdumptool.sources.vmcore import open_dump
    from tests.dumpwriter import DumpSpec, write_elf

    out = f"/tmp/kdt_bench_{Path(src).parent.name}.elf"
    if os.path.exists(out):
        return out
    pages = {}
    with open_dump(src) as dump:
        for s, e in dump.iter_dumped_ranges():
            for p in range(s, e, 4096):
                pages[p // 4096] = dump.read(p, 4096)
        vmcoreinfo = dump.vmcoreinfo.raw.encode() if isinstance(dump.vmcoreinfo.raw, str) else b""
    Path(out).write_bytes(write_elf(DumpSpec(pages=pages, vmcoreinfo=vmcoreinfo)))
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--make-elf":
        print(make_elf(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        print(json.dumps(phase(sys.argv[2], sys.argv[3], int(sys.argv[4], 16))))
        return
    args = sys.argv[1:]
    dumps = [(args[i], int(args[i + 1], 16)) for i in range(0, len(args), 2)] or [
        (str(LAB / "kdump/legacy_on/vmcore.d31.zlib.kdump"), 0x25D5000),
        (str(LAB / "kdump/sm_mismatch_vmcore/vmcore.d31.zlib.kdump"), 0x2411400),
    ]
    print(f"prefilter alone on random pages: {prefilter_rate():.0f} MiB/s")
    if not args:  # the lab dumps again, as uncompressed ELF cores (scan without inflating)
        elfs = []
        for p, r in dumps:  # written by a child: this process's peak RSS is inherited by the phases
            out = subprocess.run([sys.executable, __file__, "--make-elf", p], capture_output=True, text=True,
                                 check=True).stdout.strip()
            elfs.append((out, r))
        dumps += elfs
    for path, rtaddr in dumps:
        size = os.path.getsize(path)
        print(f"\n{path} ({size / 1e6:.1f} MB file)")
        cat = cat_seconds(path)
        print(f"  cat > /dev/null        {cat:8.3f} s   {size / 1e6 / cat:8.0f} MB/s of file")
        for name in ("read", "scan", "decode"):
            r = child(name, path, rtaddr)
            mb = r["dumped_bytes"] / 1e6
            extra = {k: v for k, v in r.items() if k not in ("seconds", "maxrss_mib", "dumped_bytes")}
            print(f"  {name:<22} {r['seconds']:8.3f} s   {mb / r['seconds']:8.0f} MB/s of dumped memory   "
                  f"peak RSS {r['maxrss_mib']:.0f} MiB  {extra if extra else ''}")
    # last: the synthetic tables grow this process, and children inherit ru_maxrss
    print("\npage-table walk on synthetic tables (in memory):")
    synthetic_walks()


if __name__ == "__main__":
    main()
