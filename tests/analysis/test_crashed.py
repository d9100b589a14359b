"""The one root-table resolver and the one fault lookup (analysis/crashed.py) on a real
vmcore (fixtures/vmcore/vtd/sm_mismatch_vmcore.trim.kdump, a lab crash whose root table the
independent decoder of roottable_check.txt found at 0x2411000, scalable mode).

The two cases the old resolvers disagreed on: an RTADDR that points at garbage (triage
trusted it; ``vmcore iommu`` checked it and fell through), and a fault from another PCI
segment (triage sliced the BDF string and looked it up as segment 0's device)."""

from __future__ import annotations

import re

import pytest

from kdumptool.analysis.crashed import decode_tables, resolve_root_tables
from kdumptool.analysis.rtscan import check_root_table
from kdumptool.model.evidence import Evidence
from kdumptool.model.log import LogMarkers, Marker
from kdumptool.model.roottable import RtaddrCandidate
from kdumptool.model.triage import RecordedRtaddr
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES

RUN = FIXTURES / "vmcore" / "vtd" / "sm_mismatch_vmcore"
DUMP = FIXTURES / "vmcore" / "vtd" / "sm_mismatch_vmcore.trim.kdump"
SMT = 1 << 10  # RTADDR bit 10: scalable-mode table


def oracle_root() -> int:
    m = re.search(r"root table @ (0x[0-9a-f]+) \(scalable mode\)", (RUN / "roottable_check.txt").read_text())
    assert m
    return int(m.group(1), 16)


@pytest.fixture()
def dump():
    with open_dump(str(DUMP)) as d:
        yield d


def garbage_page(dump) -> int:
    """A page the dump holds that is no root table in either mode (checked, not assumed)."""
    root = oracle_root()
    for start, end in dump.iter_dumped_ranges():
        for addr in range(start, end, 4096):
            if addr != root and not any(check_root_table(dump, addr, m).valid for m in ("legacy", "scalable")):
                return addr
    raise AssertionError("no non-root page in the fixture")


def test_rtaddr_pointing_at_garbage_falls_through_to_the_next_source(dump):
    bad = garbage_page(dump)
    groups = [[RtaddrCandidate("dmar0", bad | SMT, "record", "dmar0 RTADDR from a record")],
              [RtaddrCandidate("dmar0", oracle_root() | SMT, "snapshot", "dmar0 RTADDR of a snapshot")]]
    res = resolve_root_tables(dump, groups, scan=False)
    assert [(r.address, r.mode, r.source) for r in res.roots] == [(oracle_root(), "scalable", "snapshot")]
    assert any(f"0x{bad:x} does not look like a root table" in w and "trying the next source" in w
               for w in res.warnings)


def test_triage_no_longer_trusts_a_garbage_rtaddr_it_falls_through_to_the_scan(dump):
    bad = garbage_page(dump)
    warnings: list = []
    t = decode_tables(dump, None, None, warnings, recorded=RecordedRtaddr({"dmar0": bad | SMT}, "test record"))
    assert t is not None and (t.root_address, t.mode) == (oracle_root(), "scalable")
    assert t.found_by.startswith("scan of the vmcore")
    assert any(f"0x{bad:x} does not look like a root table" in w for w in warnings)


def test_a_user_given_rtaddr_is_used_even_when_it_does_not_validate_with_a_warning(dump):
    bad = garbage_page(dump)
    res = resolve_root_tables(dump, [[RtaddrCandidate("dmar", bad, "argument", "--rtaddr", trusted=True)]],
                              scan=False)
    assert res.roots[0].address == bad and "does not look like a legacy root table" in res.warnings[0]


def _fault(bdf: str, addr: int, line: int) -> Marker:
    text = f"DMAR: [DMA Read NO_PASID] Request device [{bdf[5:]}] fault addr 0x{addr:x} [fault reason 0x0b]"
    return Marker("fault", Evidence("dmesg", text, line),
                  (("bdf", bdf), ("kind", "dma_fault"), ("access", "read"), ("addr", f"{addr:x}")))


def test_a_fault_from_another_pci_segment_is_not_looked_up_in_this_segments_table(dump):
    """00:02.0 of segment 0001 is another device than 00:02.0 of segment 0000: the old
    triage sliced the BDF string and translated its IOVA with segment 0's tables."""
    log = LogMarkers("dmesg", (_fault("0000:00:02.0", 0xFFFFC000, 1), _fault("0001:00:02.0", 0xFFFFC000, 2)), 2)
    t = decode_tables(dump, None, None, [], current_log=log,
                      recorded=RecordedRtaddr({"dmar0": oracle_root() | SMT}, "test record"))
    assert t is not None
    assert [(f.bdf, f.iova) for f in t.fault_lookups] == [("0000:00:02.0", 0xFFFFC000)]
    m = re.search(r"LOOKUP iova 0xffffc000 -> pte (0x[0-9a-f]+)", (RUN / "roottable_check.txt").read_text())
    assert m and t.fault_lookups[0].phys == int(m.group(1), 16) & ~0xFFF


def test_what_a_warning_means_is_said_by_its_producer_not_its_wording(dump):
    """Triage's offline-source severity and the translation-off filter read the records'
    ``unread`` / ``moot_if_off`` lists (filled where the warning is made), not phrases."""
    absent = max(e for _, e in dump.iter_dumped_ranges()) + (1 << 30)  # a page the dump lacks
    warnings: list = []
    unread: list = []
    moot: list = []
    t = decode_tables(dump, None, None, warnings, recorded=RecordedRtaddr({"dmar0": absent | SMT}, "test record"),
                      scan=False, unread=unread, moot_if_off=moot)
    assert t is not None and t.root_address == absent  # used unchecked, as the registers give it
    assert unread == [w for w in warnings if "could not be read" in w] and len(unread) == 1
    assert moot == []
    warnings, unread, moot = [], [], []
    assert decode_tables(dump, None, None, warnings, scan=False, unread=unread, moot_if_off=moot) is None
    assert moot == warnings and "not located" in moot[0] and unread == []
