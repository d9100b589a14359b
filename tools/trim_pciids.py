#!/usr/bin/env python3
"""Cut the system's pci.ids down to the devices a set of fixtures holds.

    python3 tools/trim_pciids.py SRC OUT DIR... [--extra vvvv:dddd ...]

Collects ``vendor:device`` pairs from sysfs copies under each DIR (``vendor`` + ``device``
files side by side) and every ``[vvvv:dddd]`` in text files there (lspci -nn output), then
writes OUT with: SRC's header comments, each used vendor's line with the used devices'
blocks (device line and all its subsystem lines), the vendor lines of every subsystem
vendor those blocks name, and the whole class section. Lines are copied verbatim.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Set, Tuple

PAIR = re.compile(rb"\[([0-9a-f]{4}):([0-9a-f]{4})\]")


def collect(dirs: list) -> Set[Tuple[int, int]]:
    pairs: Set[Tuple[int, int]] = set()
    for d in dirs:
        for p in Path(d).rglob("*"):
            if not p.is_file() or p.is_symlink():
                continue
            if p.name == "device" and (p.parent / "vendor").is_file():
                try:
                    pairs.add((int((p.parent / "vendor").read_text(), 16), int(p.read_text(), 16)))
                except ValueError:
                    pass
            elif p.stat().st_size < 4 << 20:
                for m in PAIR.finditer(p.read_bytes()):
                    pairs.add((int(m.group(1), 16), int(m.group(2), 16)))
    return pairs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--extra", nargs="*", default=[])
    a = ap.parse_args()
    pairs = collect(a.dirs)
    for e in a.extra:
        v, d = e.split(":")
        pairs.add((int(v, 16), int(d, 16)))
    vendors = {v for v, _ in pairs}
    lines = Path(a.src).read_text(encoding="utf-8").splitlines()
    # pass 1: subsystem vendors named under the used devices
    vendor = device = None
    for line in lines:
        if line.startswith("C "):
            break
        if line and not line.startswith(("#", "\t")):
            vendor, device = int(line[:4], 16), None
        elif line.startswith("\t") and not line.startswith("\t\t"):
            device = int(line[1:5], 16)
        elif line.startswith("\t\t") and (vendor, device) in pairs:
            vendors.add(int(line[2:6], 16))
    out = []
    keep = False
    vendor = None
    in_classes = False
    for line in lines:
        if line.startswith("C "):
            in_classes = True
        if in_classes or line.startswith("#") or not line:
            if not in_classes and line.startswith("#") and vendor is not None:
                continue  # comments inside the vendor list
            out.append(line)
            continue
        if not line.startswith("\t"):
            vendor = int(line[:4], 16)
            keep = False
            if vendor in vendors:
                out.append(line)
        elif not line.startswith("\t\t"):
            keep = (vendor, int(line[1:5], 16)) in pairs
            if keep:
                out.append(line)
        elif keep:
            out.append(line)
    Path(a.out).write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"{a.out}: {len(pairs)} devices of {len(vendors)} vendors, {len(out)} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
