"""Build the :class:`~kdumptool.model.system.System` of a live host or a snapshot.

One code path: every file is read through a :class:`~kdumptool.sources.root.Root`. The
only live-only parts are device enumeration through pyudev (``use_udev``, default on for
``/``) and VT-d registers through ``/dev/mem`` (a snapshot carries them in
``_kdumptool/vtd_registers.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from kdumptool.errors import DecodeError, KdumptoolError, SourceMissing
from kdumptool.formats.dmar import Dmar, Drhd, parse_dmar
from kdumptool.formats.vtd_regs import decode_vtd_registers
from kdumptool.model.system import IomemRange, IommuGroup, IommuUnit, System, build_system
from kdumptool.sources import iommu as iommu_src
from kdumptool.sources import pci as pci_src
from kdumptool.sources.devmem import lockdown_mode
from kdumptool.sources.root import MAX_FILE_BYTES, Root, open_root, read_file_capped
from kdumptool.sources.sos import is_sos_report, read_sos_pci, sos_inventory

#: Largest lspci text dump read (``lspci -xxxx`` of 256 devices is about 1.2 MiB).
MAX_LSPCI_BYTES = MAX_FILE_BYTES

DMAR_TABLE = "/sys/firmware/acpi/tables/DMAR"

#: kdump configuration files of the distributions we support.
KDUMP_CONFIGS = (
    "/etc/kdump.conf",  # RHEL, Fedora
    "/etc/sysconfig/kdump",  # RHEL, Fedora, SUSE
    "/etc/default/kdump-tools",  # Debian, Ubuntu
)


def parse_iomem(text: str) -> Tuple[IomemRange, ...]:
    """``/proc/iomem`` (two spaces of indentation per level). Unreadable lines are skipped:
    an unprivileged read shows all addresses as 0, which still parses."""
    out = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 2
        rng, sep, name = stripped.partition(" : ")
        if not sep or "-" not in rng:
            continue
        a, _, b = rng.partition("-")
        try:
            out.append(IomemRange(int(a, 16), int(b, 16), name.strip(), depth))
        except ValueError:
            continue
    return tuple(out)


def _flag(text: Optional[str]) -> Optional[bool]:
    if text is None or not text.strip().isdigit():
        return None
    return text.strip() != "0"


def _int(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def read_dmar_table(root: Root, warnings: List[str]) -> Tuple[bool, Optional[Dmar]]:
    """Whether a DMAR table exists, and the decoded table (None when absent, unreadable
    for this user, or undecodable: the reason goes to ``warnings``)."""
    if not root.exists(DMAR_TABLE):
        return False, None
    try:
        raw = root.read_bytes(DMAR_TABLE)
    except KdumptoolError as err:
        warnings.append(f"DMAR table not read: {err}")
        return True, None
    try:
        return True, parse_dmar(raw, str(root.p(DMAR_TABLE)))
    except KdumptoolError as err:
        warnings.append(f"DMAR: {err}")
        return True, None


def _drhds(dmar: Optional[Dmar]) -> List[Drhd]:
    if dmar is None:
        return []
    return [s for s in dmar.structures if isinstance(s, Drhd)]


def read_units(
    root: Root, dmar: Optional[Dmar], warnings: List[str], read_registers: bool = True
) -> List[IommuUnit]:
    """IOMMU units from the DMAR table's DRHDs, named and filled in from sysfs, with
    registers from the snapshot file or /dev/mem."""
    sysfs = iommu_src.read_sysfs_units(root)
    by_addr: Dict[int, iommu_src.SysfsUnit] = {u.address: u for u in sysfs if u.address is not None}
    regs_entries: Optional[List[Dict[str, Any]]] = None
    try:
        regs_entries = iommu_src.read_registers_json(root)
    except KdumptoolError as err:
        warnings.append(str(err))
    addrs: List[Tuple[str, int, int, Optional[bool]]] = []  # name, address, segment, incl_all
    seen = set()
    for i, d in enumerate(_drhds(dmar)):
        a = int(d.register_base_address)
        if a in seen:
            continue
        seen.add(a)
        name = by_addr[a].name if a in by_addr else f"dmar{i}"
        addrs.append((name, a, int(d.segment), bool(d.include_pci_all)))
    for u in sysfs:
        if u.address is not None and u.address not in seen:
            seen.add(u.address)
            addrs.append((u.name, u.address, 0, None))
    if regs_entries is not None:
        for entry in regs_entries:
            if entry["address"] not in seen:
                seen.add(entry["address"])
                addrs.append((str(entry.get("name") or f"unit@{entry['address']:#x}"), entry["address"], 0, None))
    if regs_entries is None and read_registers and root.is_live and addrs:
        regs_entries = iommu_src.read_live_registers([(n, a) for n, a, _, _ in addrs], root)
    regs_by_addr = {entry["address"]: entry for entry in (regs_entries or [])}
    units = []
    for name, a, seg, incl in addrs:
        s = by_addr.get(a)
        e: Optional[Dict[str, Any]] = regs_by_addr.get(a)
        registers = None
        read_error = None
        if e is not None:
            read_error = e.get("read_error")
            if e.get("registers"):
                try:
                    registers = decode_vtd_registers(e["registers"], f"{name} registers")
                except DecodeError as err:
                    read_error = str(err)
        elif root.is_live and not read_registers:
            read_error = "not read"
        else:
            read_error = "no register values in this snapshot"
        if read_error:
            warnings.append(f"{name} ({a:#x}): VT-d registers unavailable: {read_error}")
        units.append(
            IommuUnit(
                name=name,
                address=a,
                segment=seg,
                include_pci_all=incl,
                version=s.version if s else None,
                cap=s.cap if s and s.cap is not None else (registers.get("CAP") if registers else None),
                ecap=s.ecap if s and s.ecap is not None else (registers.get("ECAP") if registers else None),
                registers=registers,
                read_error=read_error,
                sysfs_devices=s.devices if s else (),
            )
        )
    return units


def read_kdump_config(root: Root) -> Dict[str, str]:
    out = {}
    for path in KDUMP_CONFIGS:
        text = root.read_optional(path)
        if text is not None:
            out[path] = text
    return out


def read_system(
    root: Union[Root, str, os.PathLike[str], None] = None,
    *,
    use_udev: Optional[bool] = None,
    read_registers: bool = True,
) -> System:
    """The system model of ``root`` (a :class:`Root`, a path, or None for the live host)."""
    if not isinstance(root, Root):
        root = open_root(root if root is None or isinstance(root, str) else Path(root))
    warnings: List[str] = []
    if use_udev is None:
        use_udev = root.is_live
    if use_udev:
        if not root.is_live:
            raise KdumptoolError("udev enumeration only works on the live host (--root /)")
        try:
            raw = pci_src.read_pci_devices_udev(warnings)
        except SourceMissing as err:
            # A kdump initramfs may have no libudev: the files say the same thing.
            warnings.append(f"{err}; enumerating sysfs files instead")
            raw = pci_src.read_pci_devices(root, warnings)
    elif not root.is_live and not root.exists(pci_src.PCI_DEVICES) and is_sos_report(root.path):
        # a sos report: config space from proc/bus/pci, drivers from lspci -nnvv
        raw = read_sos_pci(root.path, warnings)
        warnings.append("a sos report; not in it: " + "; ".join(sos_inventory(root.path)[1]))
    else:
        raw = pci_src.read_pci_devices(root, warnings)
    groups = iommu_src.read_groups(root, warnings)
    if not groups and any(r.iommu_group is not None for r in raw.values()):
        # lspci's "IOMMU group:" lines (a sos report): numbers and members, types unknown
        members: Dict[int, List[str]] = {}
        for r in raw.values():
            if r.iommu_group is not None:
                members.setdefault(r.iommu_group, []).append(r.bdf)
        groups = {n: IommuGroup(n, None, tuple(sorted(b))) for n, b in members.items()}
    dmar_present, dmar = read_dmar_table(root, warnings)
    units = read_units(root, dmar, warnings, read_registers)
    iomem_text = root.read_optional("/proc/iomem")
    cmdline = root.read_optional("/proc/cmdline")
    return build_system(
        source="live" if root.is_live else root.origin,
        raw_devices=raw,
        groups=groups,
        units=units,
        dmar=dmar,
        cmdline=cmdline,
        # /proc/vmcore exists only in a capture kernel; elfcorehdr= is what kexec passes it.
        in_kdump_kernel=root.exists("/proc/vmcore") or "elfcorehdr=" in (cmdline or ""),
        kexec_crash_loaded=_flag(root.read_optional("/sys/kernel/kexec_crash_loaded")),
        kexec_crash_size=_int(root.read_optional("/sys/kernel/kexec_crash_size")),
        iomem=parse_iomem(iomem_text) if iomem_text else (),
        kdump_config=read_kdump_config(root),
        warnings=warnings,
        dmar_present=dmar_present,
        ivrs_present=root.exists("/sys/firmware/acpi/tables/IVRS"),
        lockdown=lockdown_mode(root),
    )


def read_system_from_lspci(path: Union[str, os.PathLike[str]]) -> System:
    """A model with only PCI devices, from an ``lspci -x/-xxx/-xxxx`` text dump (a user's
    bug report); no groups, units or kdump state are known."""
    text = read_file_capped(os.fspath(path), MAX_LSPCI_BYTES).decode("utf-8", "replace")
    try:
        raw, warnings = pci_src.read_lspci_dump(text, str(path))
    except DecodeError as hex_err:
        try:  # no hex bytes: lspci -nnvv / -nnk text (a sos report's lspci output)
            raw, warnings = pci_src.read_lspci_text(text, str(path))
        except DecodeError as text_err:
            raise DecodeError(str(path), None, f"{hex_err.reason}; as lspci text: {text_err.reason}") from None
    return build_system(
        source=str(path),
        raw_devices=raw,
        groups={},
        units=(),
        dmar=None,
        cmdline=None,
        in_kdump_kernel=False,
        kexec_crash_loaded=None,
        kexec_crash_size=None,
        iomem=(),
        warnings=warnings + [f"{path}: an lspci dump holds PCI devices only (no DMAR, groups or registers)"],
        dmar_present=False,
        kind="lspci",
    )
