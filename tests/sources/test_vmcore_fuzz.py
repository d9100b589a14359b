"""Whole-reader fuzzing: damaged dumps (random byte changes in the headers, bitmaps,
descriptors, notes, program headers, truncation) go through open, range listing, reads
and the kernel log; only KdumptoolError may escape."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.errors import KdumptoolError
from kdumptool.formats.printk import decode_printk
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, write_elf, write_kdump

_VMCI = b""


def _small(kind: str) -> bytes:
    global _VMCI
    if not _VMCI:
        with open_dump(str(FIXTURES / "vmcore" / "legacy_on.trim.kdump")) as d:
            _VMCI = d.vmcoreinfo.raw.encode()
    pages = {p: bytes([p & 0xFF, 0]) * 2048 for p in (1, 2, 3, 7, 8, 40)}
    spec = DumpSpec(pages=pages, filtered={4, 5, 41}, vmcoreinfo=_VMCI,
                    prstatus=[(1, {"rip": 0xFFFFFFFF81000000})], max_mapnr=64)
    return write_kdump(spec, "zlib") if kind == "kdump" else write_elf(
        spec, kernel_text=(0xFFFFFFFF81000000, 0x1000, 0x2000))


BLOBS = {k: _small(k) for k in ("kdump", "elf")}


def _exercise(path: Path) -> None:
    try:
        with open_dump(str(path)) as dump:
            n = 0
            for s, e in dump.iter_dumped_ranges():
                for a in range(s, min(e, s + 8 * dump.page_size), dump.page_size):
                    try:
                        dump.read(a, 16)
                        dump.is_dumped(a)
                    except KdumptoolError:
                        pass
                n += 1
                if n > 50:
                    break
            try:
                decode_printk(dump.vmcoreinfo, dump.read_virt)
            except KdumptoolError:
                pass
    except KdumptoolError:
        pass


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["kdump", "elf"]),
       edits=st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), max_size=12),
       cut=st.one_of(st.none(), st.integers(0, 30000)))
def test_damaged_dumps_give_only_our_errors(tmp_path, kind, edits, cut):
    blob = bytearray(BLOBS[kind])
    for off, val in edits:
        # Bias towards the headers: most edits land in the first 8 KiB.
        pos = off % 8192 if off % 3 else off % len(blob)
        blob[pos] = val
    if cut is not None:
        del blob[cut:]
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(bytes(blob))
    _exercise(path)
