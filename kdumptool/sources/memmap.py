"""What a vmcore says about physical memory, for the HTML report's memory map: the RAM it
covers (kdump-compressed: the first bitmap; ELF: the PT_LOAD segments up to p_memsz), the
pages it holds, and the crashkernel reservation as the crashed kernel logged it
("Reserving 256MB of memory at 752MB for crashkernel", or "crashkernel reserved: 0x... -
0x..." since 6.9) in its own printk buffer."""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from kdumptool.model.memmap import DumpLayout, Ranges, merge
from kdumptool.sources.vmcore import Dump, ElfDump, KdumpDump

_MB = 1 << 20


def _ram(dump: Dump) -> Optional[Ranges]:
    if isinstance(dump, KdumpDump):
        return merge(dump.iter_ram_ranges())
    if isinstance(dump, ElfDump) and dump.segments:
        return merge((s.start, s.start + s.memsz) for s in dump.segments)
    return None


def crashkernel_from_log(lines: Iterable[str]) -> Optional[Tuple[int, int, str]]:
    """(start, end, the line) of the crashkernel reservation a kernel logged, or None."""
    from kdumptool.formats.klog import parse_log

    for ev in parse_log(lines):
        if ev.kind != "crashkernel_reserved":
            continue
        d = ev.details
        try:
            if "start" in d:
                start, end = (v if isinstance(v, int) else int(str(v), 16) for v in (d["start"], d["end"]))
            else:
                start = int(str(d["at"]).rstrip("MB")) * _MB
                end = start + int(str(d["size"]).rstrip("MB")) * _MB
        except (KeyError, ValueError):
            continue
        if end > start:
            return start, end, ev.text
    return None


def read_dump_layout(dump: Dump, path: str) -> DumpLayout:
    """The RAM map, dumped pages and logged crashkernel range of an open dump."""
    from kdumptool.sources.crashlog import read_crash_log

    warnings: List[str] = []
    dumped = merge(dump.iter_dumped_ranges())
    ram = _ram(dump)
    if ram is None:
        warnings.append(f"{path}: the dump has no RAM map (only the pages it holds are known)")
    records, why = read_crash_log(dump)
    ck = None
    basis = None
    if why is not None:
        warnings.append(f"{path}: crashkernel range not read from the crashed kernel's log: {why}")
    else:
        found = crashkernel_from_log([text for _, text in records])
        if found is not None:
            ck = ((found[0], found[1]),)
            basis = f"the crashed kernel's log in {path}: {found[2]}"
    vi = dump.vmcoreinfo
    crashtime = vi.crashtime
    date = None
    if crashtime is not None and 0 < crashtime < 2**40:
        import time

        date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(crashtime))
    return DumpLayout(path, ram, dumped, ck, basis, tuple(warnings), vi.osrelease, date,
                      tuple(records))
