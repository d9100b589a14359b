#!/usr/bin/env python3
"""Cold start of ``record`` and ``quiesce``, the two commands the kdump kernel runs, on a
lab snapshot (fixtures/snapshots/kdump_legacy_on): CPU time and peak RSS per run, each in
a fresh interpreter, median of --runs runs after one warm-up.

Rows: the two entry points (the typer CLI, ``python3 -m kdumptool``, as kdump-tools' and
kdump-utils' hooks run it from a venv; and ``python3 -S -m kdumptool.cli.initrd``, what the
dracut module's launcher runs), each with byte-compiled kdumptool modules and without them
(a copy of the package with no ``__pycache__`` and PYTHONDONTWRITEBYTECODE=1: what a
read-only root whose .pyc files are missing or stale pays at every start). Then where the
time of one run goes (``-X importtime`` top-level imports, and record's own timings).

Usage: python3 bench/bench_record.py [--runs N] [--python PY]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
SNAP = REPO / "fixtures" / "snapshots" / "kdump_legacy_on"


def run_once(cmd: List[str], env: Dict[str, str]) -> Tuple[float, float, int]:
    """(CPU s, wall s, peak RSS KiB) of one child, from its own rusage (os.wait4). Run from
    /: ``python -m`` puts the working directory first on sys.path, and in a checkout that
    would import its kdumptool instead of the tree under test."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1, 3, 4):
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
    return ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss


def measure(cmd_of, env: Dict[str, str], runs: int) -> Tuple[float, float, int]:
    cpu, wall, rss = [], [], []
    for i in range(runs + 1):
        c, w, r = run_once(cmd_of(i), env)
        if i:
            cpu.append(c)
            wall.append(w)
            rss.append(r)
    return statistics.median(cpu), statistics.median(wall), max(rss)


def top_imports(cmd: List[str], env: Dict[str, str], n: int = 8) -> List[str]:
    p = subprocess.run([cmd[0], "-X", "importtime"] + cmd[1:], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, cwd="/")
    rows = []
    for line in p.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit() or parts[2].startswith("   "):
            continue
        rows.append((int(parts[1]), parts[2].strip()))
    rows.sort(reverse=True)
    total = sum(us for us, _ in rows)
    return [f"{total / 1000:.0f} ms of imports in all, the largest:"] + [
        f"{us / 1000:7.1f} ms  {name}" for us, name in rows[:n]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--python", default=os.path.realpath(sys.executable))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kdt-bench-record-") as t:
        tmp = Path(t)
        trees = {"pyc": tmp / "pyc", "no pyc": tmp / "src"}
        for tree in trees.values():
            shutil.copytree(REPO / "kdumptool", tree / "kdumptool",
                            ignore=shutil.ignore_patterns("__pycache__"))
        compileall.compile_dir(str(trees["pyc"] / "kdumptool"), quiet=1)
        entries = {
            "typer CLI": [args.python, "-m", "kdumptool"],
            "initrd entry": [args.python, "-S", "-m", "kdumptool.cli.initrd"],
        }
        commands = {
            "record": lambda i: ["record", "--root", str(SNAP), "--out", str(tmp / f"rec{i}"), "-f", "text"],
            "quiesce": lambda i: ["quiesce", "--root", str(SNAP), "-f", "text"],
        }
        # -S (the initrd entry) skips site: its packages (construct) come through PYTHONPATH,
        # as the initramfs's PREFIX/site does
        site_dirs = subprocess.run([args.python, "-c", "import site; print(':'.join(site.getsitepackages()))"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "PYTHONUTF8": "1",
                    "PYTHONDONTWRITEBYTECODE": "1", "TERM": "dumb"}
        floor = measure(lambda i: [args.python, "-c", "pass"], base_env, args.runs)
        print(f"python {args.python}, {args.runs} runs each (median CPU and wall, max peak RSS), "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, snapshot {SNAP.name}")
        print(f"  {'python3 -c pass':42} cpu {floor[0] * 1000:6.0f} ms  wall {floor[1] * 1000:6.0f} ms  "
              f"rss {floor[2] / 1024:5.1f} MB")
        for cname, argv_of in commands.items():
            for ename, entry in entries.items():
                for tname, tree in trees.items():
                    env = dict(base_env, PYTHONPATH=f"{tree}:{site_dirs}")

                    def cmd(i: int, entry: List[str] = entry, argv_of=argv_of) -> List[str]:
                        shutil.rmtree(tmp / f"rec{i}", ignore_errors=True)
                        return entry + argv_of(i)

                    cpu, wall, rss = measure(cmd, env, args.runs)
                    label = f"{cname}, {ename}, {tname}"
                    print(f"  {label:42} cpu {cpu * 1000:6.0f} ms  wall {wall * 1000:6.0f} ms  "
                          f"rss {rss / 1024:5.1f} MB  ({cpu / floor[0]:.1f}x python -c pass)")
        env = dict(base_env, PYTHONPATH=f"{trees['pyc']}:{site_dirs}")
        for cname, argv_of in commands.items():
            shutil.rmtree(tmp / "rec0", ignore_errors=True)
            print(f"\n{cname} (initrd entry, pyc): " + "\n    ".join(
                top_imports(entries["initrd entry"] + argv_of(0), env)))
        shutil.rmtree(tmp / "rec0", ignore_errors=True)
        subprocess.run(entries["initrd entry"] + commands["record"](0), env=env, stdout=subprocess.DEVNULL,
                       check=False, cwd="/")
        rec = json.loads((tmp / "rec0" / "kdumptool-record.json").read_text())
        print(f"\nrecord's own timings (s): {rec.get('timings_s')}, elapsed {rec.get('elapsed_s')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
