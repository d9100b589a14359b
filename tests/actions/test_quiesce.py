"""The quiesce planner on the lab's kdump snapshots, checked against pciutils' output."""

from __future__ import annotations

import struct

import pytest

from kdumptool.actions.quiesce import (
    SKIP_ABSENT,
    SKIP_DRIVER,
    SKIP_DUMP_TARGET,
    SKIP_HOST_BRIDGE,
    SKIP_KEEPS_PATH,
    SKIP_NOT_MASTERING,
    SKIP_UNREADABLE,
    describe_plan,
    order_is_safe,
    plan_quiesce,
)
from kdumptool.formats.pciconfig import parse_pci_config
from kdumptool.model.system import PciDevice, System
from kdumptool.sources.system import read_system
from tests.actions.snapshots import KDUMP_RUNS, oracle_upstream, read_lspci_oracle, snapshot

# Read by hand from the lab's kdump capture (lspci -vvv, lspci -t in the kdump kernel of
# run legacy_on): drivers bound are virtio-pci on 00:01.0/00:06.0/01:00.0 and pcieport on
# the two root ports; 00:02.0 e1000e, 00:03.0 nvme, 00:1f.2 AHCI, 02:00.0 (PCIe-to-PCI
# bridge) and 03:01.0 e1000 are BusMaster+ with no driver; 03:01.0 sits below 02:00.0.
LEGACY_ON_ORDER = [
    ("0000:03:01.0", 0x0107, 2),
    ("0000:02:00.0", 0x0107, 1),
    ("0000:00:02.0", 0x0507, 0),
    ("0000:00:03.0", 0x0507, 0),
    ("0000:00:1f.2", 0x0507, 0),
]
LEGACY_ON_SKIPS = {
    "0000:00:00.0": SKIP_HOST_BRIDGE,
    "0000:00:01.0": SKIP_DRIVER,
    "0000:00:04.0": SKIP_DRIVER,
    "0000:00:05.0": SKIP_DRIVER,
    "0000:00:06.0": SKIP_DRIVER,
    "0000:00:1f.0": SKIP_NOT_MASTERING,
    "0000:00:1f.3": SKIP_NOT_MASTERING,
    "0000:01:00.0": SKIP_DRIVER,
}


def _plan(run: str, targets=(), finished=False):
    system = read_system(str(snapshot(f"kdump_{run}")), use_udev=False)
    return system, plan_quiesce(system, targets, finished)


def test_legacy_on_exact_order_and_skips():
    _, plan = _plan("legacy_on")
    assert [(s.bdf, s.command, s.depth) for s in plan.steps] == LEGACY_ON_ORDER
    assert all(s.new_command == s.command & ~0x4 for s in plan.steps)
    assert {k.bdf: k.reason for k in plan.skips} == LEGACY_ON_SKIPS
    assert "bridge" in plan.steps[1].reason


def test_legacy_drv_drivers_loaded_keep_everything():
    # e1000e, nvme, ahci and e1000 were probed in the kdump kernel: nothing is driverless
    # and mastering, and the driverless bridge 02:00.0 carries e1000's DMA.
    _, plan = _plan("legacy_drv")
    assert plan.steps == ()
    skips = {k.bdf: k for k in plan.skips}
    assert skips["0000:02:00.0"].reason == SKIP_KEEPS_PATH
    assert "0000:03:01.0" in skips["0000:02:00.0"].detail
    assert skips["0000:00:02.0"].reason == SKIP_DRIVER and "e1000e" in skips["0000:00:02.0"].detail


@pytest.mark.parametrize("run", KDUMP_RUNS)
def test_plan_matches_lspci_oracle(run):
    """Expected steps computed from pciutils' view of the same kernel, not from our model."""
    tree = snapshot(f"kdump_{run}")
    system, plan = _plan(run)
    lspci = read_lspci_oracle(tree)
    ups = oracle_upstream(lspci)
    assert set(lspci) == set(system.devices)
    owned = [b for b, d in lspci.items() if d.driver]
    protected = {u for b in owned for u in ups[b]}
    expected = [
        b
        for b, d in lspci.items()
        if d.bus_master and not d.driver and not d.host_bridge and b not in protected
    ]
    expected.sort(key=lambda b: (-len(ups[b]), b))
    assert [s.bdf for s in plan.steps] == expected
    for s in plan.steps:
        assert s.command == lspci[s.bdf].command, s.bdf
        assert s.depth == len(ups[s.bdf])
    assert order_is_safe(plan.steps, system.devices)
    # every device appears exactly once, as a step or as a skip
    assert sorted([s.bdf for s in plan.steps] + [k.bdf for k in plan.skips]) == sorted(lspci)
    for k in plan.skips:
        d = lspci[k.bdf]
        if k.reason == SKIP_DRIVER:
            assert d.driver and d.driver in k.detail
        elif k.reason == SKIP_NOT_MASTERING:
            assert not d.bus_master
        elif k.reason == SKIP_HOST_BRIDGE:
            assert d.host_bridge
        elif k.reason == SKIP_KEEPS_PATH:
            assert k.bdf in protected


def test_dump_target_kept_until_dump_finished():
    # Pretend the dump goes to the driverless NVMe 00:03.0 and to a disk behind 02:00.0.
    _, plan = _plan("legacy_on", targets=["0000:00:03.0", "0000:03:01.0"])
    skips = {k.bdf: k.reason for k in plan.skips}
    assert skips["0000:00:03.0"] == SKIP_DUMP_TARGET
    assert skips["0000:03:01.0"] == SKIP_DUMP_TARGET
    assert skips["0000:02:00.0"] == SKIP_KEEPS_PATH  # the bridge above a dump target
    assert [s.bdf for s in plan.steps] == ["0000:00:02.0", "0000:00:1f.2"]
    _, done = _plan("legacy_on", targets=["0000:00:03.0", "0000:03:01.0"], finished=True)
    assert [s.bdf for s in done.steps] == [b for b, _, _ in LEGACY_ON_ORDER]
    assert "dump finished" in done.steps[0].reason
    assert "dump target devices: 0000:00:03.0, 0000:03:01.0 (dump finished)" in describe_plan(done)


