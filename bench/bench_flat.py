"""Benchmark: reading makedumpfile's flattened format (-F) in place vs rebuilding it first.

Input: ``makedumpfile -F -c -d 31`` (Debian kdump-tools' MAKEDUMP_ARGS) of the lab's
kdump-compressed crash in ``../shared`` (a 20 MB stream, 630 blocks), made in a temp
directory, and ``makedumpfile -R`` of it (the seekable file the usual advice needs first,
the same size again on disk).

Each measurement runs in a fresh child process under GNU time (its own CPU time and peak
RSS); the page cache is warm; the median of ``--runs`` is printed. Measured:
- indexing the stream (FlatImage: a walk of the block headers);
- ``kdumptool vmcore log`` and ``vmcore scan`` (every dumped page) of the stream vs of the
  rebuilt file;
- ``makedumpfile -R`` (what reading the stream saves) and ``makedumpfile --dump-dmesg``
  of the rebuilt file (the C reference);
- a hostile stream of ``--tiny`` one-byte blocks in reverse order (the index's worst
  case per byte of input: every block an entry, all of them sorted).

    PYTHONPATH=. python3 bench/bench_flat.py [--runs 5] [--tiny 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KDUMPTOOL_SHARED", REPO.parent / "shared"))
LAB = SHARED / "lab-captures" / "kdump" / "legacy_on" / "vmcore.d31.zlib.kdump"
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def child(cmd, stdin=None, stdout=subprocess.DEVNULL):
    """(wall s, CPU s, peak RSS MiB) of one run of cmd, from GNU time (a child's ru_maxrss
    as seen by this Python would start at this Python's own peak: Linux carries the
    high-water mark over exec)."""
    with tempfile.NamedTemporaryFile("r") as rep:
        subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", rep.name, *cmd], stdin=stdin,
                       stdout=stdout, stderr=subprocess.DEVNULL, env=ENV, check=True)
        wall, user, sys_, kib = rep.read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(kib) / 1024


def median(cmd, runs, **kw):
    res = [child(cmd, **kw) for _ in range(runs)]
    return tuple(statistics.median(r[i] for r in res) for i in range(3))


INDEX = ("import os,sys; from kdumptool.sources.flat import FlatImage; "
         "fd=os.open(sys.argv[1],os.O_RDONLY); im=FlatImage(sys.argv[1],fd); "
         "assert im.blocks > 0 and not im.truncated")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tiny", type=int, default=1_000_000)
    args = ap.parse_args()
    if not LAB.is_file() or shutil.which("makedumpfile") is None or not os.path.exists("/usr/bin/time"):
        print("needs ../shared, makedumpfile and GNU time (/usr/bin/time)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        flat, rebuilt = Path(tmp, "vmcore.flat"), Path(tmp, "vmcore")
        with open(flat, "wb") as out:
            subprocess.run(["makedumpfile", "-F", "-c", "-d", "31", str(LAB)], stdout=out,
                           stderr=subprocess.DEVNULL, check=True)
        rows = []
        with open(flat, "rb") as src:
            r = child(["makedumpfile", "-R", str(rebuilt)], stdin=src)
        rows.append(("makedumpfile -R (rebuild first)", r))
        empty = median([PY, "-c", "import kdumptool.sources.flat"], args.runs)
        rows.append(("python + import sources.flat", empty))
        rows.append(("index the stream (FlatImage)", median([PY, "-c", INDEX, str(flat)], args.runs)))
        kt = [PY, "-m", "kdumptool", "vmcore", "log"]
        rows.append(("kdumptool vmcore log STREAM", median(kt + [str(flat)], args.runs)))
        rows.append(("kdumptool vmcore log REBUILT", median(kt + [str(rebuilt)], args.runs)))
        ks = [PY, "-m", "kdumptool", "vmcore", "scan"]
        rows.append(("kdumptool vmcore scan STREAM", median(ks + [str(flat)], args.runs)))
        rows.append(("kdumptool vmcore scan REBUILT", median(ks + [str(rebuilt)], args.runs)))
        dm = Path(tmp, "dmesg")
        rows.append(("makedumpfile --dump-dmesg REBUILT",
                     median(["sh", "-c", f"rm -f {dm}; makedumpfile --dump-dmesg {rebuilt} {dm}"], args.runs)))
        sys.path.insert(0, str(REPO))
        from kdumptool.sources.flat import FlatImage

        fd = os.open(flat, os.O_RDONLY)
        t = time.process_time()
        for _ in range(20):
            blocks = FlatImage(str(flat), fd).blocks
        per_open = (time.process_time() - t) / 20
        os.close(fd)
        tiny = Path(tmp, "tiny.flat")
        with open(tiny, "wb") as out:
            head = bytearray(4096)
            struct.pack_into(">16sqq", head, 0, b"makedumpfile", 1, 1)
            out.write(head)
            rec = struct.Struct(">qqc")
            out.write(b"".join(rec.pack(i, 1, b"x") for i in range(args.tiny - 1, -1, -1)))
            out.write(struct.pack(">qq", -1, -1))
        rows.append((f"index {args.tiny:,} one-byte blocks", median([PY, "-c", INDEX, str(tiny)], max(1, args.runs // 2))))
        print(f"stream {flat.stat().st_size:,} bytes; rebuilt {rebuilt.stat().st_size:,} bytes; "
              f"tiny stream {tiny.stat().st_size:,} bytes; median of {args.runs} runs")
        print(f"index in-process: {per_open * 1000:.2f} ms CPU per open ({blocks} blocks)")
        print(f"{'':40} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}")
        for name, (w, c, m) in rows:
            print(f"{name:40} {w:8.3f} {c:8.3f} {m:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
