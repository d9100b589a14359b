"""Benchmark: parse and analyse a 1-million-line kernel log, streaming from a file.

The log is built from real lines (the lab kdump log of the sm_mismatch run, repeated with
increasing timestamps), with a DMAR fault burst every ~2,000 lines, so both the fast
path (irrelevant lines) and the fault path are exercised. Prints lines/s and the peak
memory (tracemalloc peak of Python allocations, and the process max RSS).

    PYTHONPATH=. python3 bench/bench_log.py [--lines N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.analysis.log import analyse_log  # noqa: E402
from kdumptool.formats.klog import parse_log  # noqa: E402
from kdumptool.sources.kmsg import open_log_file  # noqa: E402

SEED = REPO / "fixtures" / "dmesg" / "lab" / "kdump_sm_mismatch.txt"
FAULT = ("DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x{addr:x} "
         "[fault reason 0x06] PTE Read access is not set")


def build(path: str, n: int) -> int:
    seed = []
    for ln in SEED.read_text().splitlines():
        # strip the "[ seconds]" so we can renumber
        seed.append(ln.split("] ", 1)[1] if ln.startswith("[") and "] " in ln else ln)
    faults = 0
    with open(path, "w") as fh:
        for i in range(n):
            t = i * 0.0005
            if i % 2000 == 1999:
                msg = FAULT.format(addr=0xFFFFC000 + (i & 0xFF) * 0x1000)
                faults += 1
            else:
                msg = seed[i % len(seed)]
                faults += "Request device [" in msg
            fh.write(f"[{t:12.6f}] {msg}\n")
    return faults


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--no-tracemalloc", action="store_true", help="time without tracemalloc overhead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.log")
        injected = build(path, args.lines)
        size = os.path.getsize(path)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if not args.no_tracemalloc:
            tracemalloc.start()
        t0 = time.perf_counter()
        c0 = time.process_time()
        report = analyse_log(parse_log(open_log_file(path)), max_events=10_000)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        peak = tracemalloc.get_traced_memory()[1] if not args.no_tracemalloc else None
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_faults = report.counts.get("dma_fault", 0)
    assert n_faults == injected, (n_faults, injected)
    print(f"lines: {args.lines:,} ({size / 1e6:.1f} MB), events: {sum(report.counts.values()):,}, "
          f"dma_fault: {n_faults:,} (expected {injected:,})")
    print(f"time: {dt:.2f} s wall, {cpu:.2f} s CPU; {args.lines / dt:,.0f} lines/s wall, "
          f"{args.lines / cpu:,.0f} lines/s per CPU second, {size / 1e6 / dt:.1f} MB/s"
          f"{' (under tracemalloc)' if peak is not None else ''}; load average {os.getloadavg()[0]:.1f}")
    if peak is not None:
        print(f"tracemalloc peak: {peak / 1e6:.2f} MB (events kept: {len(report.events):,}, "
              f"omitted: {report.events_omitted:,})")
    print(f"max RSS: {rss1 / 1024:.1f} MB (before parsing: {rss0 / 1024:.1f} MB)")


if __name__ == "__main__":
    main()