def test_unknown_dump_target_warns():
    _, plan = _plan("legacy_on", targets=["0000:09:00.0"])
    assert any("0000:09:00.0" in w for w in plan.warnings)


def _dev(bdf, *, command=0x0107, driver=None, upstream=(), vendor=0x8086, host=False, bridge=False, config=True):
    """A model record as build_system makes it, from a config header with these fields."""
    header = bytearray(64)
    struct.pack_into("<HHH", header, 0, vendor, 0x1234, command)
    class_code = 0x060000 if host else (0x060400 if bridge else 0x020000)
    header[0x09:0x0C] = class_code.to_bytes(3, "little")
    header[0x0E] = 1 if bridge else 0
    c = parse_pci_config(bytes(header)) if config else None
    return PciDevice(
        bdf=bdf, vendor_id=vendor, device_id=0x1234, class_code=class_code, revision=0,
        header_type=1 if bridge else 0, command=command if config else 0, status=0,
        bus_master=bool(c is not None and c.bus_master), is_bridge=bridge, is_host_bridge=host,
        secondary_bus=None, subordinate_bus=None, port_type=None, port_type_id=None, driver=driver,
        iommu_group=None, upstream=tuple(upstream), drhd=None, rmrrs=(),
        kdump_risk=bool(c is not None and c.bus_master and not driver and not bridge), config=c,
        config_size=64 if config else 0,
    )


def _system(devs):
    return System(source="test", devices=devs, groups={}, units=(), dmar=None, cmdline=None, in_kdump_kernel=True,
                  kexec_crash_loaded=None, kexec_crash_size=None, iomem=())


def test_absent_unreadable_and_deep_chain():
    devs = {
        "0000:00:01.0": _dev("0000:00:01.0", bridge=True),
        "0000:01:00.0": _dev("0000:01:00.0", bridge=True, upstream=["0000:00:01.0"]),
        "0000:02:00.0": _dev("0000:02:00.0", upstream=["0000:01:00.0", "0000:00:01.0"]),
        "0000:02:00.1": _dev("0000:02:00.1", vendor=0xFFFF, command=0xFFFF, upstream=["0000:01:00.0", "0000:00:01.0"]),
        "0000:00:02.0": _dev("0000:00:02.0", config=False),
    }
    plan = plan_quiesce(_system(devs))
    assert [s.bdf for s in plan.steps] == ["0000:02:00.0", "0000:01:00.0", "0000:00:01.0"]
    skips = {k.bdf: k.reason for k in plan.skips}
    assert skips == {"0000:02:00.1": SKIP_ABSENT, "0000:00:02.0": SKIP_UNREADABLE}


def test_bridge_above_driver_bound_non_mastering_device_is_kept():
    # A driver may turn Bus Master on at any time: its bridges stay open.
    devs = {
        "0000:00:01.0": _dev("0000:00:01.0", bridge=True),
        "0000:01:00.0": _dev("0000:01:00.0", command=0x0103, driver="nvme", upstream=["0000:00:01.0"]),
    }
    plan = plan_quiesce(_system(devs))
    assert plan.steps == ()
    assert {k.bdf: k.reason for k in plan.skips} == {"0000:00:01.0": SKIP_KEEPS_PATH, "0000:01:00.0": SKIP_DRIVER}


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _trees(draw):
    """Random PCI forests: each device hangs below an earlier bridge or on the root bus."""
    n = draw(st.integers(1, 14))
    devs = {}
    bridges = []
    for i in range(n):
        bdf = f"0000:{i:02x}:00.0"
        parent = draw(st.sampled_from([None] + bridges)) if bridges else None
        ups = [] if parent is None else [parent] + list(devs[parent].upstream)
        is_bridge = draw(st.booleans())
        cmd = draw(st.sampled_from([0x0000, 0x0103, 0x0107, 0x0507, 0xFFFF]))
        driver = draw(st.sampled_from([None, None, "nvme", "pcieport"]))
        devs[bdf] = _dev(bdf, command=cmd, driver=driver, upstream=ups, bridge=is_bridge,
                         vendor=0xFFFF if cmd == 0xFFFF else 0x8086, host=draw(st.booleans()) and i == 0)
        if is_bridge:
            bridges.append(bdf)
    targets = draw(st.lists(st.sampled_from(sorted(devs)), max_size=2))
    return devs, targets, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(_trees())
def test_planner_properties(tree):
    devs, targets, finished = tree
    plan = plan_quiesce(_system(devs), targets, finished)
    steps = [s.bdf for s in plan.steps]
    # every device exactly once, as a step or a skip
    assert sorted(steps + [k.bdf for k in plan.skips]) == sorted(devs)
    assert order_is_safe(plan.steps, devs)
    kept = {b for b, d in devs.items() if d.driver or (b in targets and not finished)}
    for s in plan.steps:
        d = devs[s.bdf]
        assert d.command & 0x4 and d.command != 0xFFFF and not d.driver and not d.is_host_bridge
        assert s.new_command == d.command & ~0x4
        assert not (s.bdf in targets and not finished)
        # never a bridge above a device that keeps (or may start) mastering
        assert not any(s.bdf in devs[k].upstream for k in kept)
