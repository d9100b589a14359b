#!/usr/bin/env python3
"""What the kdumptool dracut module costs: bytes added to a real dracut-built initramfs,
and the time of ``record`` / ``quiesce --plan`` with the staged (initramfs) runtime.

    python3 bench/bench_initramfs.py [--kver KVER --kmoddir DIR] [--python PY]

Builds two initramfs images with the installed dracut from the same module list, without
and with 99kdumptool (``--no-kernel`` unless a kernel modules dir is given), and prints
their zstd-compressed and unpacked sizes. Then stages the runtime alone (as
module-setup.sh does) and times the commands from it on a lab snapshot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_MODULES = "bash systemd systemd-initrd systemd-udevd udev-rules base"


def dracut_tree(tmp: Path) -> Path:
    """A private dracutbasedir: the system's modules plus ours."""
    sysd = Path("/usr/lib/dracut")
    base = tmp / "dracut"
    base.mkdir()
    for e in sysd.iterdir():
        if e.name != "modules.d":
            os.symlink(e, base / e.name)
    (base / "modules.d").mkdir()
    for m in (sysd / "modules.d").iterdir():
        os.symlink(m, base / "modules.d" / m.name)
    os.symlink(REPO / "dracut/99kdumptool", base / "modules.d/99kdumptool")
    return base


def unpacked_size(img: Path) -> int:
    out = subprocess.run(["sh", "-c", f"zstd -dc '{img}' | wc -c"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def build(base: Path, modules: str, out: Path, args: argparse.Namespace) -> float:
    kernel = ["--kver", args.kver, "--kmoddir", args.kmoddir] if args.kmoddir else ["--no-kernel"]
    env = dict(os.environ, dracutbasedir=str(base), KDUMPTOOL_SRC=str(REPO), KDUMPTOOL_PYTHON=args.python)
    t0 = time.monotonic()
    subprocess.run(
        ["dracut", "--force", "--quiet", "--no-hostonly", "--no-hostonly-cmdline", "--no-early-microcode",
         "--compress", "zstd", *kernel, "-m", modules, str(out)],
        env=env, check=True, capture_output=True,
    )
    return time.monotonic() - t0


def time_cmd(cmd: list, env: dict, n: int) -> float:
    runs = []
    for _ in range(n):
        t0 = time.monotonic()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        runs.append(time.monotonic() - t0)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kver", default=None)
    ap.add_argument("--kmoddir", default=None)
    ap.add_argument("--python", default=os.path.realpath(sys.executable))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("dracut") is None:
        print("dracut is not installed (apt-get install dracut-core)", file=sys.stderr)
        return 1
    snap = REPO / "fixtures/snapshots/kdump_legacy_on"
    with tempfile.TemporaryDirectory(prefix="kdt-bench-") as t:
        tmp = Path(t)
        base = dracut_tree(tmp)
        a, b = tmp / "without.img", tmp / "with.img"
        ta = build(base, BASE_MODULES, a, args)
        tb = build(base, BASE_MODULES + " kdumptool", b, args)
        sa, sb = a.stat().st_size, b.stat().st_size
        ua, ub = unpacked_size(a), unpacked_size(b)
        print(f"dracut {BASE_MODULES!r} ({'kernel ' + args.kver if args.kver else '--no-kernel'}):")
        print(f"  without kdumptool: {sa:>11,} bytes zstd, {ua:>11,} unpacked, built in {ta:.1f} s")
        print(f"  with kdumptool:    {sb:>11,} bytes zstd, {ub:>11,} unpacked, built in {tb:.1f} s")
        print(f"  added:             {sb - sa:>11,} bytes zstd, {ub - ua:>11,} unpacked")

        initdir = tmp / "initdir"
        initdir.mkdir()
        subprocess.run([args.python, str(REPO / "dracut/99kdumptool/kdumptool-stage.py"), "--initdir", str(initdir),
                        "--path", str(REPO), "--copy-elf", "--python", args.python],
                       check=True, capture_output=True)
        prefix = initdir / "usr/lib/kdumptool"
        env = {"PYTHONHOME": str(prefix), "PYTHONPATH": str(prefix / "site"), "PYTHONUTF8": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
        run = [args.python, "-S", "-m", "kdumptool.cli.initrd"]
        t_ver = time_cmd(run + ["--version"], env, args.runs)
        t_plan = time_cmd(run + ["quiesce", "--plan", "--root", str(snap)], env, args.runs)
        t_rec = time_cmd(run + ["record", "--root", str(snap), "--out", str(tmp / "rec"), "--force"], env, args.runs)
        rec_bytes = sum(f.stat().st_size for f in (tmp / "rec").iterdir())
        print(f"staged runtime (median of {args.runs}, host CPU, snapshot kdump_legacy_on):")
        print(f"  --version {t_ver * 1000:.0f} ms, quiesce --plan {t_plan * 1000:.0f} ms, "
              f"record {t_rec * 1000:.0f} ms ({rec_bytes:,} bytes written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
