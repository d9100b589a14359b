"""``--from-lspci`` on lspci text without hex bytes (``-nnvv``, ``-nnk``, ``-nn``), checked
against the same lab snapshot read from sysfs: every device's ids, class, COMMAND, bus
master, driver, PCIe port type and place in the tree must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError
from kdumptool.formats.lspci_text import parse_lspci_text, rebuild_config
from kdumptool.sources.system import read_system, read_system_from_lspci
from tests.cliutil import run
from tests.conftest import FIXTURES

SNAPS = sorted(p for p in (FIXTURES / "snapshots").iterdir() if (p / "_kdumptool/lspci_vvv.txt").is_file())


@pytest.mark.parametrize("snap", SNAPS, ids=[s.name for s in SNAPS])
def test_nnvv_text_reads_like_sysfs(snap: Path) -> None:
    sysfs = read_system(snap)
    text = read_system_from_lspci(snap / "_kdumptool/lspci_vvv.txt")
    assert set(text.devices) == set(sysfs.devices)
    for bdf, a in sysfs.devices.items():
        b = text.devices[bdf]
        assert (b.vendor_id, b.device_id, b.class_code, b.revision) == (a.vendor_id, a.device_id, a.class_code, a.revision), bdf
        assert (b.command, b.status, b.bus_master) == (a.command, a.status, a.bus_master), bdf
        assert b.driver == a.driver and b.driver_known, bdf
        assert b.port_type == a.port_type, bdf
        assert b.upstream == a.upstream, bdf
        assert b.iommu_group == a.iommu_group, bdf
        assert b.kdump_risk == a.kdump_risk, bdf
        assert any("from lspci text" in w for w in b.warnings)


def test_nn_without_v_leaves_bus_master_and_driver_unknown(capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / "snapshots/live_smoke/_kdumptool/lspci_nn.txt"
    s = read_system_from_lspci(path)
    assert s.devices and all(not d.driver_known and not d.kdump_risk and d.config is None for d in s.devices.values())
    code, out, _ = run(capsys, "pci", "--from-lspci", str(path), "-f", "text")
    assert code == 0 and "BusMaster? driver=? (unknown)" in out and "RISK" not in out


def test_hex_dump_without_text_has_unknown_drivers_and_no_risk(capsys: pytest.CaptureFixture) -> None:
    path = FIXTURES / "snapshots/kdump_legacy_on/_kdumptool/lspci_xxxx.txt"
    s = read_system_from_lspci(path)
    assert any(d.bus_master for d in s.devices.values())
    assert all(not d.driver_known and not d.kdump_risk for d in s.devices.values())
    code, out, _ = run(capsys, "pci", "--from-lspci", str(path), "-f", "text")
    assert "RISK" not in out and "driver=? (unknown)" in out


def test_names_only_text_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "lspci-k.txt"
    p.write_text("00:02.0 Ethernet controller: Intel Corporation 82574L Gigabit Network Connection\n"
                 "\tKernel driver in use: e1000e\n")
    with pytest.raises(DecodeError, match="without ids: use lspci -nn"):
        parse_lspci_text(p.read_text())
    code, _, err = run(capsys, "pci", "--from-lspci", str(p))
    assert code == 1 and err.count("\n") == 1 and "lspci -nn" in err


def test_k_text_gives_drivers() -> None:
    text = ("00:02.0 Ethernet controller [0200]: Intel Corporation 82574L [8086:10d3]\n"
            "\tSubsystem: Intel Corporation Device [8086:0000]\n"
            "\tKernel driver in use: e1000e\n\tKernel modules: e1000e\n"
            "00:03.0 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02) (prog-if 02 [NVM Express])\n"
            "\tKernel modules: nvme\n")
    devs, told = parse_lspci_text(text)
    assert told and [d.driver for d in devs] == ["e1000e", None]
    assert devs[1].class_code == 0x010802 and devs[1].revision == 2 and devs[1].command is None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789abcdef:. []()\n\tControlStus+-BMIOKernldivy", max_size=300))
def test_fuzz(text: str) -> None:
    try:
        devs, _ = parse_lspci_text("00:01.0 0200: 8086:10d3\n" + text)
    except DecodeError:
        return
    for d in devs:
        rebuild_config(d)
