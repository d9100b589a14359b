"""A DTE with GV set (guest translation: DMA with a PASID goes through the GCR3 table's v2
page tables, AMD IOMMU spec 2.2.2) is said to be UNKNOWN beyond its host (v1) tables,
never silently counted as "these pages only": `vmcore iommu` lists it as not walked and
exits 3, `vmcore exposure` is incomplete, offline triage warns, `vmcore scan` counts it.

The dump is the real QEMU amd-iommu cut (fixtures/lab_amdvi/amd_on) with the e1000e's
DTE given GV=1, GLX 0 and a GCR3 root, written as Linux's set_dte_entry() does for a v2
domain (DTE_FLAG_GV bit 55, DTE_GCR3_14_12 60:58, DTE_GCR3_30_15 95:80); the same dump
unchanged is the control (no device not walked, exit 0)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.cliutil import run
from tests.conftest import FIXTURES
from tests.lab.test_fixtures import regs

CUT = FIXTURES / "lab_amdvi" / "amd_on"
NIC = 0x10  # 00:02.0
GCR3 = 0x0123_4000


def _elf_offset(data: bytes, paddr: int) -> int:
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        ptype, _f, off, _va, pa, filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
        if ptype == 1 and pa <= paddr < pa + filesz:
            return off + paddr - pa
    raise KeyError(hex(paddr))


@pytest.fixture(scope="module")
def guest_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = regs(CUT / "live_drhd_regs_final.txt")["DEV_TABLE"] & ~0xFFF
    data = bytearray((CUT / "vmcore.iommu.elf").read_bytes())
    off = _elf_offset(bytes(data), base + NIC * 32)
    q0, q1 = struct.unpack_from("<2Q", data, off)
    assert q0 & 3 == 3 and (q0 >> 9) & 7 == 3  # the e1000e translates with a 3-level table
    q0 |= 1 << 55 | ((GCR3 >> 12) & 7) << 58
    q1 |= ((GCR3 >> 15) & 0xFFFF) << 16
    struct.pack_into("<2Q", data, off, q0, q1)
    p = tmp_path_factory.mktemp("gv") / "gv.elf"
    p.write_bytes(bytes(data))
    return p


def _dev_table() -> str:
    return f"{regs(CUT / 'live_drhd_regs_final.txt')['DEV_TABLE']:#x}"


def test_vmcore_iommu_says_unknown(guest_elf: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    code, out, err = run(capsys, "vmcore", "iommu", str(guest_elf), "--dev-table", _dev_table(), "-f", "json")
    assert code == 3, err
    by = {d["bdf"]: d for d in json.loads(out)["devices"]}
    nic = by["0000:00:02.0"]
    assert nic["dte"]["gv"] and nic["dte"]["gcr3"] == GCR3
    assert len(nic["not_walked"]) == 1 and f"0x{GCR3:x}" in nic["not_walked"][0] and "UNKNOWN" in nic["not_walked"][0]
    assert nic["mapped_4k_pages"] > 0  # the host table is still walked
    assert all(not d["not_walked"] for b, d in by.items() if b != "0000:00:02.0")
    code, out, _ = run(capsys, "vmcore", "iommu", str(guest_elf), "--dev-table", _dev_table())
    assert code == 3 and "Not walked (what these devices reach is UNKNOWN):" in out
    # the control: the real dump has no GV entry, nothing is said, exit 0
    code, out, _ = run(capsys, "vmcore", "iommu", str(CUT / "vmcore.iommu.elf"), "--dev-table", _dev_table(),
                       "-f", "json")
    assert code == 0 and not any(d["not_walked"] for d in json.loads(out)["devices"])


def test_exposure_is_incomplete(guest_elf: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    code, out, err = run(capsys, "vmcore", "exposure", str(guest_elf), "--dev-table", _dev_table(), "-f", "json")
    doc = json.loads(out)
    assert code == 3 and doc["totals"]["incomplete"], err
    assert [u["bdf"] for u in doc["not_walked"]] == ["0000:00:02.0"]
    code, out, _ = run(capsys, "vmcore", "exposure", str(guest_elf), "--dev-table", _dev_table())
    assert "INCOMPLETE: guest page tables not walked" in out
    code, out, _ = run(capsys, "vmcore", "exposure", str(CUT / "vmcore.iommu.elf"), "--dev-table", _dev_table(),
                       "-f", "json")
    assert not json.loads(out)["totals"]["incomplete"] and json.loads(out)["not_walked"] == []


def test_offline_triage_warns_and_scan_counts(guest_elf: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    from kdumptool.analysis.triage import triage
    from kdumptool.sources.root import open_root
    from kdumptool.sources.triage import open_triage_input

    with open_root(str(CUT / "kdump_snapshot.tar.gz")) as root, open_triage_input(root, str(guest_elf)) as inp:
        rep = triage(inp)
    f = next(f for f in rep.findings if f.id == "crashed-kernel-tables")
    assert f.severity == "warning" and "UNKNOWN for 00:02.0: guest page tables (GCR3) not walked" in f.title
    assert any("GCR3 table at 0x1234000" in e.text for e in f.evidence)
    code, out, _ = run(capsys, "vmcore", "scan", str(guest_elf), "--vendor", "amd", "-f", "json")
    best = json.loads(out)["amdvi"]["best"]
    assert best["guest_translation_entries"] == 1 and best["valid"]
