"""Checks of a decoded DMAR table that a firmware engineer cares about.

Covers the checks of fwts's ``dmar`` test (src/acpi/dmar/dmar.c: InvalidDMAR,
InvalidDRHDRegAddr, MultipleDRHDSFlag, InvalidRMRRRangeAddr, InvalidDevScope,
DevScopeDevNotFound, DevScopeTypeNoMatch), what Linux's drivers/iommu/intel/dmar.c and
irq_remapping.c complain about (register base 0, RHSA naming no unit, interrupt
remapping without an IOAPIC under a unit), and spec rules of the VT-d architecture
specification chapter 8 (INCLUDE_PCI_ALL unit listed last in its segment, scope types
allowed per structure, ANDD numbers). Each finding has a stable ``id`` and a severity:
``error`` (the OS will misbehave or the table breaks the spec), ``warning`` (likely a
problem, or worth a look), ``info`` (a fact that matters to kdump/IOMMU behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from kdumptool.formats.dmar import (
    Andd,
    Atsr,
    DeviceScope,
    Dmar,
    Drhd,
    Malformed,
    Rhsa,
    Rmrr,
    Satc,
    Sidp,
    UnknownStructure,
)

PAGE_MASK = 0xFFF

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # error | warning | info
    message: str
    offset: Optional[int] = None  # byte offset in the table of what the finding is about

    def to_json(self) -> Dict[str, object]:
        return {"id": self.id, "severity": self.severity, "offset": self.offset,
                "message": self.message}


def scope_bdf_text(segment: int, scope: DeviceScope) -> str:
    """``SSSS:BB:DD.F`` for one hop, ``SSSS:BB:DD.F/DD.F`` (lspci -P style) for more."""
    if not scope.path:
        return f"{segment:04x}:{scope.start_bus:02x}:(no path)"
    first = f"{segment:04x}:{scope.start_bus:02x}:{scope.path[0][0]:02x}.{scope.path[0][1]:x}"
    rest = "".join(f"/{d:02x}.{f:x}" for d, f in scope.path[1:])
    return first + rest


def walk_scope_path(
    segment: int, scope: DeviceScope, pci: Mapping[str, Optional[int]]
) -> Tuple[Optional[str], Optional[str]]:
    """Follow a scope's path through bridges' secondary buses.

    Returns (bdf of the device reached, None) or (None, why it could not be reached).
    """
    bus = scope.start_bus
    bdf = None
    for i, (dev, fn) in enumerate(scope.path):
        bdf = f"{segment:04x}:{bus:02x}:{dev:02x}.{fn:x}"
        if bdf not in pci:
            return None, f"{bdf} is not in the PCI tree"
        if i + 1 < len(scope.path):
            sec = pci[bdf]
            if sec is None:
                return None, f"{bdf} is on the path but is not a PCI bridge"
            bus = sec
    return bdf, None


def range_is_reserved(base: int, end: int, reserved: Sequence[Tuple[int, int]]) -> bool:
    """Whether [base, end] (inclusive) lies wholly inside the union of the ``reserved``
    ranges (inclusive), contiguous pieces allowed: the rule of Linux's
    ``arch_rmrr_sanity_check()`` (``e820__mapped_all(start, end, E820_TYPE_RESERVED)``)."""
    if end < base:
        return False
    start = base
    for a, b in sorted(reserved):
        if a > start:
            return False
        if b >= start:
            start = b + 1
            if start > end:
                return True
    return False


def check_dmar(
    dmar: Dmar,
    pci: Optional[Mapping[str, Optional[int]]] = None,
    reserved: Optional[Sequence[Tuple[int, int]]] = None,
    crashkernel: Optional[Sequence[Tuple[int, int]]] = None,
) -> List[Finding]:
    """All findings for ``dmar``; ``pci`` maps known BDFs to bridge secondary buses
    (None for non-bridges), as :func:`kdumptool.sources.acpi.read_pci_bridges` gives;
    ``reserved`` lists the firmware-reserved memory ranges (inclusive), as
    :func:`kdumptool.sources.acpi.read_reserved_ranges` gives; ``crashkernel`` the
    ``Crash kernel`` ranges of /proc/iomem (the memory the kdump kernel runs in)."""
    f: List[Finding] = []
    add = f.append

    # -- table framing and header --------------------------------------------------------
    if dmar.data_length < dmar.length:
        add(Finding("TABLE_TRUNCATED", ERROR,
                    f"table truncated: header length {dmar.length}, only {dmar.data_length} "
                    "bytes present", dmar.data_length))
    if not dmar.checksum_valid and dmar.data_length >= dmar.length:
        add(Finding("BAD_CHECKSUM", ERROR,
                    f"checksum 0x{dmar.checksum:02x} does not make the table sum to 0 "
                    "(ACPICA warns 'Incorrect checksum'; the table is decoded anyway)", 9))
    if dmar.length <= 48:
        add(Finding("NO_STRUCTURES", ERROR,
                    "table has no remapping structures (fwts InvalidDMAR)", 48))
    if not 32 <= dmar.host_address_width <= 64:
        add(Finding("HAW_IMPLAUSIBLE", WARNING,
                    f"host address width {dmar.host_address_width} bits is implausible", 0x24))
    if dmar.flags & ~0x07:
        add(Finding("FLAGS_RESERVED", WARNING,
                    f"reserved flag bits set: 0x{dmar.flags:02x}", 0x25))
    if any(dmar.reserved):
        add(Finding("HEADER_RESERVED_NONZERO", INFO,
                    f"reserved header bytes are not zero: {dmar.reserved.hex()}", 0x26))
    if not dmar.intr_remap:
        add(Finding("INTR_REMAP_NOT_SUPPORTED", WARNING,
                    "INTR_REMAP flag clear: the platform does not support interrupt "
                    "remapping (device MSIs are not remapped or isolated; no x2APIC "
                    "for APIC IDs above 255)", 0x25))
    if dmar.x2apic_opt_out:
        add(Finding("X2APIC_OPT_OUT", WARNING,
                    "X2APIC_OPT_OUT set: firmware asks the OS to stay in xAPIC mode "
                    "(Linux honours it unless intremap=no_x2apic_optout)", 0x25))
    if dmar.dma_ctrl_platform_opt_in:
        add(Finding("DMA_CTRL_PLATFORM_OPT_IN", INFO,
                    "DMA_CTRL_PLATFORM_OPT_IN set: firmware protected DMA until hand-off; "
                    "Linux turns the IOMMU on when untrusted (external) ports exist, "
                    "in the kdump kernel too", 0x25))

    # -- parse problems -------------------------------------------------------------------
    for s in dmar.structures:
        if isinstance(s, Malformed):
            add(Finding("MALFORMED_STRUCTURE", ERROR, s.reason, s.offset))
        for w in s.warnings:
            add(Finding("MALFORMED_DEVICE_SCOPE" if "device scope" in w else "MALFORMED_FIELD",
                        ERROR, w, s.offset))
        if isinstance(s, UnknownStructure):
            add(Finding("UNKNOWN_STRUCTURE", INFO,
                        f"structure type {s.type_id} ({s.length} bytes) is not known to this "
                        "decoder; kept raw", s.offset))

    drhds = [s for s in dmar.structures if isinstance(s, Drhd)]
    rmrrs = [s for s in dmar.structures if isinstance(s, Rmrr)]
    andd_numbers = {s.acpi_device_number: s for s in dmar.structures if isinstance(s, Andd)}

    if not drhds and dmar.length > 48:
        add(Finding("NO_DRHD", ERROR, "no DRHD: the table describes no remapping unit", 48))

    # -- DRHD ----------------------------------------------------------------------------
    bases: Dict[int, Drhd] = {}
    include_all_by_seg: Dict[int, List[Drhd]] = {}
    for d in drhds:
        base = d.register_base_address
        if base == 0:
            add(Finding("DRHD_BASE_ZERO", ERROR,
                        "DRHD register base address is 0 (Linux: 'Your BIOS is broken; DMAR "
                        "reported at address 0!')", d.offset))
        elif base & PAGE_MASK:
            add(Finding("DRHD_BASE_UNALIGNED", ERROR,
                        f"DRHD register base 0x{base:x} is not 4 KiB aligned "
                        "(fwts InvalidDRHDRegAddr)", d.offset))
        if base in bases:
            add(Finding("DRHD_DUPLICATE_BASE", ERROR,
                        f"DRHD register base 0x{base:x} also used by the DRHD at "
                        f"0x{bases[base].offset:x}", d.offset))
        else:
            bases[base] = d
        if d.include_pci_all:
            include_all_by_seg.setdefault(d.segment, []).append(d)
            for sc in d.device_scopes:
                if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE"):
                    add(Finding("INCLUDE_ALL_WITH_PCI_SCOPE", WARNING,
                                f"INCLUDE_PCI_ALL DRHD lists {sc.type} "
                                f"{scope_bdf_text(d.segment, sc)}: such a unit's scope should "
                                "only name IOAPIC, HPET and ACPI namespace devices", sc.offset))
        elif not d.device_scopes:
            add(Finding("DRHD_NO_DEVICES", INFO,
                        f"DRHD 0x{base:x} has no device scope and no INCLUDE_PCI_ALL: it "
                        "covers no device (servers list such units for unpopulated "
                        "sockets or hot-plug)", d.offset))
    spans = sorted(((d.register_base_address, d.register_base_address + d.register_set_bytes, d)
                    for d in drhds if d.register_base_address), key=lambda t: t[:2])
    for (a0, a1, da), (b0, _b1, db) in zip(spans, spans[1:]):
        if b0 < a1 and b0 != a0:  # equal bases are DRHD_DUPLICATE_BASE already
            add(Finding("DRHD_REGISTERS_OVERLAP", ERROR,
                        f"DRHD register set 0x{b0:x} overlaps the {da.register_set_bytes >> 10} "
                        f"KiB register set of the DRHD at 0x{a0:x}", db.offset))
    for seg, units in include_all_by_seg.items():
        if len(units) > 1:
            add(Finding("MULTIPLE_INCLUDE_ALL", ERROR,
                        f"segment {seg:04x} has {len(units)} DRHDs with INCLUDE_PCI_ALL "
                        "(fwts MultipleDRHDSFlag)", units[1].offset))
        last_in_seg = [d for d in drhds if d.segment == seg][-1]
        if units[0] is not last_in_seg:
            add(Finding("INCLUDE_ALL_NOT_LAST", WARNING,
                        f"the INCLUDE_PCI_ALL DRHD of segment {seg:04x} is not the last DRHD "
                        "of that segment (VT-d spec 8.3)", units[0].offset))
    if dmar.intr_remap and drhds:
        if not any(sc.type == "IOAPIC" for d in drhds for sc in d.device_scopes):
            add(Finding("INTR_REMAP_NO_IOAPIC", WARNING,
                        "INTR_REMAP set but no DRHD lists an IOAPIC: Linux will not enable "
                        "interrupt remapping", 0x25))

    # -- RMRR ----------------------------------------------------------------------------
    for r in rmrrs:
        rng = f"0x{r.base_address:x}-0x{r.end_address:x}"
        if r.end_address < r.base_address:
            add(Finding("RMRR_END_BEFORE_BASE", ERROR,
                        f"RMRR {rng}: end below base (fwts InvalidRMRRRangeAddr)", r.offset))
        else:
            if r.base_address & PAGE_MASK:
                add(Finding("RMRR_BASE_UNALIGNED", ERROR,
                            f"RMRR {rng}: base not 4 KiB aligned (fwts InvalidRMRRRangeAddr)",
                            r.offset))
            if (r.end_address + 1) & PAGE_MASK:
                add(Finding("RMRR_END_UNALIGNED", ERROR,
                            f"RMRR {rng}: end + 1 not 4 KiB aligned (fwts "
                            "InvalidRMRRRangeAddr)", r.offset))
        if reserved is not None and r.end_address >= r.base_address \
                and not range_is_reserved(r.base_address, r.end_address, reserved):
            add(Finding("RMRR_NOT_RESERVED", WARNING,
                        f"RMRR {rng} is not inside memory the firmware reports as reserved "
                        "(Linux: '[Firmware Bug]: No firmware reserved region can cover this "
                        "RMRR'): the OS may hand it out while a device still DMAs to it",
                        r.offset))
        for c0, c1 in crashkernel or ():
            if r.end_address >= r.base_address and r.base_address <= c1 and c0 <= r.end_address:
                add(Finding("RMRR_IN_CRASHKERNEL", ERROR,
                            f"RMRR {rng} overlaps the crash kernel reservation "
                            f"0x{c0:x}-0x{c1:x}: a device that DMAs to its RMRR writes into "
                            "the kdump kernel's memory", r.offset))
        if 12 <= dmar.host_address_width <= 64 and r.end_address >> dmar.host_address_width:
            add(Finding("RMRR_BEYOND_HAW", WARNING,
                        f"RMRR {rng} ends above the {dmar.host_address_width}-bit host address "
                        "width: remapping hardware cannot address all of it", r.offset))
        if not r.device_scopes:
            add(Finding("RMRR_NO_DEVICES", WARNING,
                        f"RMRR {rng} names no device", r.offset))
    for i, a in enumerate(rmrrs):
        for b in rmrrs[i + 1:]:
            if a.segment == b.segment and a.base_address <= b.end_address \
                    and b.base_address <= a.end_address \
                    and a.end_address >= a.base_address and b.end_address >= b.base_address:
                add(Finding("RMRR_OVERLAP", WARNING,
                            f"RMRR 0x{b.base_address:x}-0x{b.end_address:x} overlaps the RMRR "
                            f"at 0x{a.offset:x} (0x{a.base_address:x}-0x{a.end_address:x})",
                            b.offset))

    # -- device scope types per structure ------------------------------------------------
    allowed = {
        "RMRR": ("PCI_ENDPOINT", "PCI_BRIDGE"),
        "ATSR": ("PCI_BRIDGE",),
        "SATC": ("PCI_ENDPOINT",),
        "SIDP": ("PCI_ENDPOINT", "PCI_BRIDGE"),
    }
    for s in dmar.structures:
        seg = getattr(s, "segment", 0)
        for sc in s.device_scopes:
            if sc.type == "UNKNOWN":
                add(Finding("SCOPE_UNKNOWN_TYPE", WARNING,
                            f"{s.type}: device scope type {sc.type_id} is not defined", sc.offset))
                continue
            if s.type in allowed and sc.type not in allowed[s.type]:
                add(Finding("SCOPE_TYPE_NOT_ALLOWED", WARNING,
                            f"{s.type} lists a {sc.type} device scope "
                            f"({scope_bdf_text(seg, sc)}); expected "
                            f"{' or '.join(allowed[s.type])}", sc.offset))
            if not sc.path:
                add(Finding("SCOPE_EMPTY_PATH", ERROR,
                            f"{s.type}: {sc.type} device scope has no path "
                            "(fwts InvalidDevScope)", sc.offset))
            if sc.type == "ACPI_NAMESPACE" and sc.enumeration_id not in andd_numbers:
                add(Finding("NAMESPACE_SCOPE_NO_ANDD", WARNING,
                            f"ACPI namespace device scope names ANDD device number "
                            f"{sc.enumeration_id}, which no ANDD declares", sc.offset))

    # -- a device under two units --------------------------------------------------------
    owner: Dict[Tuple[int, str, int, Tuple[Tuple[int, int], ...]], Drhd] = {}
    for d in drhds:
        for sc in d.device_scopes:
            key = (d.segment, sc.type, sc.start_bus if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE")
                   else sc.enumeration_id, sc.path if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE")
                   else ())
            if key in owner and owner[key] is not d:
                add(Finding("SCOPE_IN_TWO_UNITS", WARNING,
                            f"{sc.type} {scope_bdf_text(d.segment, sc)} is listed under DRHD "
                            f"0x{owner[key].register_base_address:x} and DRHD "
                            f"0x{d.register_base_address:x}", sc.offset))
            else:
                owner[key] = d

    # -- devices named by RMRR/ATSR/SATC/SIDP that no unit covers ------------------------
    # Without an INCLUDE_PCI_ALL unit, a device is translated only if a DRHD lists it or a
    # bridge above it. A device on a root bus (a start bus of some DRHD scope, or bus 0)
    # has no bridge above it, so it must be listed itself.
    include_all_segs = set(include_all_by_seg)
    for seg in {d.segment for d in drhds} - include_all_segs:
        listed = {(sc.start_bus, sc.path[0]) for d in drhds if d.segment == seg
                  for sc in d.device_scopes
                  if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE") and sc.path}
        root_buses = {0} | {bus for bus, _ in listed}
        for s in dmar.structures:
            if s.type not in ("RMRR", "ATSR", "SATC", "SIDP") or getattr(s, "segment", -1) != seg:
                continue
            for sc in s.device_scopes:
                if sc.type not in ("PCI_ENDPOINT", "PCI_BRIDGE") or not sc.path:
                    continue
                if sc.start_bus in root_buses and (sc.start_bus, sc.path[0]) not in listed:
                    add(Finding("SCOPE_NOT_UNDER_ANY_DRHD", WARNING,
                                f"{s.type} names {scope_bdf_text(seg, sc)} on root bus "
                                f"{sc.start_bus:02x}, but no DRHD lists it and segment "
                                f"{seg:04x} has no INCLUDE_PCI_ALL unit: no IOMMU covers it",
                                sc.offset))

    # -- RHSA, ATSR, ANDD, SATC cross references -----------------------------------------
    drhd_segments = {d.segment for d in drhds}
    for s in dmar.structures:
        if isinstance(s, Rhsa) and s.register_base_address not in bases:
            add(Finding("RHSA_NO_DRHD", ERROR,
                        f"RHSA names register base 0x{s.register_base_address:x}, which no DRHD "
                        "has (Linux: 'RHSA refers to non-existent DMAR unit')", s.offset))
        if isinstance(s, (Atsr, Satc, Sidp)) and drhds and s.segment not in drhd_segments:
            add(Finding(f"{s.type}_SEGMENT_NO_DRHD", WARNING,
                        f"{s.type} for segment {s.segment:04x}, which has no DRHD", s.offset))
        if isinstance(s, Andd):
            referenced = any(sc.type == "ACPI_NAMESPACE" and sc.enumeration_id ==
                             s.acpi_device_number for d in drhds for sc in d.device_scopes)
            if not referenced:
                add(Finding("ANDD_UNREFERENCED", WARNING,
                            f"ANDD device number {s.acpi_device_number} "
                            f"({s.acpi_object_name}) is in no DRHD's scope", s.offset))

    # -- scopes against the PCI tree (fwts DevScopeDevNotFound / DevScopeTypeNoMatch) ----
    if pci is not None:
        for s in dmar.structures:
            if isinstance(s, (Malformed, UnknownStructure)):
                continue
            seg = getattr(s, "segment", 0)
            for sc in s.device_scopes:
                if sc.type not in ("PCI_ENDPOINT", "PCI_BRIDGE") or not sc.path:
                    continue
                bdf, why = walk_scope_path(seg, sc, pci)
                if bdf is None:
                    add(Finding("SCOPE_DEVICE_ABSENT", WARNING,
                                f"{s.type} {sc.type} {scope_bdf_text(seg, sc)}: {why} "
                                "(fwts DevScopeDevNotFound)", sc.offset))
                    continue
                is_bridge = pci.get(bdf) is not None
                if sc.type == "PCI_ENDPOINT" and is_bridge:
                    add(Finding("SCOPE_TYPE_MISMATCH", WARNING,
                                f"{s.type} lists {bdf} as PCI_ENDPOINT but it is a bridge "
                                "(fwts DevScopeTypeNoMatch)", sc.offset))
                elif sc.type == "PCI_BRIDGE" and not is_bridge:
                    add(Finding("SCOPE_TYPE_MISMATCH", WARNING,
                                f"{s.type} lists {bdf} as PCI_BRIDGE but it is not a bridge "
                                "(fwts DevScopeTypeNoMatch)", sc.offset))

        f.extend(_uncovered_devices(drhds, set(include_all_by_seg), pci))

    f.sort(key=lambda x: (SEVERITY_ORDER.get(x.severity, 9), x.offset or 0))
    return f


def _uncovered_devices(
    drhds: Sequence[Drhd], include_all_segs: Set[int], pci: Mapping[str, Optional[int]]
) -> List[Finding]:
    """PCI devices that no remapping unit covers: not in an INCLUDE_PCI_ALL segment, not
    listed themselves, and not below a bridge a DRHD lists (a PCI_BRIDGE scope covers
    the whole hierarchy under it). Their DMA is not translated at all, in the kdump
    kernel as everywhere else."""
    listed: Dict[str, Drhd] = {}  # bdf -> unit, for PCI scopes that resolve
    bridge_listed: Dict[str, Drhd] = {}
    for d in drhds:
        for sc in d.device_scopes:
            if sc.type not in ("PCI_ENDPOINT", "PCI_BRIDGE") or not sc.path:
                continue
            bdf, _ = walk_scope_path(d.segment, sc, pci)
            if bdf is None:
                continue
            listed[bdf] = d
            if sc.type == "PCI_BRIDGE":
                bridge_listed[bdf] = d
    parent: Dict[Tuple[int, int], str] = {}  # (segment, secondary bus) -> bridge bdf
    for bdf, sec in pci.items():
        loc = _seg_bus(bdf)
        if sec is not None and loc is not None:
            parent[(loc[0], sec)] = bdf
    out: List[Finding] = []
    for bdf in sorted(pci):
        loc = _seg_bus(bdf)
        # Domains above 0xffff are VMD's: its devices DMA with the VMD endpoint's ID.
        if loc is None or loc[0] > 0xFFFF:
            continue
        seg = loc[0]
        if seg in include_all_segs or bdf in listed:
            continue
        cur, seen = bdf, set()
        covered = False
        while cur not in seen:
            seen.add(cur)
            here = _seg_bus(cur)
            up = parent.get(here) if here is not None else None
            if up is None:
                break
            if up in bridge_listed:
                covered = True
                break
            cur = up
        if not covered:
            out.append(Finding("DEVICE_NOT_COVERED", WARNING,
                               f"{bdf} is behind no remapping unit (not listed, no listed "
                               f"bridge above it, no INCLUDE_PCI_ALL unit for segment "
                               f"{seg:04x}): its DMA is not translated, in the kdump kernel "
                               "too"))
    return out


def _seg_bus(bdf: str) -> Optional[Tuple[int, int]]:
    """(segment, bus) of ``SSSS:BB:DD.F`` (the segment may have more digits: VMD)."""
    parts = bdf.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None
