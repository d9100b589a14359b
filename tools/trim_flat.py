#!/usr/bin/env python3
"""Cut a real makedumpfile -F stream down to the blocks a test reads, keeping each kept
block byte for byte as makedumpfile wrote it.

    python3 tools/trim_flat.py SRC.flat OUT.flat --pages-of TRIMMED_DUMP

makedumpfile refuses to re-filter our trimmed fixtures into -F (it reads every struct page
to filter, and a trimmed dump has few of them), so a small real stream is made the other
way round: makedumpfile -F writes the whole dump, and this keeps the stream's flat header,
every block that holds any byte of the image's headers (kdump-compressed: everything
before the page descriptors, i.e. headers, VMCOREINFO, notes and bitmaps; ELF: the ELF
header, program headers and notes), and every block holding a descriptor or the data of a
page that TRIMMED_DUMP has (tools/trim_vmcore.py's pages: the printk ring, the page tables
that translate it, the VMCOREINFO symbols' pages), in stream order, then the end record.
The other blocks are dropped whole: the image the cut rebuilds has holes there (zeros, as
makedumpfile -R leaves them), i.e. zero page descriptors (read as "past the truncated end")
or no data. Prints what it kept.
"""

from __future__ import annotations

import argparse
import bisect
import os
import sys
from pathlib import Path
from typing import List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.formats import elf  # noqa: E402
from kdumptool.formats import flat as ff  # noqa: E402
from kdumptool.sources.vmcore import ElfDump, KdumpDump, open_dump  # noqa: E402


def keep_ranges(src: str, pages_of: str) -> List[Tuple[int, int]]:
    """Image byte ranges [a, b) to keep, merged and sorted."""
    out: List[Tuple[int, int]] = []
    with open_dump(pages_of) as want, open_dump(src) as dump:
        assert dump.flat is not None, f"{src} is not a flattened stream"
        ps = dump.page_size
        pfns = sorted({p for s, e in want.iter_dumped_ranges() for p in range(s // ps, -(-e // ps))})
        if isinstance(dump, KdumpDump):
            out.append((0, dump.desc_offset))
            for pfn in pfns:
                if not dump.is_dumped(pfn * ps):
                    continue
                idx = dump._rank(pfn) - dump._rank_base
                d = dump.desc_offset + idx * 24
                out.append((d, d + 24))
                pd = dump.page_desc(pfn)
                out.append((pd.offset, pd.offset + pd.size))
        else:
            assert isinstance(dump, ElfDump)
            h = dump.header
            out.append((0, h.e_phoff + len(dump.phdrs) * elf.PHDR_SIZE))
            for p in dump.phdrs:
                if p.p_type == elf.PT_NOTE:
                    out.append((p.p_offset, p.p_offset + p.p_filesz))
            for pfn in pfns:
                off, _ = dump._where(pfn * ps)
                if off is not None:
                    out.append((off, off + ps))
    out.sort()
    merged: List[Tuple[int, int]] = []
    for a, b in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--pages-of", required=True, help="a (trimmed) dump whose pages to keep")
    args = ap.parse_args()
    ranges = keep_ranges(args.src, args.pages_of)
    starts = [a for a, _ in ranges]
    fd = os.open(args.src, os.O_RDONLY)
    size = os.fstat(fd).st_size
    parts = [os.pread(fd, ff.MAX_SIZE_MDF_HEADER, 0)]
    ff.parse_flat_header(parts[0], args.src)
    pos, kept, total = ff.MAX_SIZE_MDF_HEADER, 0, 0
    while True:
        head = os.pread(fd, ff.DATA_HEADER_SIZE, pos)
        offset, length = ff.parse_data_header(head, pos, args.src)
        if offset == ff.END_FLAG_FLAT_HEADER:
            parts.append(head)
            break
        total += 1
        i = bisect.bisect_right(starts, offset + length - 1) - 1
        if i >= 0 and ranges[i][1] > offset:
            parts.append(os.pread(fd, ff.DATA_HEADER_SIZE + length, pos))
            kept += 1
        pos += ff.DATA_HEADER_SIZE + length
        assert pos <= size, "stream cut short"
    data = b"".join(parts)
    Path(args.out).write_bytes(data)
    print(f"{args.out}: kept {kept} of {total} blocks, {len(data):,} of {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
