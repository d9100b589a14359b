#!/usr/bin/env python3
"""The three start-up/throughput ratios of issue 13, measured side by side in one run:

  dmar   `kdumptool dmar` on the largest server DMAR table  vs  `python -c pass`   (goal <= 8x)
  log    `kdumptool vmcore log` on a lab dump               vs  `makedumpfile --dump-dmesg`
                                                                 on the same dump (goal <= 10x)
  scan   `kdumptool vmcore scan` of a raw ELF vmcore        vs  `cat` of the file, in the
                                                                 page cache (goal <= 6x)

CPU time (user + sys of the child, from getrusage), median of --runs runs after one
warm-up, each in a fresh process: on a machine shared with other work CPU time is the
steady figure, wall time is printed too. kdumptool is the installed command (default: the
`kdumptool` beside this interpreter, i.e. a venv's, else the one on PATH), and
`python -c pass` uses the interpreter that command runs with.

The dumps: the lab's full zlib dump from ../shared/lab-captures when present (and the
raw ELF written from its pages, cached in /tmp), else the trimmed fixtures.

Usage: python3 bench/bench_ratios.py [--runs N] [--kdumptool PATH]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "lab-captures"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/lab-captures")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(cmd: Union[List[str], Callable[[int], List[str]]], runs: int,
            stdin: Optional[Path] = None) -> Tuple[float, float]:
    """(median CPU s, median wall s) of ``cmd`` (or ``cmd(i)`` for run i) over ``runs``
    runs after a warm-up."""
    cpu, wall = [], []
    for i in range(runs + 1):
        argv = cmd(i) if callable(cmd) else cmd
        f = open(stdin, "rb") if stdin else subprocess.DEVNULL
        try:
            c0, t0 = _cpu(), time.perf_counter()
            subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            w, c = time.perf_counter() - t0, _cpu() - c0
        finally:
            if stdin:
                f.close()  # type: ignore[union-attr]
        if i:
            cpu.append(c)
            wall.append(w)
    return statistics.median(cpu), statistics.median(wall)


def the_kdumptool(given: Optional[str]) -> Tuple[str, str]:
    """(kdumptool command, the python it runs with)."""
    cands = [given] if given else [str(Path(sys.executable).parent / "kdumptool"),
                                   "/opt/kdumptool/venv/bin/kdumptool", shutil.which("kdumptool")]
    for c in cands:
        if c and Path(c).is_file():
            first = Path(c).read_bytes()[:200].split(b"\n")[0]
            py = first[2:].decode().strip() if first.startswith(b"#!") else sys.executable
            return c, py
    raise SystemExit("bench_ratios: no installed kdumptool found (run ./install.sh, or --kdumptool PATH)")


def raw_elf(src: Path) -> Path:
    """The dumped pages of ``src`` as an uncompressed ELF core (cached in /tmp)."""
    out = Path(tempfile.gettempdir()) / f"kdt_bench_ratios_{src.parent.name}.elf"
    if out.is_file() and out.stat().st_mtime > src.stat().st_mtime:
        return out
    sys.path.insert(0, str(REPO))
    from kdumptool.sources.vmcore import open_dump
    from tests.dumpwriter import DumpSpec, write_elf

    with open_dump(str(src)) as d:
        ps = d.page_size
        pages = {a // ps: d.read(a, ps) for s, e in d.iter_dumped_ranges() for a in range(s, e, ps)}
        spec = DumpSpec(pages=pages, vmcoreinfo=d.vmcoreinfo.raw.encode(),
                        prstatus=[(p.pid, dict(p.registers)) for p in d.prstatus],
                        max_mapnr=d.max_mapnr)
    out.write_bytes(write_elf(spec))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--kdumptool")
    a = ap.parse_args()
    kt, py = the_kdumptool(a.kdumptool)
    table = max((p for p in (REPO / "fixtures/dmar/tables").glob("*.dat") if "Server" in p.name),
                key=lambda p: p.stat().st_size)
    full = SHARED / "kdump" / "legacy_on" / "vmcore.d31.zlib.kdump"
    dump = full if full.is_file() else REPO / "fixtures/vmcore/legacy_on.trim.kdump"
    elf = raw_elf(full) if full.is_file() else REPO / "fixtures/vmcore/vtd/legacy_on.trim.elf"
    mdf = shutil.which("makedumpfile")
    tmp = Path(tempfile.mkdtemp(prefix="kdt_bench_"))
    print(f"kdumptool: {kt} (python {py})")
    print(f"dmar table: {table.name} ({table.stat().st_size} bytes)")
    print(f"lab dump: {dump} ({dump.stat().st_size / 1e6:.1f} MB)")
    print(f"raw ELF: {elf} ({elf.stat().st_size / 1e6:.1f} MB)")
    print(f"CPU s (user+sys), median of {a.runs} after a warm-up; wall s in brackets\n")
    rows = []
    k = measure([kt, "dmar", str(table), "-f", "text"], a.runs)
    b = measure([py, "-c", "pass"], a.runs)
    rows.append(("kdumptool dmar (largest server table)", k, "python -c pass", b, 8))
    if mdf:
        k = measure([kt, "vmcore", "log", str(dump), "-f", "text"], a.runs)
        # makedumpfile will not overwrite its output: a new file each run
        b = measure(lambda i: [mdf, "--dump-dmesg", str(dump), str(tmp / f"dmesg{i}.txt")], a.runs)
        rows.append(("kdumptool vmcore log (lab dump)", k, "makedumpfile --dump-dmesg", b, 10))
    else:
        print("makedumpfile not installed: the vmcore log ratio is not measured")
    subprocess.run(["cat", str(elf)], stdout=subprocess.DEVNULL, check=True)  # into the page cache
    k = measure([kt, "vmcore", "scan", str(elf), "-f", "text"], a.runs)
    b = measure(["cat"], a.runs, stdin=elf)
    rows.append(("kdumptool vmcore scan (raw ELF)", k, "cat ELF > /dev/null", b, 6))
    print(f"{'command':40} {'CPU s':>14} {'baseline':28} {'CPU s':>14} {'ratio':>6} {'goal':>5}")
    for name, (kc, kw), bname, (bc, bw), goal in rows:
        ratio = kc / bc if bc > 0 else float("inf")
        print(f"{name:40} {kc:6.3f} [{kw:5.3f}] {bname:28} {bc:6.3f} [{bw:5.3f}] {ratio:5.1f}x "
              f"{'<=' if ratio <= goal else '> '}{goal}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
