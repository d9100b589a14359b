"""Triage on damaged or partial snapshots: partial results with warnings, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.analysis.triage import triage
from kdumptool.render.triage import render_triage_json, render_triage_text
from kdumptool.sources.root import Root
from kdumptool.sources.triage import read_triage_input
from tests.conftest import FIXTURES

SNAP = FIXTURES / "snapshots"


def copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(SNAP / name, dest, symlinks=True)
    return dest


def run(root: Path):
    r = triage(read_triage_input(Root(root), use_tools=False))
    render_triage_text(r)
    json.dumps(render_triage_json(r))
    return r


def ids(r):
    return [f.id for f in r.findings]


def test_no_registers_falls_back_on_the_log(tmp_path):
    root = copy(tmp_path, "kdump_sm_mismatch")
    (root / "_kdumptool/vtd_registers.json").unlink()
    r = run(root)
    # "Failed to copy", "Scalable mode is disallowed" and the fault still decide the case.
    assert r.scenario.case == "sm-mismatch" and r.verdict == "error"
    assert r.scenario.kdump.scalable is False


def test_bad_registers_and_no_log_is_unknown_with_input_warnings(tmp_path):
    root = copy(tmp_path, "kdump_legacy_off")
    (root / "_kdumptool/vtd_registers.json").write_text('{"units": [{"name": "dmar0", "address": "x"}]}')
    (root / "_kdumptool/dmesg.txt").unlink()
    r = run(root)
    assert r.scenario.case == "unknown" and "scenario-unknown" in ids(r)
    assert any("no integer 'address'" in f.title for f in r.findings if f.id == "input-warning")


def test_bad_kdump_conf_lines_are_findings(tmp_path):
    root = copy(tmp_path, "live_legacy_on")
    (root / "etc").mkdir()
    (root / "etc/kdump.conf").write_text("path\n!!\ncore_collector makedumpfile -d 99\n")
    r = run(root)
    warn = [f.title for f in r.findings if f.id == "kdump-config-warning"]
    assert any("line 1" in w for w in warn) and any("line 2" in w for w in warn)
    assert any("line 3" in w and "not 0-31" in w for w in warn)


def test_truncated_kdump_initramfs(tmp_path):
    root = copy(tmp_path, "live_legacy_on")
    (root / "boot").mkdir()
    data = (FIXTURES / "initramfs/initrd-early-gzip.img").read_bytes()
    (root / "boot/initramfs-6.1.0-56-amd64kdump.img").write_bytes(data[:-200])
    r = run(root)
    assert "kdump-initramfs-partly-read" in ids(r)


def test_garbage_initramfs(tmp_path):
    root = copy(tmp_path, "live_legacy_on")
    (root / "boot").mkdir()
    (root / "boot/initramfs-6.1.0-56-amd64kdump.img").write_bytes(b"not an initramfs at all")
    r = run(root)
    assert "kdump-initramfs-unreadable" in ids(r)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_fuzz_log_and_config(tmp_path, log, conf):
    root = tmp_path / "fz"
    if not root.exists():
        shutil.copytree(SNAP / "kdump_legacy_on", root, symlinks=True)
        (root / "etc").mkdir()
    (root / "_kdumptool/dmesg.txt").write_bytes(log)
    (root / "etc/kdump.conf").write_text(conf)
    run(root)


def newc(entries) -> bytes:
    """A newc archive built in code (name, mode, data) for the edge cases below."""
    out = bytearray()
    for i, (name, mode, data) in enumerate(list(entries) + [("TRAILER!!!", 0, b"")]):
        nm = name.encode() + b"\0"
        hdr = b"070701" + b"".join(b"%08X" % v for v in (i + 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0))
        out += hdr + nm
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


KDT_INITRD = [
    ("usr/bin/kdumptool", 0o100755, b"#!/bin/sh\n"),
    ("usr/libexec/kdumptool/kdump-post", 0o100755, b"#!/bin/sh\n"),
    ("usr/lib/modules/6.1.0-56-amd64/kernel/drivers/nvme/host/nvme.ko", 0o100644, b"x"),
]


def test_quiesce_inside_kdump_mitigates_the_bridge_hazard(tmp_path):
    root = copy(tmp_path, "kdump_legacy_on")
    cmd = (root / "proc/cmdline").read_text().strip()
    (root / "proc/cmdline").write_text(cmd + " kdumptool.quiesce=1\n")
    r = run(root)
    br = [f for f in r.findings if f.id == "bridge-shutdown-order"][0]
    assert br.severity == "info" and "mitigated" in br.title
    assert any(e.text == "kdumptool.quiesce=1" for e in br.evidence)
    assert r.verdict == "warning"  # driverless devices still master during the dump


def test_quiesce_on_a_live_host_needs_the_module_in_the_initramfs(tmp_path):
    root = copy(tmp_path, "live_legacy_on")
    (root / "etc/kdumptool").mkdir(parents=True)
    (root / "etc/kdumptool/kdumptool.conf").write_text("# kdumptool\nquiesce=1\n")
    (root / "boot").mkdir()
    img = root / "boot/initramfs-6.1.0-56-amd64kdump.img"
    img.write_bytes(newc(KDT_INITRD))
    r = run(root)
    br = [f for f in r.findings if f.id == "bridge-shutdown-order"][0]
    assert br.severity == "info"
    assert any(e.source == "/etc/kdumptool/kdumptool.conf" and e.line == 2 for e in br.evidence)
    img.write_bytes(newc(KDT_INITRD[2:]))  # the module missing
    r = run(root)
    br = [f for f in r.findings if f.id == "bridge-shutdown-order"][0]
    assert br.severity == "warning" and any("not in the kdump initramfs" in e.text for e in br.evidence)


def test_live_without_registers_or_log_uses_sysfs(tmp_path):
    root = copy(tmp_path, "live_legacy_on")
    (root / "_kdumptool/vtd_registers.json").unlink()
    (root / "_kdumptool/dmesg.txt").unlink()
    r = run(root)
    assert r.scenario.first.vtd is True
    assert any(e.source == "/sys/class/iommu/dmar0/devices" for e in r.scenario.first.evidence)
    assert r.scenario.case == "copied"


def test_amd_machine_says_amd(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("root=/dev/sda1 amd_iommu=on\n")
    (tmp_path / "sys/firmware/acpi/tables").mkdir(parents=True)
    (tmp_path / "sys/firmware/acpi/tables/IVRS").write_bytes(b"IVRS" + bytes(44))
    r = run(tmp_path)
    # AMD-Vi is triaged like VT-d: its case, and the kdump configuration checks (none here)
    ids = [f.id for f in r.findings]
    assert "amdvi-copied" in ids and {"no-kdump-config", "kdump-initramfs-missing"} <= set(ids)
    assert r.verdict == "warning" and r.exit_code == 3
    assert r.vendor == "AMD-Vi" and "no-vtd" not in ids
    assert any(e.source == "/sys/firmware/acpi/tables/IVRS" for e in next(f for f in r.findings
                                                                         if f.id == "amdvi-copied").evidence)


def test_capacity_checks(tmp_path):
    """crashkernel vs RAM and free space at the dump target vs the dump level (figures as
    psutil and /proc/meminfo give them; the RAM size is the lab guest's MemTotal x 1000)."""
    import dataclasses

    from kdumptool.analysis.triage import expected_dump_size
    from kdumptool.formats.kdumpconf import parse_kdump_conf, settings_of
    from kdumptool.model.triage import Capacity

    inp = read_triage_input(Root(SNAP / "live_legacy_on"), use_tools=False)
    conf = settings_of("rhel", [parse_kdump_conf((FIXTURES / "kdumpconf/rhel-kdump.conf").read_text())])
    big = 721308 * 1024 * 1000
    inp = dataclasses.replace(inp, kdump_settings=conf, capacity=Capacity(
        mem_total=big, mem_used=big // 2, crash_size=256 << 20, crash_loaded=True,
        target_path="/var/crash", target_free=10 << 30))
    r = triage(inp)
    small = [f for f in r.findings if f.id == "crashkernel-small"][0]
    assert small.severity == "warning" and "256 MiB" in small.title
    space = [f for f in r.findings if f.id == "dump-target-space"][0]
    assert "level 31" in space.title and any(":14: core_collector" in str(e) for e in space.evidence)
    assert expected_dump_size(31, big // 2, big) == big // 8
    assert expected_dump_size(0, big // 2, big) == big
    inp = dataclasses.replace(inp, capacity=Capacity(mem_total=721308 * 1024, crash_size=0, crash_loaded=False))
    ids_ = [f.id for f in triage(inp).findings]
    assert "no-crashkernel" in ids_ and "kdump-not-loaded" in ids_


def test_rmrr_device(tmp_path):
    """The lab's real DMAR table with one RMRR appended (VT-d spec 8.4: type 1, segment,
    base, limit, an endpoint scope for 00:02.0): the device is reported with its RMRR."""
    import struct

    root = copy(tmp_path, "live_legacy_on")
    path = root / "sys/firmware/acpi/tables/DMAR"
    table = bytearray(path.read_bytes())
    scope = struct.pack("<BBHBB", 1, 8, 0, 0, 0) + bytes([2, 0])  # endpoint, bus 0, dev 2 fn 0
    rmrr = struct.pack("<HHHHQQ", 1, 24 + len(scope), 0, 0, 0x7C000000, 0x7C0FFFFF) + scope
    table += rmrr
    table[4:8] = struct.pack("<I", len(table))
    table[9] = 0
    table[9] = (-sum(table)) & 0xFF
    path.write_bytes(bytes(table))
    r = run(root)
    f = [f for f in r.findings if f.id == "rmrr-device"]
    assert f and f[0].devices == ("0000:00:02.0",) and "0x7c000000" in f[0].title
    assert any(d.bdf == "0000:00:02.0" and d.rmrrs == (0x7C000000,) for d in r.devices)
