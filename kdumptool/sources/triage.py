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
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, Union

from kdumptool.analysis.scenario import (
    DMA_GSTS_RTPS,
    DMA_GSTS_TES,
    DMA_RTADDR_SMT,
    Evidence,
    KernelDefaults,
    LogMarkers,
    parse_kernel_config,
    scan_log_text,
)
from kdumptool.analysis.triage import (
    Capacity,
    CrashedKernel,
    CrashedTables,
    FaultLookup,
    TableDevice,
    TriageInput,
)
from kdumptool.errors import KdumptoolError, PermissionDenied, SourceMissing
from kdumptool.sources.initramfs import read_kdump_initrd, running_release
from kdumptool.sources.kdumpconf import read_kdump_settings
from kdumptool.sources.root import MAX_LOG_BYTES, Root, open_root, read_file_capped


def read_log_text(root: Root) -> Tuple[Union[str, bytes], str]:
    """The kernel log as ``dmesg`` prints it (bytes or text), and where it came from."""
    data = root.read_extra("dmesg.txt", cap=MAX_LOG_BYTES)
    if data is not None:
        return data, "_kdumptool/dmesg.txt"
    if root.is_live:
        exe = shutil.which("dmesg")
        if exe is not None:
            try:
                proc = subprocess.run([exe], capture_output=True, check=False, timeout=30)
                if proc.returncode == 0:
                    return proc.stdout, "dmesg"
            except (OSError, subprocess.TimeoutExpired):
                pass
        lines = _read_kmsg()
        if not lines:  # say why, so the report does not rest on a log it never saw
            try:
                os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
                why = "empty"
            except OSError as exc:
                why = f"{exc.strerror}; run as root, or lower kernel.dmesg_restrict"
            return "", f"/dev/kmsg (not read: {why})"
        return "\n".join(lines), "/dev/kmsg"
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
    try:
        raw = root.read_extra("lspci_vvv.txt")
    except KdumptoolError:
        raw = None
    if raw is not None:
        cur: Optional[str] = None
        for line in raw.decode("utf-8", "replace").splitlines():
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


def _snapshot_dir(d: Path) -> Optional[Path]:
    """A first-kernel snapshot inside a saved crash directory (or the directory itself)."""
    for cand in (d, d / "snapshot", d / "first-kernel"):
        if (cand / "_kdumptool").is_dir() or (cand / "sys" / "bus" / "pci").is_dir():
            return cand
    return None


RECORD_JSON = "kdumptool-record.json"
RECORD_SNAPSHOT = "kdumptool-snapshot.tar.gz"


def _records(d: Path) -> List[Tuple[Path, Dict[str, Any]]]:
    """``kdumptool record`` outputs in a saved crash directory (itself or its kdumptool/)."""
    import json

    out = []
    for sub in (d, d / "kdumptool"):
        p = sub / RECORD_JSON
        if p.is_file():
            try:
                data = json.loads(read_file_capped(p).decode("utf-8", "replace"))
            except (ValueError, KdumptoolError):
                continue
            if isinstance(data, dict):
                out.append((sub, data))
    return out


def _hexes(m: Any) -> Dict[str, int]:
    out: Dict[str, int] = {}
    if isinstance(m, dict):
        for k, v in m.items():
            try:
                out[str(k)] = int(str(v), 0)
            except ValueError:
                continue
    return out


def find_kdump_snapshot(saved: str) -> Optional[str]:
    """The kdump kernel's snapshot that ``kdumptool record`` left in a crash directory."""
    for sub, data in _records(Path(saved)):
        if data.get("in_kdump_kernel") and (sub / RECORD_SNAPSHOT).is_file():
            return str(sub / RECORD_SNAPSHOT)
    return None


