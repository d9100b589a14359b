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
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple, Union

from kdumptool.errors import DecompressorMissing, KdumptoolError, PermissionDenied, SourceMissing
from kdumptool.formats.kdumpconf import KdumpSettings
from kdumptool.model.evidence import Evidence
from kdumptool.model.kernel import KernelDefaults, parse_kernel_config
from kdumptool.model.log import scan_log_text
from kdumptool.model.record import RECORD_JSON, RECORD_SNAPSHOT, RecordFile
from kdumptool.model.system import System
from kdumptool.model.triage import (
    AmdViRegisterReading,
    Capacity,
    CrashedKernel,
    RecordedRtaddr,
    TriageInput,
)
from kdumptool.sources.initramfs import read_kdump_initrd, running_release
from kdumptool.sources.kdumpconf import read_kdump_settings
from kdumptool.sources.kdumpstack import read_integration
from kdumptool.sources.kmsg import KMSG_PATH, read_kmsg
from kdumptool.sources.root import MAX_LOG_BYTES, Root, open_root, read_file_capped
from kdumptool.sources.system import read_system
from kdumptool.sources.vmcore import Dump, open_dump


def read_log_text(root: Root) -> Tuple[Union[str, bytes], str]:
    """The kernel log as ``dmesg`` prints it (bytes or text), and where it came from."""
    data = root.read_extra("dmesg.txt", cap=MAX_LOG_BYTES)
    if data is not None:
        # relative to the root: _kdumptool/dmesg.txt, or a sos report's sos_commands/kernel/dmesg
        return data, root.extra_rel("dmesg.txt").lstrip("/")
    if root.is_live:
        exe = shutil.which("dmesg")
        if exe is not None:
            try:
                proc = subprocess.run([exe], capture_output=True, check=False, timeout=30)
                if proc.returncode == 0:
                    return proc.stdout, "dmesg"
            except (OSError, subprocess.TimeoutExpired):
                pass
        # The one /dev/kmsg reader (sources/kmsg.py); say why when it gives nothing, so
        # the report does not rest on a log it never saw.
        try:
            text = read_kmsg(KMSG_PATH)
        except KdumptoolError as exc:
            return "", f"{KMSG_PATH} (not read: {exc})"
        if not text:
            return "", f"{KMSG_PATH} (not read: empty)"
        return text, KMSG_PATH
    return "", "(no kernel log in the snapshot)"


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


def read_capacity(root: Root, settings: Optional[KdumpSettings]) -> Capacity:
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


def read_records(d: Path) -> List[Tuple[Path, RecordFile]]:
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
            rec = RecordFile.from_json(data)
            if rec is not None:
                out.append((sub, rec))
    return out


def find_kdump_snapshot(saved: str) -> Optional[str]:
    """The kdump kernel's snapshot that ``kdumptool record`` left in a crash directory."""
    for sub, rec in read_records(Path(saved)):
        if rec.in_kdump_kernel and (sub / RECORD_SNAPSHOT).is_file():
            return str(sub / RECORD_SNAPSHOT)
    return None


def _read_saved(saved: str) -> Tuple[Optional[System], Optional[Tuple[bytes, str]], Optional[RecordedRtaddr],
                                       Optional[Tuple[bytes, str]], Optional[str], List[str]]:
    """What a saved crash folder holds: a first-kernel snapshot (its system and log), the
    RTADDR a ``kdumptool record`` kept, the crashed kernel's ``(vmcore-)dmesg.txt`` and the
    vmcore's path."""
    d = Path(saved)
    if not d.is_dir():
        raise SourceMissing(f"{saved}: not a directory")
    warnings: List[str] = []
    first_sys: Optional[System] = None
    snap_log: Optional[Tuple[bytes, str]] = None
    recorded: Optional[RecordedRtaddr] = None
    first_snap: Optional[Path] = _snapshot_dir(d)
    for sub, rec in read_records(d):
        if rec.in_kdump_kernel:
            rts = rec.boot_rtaddr_values
            if rts and recorded is None and rec.boot_record is not None:
                recorded = RecordedRtaddr(rts, f"{sub / RECORD_JSON}: boot_record {rec.boot_record.path}")
        else:
            rts = rec.rtaddr_values
            if rts:
                recorded = RecordedRtaddr(rts, str(sub / RECORD_JSON))
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
    vmcore = None
    for name in sorted(os.listdir(d)):
        if (name == "vmcore" or name.startswith(("vmcore.", "dump."))) and not name.endswith((".txt", ".log")):
            vmcore = str(d / name)
            break
    text = None
    for name in ("vmcore-dmesg.txt", "dmesg.txt"):
        if (d / name).is_file():
            text = (read_file_capped(d / name, MAX_LOG_BYTES), str(d / name))
            break
    return first_sys, snap_log, recorded, text, vmcore, warnings


