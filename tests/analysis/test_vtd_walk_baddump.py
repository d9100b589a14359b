"""Damaged dumps: a corrupt compressed table page and a truncated file turn into
Unreadable records with the reader's reason, the rest of the tables still decode, and the
CLI prints no traceback."""

from __future__ import annotations

import shutil

import pytest

from kdumptool.analysis.rtscan import find_root_tables
from kdumptool.analysis.vtd_walk import walk_root_table
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES

SRC = FIXTURES / "vmcore" / "vtd" / "legacy_on.trim.kdump"
ROOT = 0x25D5000
CTX_BUS1 = 0x2772000  # bus 01 context table (roottable_check.txt: "bus 01: ctp=0x2772000")


def _corrupt(tmp_path, paddr):
    dst = tmp_path / "bad.kdump"
    shutil.copy(SRC, dst)
    with open_dump(str(dst)) as d:
        pd = d.page_desc(paddr // 4096)
    with open(dst, "r+b") as f:
        f.seek(pd.offset)
        f.write(b"\xff" * min(pd.size, 16))
    return dst


def test_corrupt_context_page_is_unreadable_not_fatal(tmp_path):
    bad = _corrupt(tmp_path, CTX_BUS1)
    with open_dump(str(bad)) as d:
        t = walk_root_table(d, ROOT, "legacy")
    assert [u.paddr for u in t.unreadable] == [CTX_BUS1]
    assert "corrupt" in t.unreadable[0].why
    assert len(t.devices) == 13  # every device but 01:00.0
    assert all(d.bus != 1 for d in t.devices)


def test_truncated_dump_reports_pages_past_the_end(tmp_path):
    dst = tmp_path / "short.kdump"
    data = SRC.read_bytes()
    with open_dump(str(SRC)) as d:
        cut = d.page_desc(0x2775000 // 4096).offset  # 02:00.0's page table onwards
    dst.write_bytes(data[:cut])
    with open_dump(str(dst)) as d:
        t = walk_root_table(d, ROOT, "legacy")
        res = find_root_tables(d, d.iter_dumped_ranges())
    why = {u.why for dev in t.devices for u in dev.all_unreadable} | {u.why for u in t.unreadable}
    assert why == {"past the truncated end"}
    assert res.best is not None and res.best.address == ROOT


def test_cli_on_corrupt_root_page(tmp_path, capsys):
    from kdumptool.cli.main import main

    bad = _corrupt(tmp_path, ROOT)
    with pytest.raises(SystemExit) as e:
        main(["vmcore", "iommu", str(bad), "--rtaddr", hex(ROOT), "-f", "text"])
    assert e.value.code == 3      # the answer rests on an unreadable root table: not a clean 0
    out, err = capsys.readouterr()
    assert "VT-d tables incomplete: 1 table page(s) unreadable" in err
    assert "does not look like a legacy root table: root table unreadable: " in out
    assert "Traceback" not in out + err
