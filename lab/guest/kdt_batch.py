"""Run several kdumptool commands in one Python process (inside the lab guest).

Under TCG every Python start (interpreter, typer, rich) costs seconds, so guest/lib.sh
hands this script a list of commands instead of starting ``python3 -m kdumptool`` per
command. Each command still goes through kdumptool's real entry point
(``kdumptool.cli.main.main(argv)``), with file descriptors 1 and 2 sent to its own files.

Usage: python3 kdt_batch.py OUTDIR NAME='ARGS...' [NAME='ARGS...' ...]
Writes OUTDIR/NAME.out, .err, .rc (exit status, or "absent" when the command's module is
not in this tree) and appends a line per command to OUTDIR/runs.txt.
"""

from __future__ import annotations

import os
import shlex
import sys
import time


def run_one(outdir: str, name: str, argv: list) -> str:
    from kdumptool.cli import main as cli

    first = argv[0]
    if not first.startswith("-") and first not in cli.COMMAND_MODULES:
        return "absent"
    mod = os.path.join(os.path.dirname(cli.__file__), f"{first}.py")
    if not first.startswith("-") and not os.path.exists(mod):
        return "absent"
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.open(os.path.join(outdir, f"{name}.out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(os.path.join(outdir, f"{name}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    rc = 0
    try:
        cli.main(list(argv))
    except SystemExit as ex:
        rc = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    except BaseException:  # noqa: B036 - a crash of one command must not stop the others
        import traceback

        traceback.print_exc()
        rc = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (out, err, *saved):
            os.close(fd)
    return str(rc)


def main() -> int:
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for spec in sys.argv[2:]:
        name, _, args = spec.partition("=")
        argv = shlex.split(args)
        t0 = time.monotonic()
        rc = run_one(outdir, name, argv)
        took = time.monotonic() - t0
        with open(os.path.join(outdir, f"{name}.rc"), "w") as f:
            f.write(rc + "\n")
        with open(os.path.join(outdir, "runs.txt"), "a") as f:
            f.write(f"{name} rc={rc} seconds={took:.2f} cmd={args}\n")
        print(f"LAB: kdumptool {args} -> rc={rc} ({took:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
