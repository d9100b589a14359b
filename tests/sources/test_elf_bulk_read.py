"""ElfDump.read takes a run inside one segment's file bytes with one pread (the scan's
fast path): it must give exactly what the page-by-page read gives, and raise the same
NotMapped where a run leaves the file-backed bytes."""

from __future__ import annotations

import random

import pytest

from kdumptool.errors import NotMapped
from kdumptool.sources.vmcore import Dump, ElfDump, open_dump
from tests.conftest import FIXTURES

ELFS = [FIXTURES / "vmcore" / "legacy_on.trim.elf", FIXTURES / "vmcore" / "vtd" / "sm_mismatch_vmcore.trim.elf"]


@pytest.mark.parametrize("path", ELFS, ids=[p.name for p in ELFS])
def test_bulk_read_equals_page_by_page(path):
    rng = random.Random(13)
    with open_dump(str(path)) as d:
        assert isinstance(d, ElfDump)
        ranges = list(d.iter_dumped_ranges())
        tried = bulk = 0
        for s, e in ranges:
            for k in range(4):
                a = rng.randrange(s, e)
                # three runs inside the dumped range, one that may leave it
                n = rng.randrange(1, (min(5 * d.page_size, e - a) if k else 5 * d.page_size) + 1)
                try:
                    want = Dump.read(d, a, n)
                except NotMapped as err:
                    with pytest.raises(NotMapped) as got:
                        d.read(a, n)
                    assert got.value.paddr == err.paddr
                    continue
                assert d.read(a, n) == want
                tried += 1
                bulk += n > d.page_size
        assert tried > 40 and bulk > 5
        # A whole dumped run, as the scan reads it.
        s, e = max(ranges, key=lambda r: r[1] - r[0])
        assert d.read(s, e - s) == Dump.read(d, s, e - s)
