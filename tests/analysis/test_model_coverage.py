"""DRHD coverage and RMRR naming: the lab snapshots against the iasl -d listing of their
DMAR table and lspci's tree, and synthetic tables for the kernel's matching rules
(dmar_pci_device_match: a device or any bridge above it in a scope; INCLUDE_PCI_ALL last;
multi-hop paths through bridges' secondary buses; segments)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kdumptool.formats.dmar import DeviceScope, Drhd, Rmrr
from kdumptool.formats.pciconfig import parse_pci_config
from kdumptool.model.system import RawDevice, build_system, find_drhd
from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))
from lspci_oracle import parse_tree  # noqa: E402

SNAPSHOTS = FIXTURES / "snapshots"
RUNS = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())


def dsl_units(text: str):
    """iasl -d DMAR listing -> [(base, include_all, [(scope type, bus, path)])]."""
    units = []
    cur = None
    scope = None
    for line in text.splitlines():
        m = re.search(r"\]\s+([A-Za-z .]+?) : (.*)$", line)
        if not m:
            continue
        key, val = m.group(1).strip(), m.group(2).strip()
        if key == "Subtable Type":
            cur = None
            if "Hardware Unit Definition" in val:
                cur = {"base": None, "flags": None, "scopes": []}
                units.append(cur)
        elif cur is None:
            continue
        elif key == "Flags" and cur["flags"] is None:
            cur["flags"] = int(val, 16)
        elif key == "Register Base Address":
            cur["base"] = int(val, 16)
        elif key == "Device Scope Type":
            scope = [int(val.split()[0], 16), None, None]
            cur["scopes"].append(scope)
        elif key == "PCI Bus Number" and scope is not None:
            scope[1] = int(val, 16)
        elif key == "PCI Path" and scope is not None:
            d, f = val.split(",")
            scope[2] = (int(d, 16), int(f, 16))
    return [(u["base"], bool(u["flags"] & 1), u["scopes"]) for u in units]


@pytest.mark.parametrize("run", RUNS)
def test_coverage_agrees_with_iasl_listing_and_lspci_tree(run):
    units = dsl_units((SNAPSHOTS / "DMAR.dsl").read_text())
    assert units and all(base for base, _, _ in units)
    tree = parse_tree((SNAPSHOTS / run / "_kdumptool" / "lspci_tree.txt").read_text())

    def chain(bdf):
        out = []
        while tree.get(bdf):
            bdf = tree[bdf]
            out.append(bdf)
        return out

    system = read_system(SNAPSHOTS / run)
    for bdf in tree:
        expected = None
        for base, incl, scopes in units:
            named = {f"0000:{bus:02x}:{d:02x}.{f}" for t, bus, (d, f) in scopes if t in (1, 2)}
            if not incl and (bdf in named or named & set(chain(bdf))):
                expected = base
                break
        else:
            expected = next((base for base, incl, _ in units if incl), None)
        assert system.devices[bdf].drhd == expected, bdf
    covered = {b for b, d in system.devices.items() if d.drhd is not None}
    assert set(system.units[0].devices) == covered
    # The PCIe-to-PCI bridge is covered through the root port 00:05.0 (a bridge scope),
    # and so is the conventional e1000 behind it.
    assert system.devices["0000:03:01.0"].drhd == system.devices["0000:00:05.0"].drhd == 0xFED90000


def test_coverage_agrees_with_sysfs_when_present():
    system = read_system(SNAPSHOTS / "live_legacy_on")
    assert not [w for w in system.warnings if "sysfs puts it under" in w]
    assert set(system.units[0].sysfs_devices) == set(system.units[0].devices)


# ---- synthetic tables ----------------------------------------------------------------


def scope(kind, bus, *path):
    return DeviceScope(0, 1 if kind == "PCI_ENDPOINT" else 2, kind, 8, 0, bus, tuple(path))


def drhd(base, scopes=(), include_all=False, segment=0):
    return Drhd(0, 16, 1 if include_all else 0, 0, segment, base, tuple(scopes))


def cfg(bridge=None):
    b = bytearray(256)
    b[0:2] = b"\x86\x80"
    b[4] = 0x04  # bus master
    if bridge:
        b[0x0E] = 1
        b[0x0B], b[0x0A] = 0x06, 0x04
        b[0x19], b[0x1A] = bridge
    return parse_pci_config(bytes(b))


def raw_devices():
    devs = {
        "0000:00:01.0": RawDevice("0000:00:01.0", cfg((1, 2)), 256),
        "0000:01:00.0": RawDevice("0000:01:00.0", cfg((2, 2)), 256),
        "0000:02:00.0": RawDevice("0000:02:00.0", cfg(), 256),
        "0000:00:02.0": RawDevice("0000:00:02.0", cfg(), 256),
        "0001:00:02.0": RawDevice("0001:00:02.0", cfg(), 256),
    }
    return devs


def test_multi_hop_path_endpoint_and_include_all_last():
    devs = raw_devices()
    table = SimpleNamespace(
        structures=(
            drhd(0xA000, include_all=True),  # listed first: must still lose to a scope match
            drhd(0xB000, [scope("PCI_ENDPOINT", 0, (1, 0), (0, 0), (0, 0))]),
        )
    )
    system = build_system(
        source="t", raw_devices=devs, groups={}, units=[], dmar=table, cmdline=None,
        in_kdump_kernel=False, kexec_crash_loaded=None, kexec_crash_size=None, iomem=(),
    )
    assert system.devices["0000:02:00.0"].drhd == 0xB000  # 00:01.0 -> bus 1 -> 01:00.0 -> bus 2
    assert system.devices["0000:00:02.0"].drhd == 0xA000
    assert system.devices["0000:00:01.0"].drhd == 0xA000
    assert system.devices["0001:00:02.0"].drhd is None  # other segment, no unit
    assert system.devices["0000:02:00.0"].upstream == ("0000:01:00.0", "0000:00:01.0")


def test_bridge_scope_covers_everything_below_and_rmrr():
    devs = raw_devices()
    rmrr = Rmrr(0, 32, 0, 0x7000_0000, 0x7000_FFFF, (scope("PCI_BRIDGE", 0, (1, 0)),))
    table = SimpleNamespace(structures=(drhd(0xB000, [scope("PCI_BRIDGE", 0, (1, 0))]), rmrr))
    upstream = ("0000:01:00.0", "0000:00:01.0")
    assert find_drhd("0000:02:00.0", upstream, table, devs) == 0xB000
    assert find_drhd("0000:00:02.0", (), table, devs) is None
    system = build_system(
        source="t", raw_devices=devs, groups={}, units=[], dmar=table, cmdline=None,
        in_kdump_kernel=False, kexec_crash_loaded=None, kexec_crash_size=None, iomem=(),
    )
    assert system.devices["0000:02:00.0"].rmrrs == (0x7000_0000,)
    assert system.devices["0000:00:02.0"].rmrrs == ()
    assert system.devices["0000:02:00.0"].kdump_risk  # bus master, no driver, not a bridge
    assert not system.devices["0000:00:01.0"].kdump_risk  # a bridge


def test_scope_naming_a_missing_device_is_ignored():
    devs = raw_devices()
    table = SimpleNamespace(structures=(drhd(0xB000, [scope("PCI_ENDPOINT", 5, (9, 0))]),))
    assert find_drhd("0000:00:02.0", (), table, devs) is None


def test_all_ones_config_is_not_a_bus_master():
    b = bytes([0xFF]) * 256
    devs = {"0000:05:00.0": RawDevice("0000:05:00.0", parse_pci_config(b), 256)}
    system = build_system(
        source="t", raw_devices=devs, groups={}, units=[], dmar=None, cmdline=None,
        in_kdump_kernel=True, kexec_crash_loaded=None, kexec_crash_size=None, iomem=(),
    )
    d = system.devices["0000:05:00.0"]
    assert not d.bus_master and not d.kdump_risk
    assert any("all ones" in w for w in d.warnings)
