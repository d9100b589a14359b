"""``lab/run``: fetch the ingredients, build the initramfs, run named scenarios serially."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from typing import List, Optional

from . import ingredients
from .runner import OUT, run_scenario
from .scenarios import all_scenarios


def compile_tree() -> None:
    """Byte-compile the guest's stdlib and site-packages on the host once: under TCG,
    compiling them at every guest start would cost seconds per kdumptool call."""
    stamp = ingredients.CACHE / "pyc.stamp"
    tree_stamp = ingredients.CACHE / "tree.stamp"
    if stamp.exists() and tree_stamp.exists() and stamp.read_text() == tree_stamp.read_text():
        return
    t0 = time.monotonic()
    for d in ("usr/lib/python3.11", "opt/lab-site"):
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "2", "-x",
                        r"(test|tests|idlelib|lib2to3|tkinter)/",
                        str(ingredients.TREE / d)], stdout=subprocess.DEVNULL, check=False)
    stamp.write_text(tree_stamp.read_text())
    ingredients.log(f"byte-compiled the guest Python in {time.monotonic() - t0:.1f}s")


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"lab: terminated by signal {signum}")


def main(argv: Optional[List[str]] = None) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return _main(argv)
    except subprocess.CalledProcessError as err:
        cmd = " ".join(str(c) for c in err.cmd)
        print(f"lab: command failed (rc={err.returncode}): {cmd[:300]}", file=sys.stderr)
        return 2


def _main(argv: Optional[List[str]] = None) -> int:
    scen = all_scenarios()
    ap = argparse.ArgumentParser(prog="lab/run", description=__doc__)
    ap.add_argument("scenarios", nargs="*", help=f"scenarios to run (default: all): {', '.join(scen)}")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--prepare-only", action="store_true", help="fetch and unpack, boot nothing")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per QEMU run")
    ap.add_argument("--rebuild-tree", action="store_true", help="unpack the sysroot again")
    args = ap.parse_args(argv)
    if args.list:
        for s in scen.values():
            print(f"{s.name:14} {s.description} [{s.source}]")
        return 0
    names = args.scenarios or list(scen)
    bad = [n for n in names if n not in scen]
    if bad:
        ap.error(f"unknown scenario(s) {', '.join(bad)}; known: {', '.join(scen)}")
    t0 = time.monotonic()
    qemu = ingredients.ensure_qemu()
    facts = ingredients.prepare_tree(force=args.rebuild_tree)
    compile_tree()
    ingredients.log(f"ingredients ready in {time.monotonic() - t0:.1f}s "
                    f"(kernel {facts['kver']}, {qemu})")
    if args.prepare_only:
        return 0
    failed = []
    for n in names:
        res = run_scenario(scen[n], facts, qemu, args.timeout)
        if not (res["live_ok"] and res["kdump_ok"]) or res["timed_out"]:
            failed.append(n)
    summary = {n: json.loads((OUT / n / "result.json").read_text())["wall_s"] for n in names}
    ingredients.log(f"done in {time.monotonic() - t0:.1f}s: {summary}"
                    + (f"; incomplete: {failed}" if failed else ""))
    return 1 if failed else 0