def _old_root_table(
    first_sys: Optional[object], current: Optional[object], recorded: Optional[Tuple[Dict[str, int], str]] = None
) -> Optional[Tuple[int, str, str]]:
    """(address, mode, how) of the crashed kernel's root table, from registers."""
    if recorded is not None:
        rts, where = recorded
        for name, rt in sorted(rts.items()):
            if rt & ~0xFFF:
                return rt & ~0xFFF, "scalable" if rt & DMA_RTADDR_SMT else "legacy", \
                    f"{name} RTADDR=0x{rt:x} recorded at boot ({where})"
    if first_sys is not None:
        for u in getattr(first_sys, "units", ()):
            regs = u.registers
            if regs is not None and regs.get("RTADDR") and (regs.get("GSTS") or 0) & DMA_GSTS_TES:
                rt = regs.get("RTADDR")
                return rt & ~0xFFF, "scalable" if rt & DMA_RTADDR_SMT else "legacy", \
                    f"{u.name} RTADDR=0x{rt:x} of the saved first-kernel snapshot"
    if current is not None and getattr(current, "in_kdump_kernel", False):
        for u in getattr(current, "units", ()):
            regs = u.registers
            if regs is None:
                continue
            gsts, rt = regs.get("GSTS") or 0, regs.get("RTADDR") or 0
            if rt and not gsts & DMA_GSTS_TES and gsts & DMA_GSTS_RTPS:
                return rt & ~0xFFF, "scalable" if rt & DMA_RTADDR_SMT else "legacy", \
                    f"{u.name} RTADDR=0x{rt:x} left by the crashed kernel (translation is off in this kernel)"
    return None


def _tables_of(
    dump: Any, first_sys: Optional[object], current: Optional[object], warnings: List[str],
    current_log: Optional[LogMarkers] = None, recorded: Optional[Tuple[Dict[str, int], str]] = None,
) -> Optional[CrashedTables]:
    from kdumptool.analysis.vtd_walk import lookup_iova, walk_root_table

    where = _old_root_table(first_sys, current, recorded)
    if where is None:
        from kdumptool.analysis.rtscan import find_root_tables

        res = find_root_tables(dump, list(dump.iter_dumped_ranges()))
        best = res.best
        if best is None:
            warnings.append("no VT-d root table found in the vmcore (translation off in the crashed kernel, or the "
                            "table pages were filtered out)")
            return None
        where = (best.address, best.mode, f"scan of the vmcore ({res.pages_scanned} pages, best of "
                 f"{len(res.candidates)} candidates, score {best.score})")
    addr, mode, how = where
    vt = walk_root_table(dump, addr, mode)
    devs = tuple(
        TableDevice(
            d.bdf, d.present, d.translation_type, d.domain_id,
            d.walk.mapped_4k_pages if d.walk else 0, d.walk.mapped_large_pages if d.walk else 0,
        )
        for d in vt.devices
    )
    lookups = []
    seen = set()
    for m in (current_log.all("fault") if current_log is not None else [])[:64]:
        b, a = m.get("bdf") or "", m.get("addr") or ""
        try:
            bus, dev, fn = int(b[-7:-5], 16), int(b[-4:-2], 16), int(b[-1:], 16)
            iova = int(a, 16)
        except ValueError:
            continue
        full = b if len(b) > 8 else f"0000:{b}"
        if (full, iova) in seen:
            continue
        seen.add((full, iova))
        lk = lookup_iova(dump, addr, mode, bus, (dev << 3) | fn, iova)
        lookups.append(FaultLookup(full, iova, lk.phys, lk.read, lk.write, lk.reason))
    return CrashedTables(addr, mode, how, devs, tuple(vt.problems), tuple(lookups))


