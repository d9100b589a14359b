"""A sparse cut: chosen byte ranges of a large file, restored at their original offsets
into a sparse file of the original size (every other byte reads as zero).

Used for dumps too big to keep whole whose layout matters (``makedumpfile -E`` output:
makedumpfile's own ELF header, program headers, notes and page offsets; see
``tools/cut_elf_dump.py`` and fixtures/vmcore/elfd31/PROVENANCE.md). Restoring writes only
the kept bytes, so a ~120 MB dump costs a few hundred KB of disk and a few milliseconds.

The file is one gzip stream (``zcat F | head -2`` shows the header) of:

    line 1   b"kdumptool sparse cut 1\\n"
    line 2   one JSON object and b"\\n": {"size": apparent size of the file,
             "ranges": [[offset, length], ...] sorted, non-overlapping, inside size,
             "kept_sha256": sha256 of the kept bytes in order, plus free-form fields
             such as "source_sha256" and "note"}
    then     the bytes of every range in the order listed, back to back, nothing after.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

MAGIC = b"kdumptool sparse cut 1\n"
MAX_HEADER = 1 << 20


def merge_ranges(ranges: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """(offset, length) ranges sorted, with overlapping or touching ones joined."""
    out: List[List[int]] = []
    for off, n in sorted((o, n) for o, n in ranges if n > 0):
        if out and off <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], off + n - out[-1][0])
        else:
            out.append([off, n])
    return [(o, n) for o, n in out]


def write_cut(out: Path, src: Path, ranges: Sequence[Tuple[int, int]], **extra: Any) -> Dict[str, Any]:
    """Write the cut of ``src`` keeping ``ranges``; returns its header."""
    size = src.stat().st_size
    kept = merge_ranges(ranges)
    if kept and kept[-1][0] + kept[-1][1] > size:
        raise ValueError(f"{src}: range {kept[-1]} runs past the end ({size} bytes)")
    h = hashlib.sha256()
    blobs = []
    with open(src, "rb") as f:
        for off, n in kept:
            f.seek(off)
            b = f.read(n)
            h.update(b)
            blobs.append(b)
    header = {"size": size, "ranges": [list(r) for r in kept], "kept_sha256": h.hexdigest(), **extra}
    # no file name and no time in the gzip header: the same cut is the same bytes
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as g:
        g.write(MAGIC)
        g.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
        for b in blobs:
            g.write(b)
    return header


def read_header(cut: Path) -> Dict[str, Any]:
    with gzip.open(cut, "rb") as g:
        return _header(g, cut)


def _header(g: Any, cut: Path) -> Dict[str, Any]:
    if g.read(len(MAGIC)) != MAGIC:
        raise ValueError(f"{cut}: not a kdumptool sparse cut")
    line = g.readline(MAX_HEADER)
    if not line.endswith(b"\n"):
        raise ValueError(f"{cut}: header line longer than {MAX_HEADER} bytes")
    header: Dict[str, Any] = json.loads(line)
    size = header["size"]
    end = 0
    for off, n in header["ranges"]:
        if off < end or n <= 0 or off + n > size:
            raise ValueError(f"{cut}: range [{off}, {n}] out of order or past the size {size}")
        end = off + n
    return header


def restore_cut(cut: Path, out: Path) -> Dict[str, Any]:
    """Write the sparse file of ``cut`` to ``out`` (created or replaced); returns the
    header. Checks every range's length and the kept bytes' sha256."""
    h = hashlib.sha256()
    with gzip.open(cut, "rb") as g, open(out, "wb") as f:
        header = _header(g, cut)
        f.truncate(header["size"])
        for off, n in header["ranges"]:
            b = g.read(n)
            if len(b) != n:
                raise ValueError(f"{cut}: the data of range [{off}, {n}] is cut short")
            h.update(b)
            f.seek(off)
            f.write(b)
        if g.read(1):
            raise ValueError(f"{cut}: bytes after the last range")
    if h.hexdigest() != header["kept_sha256"]:
        os.unlink(out)
        raise ValueError(f"{cut}: kept bytes do not match kept_sha256")
    return header
