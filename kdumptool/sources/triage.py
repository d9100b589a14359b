"""Everything triage reads, gathered from a :class:`Root` (live host or snapshot) and, for
offline triage, a saved crash: the system model, the kernel log, kernel build defaults,
the kdump configuration and initramfs, module aliases, capacity figures (psutil), and
the crashed kernel's log out of a vmcore.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple, Union

from kdumptool.analysis.scenario import KernelDefaults, parse_kernel_config, scan_log, scan_log_text
from kdumptool.analysis.triage import Capacity, CrashedKernel, TriageInput
from kdumptool.errors import KdumptoolError, PermissionDenied, SourceMissing
from kdumptool.sources.initramfs import read_kdump_initrd, running_release
from kdumptool.sources.kdumpconf import read_kdump_settings
from kdumptool.sources.root import Root


def read_log_text(root: Root) -> Tuple[Union[str, bytes], str]:
    """The kernel log as ``dmesg`` prints it (bytes or text), and where it came from."""
    path = root.extra("dmesg.txt")
    if path.exists():
        return path.read_bytes(), "_kdumptool/dmesg.txt"
    if root.is_live:
        exe = shutil.which("dmesg")
        if exe is not None:
            try:
                proc = subprocess.run([exe], capture_output=True, check=False, timeout=30)
                if proc.returncode == 0:
                    return proc.stdout, "dmesg"
            except (OSError, subprocess.TimeoutExpired):
                pass
        return "\n".join(_read_kmsg()), "/dev/kmsg"
    return "", "(no kernel log in the snapshot)"


def _read_kmsg() -> List[str]:
    """Records of /dev/kmsg (``prio,seq,usec,flags;text``) as dmesg lines."""
    out: List[str] = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return out
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError:
                continue  # EPIPE: a record was overwritten; keep reading
            if not rec:
                break
            head, _, text = rec.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            usec = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            out.append(f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {text.splitlines()[0] if text else ''}")
    finally:
        os.close(fd)
    return out


def read_kernel_defaults(root: Root, release: Optional[str]) -> KernelDefaults:
    if release:
        path = f"/boot/config-{release}"
        text = root.read_optional(path)
        if text is not None:
            return parse_kernel_config(text, path)
    if root.exists("/proc/config.gz"):
        try:
            text = gzip.decompress(root.read_bytes("/proc/config.gz")).decode("utf-8", "replace")
            return parse_kernel_config(text, "/proc/config.gz")
        except (OSError, EOFError, KdumptoolError):
            pass
    return KernelDefaults()


def read_builtin_modules(root: Root, release: Optional[str]) -> Optional[FrozenSet[str]]:
    if not release:
        return None
    for base in ("/lib/modules", "/usr/lib/modules"):
        text = root.read_optional(f"{base}/{release}/modules.builtin")
        if text is not None:
            names = set()
            for line in text.splitlines():
                b = line.rsplit("/", 1)[-1]
                if b.endswith(".ko"):
                    names.add(b[:-3].replace("-", "_"))
            return frozenset(names)
    return None


_LSPCI_DEV = re.compile(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ")


def read_device_modules(root: Root, release: Optional[str], bdfs: List[str]) -> Dict[str, Tuple[str, ...]]:
    """Which modules can drive each device: the device's ``modalias`` matched against
    ``modules.alias`` (what modprobe does), else ``lspci -k``'s "Kernel modules:" lines
    kept in a snapshot."""
    out: Dict[str, Tuple[str, ...]] = {}
    aliases = None
    if release:
        for base in ("/lib/modules", "/usr/lib/modules"):
            text = root.read_optional(f"{base}/{release}/modules.alias")
            if text is not None:
                aliases = _index_aliases(text)
                break
    if aliases is not None:
        by_vendor, generic = aliases
        for bdf in bdfs:
            ma = root.read_optional(f"/sys/bus/pci/devices/{bdf}/modalias")
            if not ma:
                continue
            vendor = ma[5:13] if ma.startswith("pci:v") else ""
            mods = []
            for pat, mod in by_vendor.get(vendor, []) + generic:
                if fnmatch.fnmatchcase(ma, pat) and mod not in mods:
                    mods.append(mod)
            if mods:
                out[bdf] = tuple(mods)
    if out:
        return out
    path = root.extra("lspci_vvv.txt")
    if path.exists():
        cur: Optional[str] = None
        for line in path.read_text(errors="replace").splitlines():
            m = _LSPCI_DEV.match(line)
            if m:
                cur = f"{m.group(1) or '0000'}:{m.group(2)}"
            elif cur and line.strip().startswith("Kernel modules:"):
                out[cur] = tuple(x.strip().replace("-", "_") for x in line.split(":", 1)[1].split(",") if x.strip())
    return out


def _index_aliases(text: str) -> Tuple[Dict[str, List[Tuple[str, str]]], List[Tuple[str, str]]]:
    by_vendor: Dict[str, List[Tuple[str, str]]] = {}
    generic: List[Tuple[str, str]] = []
    for line in text.splitlines():
        if not line.startswith("alias pci:"):
            continue
        parts = line.split()
        if len(parts) != 3:
            continue
        pat, mod = parts[1], parts[2].replace("-", "_")
        vendor = pat[5:13] if pat.startswith("pci:v") else ""
        if "*" in vendor or "?" in vendor or len(vendor) != 8:
            generic.append((pat, mod))
        else:
            by_vendor.setdefault(vendor, []).append((pat, mod))
    return by_vendor, generic


def read_capacity(root: Root, settings: Optional[object]) -> Capacity:
    mem_total = mem_used = None
    text = root.read_optional("/proc/meminfo")
    if root.is_live:
        try:
            import psutil

            vm = psutil.virtual_memory()
            mem_total, mem_used = int(vm.total), int(vm.total - vm.available)
        except Exception:  # psutil missing or unsupported platform
            pass
    if mem_total is None and text:
        kv = {}
        for line in text.splitlines():
            k, _, v = line.partition(":")
            f = v.split()
            if f and f[0].isdigit():
                kv[k.strip()] = int(f[0]) * 1024
        mem_total = kv.get("MemTotal")
        if mem_total is not None and "MemAvailable" in kv:
            mem_used = mem_total - kv["MemAvailable"]
    target_path = target_free = target_error = None
    target = getattr(settings, "target", None)
    if target is not None:
        target_path = target.path or target.location
        if target.kind != "local":
            target_error = f"{target.kind} target {target.location}: free space is not checked from here"
        elif root.is_live:
            try:
                import psutil

                p = Path(target_path)
                while not p.exists() and p != p.parent:
                    p = p.parent
                target_free = int(psutil.disk_usage(str(p)).free)
            except Exception as exc:
                target_error = f"{target_path}: {exc}"
    return Capacity(mem_total=mem_total, mem_used=mem_used, target_path=target_path,
                    target_free=target_free, target_error=target_error)


def read_crashed_kernel(vmcore: Optional[str], saved: Optional[str]) -> Optional[CrashedKernel]:
    """The crashed kernel's log (decoded from the vmcore) and what a saved directory holds
    about it (``dmesg.txt`` written by makedumpfile --dump-dmesg / kdump-tools, a
    ``snapshot/`` of the first kernel)."""
    lines: Optional[List[str]] = None
    source = ""
    drivers: Dict[str, str] = {}
    if saved is not None:
        d = Path(saved)
        if not d.is_dir():
            raise SourceMissing(f"{saved}: not a directory")
        if vmcore is None:
            for name in sorted(os.listdir(d)):
                if name == "vmcore" or name.startswith("vmcore.") or name.startswith("dump."):
                    if not name.endswith((".txt", ".log")):
                        vmcore = str(d / name)
                        break
        for name in ("vmcore-dmesg.txt", "dmesg.txt") + tuple(n for n in sorted(os.listdir(d)) if n.startswith("dmesg.")):
            if (d / name).is_file():
                lines = (d / name).read_text(errors="replace").split("\n")
                source = str(d / name)
                break
    if vmcore is not None and lines is None:
        from kdumptool.formats.printk import decode_printk
        from kdumptool.sources.vmcore import open_dump

        with open_dump(vmcore) as dump:
            if dump.vmcoreinfo is None:
                raise SourceMissing(f"{vmcore}: no VMCOREINFO, the crashed kernel's log cannot be read")
            log = decode_printk(dump.vmcoreinfo, dump.read_virt)
        lines = log.dmesg_lines()
        source = f"{vmcore} (printk ring)"
    if lines is None:
        return None
    markers = scan_log(lines, source)
    for m in markers.all("probe"):
        b, drv = m.get("bdf"), m.get("drv")
        if b and drv and b not in drivers:
            drivers[b] = drv
    c = markers.first("cmdline")
    return CrashedKernel(source, markers, c.get("cmdline") if c else None, drivers)


def read_triage_input(
    root: Root, vmcore: Optional[str] = None, saved: Optional[str] = None, use_tools: Optional[bool] = None
) -> TriageInput:
    from kdumptool.sources.system import read_system

    system = read_system(root)
    text, log_source = read_log_text(root)
    # Probe lines are needed inside a kdump kernel (which drivers replaced copied
    # entries); a first kernel's log can be huge and its probes are not used.
    log = scan_log_text(text, log_source, probes=system.in_kdump_kernel,
                        segments=sorted({d.segment for d in system.devices.values()}) or (0,))
    del text
    release = running_release(root)
    settings = read_kdump_settings(root)
    initrd = None
    initrd_error = None
    if not system.in_kdump_kernel:
        try:
            initrd = read_kdump_initrd(root, use_tools=use_tools)
        except (KdumptoolError, OSError) as exc:
            initrd_error = str(exc)
    try:
        dev_mods = read_device_modules(root, release, list(system.devices))
    except (PermissionDenied, SourceMissing):
        dev_mods = {}
    crashed = read_crashed_kernel(vmcore, saved) if (vmcore or saved) else None
    return TriageInput(
        system=system,
        log=log,
        kdump_settings=settings,
        kdump_initrd=initrd,
        initrd_error=initrd_error,
        defaults=read_kernel_defaults(root, release),
        capacity=read_capacity(root, settings),
        device_modules=dev_mods,
        builtin_modules=read_builtin_modules(root, release),
        crashed=crashed,
    )
