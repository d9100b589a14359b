"""The two real lab dumps (kdump-compressed, zlib, -d 31): reader and kernel log.

Oracles: the live kernel's own ``dmesg`` captured before the crash (every line must be in
the log read from the vmcore) and VMCOREINFO values that the kernel also wrote elsewhere
(the disk_dump_header's utsname and timestamp, written by makedumpfile from other data).
"""

from __future__ import annotations

import pytest

from kdumptool.errors import NotMapped
from kdumptool.formats.printk import decode_printk
from kdumptool.sources.vmcore import open_dump

RUNS = ("legacy_on", "sm_mismatch_vmcore")


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_lab_dump_log_contains_live_dmesg(shared, run):
    path = shared / "lab-captures" / "kdump" / run / "vmcore.d31.zlib.kdump"
    with open_dump(str(path)) as dump:
        assert dump.kind == "kdump-compressed"
        vi = dump.vmcoreinfo
        assert vi.osrelease == dump.header.release == "6.1.0-56-amd64"
        assert vi.crashtime == dump.header.timestamp
        assert dump.page_size == vi.page_size == 4096
        log = decode_printk(vi, dump.read_virt)
        # Far less than the dump was read: only the ring's pages.
        assert dump.stats["bytes_read"] < 2 << 20
    assert log.kind == "lockless" and not log.warnings
    lines = log.dmesg_lines()
    live = (shared / "lab-captures" / "live" / run / "dmesg.txt").read_text().splitlines()
    assert live, "live dmesg is empty"
    have = set(lines)
    assert [line for line in live if line not in have] == []
    assert any("sysrq: Trigger a crash" in line for line in lines)
    seqs = [r.seq for r in log.records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_lab_dump_filtered_and_absent_pages(shared, run):
    path = shared / "lab-captures" / "kdump" / run / "vmcore.d31.zlib.kdump"
    with open_dump(str(path)) as dump:
        ranges = list(dump.iter_dumped_ranges())
        total = sum(e - s for s, e in ranges)
        assert total == dump.dumped_pages * dump.page_size
        # Between two dumped ranges lie filtered pages (RAM excluded by -d 31).
        gap = ranges[3][1]
        assert not dump.is_dumped(gap)
        with pytest.raises(NotMapped) as err:
            dump.read(gap, 1)
        assert err.value.why in ("filtered", "not in the dump")
        with pytest.raises(NotMapped) as err:
            dump.read(1 << 40, 8)
        assert err.value.why == "not in the dump"
        s, _e = ranges[-1]
        assert dump.is_dumped(s) and len(dump.read(s, 4096)) == 4096