@contextmanager
def open_crashed_kernel(vmcore: Optional[str], saved: Optional[str],
                        scan_tables: bool = True) -> Iterator[Optional[CrashedKernel]]:
    """What the crashed kernel left: its log (decoded from the vmcore's printk ring, else
    a ``dmesg.txt``/``vmcore-dmesg.txt`` beside it, else a saved first-kernel snapshot's),
    its drivers (from that snapshot, else its probe lines), the RTADDR a record or the
    snapshot kept, and the vmcore itself, open for the duration of the ``with`` block
    (:mod:`kdumptool.analysis.crashed` decodes the VT-d tables from it)."""
    text: Optional[Union[str, bytes]] = None
    source = ""
    warnings: List[str] = []
    unread: List[str] = []  # those of warnings that say evidence could not be read
    first_sys: Optional[System] = None
    snap_log: Optional[Tuple[bytes, str]] = None
    recorded: Optional[RecordedRtaddr] = None
    release: Optional[str] = None
    banner: Optional[str] = None
    found_vmcore = vmcore is None  # one found in --saved may be damaged: warn, use the rest
    if saved is not None:
        first_sys, snap_log, recorded, saved_text, saved_vmcore, warnings = _read_saved(saved)
        if vmcore is None:
            vmcore = saved_vmcore
        if saved_text is not None:
            text, source = saved_text
    with ExitStack() as stack:
        dump: Optional[Dump] = None
        if vmcore is not None:
            from kdumptool.formats.printk import decode_printk

            try:
                dump = stack.enter_context(open_dump(vmcore))
            except KdumptoolError as exc:
                # A dump this Python cannot decompress is an error even when found in
                # --saved: carrying on would report its devices as "0 mapped".
                if not found_vmcore or isinstance(exc, DecompressorMissing):
                    raise
                warnings.append(f"the vmcore was not read: {exc}")
                unread.append(warnings[-1])
            if dump is not None:
                warnings.extend(dump.warnings)
                if dump.vmcoreinfo is not None:
                    release = dump.vmcoreinfo.osrelease
                    try:
                        plog = decode_printk(dump.vmcoreinfo, dump.read_virt)
                        text, source = "\n".join(plog.dmesg_lines()), f"{vmcore} (printk ring)"
                        warnings.extend(plog.warnings)  # the log is damaged or partly decoded
                        unread.extend(plog.warnings)
                        banner = next((r.text for r in plog.records[:5] if r.text.startswith("Linux version")), None)
                    except KdumptoolError as exc:
                        warnings.append(f"{vmcore}: crashed kernel's log not decoded: {exc}")
                        unread.append(warnings[-1])
        if text is None and snap_log is not None:
            text, source = snap_log
        if text is None and dump is None and first_sys is None:
            yield None
            return
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
        yield CrashedKernel(source or str(saved or vmcore), markers, cmdline, drivers, None,
                            vmcore, tuple(warnings),
                            memory=dump, first_system=first_sys, recorded=recorded,
                            release=release, banner=banner, scan_tables=scan_tables, unread=tuple(unread))


def _snapshot_release(root: Root) -> Optional[str]:
    """The kernel release ``kdumptool collect``/``record`` noted in _kdumptool/collect.json."""
    import json

    try:
        raw = root.read_extra("collect.json")
        data = json.loads(raw.decode("utf-8", "replace")) if raw is not None else None
    except (KdumptoolError, ValueError):
        return None
    rel = data.get("kernel") if isinstance(data, dict) else None
    if isinstance(rel, str) and re.fullmatch(r"[A-Za-z0-9+_~-][A-Za-z0-9.+_~-]*", rel):
        return rel
    return None


