"""``lab/run``: fetch the ingredients, build the initramfs, run named scenarios serially."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import List, Optional

from . import ingredients
from .runner import OUT, run_scenario
from .scenarios import all_scenarios, run_key, split_key


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
    ap.add_argument("scenarios", nargs="*", help="scenarios to run (default: all), NAME or "
                    f"NAME@KERNEL: {', '.join(scen)}")
    ap.add_argument("--kernel", default=os.environ.get("LAB_KERNEL", ingredients.DEFAULT_KERNEL),
                    choices=list(ingredients.KERNELS),
                    help="kernel series for names without @KERNEL (default: $LAB_KERNEL or "
                    f"{ingredients.DEFAULT_KERNEL})")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--prepare-only", action="store_true", help="fetch and unpack, boot nothing")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per QEMU run")
    ap.add_argument("--rebuild-tree", action="store_true", help="unpack the sysroot again")
    args = ap.parse_args(argv)
    if args.list:
        for s in scen.values():
            print(f"{s.name:14} {s.description} [{s.source}{', opt-in' if s.opt_in else ''}]")
        return 0
    default = [n for n, s in scen.items() if not s.opt_in]
    keys = [k if "@" in k else run_key(k, args.kernel) for k in (args.scenarios or default)]
    bad = [k for k in keys if split_key(k)[0] not in scen or split_key(k)[1] not in ingredients.KERNELS]
    if bad:
        ap.error(f"unknown scenario(s) {', '.join(bad)}; known: {', '.join(scen)}; "
                 f"kernels: {', '.join(ingredients.KERNELS)}")
    t0 = time.monotonic()
    qemu = ingredients.ensure_qemu()
    series_list = list(dict.fromkeys(split_key(k)[1] for k in keys)) if args.scenarios else [args.kernel]
    facts_of = {}
    for i, series in enumerate(series_list):
        facts_of[series] = ingredients.prepare_tree(force=args.rebuild_tree and i == 0, series=series)
    compile_tree()
    ingredients.log(f"ingredients ready in {time.monotonic() - t0:.1f}s "
                    f"(kernels {', '.join(f['kver'] for f in facts_of.values())}, {qemu})")
    if args.prepare_only:
        return 0
    failed = []
    names = keys
    for n in keys:
        name, series = split_key(n)
        res = run_scenario(scen[name], facts_of[series], qemu, args.timeout, key=n)
        if not (res["live_ok"] and res["kdump_ok"]) or res["timed_out"]:
            failed.append(n)
    summary = {n: json.loads((OUT / n / "result.json").read_text())["wall_s"] for n in names}
    ingredients.log(f"done in {time.monotonic() - t0:.1f}s: {summary}"
                    + (f"; incomplete: {failed}" if failed else ""))
    return 1 if failed else 0
