"""Default tier (no QEMU): kdumptool on the real AMD-Vi lab cut (fixtures/lab_amdvi/<run>/,
made by lab/make-fixtures from a QEMU amd-iommu run), against what the guest captured in
the same run: busybox devmem of the AMD-Vi registers, /sys/kernel/iommu_groups, the kdump
kernel's own AMD-Vi lines, and the tests' own few-line DTE/page-table decoder
(tests/amdvi_memory.py) reading the raw ELF bytes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Dict, List

import pytest

from tests.amdvi_memory import elf_reader, oracle_device, oracle_translate
from tests.lab.test_fixtures import kdt, regs

REPO = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (REPO / "fixtures" / "lab_amdvi").glob("*") if (p / "vmcore.iommu.elf").is_file())


def live_groups(path: Path) -> Dict[str, List[str]]:
    """IOMMU group -> devices, as the live kernel's sysfs listed them (guest/lib.sh's
    iommu_groups listing)."""
    out: Dict[str, List[str]] = {}
    for ln in path.read_text().splitlines():
        m = re.match(r"group (\d+) type=\S* devices=(.*)", ln)
        if m:
            out[m.group(1)] = m.group(2).split()
    return out


@pytest.fixture(params=CASES, ids=[p.name for p in CASES])
def case(request: pytest.FixtureRequest) -> Path:
    return request.param  # type: ignore[no-any-return]


def test_cut_present_and_small() -> None:
    assert CASES, "fixtures/lab_amdvi has no cut (lab/make-fixtures on an amd-iommu run)"
    size = sum(f.stat().st_size for f in (REPO / "fixtures" / "lab_amdvi").rglob("*") if f.is_file())
    assert size < 400 << 10, f"fixtures/lab_amdvi is {size} bytes"


def test_every_grouped_device_with_its_domain_and_pages(case: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """`vmcore iommu` at the DEV_TABLE busybox read lists every device the live kernel had
    in an IOMMU group; devices of one group share one DomainID and devices of different
    groups do not (the kernel gives each group its own domain); DomainID, Mode and the
    mapped 4 KiB / large pages equal the tests' own decoder on the raw ELF bytes."""
    dev_table = regs(case / "live_drhd_regs_final.txt")["DEV_TABLE"]
    elf = case / "vmcore.iommu.elf"
    doc = kdt(capsys, "vmcore", "iommu", str(elf), "--dev-table", f"{dev_table:#x}")
    assert doc["vendor"] == "AMD-Vi" and doc["device_table"]["address"] == dev_table & ~0xFFF
    assert doc["device_table"]["size"] == ((dev_table & 0x1FF) + 1) << 12
    assert not doc["unreadable_tables"] and not doc["device_table"]["untranslated_devids"]
    by = {d["bdf"]: d for d in doc["devices"]}
    groups = live_groups(case / "live_iommu_groups.txt")
    grouped = {b for devs in groups.values() for b in devs}
    assert grouped <= set(by), f"{case.name}: no DTE for {sorted(grouped - set(by))}"
    pci = {ln.split()[0] for ln in (case / "live_pci_sysfs.txt").read_text().splitlines() if ln.strip()}
    # anything more is a requester ID that is no PCI function: the alias of a PCIe-to-PCI bridge
    assert not (set(by) - grouped) & pci, f"{case.name}: extra devices {sorted(set(by) - grouped)}"
    domain_of_group = {g: {by[b]["domain_id"] for b in devs} for g, devs in groups.items()}
    assert all(len(d) == 1 for d in domain_of_group.values()), domain_of_group
    assert len({next(iter(d)) for d in domain_of_group.values()}) == len(groups)
    read = elf_reader(str(elf))
    base = dev_table & ~0xFFF
    for bdf, d in by.items():
        devid = int(bdf[5:7], 16) << 8 | int(bdf[8:10], 16) << 3 | int(bdf[11], 16)
        dom, mode, small, large = oracle_device(read, base, devid)
        assert (d["domain_id"], d["dte"]["mode"], d["mapped_4k_pages"], d["mapped_large_pages"]) == (
            dom, mode, small, large), bdf
    nic = by["0000:00:02.0"]
    assert nic["translation_type"] == "translated" and nic["mapped_4k_pages"] > 0, nic


