"""sources/kmsg.py: live /dev/kmsg (when readable), files, stdin, snapshots."""

from __future__ import annotations

import os
import re

import pytest

from kdumptool.errors import PermissionDenied, SourceMissing
from kdumptool.formats.klog import normalise_line
from kdumptool.sources.kmsg import (
    open_kmsg,
    open_log,
    open_log_file,
    open_snapshot_log,
    read_kmsg_records,
)
from kdumptool.sources.root import open_root
from tests.conftest import FIXTURES

_RECORD = re.compile(r"\d+,\d+,\d+,[^;]*;")


def test_live_kmsg_reads_whole_buffer_without_blocking() -> None:
    try:
        src = open_kmsg()
    except (SourceMissing, PermissionDenied) as exc:
        pytest.skip(f"/dev/kmsg not readable here: {exc}")
    lines = list(src)
    assert src.count == len(lines) > 0
    records = [ln for ln in lines if not ln.startswith(" ")]
    assert all(_RECORD.match(r) for r in records)
    # every record has a usec timestamp; sequence numbers strictly increase (one read per record)
    assert all(normalise_line(r).timestamp is not None for r in records)
    seqs = [int(r.split(",")[1]) for r in records]
    assert all(a < b for a, b in zip(seqs, seqs[1:]))


def test_kmsg_reader_stops_at_eagain() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.write(w, b"6,1,1000,-;DMAR: IOMMU enabled\n SUBSYSTEM=pci\n")
    warnings: list = []
    got = list(read_kmsg_records(r, warnings))
    os.close(r)
    os.close(w)
    assert got == ["6,1,1000,-;DMAR: IOMMU enabled", " SUBSYSTEM=pci"] and warnings == []


def test_missing_device_and_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceMissing):
        open_kmsg("/nonexistent/kmsg")
    with pytest.raises(SourceMissing):
        open_log_file("/nonexistent/log")
    with pytest.raises(SourceMissing, match="not a snapshot"):
        open_root(FIXTURES / "dmesg")  # no sys/, proc/ or _kdumptool/: not read as a system
    (tmp_path / "sys").mkdir()
    with open_root(tmp_path) as rt:
        with pytest.raises(SourceMissing, match="holds no kernel log"):
            open_snapshot_log(rt)


def test_snapshot_and_file_sources() -> None:
    with open_root(FIXTURES / "snapshots" / "kdump_sm_mismatch") as rt:
        src = open_log(None, rt)
        lines = list(src)
    assert src.name.endswith("_kdumptool/dmesg.txt") and len(lines) == src.count == 493
    assert lines == (FIXTURES / "dmesg" / "lab" / "kdump_sm_mismatch.txt").read_text().splitlines()
    src = open_log(str(FIXTURES / "dmesg" / "lab" / "kdump_legacy_on.txt"), None)
    assert sum(1 for _ in src) == 488



def test_crlf_and_stray_cr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "win.log"
    p.write_bytes(b"[ 1.0] DMAR: IOMMU enabled\r\n[ 2.0] a\rb\r\n\xff\xfe tail")
    assert list(open_log_file(str(p))) == ["[ 1.0] DMAR: IOMMU enabled", "[ 2.0] a\rb", "\ufffd\ufffd tail"]
