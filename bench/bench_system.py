#!/usr/bin/env python3
"""Timings of the system picture: config-space decoding, lspci dump parsing, the model of
a lab snapshot and of this host, and a collect into a temporary archive.

    PYTHONPATH=. python3 bench/bench_system.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.formats.lspci_dump import parse_lspci_dump  # noqa: E402
from kdumptool.formats.pciconfig import parse_pci_config  # noqa: E402
from kdumptool.sources.root import Root  # noqa: E402
from kdumptool.sources.snapshot import collect  # noqa: E402
from kdumptool.sources.system import read_system  # noqa: E402

SNAP = REPO / "fixtures" / "snapshots"


def timed(label: str, fn, n: int) -> None:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    dt = (time.perf_counter() - t) / n
    print(f"{label}: {dt * 1e3:.2f} ms (mean of {n})")


def main() -> None:
    text = (SNAP / "live_legacy_on" / "_kdumptool" / "lspci_xxxx.txt").read_text()
    dumps = parse_lspci_dump(text)
    timed(f"parse_lspci_dump ({len(dumps)} devices, {len(text)} chars)", lambda: parse_lspci_dump(text), 50)
    data = [d.data for d in dumps]
    timed(f"parse_pci_config x{len(data)} (lab devices, 256/4096 bytes)", lambda: [parse_pci_config(b) for b in data], 200)
    timed("read_system(lab snapshot live_legacy_on)", lambda: read_system(SNAP / "live_legacy_on"), 20)
    timed("read_system(/) via pyudev, no registers", lambda: read_system("/", read_registers=False), 5)
    timed("read_system(/) via files, no registers", lambda: read_system(Root("/"), use_udev=False, read_registers=False), 5)
    with tempfile.TemporaryDirectory() as tmp:
        timed("collect(lab snapshot -> .tar.gz)", lambda: collect(Path(tmp) / "s.tar.gz", Root(SNAP / "live_legacy_on"), run_lspci=False), 3)
        timed("collect(live host -> .tar.gz, no lspci)", lambda: collect(Path(tmp) / "l.tar.gz", run_lspci=False), 3)
        print(f"live snapshot size: {(Path(tmp) / 'l.tar.gz').stat().st_size} bytes")


if __name__ == "__main__":
    main()
