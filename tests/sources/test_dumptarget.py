"""Dump-target devices from kdump.conf / kdump-tools and the mounts, on trees laid out as
sysfs lays them out for the lab's QEMU machine (virtio-blk 01:00.0 behind root port 00:04.0,
NVMe 00:03.0, e1000e 00:02.0, virtio-9p 00:01.0)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdumptool.sources.dumptarget import (
    find_crash_dirs,
    find_dump_targets,
    mount_for_path,
    newest_dump_dir,
    parse_kdump_conf,
    parse_kdump_tools_defaults,
    parse_mounts,
    resolve_block_name,
    route_iface,
)
from kdumptool.sources.root import Root

VDA1 = "../../devices/pci0000:00/0000:00:04.0/0000:01:00.0/virtio2/block/vda/vda1"
NVME_P1 = "../../devices/pci0000:00/0000:00:03.0/nvme/nvme0/nvme0n1/nvme0n1p1"
ETH0 = "../../devices/pci0000:00/0000:00:02.0/net/eth0"
VIRTIO0 = "../../../devices/pci0000:00/0000:00:01.0/virtio0"


def _tree(tmp: Path, files: dict, links: dict) -> Root:
    for rel, text in files.items():
        p = tmp / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for rel, target in links.items():
        p = tmp / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
    return Root(tmp)


BASE_LINKS = {
    "/sys/class/block/vda1": VDA1,
    "/sys/class/block/nvme0n1p1": NVME_P1,
    "/sys/class/net/eth0": ETH0,
    "/sys/bus/virtio/devices/virtio0": VIRTIO0,
    "/dev/disk/by-uuid/1234-abcd": "../../nvme0n1p1",
}
ROUTE = (
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)


def test_path_on_mounted_virtio_blk(tmp_path):
    root = _tree(
        tmp_path,
        {
            "/etc/kdump.conf": "# default\npath /var/crash\ncore_collector makedumpfile -l -d 31\n",
            "/proc/mounts": "/dev/nvme0n1p1 / ext4 rw 0 0\n/dev/vda1 /var/crash xfs rw 0 0\nproc /proc proc rw 0 0\n",
        },
        BASE_LINKS,
    )
    t = find_dump_targets(root)
    assert t.bdfs == ("0000:01:00.0",)
    assert t.devices[0].bridges == ("0000:00:04.0",)
    assert "/dev/vda1" in t.devices[0].how


def test_fs_line_by_uuid(tmp_path):
    root = _tree(tmp_path, {"/etc/kdump.conf": "ext4 UUID=1234-abcd\npath /crash\n", "/proc/mounts": ""}, BASE_LINKS)
    t = find_dump_targets(root)
    assert t.bdfs == ("0000:00:03.0",) and t.conf.path == "/crash"
    assert resolve_block_name(root, "UUID=1234-abcd") == "nvme0n1p1"


def test_raw_and_dm_slaves(tmp_path):
    links = dict(BASE_LINKS)
    links["/sys/class/block/dm-0"] = "../../devices/virtual/block/dm-0"
    links["/sys/devices/virtual/block/dm-0/slaves/vda1"] = "../../../../pci0000:00/0000:00:04.0/0000:01:00.0/virtio2/block/vda/vda1"
    root = _tree(
        tmp_path,
        {"/etc/kdump.conf": "raw /dev/mapper/crash\n", "/sys/devices/virtual/block/dm-0/dm/name": "crash\n"},
        links,
    )
    t = find_dump_targets(root)
    assert t.bdfs == ("0000:01:00.0",), t.warnings


def test_ssh_target_through_route(tmp_path):
    root = _tree(
        tmp_path,
        {"/etc/kdump.conf": "ssh kdump@dumphost\n", "/etc/hosts": "10.0.2.2 dumphost\n", "/proc/net/route": ROUTE},
        BASE_LINKS,
    )
    assert route_iface(root, "10.0.2.2") == "eth0"
    assert route_iface(root, "192.168.9.9") == "eth0"  # default route
    t = find_dump_targets(root)
    assert t.bdfs == ("0000:00:02.0",)
    assert "via eth0" in t.devices[0].how


def test_nfs_mount_uses_addr_option_and_bond_lowers(tmp_path):
    links = dict(BASE_LINKS)
    links["/sys/class/net/bond0"] = "../../devices/virtual/net/bond0"
    links["/sys/devices/virtual/net/bond0/lower_eth0"] = "../../../pci0000:00/0000:00:02.0/net/eth0"
    route = ROUTE.replace("eth0", "bond0")
    root = _tree(
        tmp_path,
        {
            "/etc/default/kdump-tools": 'KDUMP_COREDIR="/var/crash"\nNFS="nfs.example:/export"\n',
            "/proc/mounts": "nfs.example:/export /mnt nfs4 rw,vers=4.2,addr=10.0.2.4,clientaddr=10.0.2.15 0 0\n",
            "/proc/net/route": route,
        },
        links,
    )
    t = find_dump_targets(root)
    assert t.conf.source == "/etc/default/kdump-tools"
    assert t.bdfs == ("0000:00:02.0",), t.warnings


def test_9p_share_in_kdump_initramfs(tmp_path):
    # No kdump.conf target: the dump path is on the mount holding it (here 9p, tag "out").
    root = _tree(
        tmp_path,
        {
            "/etc/kdump.conf": "path /out\n",
            "/proc/mounts": "rootfs / rootfs rw 0 0\nout /out 9p rw,trans=virtio 0 0\n",
            "/sys/devices/pci0000:00/0000:00:01.0/virtio0/mount_tag": "out\x00",
        },
        BASE_LINKS,
    )
    t = find_dump_targets(root)
    assert t.bdfs == ("0000:00:01.0",), t.warnings


def test_unresolvable_targets_warn_not_raise(tmp_path):
    root = _tree(
        tmp_path,
        {"/etc/kdump.conf": "ssh u@nowhere.invalid\nxfs /dev/sdz1\nnfs\n", "/proc/mounts": ""},
        {},
    )
    t = find_dump_targets(root)
    assert t.bdfs == ()
    text = " ".join(t.warnings + list(t.conf.warnings))
    assert "nowhere.invalid" in text and "sdz1" in text and "without a value" in text


def test_no_config_no_mounts(tmp_path):
    t = find_dump_targets(Root(tmp_path))
    assert t.bdfs == () and t.conf.source is None


def test_parsers():
    c = parse_kdump_conf("path /x # comment\nxfs LABEL=crash\ndracut_args --mount \"a b\"\n")
    assert c.path == "/x" and c.targets == (("xfs", "LABEL=crash"),) and c.warnings
    d = parse_kdump_tools_defaults("export KDUMP_COREDIR='/c'\nSSH=\"root@h\"\n")
    assert d.path == "/c" and d.targets == (("ssh", "root@h"),)
    m = parse_mounts("/dev/sda1 /mnt/with\\040space ext4 rw 0 0\n")
    assert m[0].mountpoint == "/mnt/with space"
    assert mount_for_path(m, "/mnt/with space/var").source == "/dev/sda1"
    assert mount_for_path(m, "/mnt/other") is None


def test_crash_dirs_and_newest_dump(tmp_path):
    root = _tree(
        tmp_path,
        {
            "/etc/kdump.conf": "path /var/crash\n",
            "/proc/mounts": "/dev/vda1 /kdumproot xfs rw 0 0\n",
            "/kdumproot/var/crash/127.0.0.1-2026-01-01-00:00:00/vmcore": "x",
            "/kdumproot/var/crash/127.0.0.1-2026-01-02-00:00:00/vmcore-incomplete": "x",
            "/kdumproot/var/crash/empty/readme": "x",
        },
        {},
    )
    old = tmp_path / "kdumproot/var/crash/127.0.0.1-2026-01-01-00:00:00"
    os.utime(old, (1, 1))
    dirs = find_crash_dirs(root)
    assert dirs == ["/kdumproot/var/crash"]
    assert newest_dump_dir(root, dirs[0]) == "/kdumproot/var/crash/127.0.0.1-2026-01-02-00:00:00"


@pytest.mark.parametrize("text", ["", "garbage\n\x00\xff", "path\nraw\n" * 3])
def test_bad_config_text_never_raises(text):
    parse_kdump_conf(text)
    parse_kdump_tools_defaults(text)
    parse_mounts(text)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kdumptool.errors import KdumptoolError  # noqa: E402
from kdumptool.sources.dumptarget import _parse_route4, _parse_route6  # noqa: E402
from kdumptool.sources.knobs import parse_cmdline, parse_config  # noqa: E402

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_LINES = st.lists(
    st.one_of(
        _TEXT,
        st.sampled_from(["path /var/crash", "ssh a@b", "nfs h:/e", "raw /dev/x", "xfs UUID=1", "path",
                         "Iface\tDestination", "eth0\t0002000A\t0\t0\t0\t0\t0\t00FFFFFF", "a b c d",
                         "kdumptool.quiesce=1", "quiesce=yes", "NFS='x:/y'", "0" * 32 + " 40 " + "0" * 32]),
    ),
    max_size=12,
).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(_LINES)
def test_fuzz_text_parsers(text):
    for fn in (parse_kdump_conf, parse_kdump_tools_defaults, parse_mounts, _parse_route4, _parse_route6,
               parse_cmdline, parse_config):
        try:
            fn(text)
        except KdumptoolError:
            pass


@settings(max_examples=100, deadline=None)
@given(_TEXT, _LINES)
def test_fuzz_find_dump_targets(tmp_path_factory, conf, mounts):
    tmp = tmp_path_factory.mktemp("fz")
    (tmp / "etc").mkdir()
    (tmp / "proc").mkdir()
    (tmp / "etc/kdump.conf").write_text(conf)
    (tmp / "proc/mounts").write_text(mounts)
    try:
        find_dump_targets(Root(tmp))
    except KdumptoolError:
        pass
