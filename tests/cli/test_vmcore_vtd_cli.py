"""``kdumptool vmcore iommu|exposure|scan`` on the trimmed lab vmcores: golden text and
JSON, the issue's JSON contract, root-table sources, --iova, and one-line errors.
Regenerate goldens with KDUMPTOOL_REGEN_GOLDEN=1 (then read the diff)."""

from __future__ import annotations

import json
import os
from typing import List, Tuple

import pytest
import typer
from typer.testing import CliRunner

from kdumptool.cli import vmcore_vtd
from kdumptool.errors import KdumptoolError
from tests.conftest import FIXTURES
from tests.vtd_oracle import parse_roottable_check

FIX = FIXTURES / "vmcore" / "vtd"
GOLDEN = FIX / "golden"
REGEN = os.environ.get("KDUMPTOOL_REGEN_GOLDEN") == "1"
LEG = FIX / "legacy_on.trim.kdump"
SM = FIX / "sm_mismatch_vmcore.trim.kdump"


def _app() -> typer.Typer:
    root = typer.Typer()
    vapp = typer.Typer()
    vmcore_vtd.register(vapp)

    @root.callback()
    def _cb() -> None:
        pass

    root.add_typer(vapp, name="vmcore")
    return root


def run(*args: str) -> Tuple[int, str, str]:
    r = CliRunner().invoke(_app(), ["vmcore", *args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        if isinstance(r.exception, KdumptoolError):
            return 1, r.stdout, str(r.exception)
        raise r.exception
    return r.exit_code, r.stdout, ""


def golden(name: str, text: str) -> None:
    # Paths in the output name the checkout; goldens must not depend on where it lives.
    text = text.replace(str(FIXTURES.parent), "<repo>")
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"golden {name} differs (KDUMPTOOL_REGEN_GOLDEN=1 to update)"


CASES: List[Tuple[str, List[str]]] = [
    ("iommu_legacy_on_saved", ["iommu", str(LEG), "--saved", str(FIX / "legacy_on")]),
    ("iommu_sm_saved", ["iommu", str(SM), "--saved", str(FIX / "sm_mismatch_vmcore")]),
    ("iommu_sm_device", ["iommu", str(SM), "--rtaddr", "0x2411400", "--device", "00:03.0"]),
    ("iova_sm_0xffffc000", ["iommu", str(SM), "--saved", str(FIX / "sm_mismatch_vmcore"),
                            "--device", "00:02.0", "--iova", "0xffffc000"]),
    ("iova_legacy_miss", ["iommu", str(LEG), "--rtaddr", "25d5000", "--device", "0000:00:02.0",
                          "--iova", "0x1000"]),
    ("exposure_legacy_on", ["exposure", str(LEG), "--saved", str(FIX / "legacy_on")]),
    ("scan_legacy_on", ["scan", str(LEG)]),
    ("scan_sm", ["scan", str(SM)]),
]


@pytest.mark.parametrize("name,args", CASES, ids=[c[0] for c in CASES])
def test_golden_text_and_json(name, args):
    code, out, err = run(*args, "-f", "text")
    assert code == 0, err
    golden(f"{name}.txt", out)
    code, out, err = run(*args, "-f", "json")
    assert code == 0, err
    obj = json.loads(out)
    obj.pop("seconds", None)  # scan timing
    golden(f"{name}.json", json.dumps(obj, indent=1) + "\n")


CONTRACT_DEVICE = {"bdf", "present", "translation_type", "address_width", "domain_id", "pt_root",
                   "mapped_4k_pages", "mapped_large_pages", "extents", "unreadable_tables"}


@pytest.mark.parametrize("run_name,dump", [("legacy_on", LEG), ("sm_mismatch_vmcore", SM)])
def test_json_contract_and_oracle(run_name, dump):
    code, out, err = run("iommu", str(dump), "--saved", str(FIX / run_name), "-f", "json")
    assert code == 0, err
    obj = json.loads(out)
    oracle = parse_roottable_check((FIX / run_name / "roottable_check.txt").read_text())
    assert obj["root_table"] == {"address": oracle.root, "mode": oracle.mode, "source": "saved",
                                 "source_detail": obj["root_table"]["source_detail"]}
    assert "drhd_regs.txt dmar0" in obj["root_table"]["source_detail"]
    for d in obj["devices"]:
        assert CONTRACT_DEVICE <= set(d)
        assert set(d["extents"][0]) == {"iova", "phys", "size", "read", "write"} if d["extents"] else True
        od = oracle.devices[d["bdf"].split(":", 1)[1]]
        assert (d["domain_id"], d["mapped_4k_pages"], d["mapped_large_pages"]) == (
            od.fields["DID"], od.mapped_4k, od.mapped_large)
        assert sum(x["size"] for x in d["extents"]) == 4096 * d["mapped_4k_pages"]
    assert len(obj["devices"]) == len(oracle.devices)


def test_source_order_and_scan_fallback(tmp_path):
    # argument beats saved; nothing given -> scan; a saved record in snapshot JSON form
    code, out, _ = run("iommu", str(SM), "--rtaddr", "0x2411400", "--saved", str(FIX / "legacy_on"), "-f", "json")
    assert json.loads(out)["root_table"]["source"] == "argument"
    code, out, _ = run("iommu", str(SM), "-f", "json")
    rt = json.loads(out)["root_table"]
    assert (rt["source"], rt["address"], rt["mode"]) == ("scan", 0x2411000, "scalable")
    snap = tmp_path / "snap" / "_kdumptool"
    snap.mkdir(parents=True)
    (snap / "vtd_registers.json").write_text(json.dumps({"units": [
        {"name": "dmar0", "address": 0xFED90000, "read_error": None,
         "registers": {"RTADDR": 0x25D5000, "GSTS": 0xC7000000}}]}))
    code, out, _ = run("iommu", str(LEG), "--saved", str(tmp_path / "snap"), "-f", "json")
    rt = json.loads(out)["root_table"]
    assert (rt["source"], rt["address"], rt["mode"]) == ("saved", 0x25D5000, "legacy")
    # a saved address that is not a root table: warned, then the scan finds the real one
    (snap / "vtd_registers.json").write_text(json.dumps({"units": [
        {"name": "dmar0", "address": 0xFED90000, "registers": {"RTADDR": 0x25DD000}}]}))
    code, out, _ = run("iommu", str(LEG), "--saved", str(tmp_path / "snap"), "-f", "json")
    obj = json.loads(out)
    assert obj["root_table"]["source"] == "scan" and obj["root_table"]["address"] == 0x25D5000
    assert any("does not look like a root table" in w for w in obj["warnings"])


def test_mode_auto_without_ttm_bits():
    # 0x2411000 without bit 10: auto picks scalable by structure
    code, out, _ = run("iommu", str(SM), "--rtaddr", "2411000", "-f", "json")
    assert json.loads(out)["root_table"]["mode"] == "scalable"


def test_errors_are_one_line(tmp_path):
    code, _, err = run("iommu", str(tmp_path / "missing.kdump"))
    assert code == 1 and "\n" not in err.strip()
    code, _, err = run("iommu", str(SM), "--saved", str(tmp_path))
    assert code == 1 and "no _kdumptool/vtd_registers.json" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run("iommu", str(SM), "--saved", str(bad))
    assert code == 1 and "not JSON" in err
    r = CliRunner().invoke(_app(), ["vmcore", "iommu", str(SM), "--iova", "0x1000"])
    assert r.exit_code == 2
    r = CliRunner().invoke(_app(), ["vmcore", "iommu", str(SM), "--device", "zz:1", "--iova", "1"])
    assert r.exit_code == 2


def test_wired_into_kdumptool_vmcore(capsys):
    from kdumptool.cli.main import main

    try:
        main(["vmcore", "iommu", str(LEG), "--rtaddr", "0x25d5000", "-f", "json"])
    except SystemExit as e:
        assert not e.code
    assert json.loads(capsys.readouterr().out)["root_table"]["address"] == 0x25D5000


def test_register_source_only_when_translation_is_off(monkeypatch):
    """In a kdump kernel (dump = /proc/vmcore), RTADDR read live is used when GSTS.TES is
    clear (intel_iommu=off: it still points at the old table), skipped when TES is set."""
    from pathlib import Path

    from kdumptool.formats.vtd_regs import decode_vtd_registers
    from kdumptool.model.system import IommuUnit
    from kdumptool.sources import system
    from kdumptool.sources.vmcore import open_dump

    gsts = {"value": 0x47000000}  # TES (bit 31) clear

    def fake_units(root, dmar, warnings, read_registers=True):
        regs = decode_vtd_registers({"RTADDR": 0x2411400, "GSTS": gsts["value"]})
        return [IommuUnit(name="dmar0", address=0xFED90000, registers=regs)]

    monkeypatch.setattr(system, "read_dmar_table", lambda root, warnings: (None, None))
    monkeypatch.setattr(system, "read_units", fake_units)
    with open_dump(str(SM)) as dump:
        roots, _ = vmcore_vtd._resolve_all(dump, Path("/proc/vmcore"), None, None, None, "auto", all_units=False)
        assert (roots[0].address, roots[0].mode, roots[0].source) == (0x2411000, "scalable", "register")
        gsts["value"] = 0xC7000000  # TES set: the kdump kernel's own table; fall back to the scan
        roots, warnings = vmcore_vtd._resolve_all(dump, Path("/proc/vmcore"), None, None, None, "auto",
                                                  all_units=False)
        assert roots[0].source == "scan" and any("translation is on" in w for w in warnings)
        # a dump that is not /proc/vmcore never looks at live registers
        assert vmcore_vtd._resolve_all(dump, SM, None, None, None, "auto", all_units=False)[0][0].source == "scan"


def test_register_rule_on_real_kdump_kernel_registers(monkeypatch):
    """Registers read in the lab's kdump kernels: intel_iommu=off keeps the old RTADDR
    (equal to the live kernel's, TES clear) and it is used; intel_iommu=on shows the kdump
    kernel's own table (TES set) and it is not."""
    from pathlib import Path

    from kdumptool.formats.vtd_regs import decode_vtd_registers
    from kdumptool.formats.vtd_tables import old_table_in_rtaddr, parse_drhd_regs_text
    from kdumptool.model.system import IommuUnit
    from kdumptool.sources import system
    from kdumptool.sources.vmcore import open_dump

    off = parse_drhd_regs_text((FIX / "kdump_regs/legacy_off/drhd_regs.txt").read_text())[0]
    live_off = parse_drhd_regs_text((FIX / "live_regs/legacy_off/drhd_regs.txt").read_text())[0]
    on = parse_drhd_regs_text((FIX / "kdump_regs/legacy_on/drhd_regs.txt").read_text())[0]
    assert old_table_in_rtaddr(off.gsts) and off.rtaddr == live_off.rtaddr
    assert not old_table_in_rtaddr(on.gsts)

    monkeypatch.setattr(system, "read_dmar_table", lambda root, warnings: (None, None))
    monkeypatch.setattr(system, "read_units", lambda root, dmar, warnings, read_registers=True: [
        IommuUnit(name=on.name, address=on.base, registers=decode_vtd_registers({"RTADDR": on.rtaddr,
                                                                                "GSTS": on.gsts}))])
    with open_dump(str(LEG)) as dump:
        roots, _ = vmcore_vtd._resolve_all(dump, Path("/proc/vmcore"), None, None, None, "auto", all_units=False)
    assert roots[0].source == "scan" and roots[0].address == 0x25D5000


def test_saved_record_from_the_kdump_kernel_falls_back_to_scan():
    # kdump/legacy_on's RTADDR is the kdump kernel's new table: not in the vmcore
    code, out, err = run("iommu", str(LEG), "--saved", str(FIX / "kdump_regs/legacy_on"), "-f", "json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["root_table"]["source"] == "scan" and obj["root_table"]["address"] == 0x25D5000
    assert any("0x1d836000 does not look like a root table (root table unreadable: not in the dump)" in w
               for w in obj["warnings"])


def test_faults_of_the_kdump_kernel_against_the_old_tables():
    """sm_mismatch: the kdump kernel (sm_off) failed to copy the scalable-mode tables and
    00:02.0 faulted reading 0xffffc000; the crashed kernel's tables map it R/W."""
    code, out, err = run("iommu", str(SM), "--saved", str(FIX / "sm_mismatch_vmcore"),
                         "--faults", str(FIX / "sm_mismatch_vmcore/kdump_dmesg.txt"), "-f", "json")
    assert code == 0, err
    obj = json.loads(out)
    assert [(f["bdf"], f["address"], f["access"], f["mapped"], f["read"], f["write"]) for f in obj["faults"]] == [
        ("0000:00:02.0", 0xFFFFC000, "read", True, True, True)]
    code, out, _ = run("iommu", str(SM), "--saved", str(FIX / "sm_mismatch_vmcore"),
                       "--faults", str(FIX / "sm_mismatch_vmcore/kdump_dmesg.txt"), "-f", "text")
    golden("faults_sm_mismatch.txt", out)
    code, _, err = run("iommu", str(SM), "--rtaddr", "0x2411400", "--faults", "/nonexistent/dmesg.txt")
    assert code == 1 and "/nonexistent/dmesg.txt" in err


@pytest.mark.parametrize("args", [["iommu", str(LEG), "--rtaddr", "0x25d5000"], ["exposure", str(SM)],
                                  ["scan", str(SM)]])
def test_rich_output_renders(args):
    code, out, err = run(*args, "-f", "rich")
    assert code == 0, err
    assert "0x25d5000" in out or "0x2411000" in out


def test_all_units_two_root_tables(tmp_path):
    """Two units, each with its own root table (as on servers with several DRHDs), in a
    kdump-compressed dump written in code: --all-units decodes both from the saved record
    and from the scan; exposure covers both."""
    from tests.dumpwriter import DumpSpec, write_kdump
    from tests.vtd_memory import LegacyTables, PageTable, VtdMemory

    mem = VtdMemory()
    a = PageTable(mem, 3)
    a.map(0x1000, 0x300000)
    b = PageTable(mem, 4)
    b.map(0x2000, 0x400000, write=False)
    u0 = LegacyTables(mem)
    u0.device(0, 0x10, a.root, did=1)
    u1 = LegacyTables(mem)
    u1.device(0x80, 0x00, b.root, did=1, aw=2)
    dump = tmp_path / "two.kdump"
    dump.write_bytes(write_kdump(DumpSpec(pages={p // 4096: bytes(v) for p, v in mem.pages.items()})))
    snap = tmp_path / "snap" / "_kdumptool"
    snap.mkdir(parents=True)
    (snap / "vtd_registers.json").write_text(json.dumps({"units": [
        {"name": "dmar0", "address": 0xFED90000, "registers": {"RTADDR": u0.root}},
        {"name": "dmar1", "address": 0xFED91000, "registers": {"RTADDR": u1.root}}]}))
    code, out, err = run("iommu", str(dump), "--saved", str(tmp_path / "snap"), "--all-units", "-f", "json")
    assert code == 0, err
    units = json.loads(out)["units"]
    assert [(u["root_table"]["address"], u["root_table"]["source"], [d["bdf"] for d in u["devices"]])
            for u in units] == [(u0.root, "saved", ["0000:00:02.0"]), (u1.root, "saved", ["0000:80:00.0"])]
    code, out, _ = run("iommu", str(dump), "--saved", str(tmp_path / "snap"), "-f", "json")
    obj = json.loads(out)
    assert obj["root_table"]["address"] == u0.root and any("--all-units" in w for w in obj["warnings"])
    code, out, _ = run("iommu", str(dump), "--all-units", "-f", "json")
    assert sorted(u["root_table"]["address"] for u in json.loads(out)["units"]) == sorted([u0.root, u1.root])
    code, out, _ = run("exposure", str(dump), "--all-units", "-f", "json")
    ex = json.loads(out)
    assert sorted(d["bdf"] for d in ex["devices"]) == ["0000:00:02.0", "0000:80:00.0"]
    assert [(r["start"], r["write"]) for r in ex["union"]] == [(0x300000, True), (0x400000, False)]
    code, out, _ = run("iommu", str(dump), "--rtaddr", f"{u0.root:#x},{u1.root:#x}", "--all-units", "-f", "text")
    assert out.count("given with --rtaddr") == 2
    r = CliRunner().invoke(_app(), ["vmcore", "iommu", str(dump), "--all-units", "--device", "00:02.0",
                                    "--iova", "0x1000"])
    assert r.exit_code == 2


def test_dump_without_vtd_tables_is_a_one_line_error(tmp_path):
    from tests.dumpwriter import DumpSpec, write_kdump

    pages = {0x100 + i: bytes((i * 7 + j) & 0xFF for j in range(4096)) for i in range(8)}
    dump = tmp_path / "novtd.kdump"
    dump.write_bytes(write_kdump(DumpSpec(pages=pages)))
    code, _, err = run("iommu", str(dump))
    assert code == 1 and "found no valid VT-d root table" in err and "\n" not in err
    code, out, _ = run("scan", str(dump), "-f", "json")
    obj = json.loads(out)
    assert code == 0 and obj["best"] is None and obj["pages_scanned"] == 8


def test_faults_from_the_crashed_kernels_own_log():
    # the trimmed dumps keep the printk pages; the lab's live kernels logged no DMA fault
    code, out, err = run("iommu", str(SM), "--rtaddr", "0x2411400", "--faults", "vmcore", "-f", "json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["log"] == "the crashed kernel's log (from the dump)" and obj["faults"] == []
    # and the log was really read: the same decode finds the crash trigger and the DRHD
    from kdumptool.formats.klog import parse_log
    from kdumptool.formats.printk import decode_printk
    from kdumptool.sources.vmcore import open_dump

    with open_dump(str(SM)) as dump:
        kinds = {e.kind for e in parse_log(decode_printk(dump.vmcoreinfo, dump.read_virt).dmesg_lines())}
    assert {"drhd", "panic", "crash_trigger"} <= kinds and "dma_fault" not in kinds


def test_saved_record_without_registers_falls_back_to_scan(tmp_path):
    snap = tmp_path / "snap" / "_kdumptool"
    snap.mkdir(parents=True)
    (snap / "vtd_registers.json").write_text(json.dumps({"units": [
        {"name": "dmar0", "address": 0xFED90000, "registers": None,
         "read_error": "/dev/mem: mapping refused (CONFIG_IO_STRICT_DEVMEM; boot with iomem=relaxed)"}]}))
    code, out, err = run("iommu", str(SM), "--saved", str(tmp_path / "snap"), "-f", "json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["root_table"]["source"] == "scan" and obj["root_table"]["address"] == 0x2411000
    assert any("dmar0: no RTADDR saved" in w for w in obj["warnings"])
