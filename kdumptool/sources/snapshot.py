"""``kdumptool collect``: copy what the system model reads into a snapshot that ``--root``
reads back (a directory or a ``.tar.gz``). Layout: docs/system.md.

Mirrored paths keep their sysfs shape, including the relative ``driver``, ``iommu_group``
and ``sys/bus/pci/devices/*`` links. Data without a path of its own goes under
``_kdumptool/``: the kernel log (``dmesg.txt``, from ``/dev/kmsg``), the VT-d registers
(``vtd_registers.json``, through ``/dev/mem``), lspci outputs when lspci is installed, and
``collect.json`` (what could not be read and why). ``/proc/vmcore`` is never copied: an
empty file marks that the snapshot was taken in a kdump kernel.

The source may itself be a snapshot (``--root``), which re-collects it (used by tests).
Nothing here writes anywhere but the output.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from kdumptool import __version__
from kdumptool.errors import KdumptoolError, PermissionDenied, SourceMissing
from kdumptool.sources import iommu as iommu_src
from kdumptool.sources.kmsg import read_kmsg
from kdumptool.sources.outfile import atomic_output, refuse_existing
from kdumptool.sources.root import EXTRA_DIR, MAX_LOG_BYTES, Root, extra_rel
from kdumptool.sources.system import KDUMP_CONFIGS

Progress = Callable[[str, int, int], None]  # (step, done, total)

PCI_ATTRS = ("config", "vendor", "device", "class", "subsystem_vendor", "subsystem_device", "revision", "enable", "irq",
             "resource")
PCI_LINKS = ("driver", "iommu_group", "physfn")
SMALL_FILES = (
    "/proc/cmdline",
    "/proc/iomem",
    "/sys/kernel/kexec_crash_loaded",
    "/sys/kernel/kexec_crash_size",
    "/sys/kernel/kexec_loaded",
    "/sys/kernel/vmcoreinfo",
    "/sys/kernel/security/lockdown",
    "/sys/firmware/acpi/tables/DMAR",
    "/sys/firmware/acpi/tables/IVRS",  # an AMD IOMMU (kdumptool ivrs)
    "/sys/firmware/acpi/tables/APIC",  # the MADT: kdumptool ivrs checks its I/O APICs
    "/sys/module/intel_iommu/parameters/enabled",
) + KDUMP_CONFIGS
LSPCI_RUNS = (("lspci_vvv.txt", ["-vvv"]), ("lspci_tree.txt", ["-tv"]), ("lspci_xxxx.txt", ["-xxxx"]), ("lspci_nn.txt", ["-nn"]))


class _Collector:
    def __init__(self, src: Root, dst: Path) -> None:
        self.src = src
        self.dst = dst
        self.unreadable: Dict[str, str] = {}
        self.notes: List[str] = []

    def out(self, rel: str) -> Path:
        return self.dst / rel.lstrip("/")

    def copy_file(self, rel: str, limit: Optional[int] = None) -> Optional[bytes]:
        try:
            data = self.src.read_bytes(rel, limit)
        except SourceMissing as err:
            if self.src.exists(rel):
                self.unreadable[rel] = str(err)
            return None
        except PermissionDenied as err:
            self.unreadable[rel] = str(err)
            return None
        except OSError as exc:  # sysfs attributes that fail on read (EIO...)
            self.unreadable[rel] = exc.strerror or str(exc)
            return None
        p = self.out(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return data

    def copy_link(self, rel: str) -> Optional[str]:
        target = self.src.readlink(rel)
        if target is None:
            return None
        p = self.out(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        if os.path.isabs(target):
            # Keep the snapshot self-contained: make absolute links relative to the root.
            target = os.path.relpath(self.out(target), p.parent)
        os.symlink(target, p)
        return target

    def real(self, rel: str) -> str:
        """The path below the root that ``rel`` resolves to (following sysfs links)."""
        real = os.path.realpath(self.src.p(rel))
        base = os.path.realpath(self.src.path)
        r = os.path.relpath(real, base)
        return "/" + r if not r.startswith("..") else rel


def _pci(c: _Collector, progress: Optional[Progress]) -> None:
    bdfs = c.src.listdir("/sys/bus/pci/devices")
    for i, bdf in enumerate(bdfs):
        if progress:
            progress("PCI devices", i, len(bdfs))
        link = f"/sys/bus/pci/devices/{bdf}"
        devdir = c.real(link)
        if c.src.readlink(link) is not None:
            c.copy_link(link)
        for attr in PCI_ATTRS:
            data = c.copy_file(f"{devdir}/{attr}", 4096 if attr == "config" else None)
            if attr == "config" and data is not None and len(data) < 256:
                c.unreadable[f"{devdir}/config"] = (
                    f"only {len(data)} bytes of config space readable (the kernel gives the rest to root only)"
                )
        for name in PCI_LINKS:
            target = c.src.readlink(f"{devdir}/{name}")
            if target is None:
                continue
            c.copy_link(f"{devdir}/{name}")
            resolved = c.real(f"{devdir}/{name}")
            if name == "driver":
                c.out(resolved).mkdir(parents=True, exist_ok=True)
    if progress:
        progress("PCI devices", len(bdfs), len(bdfs))


def _groups(c: _Collector) -> None:
    for g in c.src.listdir("/sys/kernel/iommu_groups"):
        base = f"/sys/kernel/iommu_groups/{g}"
        c.copy_file(f"{base}/type")
        c.copy_file(f"{base}/reserved_regions")
        c.out(f"{base}/devices").mkdir(parents=True, exist_ok=True)
        for d in c.src.listdir(f"{base}/devices"):
            c.copy_link(f"{base}/devices/{d}")


def _units(c: _Collector) -> List[Tuple[str, int]]:
    units: List[Tuple[str, int]] = []
    for name in c.src.listdir("/sys/class/iommu"):
        link = f"/sys/class/iommu/{name}"
        c.copy_link(link)
        real = c.real(link)
        for attr in c.src.listdir(f"{real}/intel-iommu"):
            c.copy_file(f"{real}/intel-iommu/{attr}")
        c.out(f"{real}/devices").mkdir(parents=True, exist_ok=True)
        for d in c.src.listdir(f"{real}/devices"):
            c.copy_link(f"{real}/devices/{d}")
        addr = c.src.read_optional(f"{real}/intel-iommu/address")
        if addr:
            try:
                units.append((name, int(addr, 16)))
            except ValueError:
                pass
    return units


def _run(cmd: List[str]) -> Optional[str]:
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        res = subprocess.run([exe] + cmd[1:], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def archive_tree(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    """``tar.add(path, arcname=arcname)``: the same members in the same order with the same
    fields (tests/sources/test_snapshot_archive.py compares the archives byte for byte),
    but the owner and group names are looked up once per id instead of once per member.
    tarfile asks the passwd and group databases for every member: ~600 reads of
    /etc/passwd and /etc/group for a 300-file snapshot, which a kdump kernel pays in
    seconds when its root is on the network or 9p (docs/initramfs.md, timings)."""
    import grp
    import pwd

    names: Dict[Tuple[str, int], str] = {}

    def name_of(kind: str, ident: int) -> str:
        key = (kind, ident)
        if key not in names:
            try:
                names[key] = pwd.getpwuid(ident)[0] if kind == "u" else grp.getgrgid(ident)[0]
            except KeyError:
                names[key] = ""  # TarInfo's default: tarfile leaves it so
        return names[key]

    def add(p: str, arc: str) -> None:
        st = os.lstat(p)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            kind, linkname = tarfile.DIRTYPE, ""
        elif stat.S_ISLNK(mode):
            kind, linkname = tarfile.SYMTYPE, os.readlink(p)
        elif stat.S_ISREG(mode) and st.st_nlink == 1:
            kind, linkname = tarfile.REGTYPE, ""
        else:  # hard links, devices, FIFOs: tarfile's own way (none in a collected tree)
            tar.add(p, arcname=arc, recursive=False)
            return
        info = tarfile.TarInfo(arc.replace(os.sep, "/").lstrip("/"))
        info.mode = mode
        info.uid, info.gid = st.st_uid, st.st_gid
        info.size = st.st_size if kind == tarfile.REGTYPE else 0
        info.mtime = st.st_mtime  # type: ignore[assignment]  # tarfile stores the float too
        info.type = kind
        info.linkname = linkname
        info.uname, info.gname = name_of("u", st.st_uid), name_of("g", st.st_gid)
        if kind == tarfile.REGTYPE:
            with open(p, "rb") as fh:
                tar.addfile(info, fh)
            return
        tar.addfile(info)
        if kind == tarfile.DIRTYPE:
            for f in sorted(os.listdir(p)):
                add(os.path.join(p, f), os.path.join(arc, f))

    add(path, arcname)


def collect(
    output: Path,
    root: Optional[Root] = None,
    progress: Optional[Progress] = None,
    read_registers: bool = True,
    run_lspci: bool = True,
    force: bool = False,
) -> Dict[str, object]:
    """Write a snapshot of ``root`` (the live host by default) to ``output``: a tar archive
    when the name ends in ``.tar``, ``.tar.gz`` or ``.tgz``, else a directory. Returns the
    ``collect.json`` metadata."""
    src = root or Root("/")
    name = str(output)
    is_tar = name.endswith((".tar", ".tar.gz", ".tgz"))
    if is_tar:
        refuse_existing(output, force)  # with force, a link is replaced by the rename, never followed
    elif output.is_symlink():
        raise KdumptoolError(f"{output}: is a symbolic link (not followed; name a new folder)")
    elif output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise KdumptoolError(f"{output}: exists and is not an empty folder")
    tmp = tempfile.TemporaryDirectory(prefix="kdumptool-collect-") if is_tar else None
    dst = Path(tmp.name) / "snapshot" if tmp else output
    dst.mkdir(parents=True, exist_ok=True)
    c = _Collector(src, dst)
    steps = ["PCI devices", "IOMMU groups", "IOMMU units", "files", "VT-d registers", "kernel log", "lspci", "archive"]

    def step(i: int) -> None:
        if progress:
            progress(steps[i], i, len(steps))

    try:
        step(0)
        _pci(c, None)
        step(1)
        _groups(c)
        step(2)
        units = _units(c)
        step(3)
        for f in SMALL_FILES:
            c.copy_file(f)
        if src.is_live and os.geteuid() != 0:
            c.notes.append("not root: /proc/iomem addresses read as 0, config space is 64 bytes, no DMAR table or VT-d registers")
        if src.exists("/proc/vmcore"):
            c.out("/proc/vmcore").parent.mkdir(parents=True, exist_ok=True)
            c.out("/proc/vmcore").write_bytes(b"")
            c.notes.append("taken in a kdump kernel: proc/vmcore is an empty marker")
        extra = dst / EXTRA_DIR
        extra.mkdir(exist_ok=True)
        step(4)
        if src.is_live:
            if read_registers and units:
                entries = iommu_src.read_live_registers(units, src)
                for e in entries:
                    if e["read_error"]:
                        c.unreadable[f"/dev/mem@{e['address']:#x}"] = e["read_error"]
                (extra / "vtd_registers.json").write_text(json.dumps({"units": entries}, indent=2) + "\n")
            if read_registers:
                from kdumptool.sources.amdvi import AMDVI_REGS_JSON, amdvi_units, read_amdvi_live

                amd = amdvi_units(src)
                if amd:
                    entries = read_amdvi_live(amd, src)
                    for e in entries:
                        if e["read_error"]:
                            c.unreadable[f"/dev/mem@{e['address']:#x}"] = e["read_error"]
                    (extra / AMDVI_REGS_JSON).write_text(json.dumps({"units": entries}, indent=2) + "\n")
        else:
            # Read through the root like every other file: a link planted in the source's
            # _kdumptool/ resolves inside it, a FIFO or device is refused, sizes are capped.
            for fname in src.listdir("/" + EXTRA_DIR):
                if fname == "collect.json":
                    continue
                try:
                    data = src.read_bytes(extra_rel(fname), cap=MAX_LOG_BYTES)
                except KdumptoolError as err:
                    c.unreadable[extra_rel(fname)] = str(err)
                    continue
                (extra / fname).write_bytes(data)
        step(5)
        if src.is_live:
            try:
                (extra / "dmesg.txt").write_text(read_kmsg())
            except KdumptoolError as err:
                c.unreadable["/dev/kmsg"] = str(err)
                text = _run(["dmesg"])
                if text is not None:
                    (extra / "dmesg.txt").write_text(text)
        step(6)
        if src.is_live and run_lspci:
            for fname, args in LSPCI_RUNS:
                text = _run(["lspci"] + args)
                if text is not None:
                    (extra / fname).write_text(text)
        meta: Dict[str, object] = {
            "kdumptool": __version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node() if src.is_live else None,
            "kernel": platform.release() if src.is_live else None,
            "source": "live" if src.is_live else str(src.path),
            "euid": os.geteuid(),
            "unreadable": dict(sorted(c.unreadable.items())),
            "notes": c.notes,
        }
        (extra / "collect.json").write_text(json.dumps(meta, indent=2) + "\n")
        step(7)
        if is_tar:
            output.parent.mkdir(parents=True, exist_ok=True)
            gz = name.endswith((".gz", ".tgz"))
            # gzip level 6 (gzip's own default), not tarfile's 9: a third of the archive's CPU
            # for 3% more bytes (bench/bench_record.py; the kdump kernel's record pays it)
            opts = {"mode": "w:gz", "compresslevel": 6} if gz else {"mode": "w"}
            # temp file + fsync + rename: never through a link, never over a file unless force
            with atomic_output(output, force) as fh, tarfile.open(fileobj=fh, **opts) as tar:  # type: ignore[call-overload]
                archive_tree(tar, str(dst), "snapshot")
        if progress:
            progress("done", len(steps), len(steps))
        return meta
    finally:
        if tmp is not None:
            tmp.cleanup()
