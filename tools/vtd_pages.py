#!/usr/bin/env python3
"""List the physical pages that decoding a dump's VT-d tables reads, for trim_vmcore.py.

    python3 tools/vtd_pages.py DUMP RTADDR_OR_DRHD_REGS > pages.txt
    python3 tools/trim_vmcore.py DUMP OUT_BASE --pages pages.txt

RTADDR is the register value (hex, bits 11:10 give the mode) or a ``drhd_regs.txt``
listing. The list is every page ``walk_root_table`` touched: the root table, context
tables, PASID directories and tables, and every page-table page (one address per line).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.analysis.vtd_walk import walk_root_table  # noqa: E402
from kdumptool.formats.vtd_tables import decode_rtaddr, parse_drhd_regs_text  # noqa: E402
from kdumptool.sources.vmcore import open_dump  # noqa: E402


def vtd_pages(dump_path: str, rtaddr: int) -> list:
    rt = decode_rtaddr(rtaddr)
    with open_dump(dump_path) as dump:
        tables = walk_root_table(dump, rt.address, rt.mode or "legacy")
    return sorted(tables.pages_read)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    arg = sys.argv[2]
    if Path(arg).is_file():
        rtaddr = parse_drhd_regs_text(Path(arg).read_text(), arg)[0].rtaddr or 0
    else:
        rtaddr = int(arg, 16)
    pages = vtd_pages(sys.argv[1], rtaddr)
    print(f"# {len(pages)} pages read decoding the VT-d tables from RTADDR 0x{rtaddr:x}")
    for p in pages:
        print(f"0x{p:x}")


if __name__ == "__main__":
    main()
