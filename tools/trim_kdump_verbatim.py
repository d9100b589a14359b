#!/usr/bin/env python3
"""Cut a kdump-compressed dump down to a set of pages, keeping each kept page's stored
bytes exactly as makedumpfile wrote them (its compression, its flags).

    python3 tools/trim_kdump_verbatim.py SRC KEEP OUT

``KEEP`` is another dump (any format) whose dumped pages name the pfns to keep (e.g. a
``tools/trim_vmcore.py`` fixture of the same crash), or a ``.txt`` list of physical page
addresses or ``start-end`` ranges (``tools/cut_elf_dump.py``'s ``.pages.txt``). The output keeps SRC's header block,
sub header, notes, VMCOREINFO and 1st bitmap (RAM) byte for byte; the 2nd bitmap lists
only the kept pfns, then their page descriptors and their data, copied verbatim (data
that several descriptors share in SRC, such as makedumpfile's one zero page, stays shared). So a
fixture made this way tests the decompressor on pages an independent compressor wrote
(``tools/trim_vmcore.py`` re-compresses with zlib).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from trim_vmcore import parse_addresses  # noqa: E402

from kdumptool.formats import diskdump as dd  # noqa: E402
from kdumptool.sources.vmcore import KdumpDump, open_dump  # noqa: E402


def main() -> None:
    src_path, keep_path, out_path = sys.argv[1:4]
    if keep_path.endswith(".txt"):
        ps = 4096
        ranges = parse_addresses(Path(keep_path).read_text().splitlines())
        pfns = sorted({p for r in ranges for p in range(r.start // ps, (r.stop - 1) // ps + 1)})
    else:
        with open_dump(keep_path) as keep:
            ps = keep.page_size
            pfns = sorted({a // ps for s, e in keep.iter_dumped_ranges() for a in range(s, e, ps)})
    with open_dump(src_path) as src, open(src_path, "rb") as f:
        assert isinstance(src, KdumpDump) and src.page_size == ps
        head = bytearray(f.read(src.desc_offset))
        half = src._bitmap_len
        bm2 = bytearray(half)
        kept = [p for p in pfns if src.is_dumped(p * ps)]
        for p in kept:
            bm2[p >> 3] |= 1 << (p & 7)
        head[src.bitmap_offset + half:src.bitmap_offset + 2 * half] = bm2
        data_off = len(head) + len(kept) * dd.PAGE_DESC_SIZE
        descs = bytearray()
        data = bytearray()
        comps = {}
        copied = {}   # source data offset -> new offset: shared data (makedumpfile's one
        for p in kept:  # zero page for every zero page) stays shared
            pd = src.page_desc(p)
            if (pd.offset, pd.size) not in copied:
                f.seek(pd.offset)
                copied[pd.offset, pd.size] = data_off + len(data)
                data += f.read(pd.size)
            descs += struct.pack("<qIIQ", copied[pd.offset, pd.size], pd.size, pd.flags, pd.page_flags)
            name = dd.COMPRESSION_NAMES.get(pd.flags & dd.COMPRESSION_MASK, "raw")
            comps[name] = comps.get(name, 0) + 1
    Path(out_path).write_bytes(bytes(head) + bytes(descs) + bytes(data))
    print(f"kept {len(kept)} of {len(pfns)} pages ({comps}); wrote {out_path} "
          f"({Path(out_path).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
