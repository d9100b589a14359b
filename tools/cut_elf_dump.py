#!/usr/bin/env python3
"""Cut a ``makedumpfile -E`` dump (or any ELF64 core) down to a sparse cut that keeps its
layout: the bytes the decoders read, each at its original file offset.

    python3 tools/cut_elf_dump.py SRC OUT.cut --saved DIR [--pages FILE] [--makedumpfile-dmesg TXT]

Keeps, byte for byte at their offsets in SRC: the ELF header and every program header as
makedumpfile wrote them (its PT_LOAD splitting), the PT_NOTE segments, and the file bytes
of every physical page that

- ``kdumptool vmcore log``, ``vmcore info``, ``vmcore iommu --saved DIR`` read (recorded
  by running those commands on SRC in-process: the printk ring, its page tables, the
  VMCOREINFO symbols, the VT-d root/context/PASID/page-table pages);
- ``makedumpfile --dump-dmesg`` reads (tools/trim_vmcore.py's walk: the first bytes of
  every VMCOREINFO symbol through the kernel page tables, the mem_section roots);
- ``kdumptool vmcore scan`` reads beyond its bulk pass: every page that passes the
  root-table byte prefilter and every page its structural check reads;
- is listed in ``--pages FILE`` (addresses or ``start-end`` ranges, as trim_vmcore.py).

Everything else reads as zero once restored (tests/sparsecut.py: a sparse file of SRC's
size). Writes OUT.cut and OUT.cut's page list (``OUT.pages.txt``, one page address per
line, the input of ``tools/trim_kdump_verbatim.py`` for the same crash's zlib dump), then
restores the cut into a temporary sparse file and checks it: ``vmcore log``, ``info``,
``iommu --saved``, ``scan`` print the same on SRC and on the restored cut, and
``makedumpfile --dump-dmesg`` on the restored cut prints ``--makedumpfile-dmesg TXT`` (its
output on the full dump) when makedumpfile is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Set, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from trim_vmcore import _keep_makedumpfile_pages, _walking_reader, parse_addresses  # noqa: E402

from kdumptool.analysis import rtscan  # noqa: E402
from kdumptool.cli.main import main as cli  # noqa: E402
from kdumptool.errors import KdumptoolError  # noqa: E402
from kdumptool.formats import elf  # noqa: E402
from kdumptool.formats.printk import decode_printk  # noqa: E402
from kdumptool.sources.vmcore import ElfDump, open_dump  # noqa: E402
from tests.sparsecut import restore_cut, write_cut  # noqa: E402

PAGE = 4096


def commands(path: str, saved: str) -> Dict[str, List[str]]:
    return {
        "log": ["vmcore", "log", path, "-f", "text"],
        "info": ["vmcore", "info", path, "-f", "text"],
        "iommu": ["vmcore", "iommu", path, "--saved", saved, "-f", "text"],
        "scan": ["vmcore", "scan", path, "-f", "text"],
    }


def run_cli(args: List[str]) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


class record_reads:
    """Notes the pfn of every ``ElfDump.read`` of at most ``max_size`` bytes (None: all)."""

    def __init__(self, pfns: Set[int], max_size: int | None = None) -> None:
        self.pfns, self.max_size = pfns, max_size
        self.orig: Callable[..., bytes] = ElfDump.read

    def __enter__(self) -> record_reads:
        orig, pfns, max_size = self.orig, self.pfns, self.max_size

        def read(dump: ElfDump, paddr: int, size: int) -> bytes:
            if max_size is None or size <= max_size:
                pfns.update(range(paddr // PAGE, (paddr + max(size, 1) - 1) // PAGE + 1))
            return orig(dump, paddr, size)

        ElfDump.read = read  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        ElfDump.read = self.orig  # type: ignore[method-assign]


def prefilter_pages(dump: ElfDump) -> Iterator[int]:
    """pfns of the dumped pages that pass the root-table scan's byte prefilter."""
    for start, end in dump.iter_dumped_ranges():
        p = (start + PAGE - 1) & ~(PAGE - 1)
        while p + PAGE <= end:
            n = min(256, (end - p) // PAGE)
            blob = dump.read(p, n * PAGE)
            for i in range(n):
                legacy, scalable = rtscan.prefilter(blob[i * PAGE:(i + 1) * PAGE])
                if legacy or scalable:
                    yield p // PAGE + i
            p += n * PAGE


def kept_pages(src: str, saved: str, extra: List[range]) -> Dict[str, Set[int]]:
    why: Dict[str, Set[int]] = {k: set() for k in ("log", "info", "iommu", "makedumpfile", "scan", "pages")}
    for name in ("log", "info", "iommu"):
        with record_reads(why[name]):
            code, _, err = run_cli(commands(src, saved)[name])
        assert code == 0, f"vmcore {name} on {src}: exit {code}: {err}"
    with record_reads(why["scan"], max_size=PAGE):
        code, _, err = run_cli(commands(src, saved)["scan"])
    assert code == 0, f"vmcore scan on {src}: exit {code}: {err}"
    with open_dump(src) as dump:
        assert isinstance(dump, ElfDump), f"{src} is not an ELF core"
        why["scan"].update(prefilter_pages(dump))
        with record_reads(why["makedumpfile"]):
            decode_printk(dump.vmcoreinfo, _walking_reader(dump))
            _keep_makedumpfile_pages(dump)
    for r in extra:
        why["pages"].update(range(r.start // PAGE, (r.stop - 1) // PAGE + 1))
    return why


def file_ranges(dump: ElfDump, pfns: Set[int]) -> List[Tuple[int, int]]:
    """(offset, length) in the file of the header, program headers, notes and every
    file-backed byte of ``pfns`` in any PT_LOAD (kernel-text aliases included)."""
    h = dump.header
    phnum = len(dump.phdrs)
    out = [(0, h.e_phoff + phnum * elf.PHDR_SIZE)]
    for p in dump.phdrs:
        if p.p_type == elf.PT_NOTE:
            out.append((p.p_offset, p.p_filesz))
        if p.p_type != elf.PT_LOAD or not p.p_filesz:
            continue
        lo, hi = p.p_paddr, p.p_paddr + min(p.p_filesz, max(0, dump.file_size - p.p_offset))
        for pfn in sorted(pfns):
            a, b = max(lo, pfn * PAGE), min(hi, (pfn + 1) * PAGE)
            if a < b:
                out.append((p.p_offset + a - lo, b - a))
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--saved", required=True, help="drhd_regs.txt or a saved directory for vmcore iommu")
    ap.add_argument("--pages", action="append", default=[], help="file of addresses/ranges to keep too")
    ap.add_argument("--makedumpfile-dmesg", help="makedumpfile --dump-dmesg output of SRC (the oracle)")
    ap.add_argument("--note", default="", help="free text stored in the cut's header")
    a = ap.parse_args()
    extra: List[range] = []
    for f in a.pages:
        extra += parse_addresses(Path(f).read_text().splitlines())
    why = kept_pages(a.src, a.saved, extra)
    pfns = set().union(*why.values())
    with open_dump(a.src) as dump:
        assert isinstance(dump, ElfDump)
        ranges = file_ranges(dump, pfns)
    out = Path(a.out)
    header = write_cut(out, Path(a.src), ranges, source_sha256=sha256(Path(a.src)), note=a.note)
    pages_txt = out.with_suffix(".pages.txt")
    pages_txt.write_text(f"# {len(pfns)} physical pages kept in {out.name}\n"
                         + "".join(f"0x{p * PAGE:x}\n" for p in sorted(pfns)))
    kept = sum(n for _, n in header["ranges"])
    print(f"pages kept: {len(pfns)} ({', '.join(f'{k} {len(v)}' for k, v in why.items())})")
    print(f"wrote {out} ({out.stat().st_size:,} bytes; {len(header['ranges'])} ranges, "
          f"{kept:,} of {header['size']:,} bytes kept) and {pages_txt}")
    with tempfile.TemporaryDirectory() as tmp:
        restored = Path(tmp) / "restored.elf"
        restore_cut(out, restored)
        for name, args in commands(a.src, a.saved).items():
            full = run_cli(args)
            cut = run_cli(commands(str(restored), a.saved)[name])
            same = (full[0], full[1].replace(a.src, "DUMP"), full[2].replace(a.src, "DUMP")) == \
                   (cut[0], cut[1].replace(str(restored), "DUMP"), cut[2].replace(str(restored), "DUMP"))
            print(f"vmcore {name}: exit {full[0]}, {len(full[1].splitlines())} lines; restored cut "
                  f"{'identical' if same else 'DIFFERS'}")
            if not same:
                return 1
        mdf = shutil.which("makedumpfile")
        if a.makedumpfile_dmesg and mdf:
            got = Path(tmp) / "dmesg.txt"
            r = subprocess.run([mdf, "--dump-dmesg", str(restored), str(got)], capture_output=True, text=True)
            same = r.returncode == 0 and got.read_bytes() == Path(a.makedumpfile_dmesg).read_bytes()
            print(f"makedumpfile --dump-dmesg on the restored cut: exit {r.returncode}, "
                  f"{'identical to' if same else 'DIFFERS from'} {a.makedumpfile_dmesg}")
            if not same:
                print(r.stdout[-2000:], r.stderr[-2000:])
                return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KdumptoolError as e:
        sys.exit(f"error: {e}")