def read_triage_input(
    root: Root, use_tools: Optional[bool] = None, use_udev: Optional[bool] = None, system: Optional[System] = None,
) -> TriageInput:
    """Everything triage needs from a live host or a snapshot. ``use_udev=False``
    enumerates PCI through sysfs only (the kdump initramfs carries no libudev);
    ``use_tools`` picks lsinitrd/lsinitramfs; ``system``: the system model when the
    caller has read it already."""
    if system is None:
        system = read_system(root) if use_udev is None else read_system(root, use_udev=use_udev)
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
    quiesce_conf = None
    conf = root.read_optional("/etc/kdumptool/kdumptool.conf")
    if conf is not None:
        for n, line in enumerate(conf.splitlines(), 1):
            if line.split("#", 1)[0].replace(" ", "") in ("quiesce=1", "quiesce=yes", "quiesce=true"):
                quiesce_conf = Evidence("/etc/kdumptool/kdumptool.conf", line.strip(), n)
    try:
        integration = read_integration(root, initrd.path if initrd is not None else None)
    except (KdumptoolError, OSError):
        integration = None
    banner = root.read_optional("/proc/version")
    bm = log.first("banner")
    if banner is None and bm is not None:
        banner = bm.evidence.text
    if release is None:
        release = _snapshot_release(root) or (bm.get("version") if bm is not None else None)
    return TriageInput(
        system=system,
        log=log,
        release=release,
        banner=banner,
        kdump_settings=settings,
        kdump_initrd=initrd,
        initrd_error=initrd_error,
        defaults=read_kernel_defaults(root, release),
        capacity=read_capacity(root, settings),
        device_modules=dev_mods,
        builtin_modules=read_builtin_modules(root, release),
        quiesce_conf=quiesce_conf,
        integration=integration,
        amd_iommu=Evidence("/sys/firmware/acpi/tables/IVRS", "present (AMD I/O Virtualization Reporting Structure)")
        if root.exists("/sys/firmware/acpi/tables/IVRS") else None,
        amdvi_registers=read_amdvi_readings(root) if root.exists("/sys/firmware/acpi/tables/IVRS") else (),
    )


def read_amdvi_readings(root: Root) -> Tuple[AmdViRegisterReading, ...]:
    """Each AMD-Vi IOMMU's registers for triage: live through /dev/mem (read-only; a
    refusal is kept as the reading's ``read_error``), or the snapshot's
    ``_kdumptool/amdvi_registers.json``; a snapshot without that file gives one reading
    per IVHD saying so (never an empty "nothing to see")."""
    from kdumptool.sources.amdvi import (
        AMDVI_REGS_JSON,
        amdvi_units,
        read_amdvi_live,
        read_amdvi_snapshot,
    )

    units = amdvi_units(root)
    if root.is_live:
        entries = read_amdvi_live(units, root)
        where = "/dev/mem"
    else:
        got = read_amdvi_snapshot(root)
        where = f"_kdumptool/{AMDVI_REGS_JSON}"
        if got is None:
            return tuple(AmdViRegisterReading(n, a, where, None, "not in this snapshot") for n, a in units)
        entries = got
    out = []
    for i, e in enumerate(entries):
        vals = e.get("registers")
        addr = e.get("address")
        regs = {str(k): v for k, v in vals.items() if isinstance(v, int)} if isinstance(vals, dict) else None
        out.append(AmdViRegisterReading(str(e.get("name") or f"ivhd{i}"), addr if isinstance(addr, int) else 0,
                                        where, regs, None if regs is not None else str(e.get("read_error") or
                                                                                     "no registers")))
    return tuple(out)


@contextmanager
def open_triage_input(
    root: Root, vmcore: Optional[str] = None, saved: Optional[str] = None, use_tools: Optional[bool] = None,
    use_udev: Optional[bool] = None,
) -> Iterator[TriageInput]:
    """:func:`read_triage_input` plus, for offline triage, what the crashed kernel left
    (:func:`open_crashed_kernel`): its vmcore stays open inside the ``with`` block."""
    inp = read_triage_input(root, use_tools=use_tools, use_udev=use_udev)
    if not (vmcore or saved):
        if inp.system.in_kdump_kernel and root.is_live and os.path.exists("/proc/vmcore"):
            # Inside the kdump kernel the crashed kernel is right there: read its version,
            # command line and log (and its tables, where a register names them) from
            # /proc/vmcore before inferring anything.
            with ExitStack() as stack:
                try:
                    crashed = stack.enter_context(open_crashed_kernel("/proc/vmcore", None, scan_tables=False))
                except (KdumptoolError, OSError) as exc:
                    why = f"/proc/vmcore not read: {exc}"
                    crashed = CrashedKernel("/proc/vmcore", warnings=(why,), unread=(why,))
                yield replace(inp, crashed=crashed)
            return
        yield inp
        return
    with open_crashed_kernel(vmcore, saved) as crashed:
        yield replace(inp, crashed=crashed)
