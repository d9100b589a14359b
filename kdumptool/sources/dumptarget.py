"""Find the PCI devices that carry the kdump dump target, and where crash dumps go.

Two sources, both read through a :class:`~kdumptool.sources.root.Root`:

- the kdump configuration: RHEL/Fedora kdump-utils ``/etc/kdump.conf`` (``path``, a
  filesystem line such as ``ext4 /dev/vdb1`` / ``xfs UUID=...``, ``raw``, ``nfs``,
  ``ssh``, ``virtiofs``; see kdump.conf(5)) and Debian kdump-tools
  ``/etc/default/kdump-tools`` (``KDUMP_COREDIR``, ``NFS``, ``SSH``);
- the mounted filesystems (``/proc/mounts``): the mount holding the dump path gives a
  block device, a 9p/virtiofs tag or an NFS server address.

A block device becomes a sysfs device path (``/sys/class/block/<name>`` is a link into
``/sys/devices/pci0000:00/0000:00:04.0/0000:01:00.0/virtio2/block/vda/vda1``); its last
``SSSS:BB:DD.F`` component is the PCI function, the earlier ones the bridges above it.
Device-mapper and md devices are followed through ``slaves/``. A network target becomes
an interface through the routing table (``/proc/net/route``, ``/proc/net/ipv6_route``),
then ``/sys/class/net/<if>/device``; bonds, VLANs and bridges through ``lower_*`` links.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from kdumptool.sources.root import Root

BDF_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")

KDUMP_CONF = "/etc/kdump.conf"
KDUMP_TOOLS_DEFAULTS = "/etc/default/kdump-tools"
DEFAULT_PATH = "/var/crash"

FS_TYPES = ("ext2", "ext3", "ext4", "xfs", "btrfs", "minix", "vfat")
NET_FS = ("nfs", "nfs4")
#: Mounts that never hold a dump.
PSEUDO_FS = {
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "securityfs", "cgroup", "cgroup2",
    "pstore", "bpf", "debugfs", "tracefs", "mqueue", "hugetlbfs", "configfs", "fusectl",
    "autofs", "efivarfs", "rpc_pipefs", "binfmt_misc", "ramfs", "rootfs", "overlay",
}


@dataclass(frozen=True)
class KdumpConf:
    """The parts of the kdump configuration that locate the dump."""

    source: Optional[str]  # the file read, or None when there is none
    path: str = DEFAULT_PATH
    #: (kind, value): kind is a filesystem type, ``raw``, ``nfs``, ``ssh`` or ``virtiofs``.
    targets: Tuple[Tuple[str, str], ...] = ()
    warnings: Tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetDevice:
    bdf: str
    bridges: Tuple[str, ...]  # bridges above it, nearest first (from the sysfs path)
    how: str  # e.g. "mount /var/crash on /dev/vda1 (ext4)"

    def as_json(self) -> dict:
        return {"bdf": self.bdf, "bridges": list(self.bridges), "how": self.how}


@dataclass
class DumpTargets:
    conf: KdumpConf
    devices: List[TargetDevice] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def bdfs(self) -> Tuple[str, ...]:
        return tuple(sorted({d.bdf for d in self.devices}))

    def as_json(self) -> dict:
        return {
            "config": self.conf.source,
            "path": self.conf.path,
            "targets": [{"kind": k, "value": v} for k, v in self.conf.targets],
            "devices": [d.as_json() for d in self.devices],
            "warnings": self.conf.warnings + tuple(self.warnings),
        }


@dataclass(frozen=True)
class Mount:
    source: str
    mountpoint: str
    fstype: str
    options: str


# --- configuration -----------------------------------------------------------------------


def parse_kdump_conf(text: str, source: str = KDUMP_CONF) -> KdumpConf:
    """kdump.conf(5): one directive per line, ``#`` starts a comment."""
    path = DEFAULT_PATH
    targets: List[Tuple[str, str]] = []
    warnings: List[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        key = parts[0]
        val = parts[1].strip() if len(parts) > 1 else ""
        if key == "path":
            if val:
                path = val
        elif key in FS_TYPES or key in ("raw", "nfs", "ssh", "virtiofs"):
            if not val:
                warnings.append(f"{source}: line {n}: {key} without a value")
                continue
            targets.append((key, val))
        elif key == "dracut_args" and "--mount" in val:
            warnings.append(f"{source}: line {n}: dump target given through dracut_args --mount: not followed")
    return KdumpConf(source, path, tuple(targets), tuple(warnings))


def _shell_vars(text: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, val = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[7:].strip()
        val = val.split(" #", 1)[0].strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        out[key] = val
    return out


def parse_kdump_tools_defaults(text: str, source: str = KDUMP_TOOLS_DEFAULTS) -> KdumpConf:
    """Debian kdump-tools: ``KDUMP_COREDIR``, ``NFS`` (host:/dir), ``SSH`` (user@host)."""
    v = _shell_vars(text)
    targets: List[Tuple[str, str]] = []
    if v.get("NFS"):
        targets.append(("nfs", v["NFS"]))
    if v.get("SSH"):
        targets.append(("ssh", v["SSH"]))
    return KdumpConf(source, v.get("KDUMP_COREDIR") or DEFAULT_PATH, tuple(targets))


def read_kdump_conf(root: Root) -> KdumpConf:
    """kdump-utils' kdump.conf if present, else Debian's kdump-tools defaults, else none."""
    text = root.read_optional(KDUMP_CONF)
    if text is not None:
        return parse_kdump_conf(text, KDUMP_CONF)
    text = root.read_optional(KDUMP_TOOLS_DEFAULTS)
    if text is not None:
        return parse_kdump_tools_defaults(text, KDUMP_TOOLS_DEFAULTS)
    return KdumpConf(None)


# --- mounts ------------------------------------------------------------------------------


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def parse_mounts(text: str) -> List[Mount]:
    out: List[Mount] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        out.append(Mount(_unescape(f[0]), _unescape(f[1]), f[2], f[3]))
    return out


def read_mounts(root: Root) -> List[Mount]:
    text = root.read_optional("/proc/mounts")
    if text is None:
        text = root.read_optional("/proc/self/mounts") or ""
    return parse_mounts(text)


def mount_for_path(mounts: List[Mount], path: str) -> Optional[Mount]:
    """The mount that holds ``path`` (longest mount-point prefix; the last one wins)."""
    path = os.path.normpath("/" + path.lstrip("/"))
    best: Optional[Mount] = None
    for m in mounts:
        mp = m.mountpoint.rstrip("/") or "/"
        if path == mp or path.startswith(mp + "/") or mp == "/":
            if best is None or len(mp) >= len(best.mountpoint.rstrip("/") or "/"):
                best = m
    return best


# --- block devices -----------------------------------------------------------------------


def _pci_chain(link: str) -> Tuple[str, ...]:
    """BDF components of a sysfs device path, outermost first."""
    return tuple(p for p in link.split("/") if BDF_RE.match(p))


def resolve_block_name(root: Root, spec: str) -> Optional[str]:
    """Kernel block device name (``vda1``, ``dm-0``) for ``/dev/...``, UUID=, LABEL=..."""
    spec = spec.strip().strip('"')
    for prefix, folder in (("UUID=", "by-uuid"), ("LABEL=", "by-label"), ("PARTUUID=", "by-partuuid")):
        if spec.startswith(prefix):
            spec = f"/dev/disk/{folder}/{spec[len(prefix):]}"
    if not spec.startswith("/dev/"):
        return None
    seen: Set[str] = set()
    while spec not in seen and len(seen) < 16:
        seen.add(spec)
        target = root.readlink(spec)
        if target is None:
            break
        spec = os.path.normpath(os.path.join(os.path.dirname(spec), target))
    name = spec[len("/dev/"):]
    if name.startswith("mapper/"):
        want = name[len("mapper/"):]
        for blk in root.listdir("/sys/class/block"):
            if blk.startswith("dm-") and root.read_optional(f"/sys/class/block/{blk}/dm/name") == want:
                return blk
        return None
    return name.replace("/", "!")


def block_to_pci(root: Root, name: str, depth: int = 0) -> List[Tuple[str, Tuple[str, ...]]]:
    """(bdf, bridges nearest first) of every PCI function under block device ``name``."""
    if depth > 8:
        return []
    link = root.readlink(f"/sys/class/block/{name}")
    if link is None:
        return []
    chain = _pci_chain(link)
    if chain:
        return [(chain[-1], tuple(reversed(chain[:-1])))]
    # No PCI device in the path: a virtual device (dm, md, loop); follow its slaves, or
    # the slaves of the whole disk for a partition of one.
    out: List[Tuple[str, Tuple[str, ...]]] = []
    slaves = root.listdir(f"/sys/class/block/{name}/slaves")
    if not slaves:
        parent = os.path.basename(os.path.dirname(link.rstrip("/")))
        if parent and parent != "block" and parent != name:
            slaves = root.listdir(f"/sys/class/block/{parent}/slaves")
    for s in slaves:
        out.extend(block_to_pci(root, s, depth + 1))
    return out


# --- virtio tags (9p, virtiofs) -----------------------------------------------------------


def tag_to_pci(root: Root, tag: str) -> List[Tuple[str, Tuple[str, ...]]]:
    out: List[Tuple[str, Tuple[str, ...]]] = []
    for v in root.listdir("/sys/bus/virtio/devices"):
        # The kernel prints the 9p tag as raw bytes; some versions add a NUL.
        if (root.read_optional(f"/sys/bus/virtio/devices/{v}/mount_tag") or "").strip("\x00") == tag:
            chain = _pci_chain(root.readlink(f"/sys/bus/virtio/devices/{v}") or "")
            if chain:
                out.append((chain[-1], tuple(reversed(chain[:-1]))))
    for n in root.listdir("/sys/fs/virtiofs"):
        if root.read_optional(f"/sys/fs/virtiofs/{n}/tag") == tag:
            dev = root.readlink(f"/sys/fs/virtiofs/{n}/device") or ""
            chain = _pci_chain(os.path.normpath(os.path.join(f"/sys/fs/virtiofs/{n}", dev)))
            if not chain:
                chain = _pci_chain(root.readlink(f"/sys/bus/virtio/devices/{os.path.basename(dev)}") or "")
            if chain:
                out.append((chain[-1], tuple(reversed(chain[:-1]))))
    return out


# --- network -----------------------------------------------------------------------------


def _parse_route4(text: str) -> List[Tuple[int, int, str]]:
    """(destination, mask, iface) from /proc/net/route.

    The kernel prints each network-order address as a host-order (little-endian) hex
    word, so reading the hex bytes as little-endian gives ``int(IPv4Address)``.
    """
    routes = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        try:
            dest = int.from_bytes(bytes.fromhex(f[1]), "little")
            mask = int.from_bytes(bytes.fromhex(f[7]), "little")
        except ValueError:
            continue
        routes.append((dest, mask, f[0]))
    return routes


def _parse_route6(text: str) -> List[Tuple[int, int, str]]:
    routes = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 10:
            continue
        try:
            dest = int(f[0], 16)
            plen = int(f[1], 16)
        except ValueError:
            continue
        if f[9] == "lo":
            continue
        routes.append((dest, plen, f[9]))
    return routes


def route_iface(root: Root, addr: str) -> Optional[str]:
    """The interface the kernel's routing table sends ``addr`` through (longest prefix)."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    best: Optional[Tuple[int, str]] = None
    if ip.version == 4:
        a = int(ip)
        for dest, mask, iface in _parse_route4(root.read_optional("/proc/net/route") or ""):
            if a & mask == dest & mask:
                plen = bin(mask).count("1")
                if best is None or plen > best[0]:
                    best = (plen, iface)
    else:
        a = int(ip)
        for dest, plen, iface in _parse_route6(root.read_optional("/proc/net/ipv6_route") or ""):
            m = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1) if plen else 0
            if a & m == dest & m and (best is None or plen > best[0]):
                best = (plen, iface)
    return best[1] if best else None


def resolve_host(root: Root, host: str) -> Optional[str]:
    """An IP literal, a name from the root's /etc/hosts, or (live only) the resolver."""
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    for line in (root.read_optional("/etc/hosts") or "").splitlines():
        f = line.split("#", 1)[0].split()
        if len(f) >= 2 and host in f[1:]:
            return f[0]
    if root.is_live:
        import socket

        try:
            return str(socket.getaddrinfo(host, None)[0][4][0])
        except (OSError, IndexError):
            return None
    return None


def iface_to_pci(root: Root, iface: str, depth: int = 0) -> List[Tuple[str, Tuple[str, ...]]]:
    if depth > 8:
        return []
    link = root.readlink(f"/sys/class/net/{iface}")
    chain = _pci_chain(link or "")
    if chain:
        return [(chain[-1], tuple(reversed(chain[:-1])))]
    out: List[Tuple[str, Tuple[str, ...]]] = []
    lowers = [e[len("lower_"):] for e in root.listdir(f"/sys/class/net/{iface}") if e.startswith("lower_")]
    slaves = (root.read_optional(f"/sys/class/net/{iface}/bonding/slaves") or "").split()
    for low in sorted(set(lowers + slaves)):
        out.extend(iface_to_pci(root, low, depth + 1))
    return out


def _host_of(kind: str, value: str) -> str:
    if kind == "ssh":
        return value.rsplit("@", 1)[-1]
    # nfs: host:/export, [v6addr]:/export
    if value.startswith("["):
        return value[1:value.index("]")] if "]" in value else value
    return value.split(":", 1)[0]


# --- all together ------------------------------------------------------------------------


def find_dump_targets(root: Root, conf: Optional[KdumpConf] = None) -> DumpTargets:
    """The PCI devices kdump writes the vmcore through (best effort, with warnings)."""
    conf = conf if conf is not None else read_kdump_conf(root)
    res = DumpTargets(conf)
    mounts = read_mounts(root)

    def add(found: List[Tuple[str, Tuple[str, ...]]], how: str) -> None:
        if not found:
            res.warnings.append(f"{how}: no PCI device found")
        for bdf, bridges in found:
            if all(d.bdf != bdf for d in res.devices):
                res.devices.append(TargetDevice(bdf, bridges, how))

    def add_net(host: str, how: str) -> None:
        addr = resolve_host(root, host)
        if addr is None:
            res.warnings.append(f"{how}: cannot resolve {host!r}")
            return
        iface = route_iface(root, addr)
        if iface is None:
            res.warnings.append(f"{how}: no route to {addr}")
            return
        add(iface_to_pci(root, iface), f"{how} via {iface}")

    def add_mount(m: Mount, how: str) -> None:
        if m.fstype in NET_FS:
            opts = dict(o.partition("=")[::2] for o in m.options.split(","))
            add_net(opts.get("addr") or _host_of("nfs", m.source), f"{how} on {m.source} ({m.fstype})")
        elif m.fstype in ("9p", "virtiofs"):
            add(tag_to_pci(root, m.source), f"{how} on tag {m.source} ({m.fstype})")
        else:
            name = resolve_block_name(root, m.source)
            if name is None:
                res.warnings.append(f"{how}: {m.source} ({m.fstype}) is not a block device")
                return
            add(block_to_pci(root, name), f"{how} on {m.source} ({m.fstype})")

    for kind, value in conf.targets:
        how = f"{conf.source}: {kind} {value}"
        if kind in ("nfs", "ssh"):
            mounted = [m for m in mounts if m.fstype in NET_FS and m.source == value]
            if mounted:
                add_mount(mounted[-1], how)
            else:
                add_net(_host_of(kind, value), how)
        elif kind == "virtiofs":
            add(tag_to_pci(root, value), how)
        else:
            name = resolve_block_name(root, value)
            if name is None:
                res.warnings.append(f"{how}: cannot resolve the block device")
                continue
            add(block_to_pci(root, name), how)

    if not conf.targets:
        # No explicit target: the dump goes to the filesystem holding the path. In a
        # kdump initramfs kdump-utils mounts the dump target at /kdumproot and the root
        # filesystem at /sysroot.
        cands = [conf.path, "/kdumproot" + conf.path, "/sysroot" + conf.path]
        for cand in cands:
            m = mount_for_path(mounts, cand)
            if m is None or m.fstype in PSEUDO_FS:
                continue
            add_mount(m, f"mount {m.mountpoint} holding {cand}")
            break
        else:
            if mounts:
                res.warnings.append(f"no mounted filesystem holds {conf.path}")
    return res


def find_crash_dirs(root: Root, conf: Optional[KdumpConf] = None) -> List[str]:
    """Existing dump folders (``<mount>/<path>``) on mounted filesystems, as real paths
    below the root, most likely first (the root's own path last)."""
    conf = conf if conf is not None else read_kdump_conf(root)
    out: List[str] = []
    for m in reversed(read_mounts(root)):
        if m.fstype in PSEUDO_FS:
            continue
        cand = os.path.normpath(m.mountpoint.rstrip("/") + "/" + conf.path.lstrip("/"))
        if os.path.isdir(root.p(cand)) and cand not in out:
            out.append(cand)
    if conf.path not in out and os.path.isdir(root.p(conf.path)):
        out.append(conf.path)
    return out


def newest_dump_dir(root: Root, crash_dir: str) -> Optional[str]:
    """The most recently modified sub-folder of ``crash_dir`` that holds a vmcore."""
    best: Optional[Tuple[float, str]] = None
    for name in root.listdir(crash_dir):
        sub = f"{crash_dir.rstrip('/')}/{name}"
        if not os.path.isdir(root.p(sub)):
            continue
        if not any(e.startswith("vmcore") for e in root.listdir(sub)):
            continue
        mtime = os.stat(root.p(sub)).st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, sub)
    return best[1] if best else None
