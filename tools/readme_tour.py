#!/usr/bin/env python3
"""Re-run every ``$ kdumptool ...`` command shown in README.md and put its real output back.

Each fenced code block of README.md whose first line starts with ``$ kdumptool`` is re-run
from the repository root (through ``sh -c``, so ``; echo exit=$?`` works) with this
checkout's kdumptool first on PATH, and the block's body is replaced with the command and
what it printed (stdout then stderr, as a terminal shows them). ``--check`` only reports
which blocks differ (exit 1 if any), so a reviewer can see that the README's output is
the program's, not typed by hand.

    python3 tools/readme_tour.py           # rewrite README.md in place
    python3 tools/readme_tour.py --check   # exit 1 and name the blocks that changed
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
CAP = 60  # lines of one command's output shown before "..."
WIDTH = 300  # a host's own /proc/cmdline (live triage) is cut there, ending in " ..."
FENCE = re.compile(r"^```[a-z]*\n(\$ kdumptool[^\n]*)\n(.*?)^```\n", re.S | re.M)


def _shim(tmp: str) -> str:
    """A ``kdumptool`` on PATH that runs this checkout (not whatever is installed)."""
    path = os.path.join(tmp, "kdumptool")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m kdumptool "$@"\n')
    os.chmod(path, 0o755)
    return tmp


def _clip(line: str) -> str:
    if line.startswith("kdump cmdline:") and len(line) > WIDTH:  # only a live host's: the lab's fit
        return line[: WIDTH - 4] + " ..."
    return line


def run(cmd: str, bindir: str) -> str:
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               COLUMNS="200", NO_COLOR="1", KDUMPTOOL_NO_PAGER="1")
    p = subprocess.run(["sh", "-c", cmd + " 2>&1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=300)
    return p.stdout.decode("utf-8", "replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report blocks that differ")
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    a = ap.parse_args()
    text = Path(a.readme).read_text()
    changed: List[Tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bindir = _shim(tmp)

        def redo(m: re.Match[str]) -> str:
            # A block may show several commands: each "$ kdumptool" line starts a segment.
            body = m.group(1) + "\n" + m.group(2)
            parts = re.split(r"^(\$ kdumptool[^\n]*)\n", body, flags=re.M)[1:]
            out_block = []
            for head, old in zip(parts[0::2], parts[1::2]):
                cmd = head[2:]
                old_lines = old.rstrip("\n").split("\n") if old.strip() else []
                # the README elides long outputs with a last "..." line: keep the same length
                cap = len(old_lines) - 1 if old_lines and old_lines[-1] == "..." else CAP
                trail = "\n" if old.endswith("\n\n") else ""
                lines = [_clip(x) for x in run(cmd, bindir).rstrip("\n").split("\n")]
                if len(lines) > cap:
                    lines = lines[:cap] + ["..."]
                seg = "\n".join(lines) + "\n" + trail
                if seg != old:
                    changed.append((cmd, seg))
                out_block.append(f"{head}\n{seg}")
            return "```\n" + "".join(out_block) + "```\n"

        new = FENCE.sub(redo, text)
    for cmd, _ in changed:
        print(f"{'differs' if a.check else 'updated'}: $ {cmd}")
    if a.check:
        return 1 if changed else 0
    if new != text:
        Path(a.readme).write_text(new)
    print(f"{len(changed)} block(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
