#!/usr/bin/env python3
"""Cold start of the CLI: ``kdumptool --version`` and ``kdumptool dmar`` on the largest
server DMAR table of fixtures/, each run in a fresh interpreter, many runs, median.

The kdump initramfs pays for every millisecond, so heavy modules are imported lazily;
this script also prints the biggest imports of each command (``python3 -X importtime``).

Usage: python3 bench/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
TABLES = REPO / "fixtures" / "dmar" / "tables"


def largest_server_table() -> Path:
    servers = [p for p in TABLES.glob("*.dat") if "Server" in p.name]
    return max(servers, key=lambda p: p.stat().st_size)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: List[str], runs: int, env: Dict[str, str]) -> Tuple[List[float], List[float]]:
    """Wall time and CPU time (user + sys of the child) per run, in ms. On a shared,
    loaded machine the CPU time is the steadier figure."""
    wall, cpu = [], []
    for _ in range(runs):
        c0 = _cpu()
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((_cpu() - c0) * 1000)
    return wall, cpu


def top_imports(cmd: List[str], env: Dict[str, str], n: int = 6) -> List[str]:
    p = subprocess.run([sys.executable, "-X", "importtime"] + cmd[1:], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if name.startswith("  "):  # only top-level imports (not nested)
            continue
        rows.append((int(parts[1]), name.strip()))
    total = sum(us for us, _ in rows)
    rows.sort(reverse=True)
    return [f"total {total / 1000:.1f} ms of top-level imports"] + [
        f"{us / 1000:7.1f} ms  {name}" for us, name in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    table = largest_server_table()
    base = [sys.executable, "-m", "kdumptool"]
    cases = {
        "python3 -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
        "kdumptool --version": base + ["--version"],
        "import typer (click, rich)": [sys.executable, "-c", "import typer"],
        "import typer + its pydantic coercion (typer>=0.16, per command run)": [
            sys.executable, "-c", "import typer, importlib.util as u; "
            "u.find_spec('typer._adapters') and __import__('typer._adapters')"],
        "import the dmar stack (construct, decoder, checks, text render)": [
            sys.executable, "-c", "import kdumptool.analysis.dmar_checks, kdumptool.render.dmar, "
            "kdumptool.sources.acpi"],
        f"kdumptool dmar {table.name} -f text": base + ["dmar", str(table), "-f", "text"],
        f"kdumptool dmar {table.name} -f json": base + ["dmar", str(table), "-f", "json"],
        f"kdumptool dmar {table.name} -f rich": base + ["dmar", str(table), "-f", "rich"],
    }
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, fresh interpreter per run, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for label, cmd in cases.items():
        timed(cmd, 2, env)  # warm the page cache (and .pyc files), not the interpreter
        wall, cpu = timed(cmd, args.runs, env)
        print(f"{label}\n    wall median {statistics.median(wall):6.1f} ms (min {min(wall):6.1f})"
              f"   cpu median {statistics.median(cpu):6.1f} ms (min {min(cpu):6.1f})")
    for label in ("kdumptool --version", f"kdumptool dmar {table.name} -f text"):
        print(f"\nimports of {label}:")
        for line in top_imports(cases[label], env):
            print("   ", line)


if __name__ == "__main__":
    main()
