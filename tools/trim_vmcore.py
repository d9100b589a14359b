#!/usr/bin/env python3
"""Cut a real vmcore down to the pages a test reads, as a valid small dump.

    python3 tools/trim_vmcore.py SRC OUT_BASE [--pages FILE] [--paddr 0x...] [--range A-B]

Keeps: the VMCOREINFO and ELF notes (all of them), every page that reading the kernel log
touches (the printk ring, its descriptors and infos, and the kernel page-table pages used
to translate their addresses), plus the physical pages named with ``--paddr``/``--range``
or listed in ``--pages FILE`` (one address or ``start-end`` range per line, hex with 0x
or decimal; ``#`` comments), e.g. the VT-d root, context and page-table pages.

Writes ``OUT_BASE.trim.kdump`` (kdump-compressed, zlib, header version 6) and
``OUT_BASE.trim.elf`` (ELF64 core). In both, every other page that was RAM in the source is
marked filtered (the kdump 1st bitmap / ELF p_memsz past p_filesz), so readers report it
as filtered, never as zeros. Prints what it kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Set

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.errors import KdumptoolError, NotMapped  # noqa: E402
from kdumptool.formats.printk import decode_printk  # noqa: E402
from kdumptool.sources.vmcore import Dump, KdumpDump, open_dump  # noqa: E402
from tests.dumpwriter import DumpSpec, write_elf, write_kdump  # noqa: E402


def parse_addresses(lines: Iterable[str]) -> List[range]:
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "-" in line:
            a, b = line.split("-", 1)
            out.append(range(int(a, 0), int(b, 0)))
        else:
            a0 = int(line, 0)
            out.append(range(a0, a0 + 1))
    return out


class _Recorder:
    """Wraps Dump.read to note every pfn touched."""

    def __init__(self, dump: Dump) -> None:
        self.dump = dump
        self.pfns: Set[int] = set()
        self._orig = dump.read

    def __enter__(self) -> _Recorder:
        def read(paddr: int, size: int) -> bytes:
            ps = self.dump.page_size
            for pfn in range(paddr // ps, (paddr + max(size, 1) - 1) // ps + 1):
                self.pfns.add(pfn)
            return self._orig(paddr, size)

        self.dump.read = read  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.dump.read = self._orig  # type: ignore[method-assign]


def _walking_reader(dump: Dump):  # type: ignore[no-untyped-def]
    """read_virt that also walks the page tables for kernel-text addresses, so the kept
    pages let a reader that always walks them (makedumpfile, crash) translate too."""

    def read(vaddr: int, size: int) -> bytes:
        for page in range(vaddr & ~0xFFF, vaddr + size, 4096):
            dump._walk_kernel_pgt(page)
        return dump.read_virt(vaddr, size)

    return read


def _keep_makedumpfile_pages(dump: Dump) -> None:
    vi = dump.vmcoreinfo
    read = _walking_reader(dump)
    for _name, addr in sorted(vi.symbols.items()):
        try:
            read(addr, 256)
        except KdumptoolError:
            pass
    ms = vi.symbol("mem_section")
    n = vi.length("mem_section") or 0
    if ms is None or not n:
        return
    try:
        roots = read(ms, 8 * min(n, 4096))
        for i in range(0, len(roots), 8):
            root = int.from_bytes(roots[i:i + 8], "little")
            if root:
                read(root, 4096)
    except KdumptoolError:
        pass


def ram_pfns(dump: Dump) -> Set[int]:
    """Every pfn that was RAM in the source (dumped or filtered)."""
    if isinstance(dump, KdumpDump):
        ps = dump.page_size
        return {pfn for s, e in dump.iter_ram_ranges() for pfn in range(s // ps, e // ps)}
    out = set()
    for seg in getattr(dump, "segments", []):
        out.update(range(seg.start // dump.page_size, (seg.start + seg.memsz) // dump.page_size))
    return out


def trim(src: str, out_base: str, extra: List[range]) -> Dict[str, int]:
    with open_dump(src) as dump:
        ps = dump.page_size
        with _Recorder(dump) as rec:
            log = decode_printk(dump.vmcoreinfo, _walking_reader(dump))
            # makedumpfile (the oracle) checks the release in init_uts_ns first.
            # and reads the first bytes of the exported symbols and the mem_section roots.
            _keep_makedumpfile_pages(dump)
        want = set(rec.pfns)
        for r in extra:
            want.update(range(r.start // ps, (r.stop - 1) // ps + 1))
        pages: Dict[int, bytes] = {}
        skipped = 0
        for pfn in sorted(want):
            try:
                pages[pfn] = dump.read(pfn * ps, ps)
            except NotMapped:
                skipped += 1
        filtered = ram_pfns(dump) - set(pages)
        notes_vmci = dump.vmcoreinfo.raw.encode()
        prstatus = [(p.pid, dict(p.registers)) for p in dump.prstatus]
        spec = DumpSpec(pages=pages, filtered=filtered, vmcoreinfo=notes_vmci,
                        prstatus=prstatus, page_size=ps,
                        max_mapnr=getattr(dump, "max_mapnr", None),
                        phys_base=dump.phys_base or 0,
                        release=dump.vmcoreinfo.osrelease or "",
                        timestamp=dump.vmcoreinfo.crashtime or 0,
                        nr_cpus=max(1, len(prstatus)))
    Path(out_base + ".trim.kdump").write_bytes(write_kdump(spec, "zlib"))
    Path(out_base + ".trim.elf").write_bytes(write_elf(spec))
    return {"log_records": len(log.records), "log_pages": len(rec.pfns),
            "extra_pages": len(want) - len(rec.pfns), "kept_pages": len(pages),
            "not_in_source": skipped, "filtered_pages": len(filtered)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("out_base")
    ap.add_argument("--pages", action="append", default=[], help="file of addresses/ranges")
    ap.add_argument("--paddr", action="append", default=[], help="a physical address to keep")
    ap.add_argument("--range", action="append", default=[], help="START-END physical range")
    a = ap.parse_args()
    extra = parse_addresses(a.paddr + a.range)
    for f in a.pages:
        extra += parse_addresses(Path(f).read_text().splitlines())
    stats = trim(a.src, a.out_base, extra)
    for k, v in stats.items():
        print(f"{k}: {v}")
    for ext in (".trim.kdump", ".trim.elf"):
        print(f"wrote {a.out_base}{ext} ({Path(a.out_base + ext).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