def read_crashed_kernel(
    vmcore: Optional[str], saved: Optional[str], current: Optional[object] = None,
    current_log: Optional[LogMarkers] = None,
) -> Optional[CrashedKernel]:
    """What the crashed kernel left: its log (decoded from the vmcore's printk ring, else
    a ``dmesg.txt``/``vmcore-dmesg.txt`` beside it, else a saved first-kernel snapshot's),
    its drivers (from that snapshot, else its probe lines), and its VT-d tables decoded
    from the vmcore, starting at the RTADDR the registers give (saved snapshot, or left
    behind when the kdump kernel runs without translation) or found by a scan."""
    from kdumptool.sources.system import read_system

    text: Optional[Union[str, bytes]] = None
    source = ""
    warnings: List[str] = []
    first_sys = None
    snap_log: Optional[Tuple[bytes, str]] = None
    recorded: Optional[Tuple[Dict[str, int], str]] = None
    found_vmcore = vmcore is None  # one found in --saved may be damaged: warn, use the rest
    if saved is not None:
        d = Path(saved)
        if not d.is_dir():
            raise SourceMissing(f"{saved}: not a directory")
        first_snap: Optional[Path] = _snapshot_dir(d)
        for sub, data in _records(d):
            if data.get("in_kdump_kernel"):
                boot = data.get("boot_record") or {}
                rts = _hexes(boot.get("rtaddr") if isinstance(boot, dict) else None)
                if rts and recorded is None:
                    recorded = (rts, f"{sub / RECORD_JSON}: boot_record {boot.get('path')}")
            else:
                rts = _hexes(data.get("rtaddr"))
                if rts:
                    recorded = (rts, str(sub / RECORD_JSON))
                if first_snap is None and (sub / RECORD_SNAPSHOT).is_file():
                    first_snap = sub / RECORD_SNAPSHOT
        if first_snap is not None:
            with open_root(first_snap) as fr:
                first_sys = read_system(fr)
                snap_bytes = fr.read_extra("dmesg.txt", cap=MAX_LOG_BYTES)
                if snap_bytes is not None:
                    snap_log = (snap_bytes, f"{first_snap}: _kdumptool/dmesg.txt")
            if first_sys.in_kdump_kernel:
                warnings.append(f"{first_snap}: this snapshot was taken inside a kdump kernel, not the first kernel")
                first_sys = None
                snap_log = None
        if vmcore is None:
            for name in sorted(os.listdir(d)):
                if (name == "vmcore" or name.startswith(("vmcore.", "dump."))) and not name.endswith((".txt", ".log")):
                    vmcore = str(d / name)
                    break
        for name in ("vmcore-dmesg.txt", "dmesg.txt"):
            if (d / name).is_file():
                text, source = read_file_capped(d / name, MAX_LOG_BYTES), str(d / name)
                break
    tables = None
    if vmcore is not None:
        from kdumptool.formats.printk import decode_printk
        from kdumptool.sources.vmcore import open_dump

        try:
            opened = open_dump(vmcore)
        except KdumptoolError as exc:
            if not found_vmcore:
                raise
            warnings.append(f"the vmcore was not read: {exc}")
            opened = None
        if opened is not None:
            with opened as dump:
                warnings.extend(dump.warnings)
                if dump.vmcoreinfo is not None:
                    try:
                        plog = decode_printk(dump.vmcoreinfo, dump.read_virt)
                        text, source = "\n".join(plog.dmesg_lines()), f"{vmcore} (printk ring)"
                        warnings.extend(plog.warnings)
                    except KdumptoolError as exc:
                        warnings.append(f"{vmcore}: crashed kernel's log not decoded: {exc}")
                try:
                    tables = _tables_of(dump, first_sys, current, warnings, current_log, recorded)
                except KdumptoolError as exc:
                    warnings.append(f"{vmcore}: VT-d tables not decoded: {exc}")
    if text is None and snap_log is not None:
        text, source = snap_log
    if text is None and tables is None and first_sys is None:
        return None
    markers = scan_log_text(text, source) if text is not None else None
    drivers: Dict[str, str] = {}
    if first_sys is not None:
        drivers = {b: dev.driver for b, dev in first_sys.devices.items() if dev.driver}
    elif markers is not None:
        for m in markers.all("probe"):
            b, drv = m.get("bdf"), m.get("drv")
            if b and drv and b not in drivers:
                drivers[b] = drv
    c = markers.first("cmdline") if markers is not None else None
    cmdline = c.get("cmdline") if c else (first_sys.cmdline if first_sys is not None else None)
    return CrashedKernel(source or str(saved or vmcore), markers, cmdline, drivers, tables, vmcore, tuple(warnings))


def read_triage_input(
    root: Root, vmcore: Optional[str] = None, saved: Optional[str] = None, use_tools: Optional[bool] = None,
    use_udev: Optional[bool] = None,
) -> TriageInput:
    """Everything triage needs. ``use_udev=False`` enumerates PCI through sysfs only (the
    kdump initramfs carries no libudev); ``use_tools`` picks lsinitrd/lsinitramfs."""
    from kdumptool.sources import system as system_src

    system = system_src.read_system(root) if use_udev is None else system_src.read_system(root, use_udev=use_udev)
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
    crashed = read_crashed_kernel(vmcore, saved, system, log) if (vmcore or saved) else None
    quiesce_conf = None
    conf = root.read_optional("/etc/kdumptool/kdumptool.conf")
    if conf is not None:
        for n, line in enumerate(conf.splitlines(), 1):
            if line.split("#", 1)[0].replace(" ", "") in ("quiesce=1", "quiesce=yes", "quiesce=true"):
                quiesce_conf = Evidence("/etc/kdumptool/kdumptool.conf", line.strip(), n)
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
        quiesce_conf=quiesce_conf,
        amd_iommu=Evidence("/sys/firmware/acpi/tables/IVRS", "present (AMD I/O Virtualization Reporting Structure)")
        if root.exists("/sys/firmware/acpi/tables/IVRS") else None,
    )
