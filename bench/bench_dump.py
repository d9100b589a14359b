"""Benchmark: the dump reader on the real lab crash (860 MB of RAM image).

Inputs (built once into a temp directory unless --keep DIR names one):
- the lab's kdump-compressed zlib dump (``../shared``; 20 MB file, 29,070 dumped pages);
- an ELF64 core of the whole RAM image laid out like the 859 MB ``/proc/vmcore`` it came
  from (1 PT_NOTE, a kernel-text PT_LOAD aliasing RAM, one PT_LOAD per RAM run; filtered
  pages as zeros), streamed from the kdump dump (never held in memory);
- with ``makedumpfile`` installed, its LZO dump of that ELF (``-l -d 31``).

Each measurement runs in a fresh child process, so its peak RSS (``ru_maxrss``) is its
own: open + kernel log; N random 8-byte reads at random dumped pages; a sequential read
of every dumped byte (compare: ``cat FILE > /dev/null``). Page cache is warm. Wall and
CPU time are both printed: on a shared machine the CPU time is the stable figure.

    PYTHONPATH=. python3 bench/bench_dump.py [--reads 20000] [--keep /tmp/kdt-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("KDUMPTOOL_SHARED", REPO.parent / "shared"))
LAB = SHARED / "lab-captures" / "kdump" / "legacy_on" / "vmcore.d31.zlib.kdump"


def kernel_image(iomem: Path):
    """[start, end) physical of the kernel image (Kernel code .. Kernel bss) in iomem."""
    lo = hi = None
    for line in iomem.read_text().splitlines():
        rng, _, name = line.strip().partition(" : ")
        if name in ("Kernel code", "Kernel bss"):
            a, b = (int(x, 16) for x in rng.split("-"))
            lo = a if name == "Kernel code" else lo
            hi = b + 1 if name == "Kernel bss" else hi
    return lo, hi


def write_full_elf(src: str, out: str) -> int:
    """Stream an ELF core laid out like the lab's /proc/vmcore: a kernel-text PT_LOAD
    (from the live iomem's Kernel code .. bss), then every RAM page of ``src`` (filtered
    pages as zeros), one PT_LOAD per RAM run."""
    from kdumptool.sources.vmcore import KdumpDump, open_dump
    from tests.dumpwriter import DumpSpec, build_notes

    with open_dump(src) as dump:
        assert isinstance(dump, KdumpDump)
        ps = dump.page_size
        runs = [[s // ps, e // ps] for s, e in dump.iter_ram_ranges()]
        notes, _ = build_notes(DumpSpec(pages={}, vmcoreinfo=dump.vmcoreinfo.raw.encode(),
                                        prstatus=[(p.pid, dict(p.registers))
                                                  for p in dump.prstatus]))
        lo, hi = kernel_image(SHARED / "lab-captures" / "live" / "legacy_on" / "iomem.txt")
        stext = dump.vmcoreinfo.symbol("_stext")
        assert lo is not None and hi is not None and stext is not None
        assert dump.virt_to_phys(stext) == lo, "SYMBOL(_stext) is not the Kernel code start"
        phnum = 2 + len(runs)
        off = 64 + 56 * phnum + len(notes)
        off += -off % ps
        with open(out, "wb") as f:
            ehdr = bytearray(64)
            ehdr[0:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
            struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum,
                             0, 0, 0)
            f.write(ehdr)
            f.write(struct.pack("<IIQQQQQQ", 4, 0, 64 + 56 * phnum, 0, 0, len(notes),
                                len(notes), 4))
            data_off = off
            f.write(struct.pack("<IIQQQQQQ", 1, 7, data_off, stext, lo, hi - lo, hi - lo, ps))
            data_off += hi - lo
            for s, e in runs:
                size = (e - s) * ps
                f.write(struct.pack("<IIQQQQQQ", 1, 7, data_off, 0xFFFF888000000000 + s * ps,
                                    s * ps, size, size, ps))
                data_off += size
            f.write(notes)
            f.write(b"\0" * (off - f.tell()))
            zero = bytes(ps)
            for pfn in range(lo // ps, hi // ps):
                f.write(dump.read(pfn * ps, ps) if dump.is_dumped(pfn * ps) else zero)
            for s, e in runs:
                for pfn in range(s, e):
                    f.write(dump.read(pfn * ps, ps) if dump.is_dumped(pfn * ps) else zero)
        return phnum - 1


CHILD = r"""
import json, random, resource, sys, time
sys.path.insert(0, sys.argv[1])
mode, path, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from kdumptool.sources.vmcore import open_dump
from kdumptool.formats.printk import decode_printk
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
out = {}
with open_dump(path) as d:
    out["open_s"] = time.perf_counter() - t0
    if mode == "log":
        t = time.perf_counter()
        log = decode_printk(d.vmcoreinfo, d.read_virt)
        out["log_s"] = time.perf_counter() - t
        out["records"] = len(log.records)
    elif mode == "ranges":
        t = time.perf_counter()
        rs = list(d.iter_dumped_ranges())
        out.update(ranges=len(rs), ranges_s=time.perf_counter() - t,
                   pages=sum(e - s for s, e in rs) // d.page_size)
    elif mode == "random":
        ps = d.page_size
        pages = [a for s, e in d.iter_dumped_ranges() for a in range(s, e, ps)]
        rng = random.Random(1)
        picks = [rng.choice(pages) + rng.randrange(ps - 8) for _ in range(n)]
        t, c = time.perf_counter(), time.process_time()
        for a in picks:
            d.read(a, 8)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        out.update(reads=n, reads_per_s=n / dt, reads_per_cpu_s=n / dc, pages_read=d.stats["pages_read"],
                   cache_hits=d.stats["cache_hits"])
    else:
        t, c = time.perf_counter(), time.process_time()
        total = 0
        for s, e in d.iter_dumped_ranges():
            a = s
            while a < e:
                k = min(1 << 20, e - a)
                total += len(d.read(a, k))
                a += k
        dt, dc = time.perf_counter() - t, time.process_time() - c
        out.update(bytes=total, seconds=dt, cpu_seconds=dc, mb_per_s=total / dt / 1e6)
    out["file_bytes_read"] = d.stats["bytes_read"]
out["rss_python_kb"] = rss1
out["rss_peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def child(mode: str, path: str, n: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(REPO), mode, path, str(n)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def cat_seconds(path: str) -> float:
    t = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--keep", help="directory for the built dumps (kept between runs)")
    a = ap.parse_args()
    if not LAB.exists():
        sys.exit(f"bench_dump: {LAB} not found (needs ../shared)")
    work = Path(a.keep or tempfile.mkdtemp(prefix="kdt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    elf = work / "legacy_on.full.elf"
    if not elf.exists():
        t = time.perf_counter()
        nseg = write_full_elf(str(LAB), str(elf))
        print(f"built {elf} ({elf.stat().st_size:,} bytes, {nseg} PT_LOAD) in "
              f"{time.perf_counter() - t:.1f} s")
    inputs = [("kdump zlib (lab, makedumpfile -c)", str(LAB)), ("ELF full RAM image", str(elf))]
    lzo = work / "legacy_on.lzo.kdump"
    if shutil.which("makedumpfile"):
        if not lzo.exists():
            subprocess.run(["makedumpfile", "-l", "-d", "31", str(elf), str(lzo)],
                           capture_output=True, check=True)
        inputs.append(("kdump lzo (makedumpfile -l)", str(lzo)))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; page cache warm")
    for name, path in inputs:
        size = os.path.getsize(path)
        print(f"\n{name}: {path} ({size / 1e6:.1f} MB)")
        lg = child("log", path, 0)
        print(f"  open {lg['open_s'] * 1e3:.1f} ms; kernel log {lg['records']} records in "
              f"{lg['log_s'] * 1e3:.1f} ms, {lg['file_bytes_read'] / 1e3:.0f} kB read; "
              f"peak RSS {lg['rss_peak_kb'] / 1024:.1f} MiB "
              f"(python+imports {lg['rss_python_kb'] / 1024:.1f} MiB)")
        rd = child("random", path, a.reads)
        print(f"  random 8-byte reads: {rd['reads_per_s']:,.0f}/s wall, "
              f"{rd['reads_per_cpu_s']:,.0f}/CPU-s over {rd['reads']:,} reads "
              f"({rd['pages_read']:,} pages read+decompressed, {rd['cache_hits']:,} cache hits); "
              f"peak RSS {rd['rss_peak_kb'] / 1024:.1f} MiB")
        sq = child("seq", path, 0)
        cat = cat_seconds(path)
        print(f"  sequential read of every dumped byte: {sq['bytes'] / 1e6:.0f} MB in "
              f"{sq['seconds']:.2f} s wall ({sq['cpu_seconds']:.2f} CPU-s) = "
              f"{sq['mb_per_s']:.0f} MB/s; "
              f"cat of the file: {cat:.2f} s; peak RSS {sq['rss_peak_kb'] / 1024:.1f} MiB")
    # Scale: a 1 TiB machine (2^28 pages, 32 MiB per bitmap), 4,096 pages dumped.
    tib = work / "tib.kdump"
    if not tib.exists():
        from tests.dumpwriter import DumpSpec as Spec
        from tests.dumpwriter import write_kdump

        pages = {p: bytes([p >> 16 & 0xFF]) * 4096 for p in range(0, 1 << 28, 1 << 16)}
        tib.write_bytes(write_kdump(Spec(pages=pages, max_mapnr=1 << 28), "zlib"))
    rg = child("ranges", str(tib), 0)
    rd = child("random", str(tib), 2000)
    print(f"\nkdump of a 1 TiB machine (synthetic, 2^28 pfns, {rg['pages']:,} dumped; "
          f"{tib.stat().st_size / 1e6:.0f} MB file of which 64 MiB bitmaps): open "
          f"{rg['open_s'] * 1e3:.0f} ms, dumped ranges listed in {rg['ranges_s'] * 1e3:.0f} ms; "
          f"random reads {rd['reads_per_s']:,.0f}/s; peak RSS {rd['rss_peak_kb'] / 1024:.1f} MiB "
          f"(python+imports {rd['rss_python_kb'] / 1024:.1f} MiB)")
    print(f"\nmax RSS of this parent process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    if not a.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
