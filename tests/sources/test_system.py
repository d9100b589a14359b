"""The same model both ways on this host (pyudev enumeration vs plain sysfs files), the
commands on the live host and on snapshots, and the lspci-dump source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdumptool.cli.main import main
from kdumptool.sources.root import Root
from kdumptool.sources.system import parse_iomem, read_system, read_system_from_lspci
from tests.conftest import FIXTURES

SNAPSHOTS = FIXTURES / "snapshots"
HAVE_PCI = os.path.isdir("/sys/bus/pci/devices") and bool(os.listdir("/sys/bus/pci/devices"))


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as ei:
        main(list(args))
    out = capsys.readouterr()
    return ei.value.code, out.out, out.err


def _comparable(system):
    return {
        b: (d.vendor_id, d.device_id, d.class_code, d.command, d.bus_master, d.driver, d.iommu_group,
            d.upstream, d.port_type, d.drhd, d.config_size)
        for b, d in system.devices.items()
    }


@pytest.mark.skipif(not HAVE_PCI, reason="no PCI devices in this host's sysfs")
def test_live_model_same_through_udev_and_files():
    pytest.importorskip("pyudev")
    via_udev = read_system("/", use_udev=True, read_registers=False)
    via_files = read_system(Root("/"), use_udev=False, read_registers=False)
    assert via_udev.devices  # the host has PCI devices
    assert _comparable(via_udev) == _comparable(via_files)
    assert via_udev.groups == via_files.groups
    assert [u.address for u in via_udev.units] == [u.address for u in via_files.units]


@pytest.mark.skipif(not HAVE_PCI, reason="no PCI devices in this host's sysfs")
@pytest.mark.parametrize("cmd", ["pci", "iommu"])
def test_commands_run_on_this_host(capsys, cmd):
    code, out, err = run_cli(capsys, cmd, "-f", "text")
    assert code in (0, None), err
    system = read_system("/", read_registers=False)
    if not system.has_vtd:
        assert "no VT-d unit" in out
    doc_code, doc, _ = run_cli(capsys, cmd, "-f", "json")
    assert json.loads(doc)["vtd"] == system.has_vtd


def test_commands_on_snapshot(capsys):
    snap = str(SNAPSHOTS / "kdump_sm_mismatch")
    code, out, _ = run_cli(capsys, "iommu", "--root", snap, "-f", "json")
    doc = json.loads(out)
    unit = doc["units"][0]
    assert unit["name"] == "dmar0" and unit["decoded"]["mode"] == "legacy"
    assert unit["decoded"]["ecap"]["SMTS"] is True
    code, out, _ = run_cli(capsys, "pci", "--root", snap, "-f", "json")
    devs = {d["bdf"]: d for d in json.loads(out)["devices"]}
    assert devs["0000:03:01.0"]["upstream"] == ["0000:02:00.0", "0000:00:05.0"]
    assert devs["0000:00:02.0"]["kdump_risk"] is True  # e1000e mastering, no driver in kdump
    code, out, _ = run_cli(capsys, "pci", "--root", snap, "-v", "-s", "00:05.0", "-f", "text")
    assert "Access Control Services" in out and "Root Port" in out


def test_lspci_dump_source_matches_snapshot():
    snap = SNAPSHOTS / "live_legacy_on"
    from_dump = read_system_from_lspci(snap / "_kdumptool" / "lspci_xxxx.txt")
    from_sysfs = read_system(snap)
    assert set(from_dump.devices) == set(from_sysfs.devices)
    for b, d in from_dump.devices.items():
        s = from_sysfs.devices[b]
        assert (d.command, d.upstream, d.port_type) == (s.command, s.upstream, s.port_type), b


def test_bad_root_and_bad_dump_are_one_line_errors(capsys, tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("hello\n")
    code, _, err = run_cli(capsys, "pci", "--from-lspci", str(bad))
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = run_cli(capsys, "iommu", "--root", str(tmp_path / "missing"))
    assert code == 1 and "no such file" in err


def test_empty_root_is_not_read_as_a_system(tmp_path, capsys):
    # issue 14: an empty folder is not "no VT-d": say what is missing, exit 1
    code, out, err = run_cli(capsys, "iommu", "--root", str(tmp_path), "-f", "text")
    assert code == 1 and "not a snapshot" in err and out == ""
    (tmp_path / "sys").mkdir()
    code, out, _ = run_cli(capsys, "iommu", "--root", str(tmp_path), "-f", "text")
    assert "no VT-d unit" in out and "no ACPI DMAR table" in out


def test_iomem_parse_depths():
    text = (SNAPSHOTS / "live_legacy_on" / "proc" / "iomem").read_text()
    ranges = parse_iomem(text)
    crash = [r for r in ranges if r.name == "Crash kernel"]
    assert crash and crash[0].depth == 1 and crash[0].end - crash[0].start + 1 == 256 << 20


def test_truncated_config_gives_partial_model(tmp_path):
    """A snapshot taken without root: 64-byte configs. The model still builds, with warnings."""
    src = SNAPSHOTS / "live_legacy_on"
    dev = tmp_path / "sys/bus/pci/devices/0000:00:02.0"
    dev.mkdir(parents=True)
    (dev / "config").write_bytes((src / "sys/bus/pci/devices/0000:00:02.0/config").read_bytes()[:64])
    system = read_system(tmp_path)
    d = system.devices["0000:00:02.0"]
    assert d.bus_master and d.port_type is None
    assert any("only 64 bytes" in w for w in system.warnings)


def test_snapshot_symlinks_stay_inside():
    for p in Path(SNAPSHOTS).rglob("*"):
        if p.is_symlink():
            target = os.path.realpath(p)
            assert target.startswith(str(SNAPSHOTS.resolve())), p


@pytest.mark.parametrize("run", ["live_legacy_on", "kdump_sm_mismatch", "kdump_legacy_off"])
@pytest.mark.parametrize("suffix", ["dir", "snap.tar.gz"])
def test_collect_of_a_snapshot_reads_back_the_same_model(tmp_path, run, suffix):
    from kdumptool.sources.root import open_root
    from kdumptool.sources.snapshot import collect

    src = SNAPSHOTS / run
    out = tmp_path / suffix
    steps = []
    meta = collect(out, Root(src), progress=lambda s, d, t: steps.append(s), run_lspci=False)
    assert meta["unreadable"] == {}
    assert steps[0] == "PCI devices" and steps[-1] == "done"
    with open_root(out) as back:
        a, b = read_system(src), read_system(back)
    assert _comparable(a) == _comparable(b)
    assert a.groups == b.groups
    assert [(u.name, u.address, u.registers) for u in a.units] == [(u.name, u.address, u.registers) for u in b.units]
    assert (a.cmdline, a.in_kdump_kernel, a.kexec_crash_size, a.iomem) == (b.cmdline, b.in_kdump_kernel, b.kexec_crash_size, b.iomem)


@pytest.mark.skipif(not HAVE_PCI, reason="no PCI devices in this host's sysfs")
def test_collect_live_host(tmp_path, capsys):
    out = tmp_path / "snap.tar.gz"
    code, text, err = run_cli(capsys, "collect", "-o", str(out), "--no-lspci", "-f", "text")
    assert code in (0, None), err
    live = read_system("/", use_udev=False, read_registers=False)
    assert f"{len(live.devices)} PCI devices" in text
    if not live.has_vtd:
        assert "no VT-d unit" in text
    from kdumptool.sources.root import open_root

    with open_root(out) as back:
        snap = read_system(back)
    assert set(snap.devices) == set(live.devices)
    assert _comparable(snap) == _comparable(live)


def test_unreadable_dmar_is_not_reported_as_absent(tmp_path, monkeypatch):
    """Non-root: sys/firmware/acpi/tables/DMAR exists (mode 0400) but cannot be read."""
    from kdumptool.errors import PermissionDenied
    from kdumptool.render.pci import no_vtd_reason

    tables = tmp_path / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True)
    (tables / "DMAR").write_bytes(b"DMAR")
    real = Root.read_bytes

    def deny(self, rel, limit=None, **kw):
        if rel.endswith("/DMAR"):
            raise PermissionDenied(f"{self.p(rel)}: permission denied (run as root?)")
        return real(self, rel, limit, **kw)

    monkeypatch.setattr(Root, "read_bytes", deny)
    system = read_system(tmp_path)
    assert system.dmar_present and system.dmar is None
    assert any("permission denied" in w for w in system.warnings)
    assert "could not be read" in no_vtd_reason(system)


def test_udev_failure_falls_back_to_files(monkeypatch):
    from kdumptool.errors import SourceMissing
    from kdumptool.sources import pci as pci_src

    def broken(warnings=None):
        raise SourceMissing("udev enumeration failed: No library named udev")

    monkeypatch.setattr(pci_src, "read_pci_devices_udev", broken)
    system = read_system("/", use_udev=True, read_registers=False)
    assert any("enumerating sysfs files instead" in w for w in system.warnings)
    assert set(system.devices) == set(read_system(Root("/"), use_udev=False, read_registers=False).devices)


def test_kdump_kernel_known_from_elfcorehdr(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz irqpoll reset_devices elfcorehdr=720244K\n")
    assert read_system(tmp_path).in_kdump_kernel
    (tmp_path / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz crashkernel=256M\n")
    assert not read_system(tmp_path).in_kdump_kernel


@pytest.mark.corpus
def test_from_lspci_on_every_corpus_dump(shared, capsys):
    """Users' dumps as found in mails: every corpus hex file gives a tree, never a traceback."""
    files = sorted((shared / "corpus" / "lspci" / "hex").iterdir())
    assert files
    for f in files:
        code, out, err = run_cli(capsys, "pci", "--from-lspci", str(f), "-v", "-f", "text")
        assert code in (0, None), (f.name, err)
        assert "VT-d state unknown" in out and "Control:" in out, f.name