def test_iova_lookups_equal_the_tests_own_translator(case: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """`vmcore iommu --iova` for the first and last byte of the e1000e's and the nvme's
    mapped extents equals the few-line translator on the raw bytes."""
    dev_table = regs(case / "live_drhd_regs_final.txt")["DEV_TABLE"]
    elf = case / "vmcore.iommu.elf"
    doc = kdt(capsys, "vmcore", "iommu", str(elf), "--dev-table", f"{dev_table:#x}")
    read = elf_reader(str(elf))
    n = 0
    for d in doc["devices"]:
        if d["bdf"] not in ("0000:00:02.0", "0000:00:03.0"):
            continue
        devid = int(d["bdf"][5:7], 16) << 8 | int(d["bdf"][8:10], 16) << 3 | int(d["bdf"][11], 16)
        for x in d["extents"][:6]:
            for iova in (x["iova"], x["iova"] + x["size"] - 1):
                r = kdt(capsys, "vmcore", "iommu", str(elf), "--dev-table", f"{dev_table:#x}",
                        "--device", d["bdf"], "--iova", f"{iova:#x}")
                want = oracle_translate(read, dev_table & ~0xFFF, devid, iova)
                assert want is not None and (r["phys"], 1 * r["read"] + 2 * r["write"]) == want, (d["bdf"], iova)
                n += 1
    assert n >= 8


def test_saved_registers_name_the_same_table(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """collect's amdvi_registers.json (through /dev/mem) holds the DEV_TABLE busybox read,
    and `--saved` finds the same table with it."""
    saved = json.loads((case / "live_amdvi_registers.json").read_text())
    assert saved["units"][0]["registers"]["DEV_TABLE"] == regs(case / "live_drhd_regs_final.txt")["DEV_TABLE"]
    (tmp_path / "_kdumptool").mkdir()
    shutil.copyfile(case / "live_amdvi_registers.json", tmp_path / "_kdumptool" / "amdvi_registers.json")
    doc = kdt(capsys, "vmcore", "iommu", str(case / "vmcore.iommu.elf"), "--saved", str(tmp_path))
    assert doc["device_table"]["source"] == "saved"
    assert doc["device_table"]["address"] == saved["units"][0]["registers"]["DEV_TABLE"] & ~0xFFF


def test_triage_in_the_kdump_kernel_equals_what_it_did(case: Path) -> None:
    """Triage of the kdump kernel's own snapshot says what that kernel logged: the copy
    ("Translation is already enabled", "Copied DEV table from previous kernel.") or its
    failure, with IommuEn read from its registers as evidence."""
    from kdumptool.analysis.triage import triage
    from kdumptool.sources.root import open_root
    from kdumptool.sources.triage import open_triage_input

    lines = (case / "kdump_amdvi_lines.txt").read_text()
    with open_root(str(case / "kdump_snapshot.tar.gz")) as root, open_triage_input(root) as inp:
        rep = triage(inp)
    amd = next(f for f in rep.findings if f.id.startswith("amdvi-") and f.id not in ("amdvi-fault", "amdvi-snp"))
    if "Copied DEV table from previous kernel." in lines:
        assert amd.id == "amdvi-copied", amd.title
        assert any("Copied DEV table" in e.text for e in amd.evidence)
    elif "Failed to copy DEV table" in lines:
        assert amd.id == "amdvi-copy-failed", amd.title
    else:
        pytest.fail(f"{case.name}: the kdump kernel logged neither a copy nor a failure:\n{lines}")
    assert any("CONTROL=" in e.text and "translation on" in e.text for e in amd.evidence)
    # the devices without a driver in the kdump kernel keep the crashed kernel's tables
    drv = {d for f in rep.findings if f.id == "driverless-bus-master" for d in f.devices}
    assert "0000:00:02.0" in drv


def test_offline_triage_decodes_the_crashed_kernels_tables(case: Path) -> None:
    """Triage with the vmcore: the crashed kernel's AMD-Vi tables (found by scanning the
    dump: the kdump kernel's registers name its own copy) as `crashed-kernel-tables`, each
    risky device with the DomainID and pages the tests' own decoder reads."""
    from kdumptool.analysis.triage import triage
    from kdumptool.sources.root import open_root
    from kdumptool.sources.triage import open_triage_input

    elf = case / "vmcore.iommu.elf"
    with open_root(str(case / "kdump_snapshot.tar.gz")) as root, open_triage_input(root, str(elf)) as inp:
        rep = triage(inp)
    f = next(f for f in rep.findings if f.id == "crashed-kernel-tables")
    assert "AMD-Vi tables" in f.title and "scan of the vmcore" in f.evidence[0].text
    base = regs(case / "live_drhd_regs_final.txt")["DEV_TABLE"] & ~0xFFF
    assert f"device table 0x{base:x}" in f.evidence[0].text
    read = elf_reader(str(elf))
    seen = 0
    for e in f.evidence[1:]:
        m = re.match(r"(\S+): translated, DID (\d+), (\d+) mapped 4 KiB \+ (\d+) large pages", e.text)
        if m:
            bdf = m.group(1)
            devid = int(bdf[5:7], 16) << 8 | int(bdf[8:10], 16) << 3 | int(bdf[11], 16)
            dom, _mode, small, large = oracle_device(read, base, devid)
            assert (int(m.group(2)), int(m.group(3)), int(m.group(4))) == (dom, small, large), e.text
            seen += 1
    assert seen >= 3 and set(f.devices) >= {"0000:00:02.0"}
