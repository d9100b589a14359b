"""Checks of a decoded DMAR table that a firmware engineer cares about.

Covers the checks of fwts's ``dmar`` test (src/acpi/dmar/dmar.c: InvalidDMAR,
InvalidDRHDRegAddr, MultipleDRHDSFlag, InvalidRMRRRangeAddr, InvalidDevScope,
DevScopeDevNotFound, DevScopeTypeNoMatch), what Linux's drivers/iommu/intel/dmar.c and
irq_remapping.c complain about (register base 0, RHSA naming no unit, interrupt
remapping without an IOAPIC under a unit), and spec rules of the VT-d architecture
specification chapter 8 (INCLUDE_PCI_ALL unit listed last in its segment, scope types
allowed per structure, ANDD numbers). Each finding is an entry of the catalogue (:mod:`kdumptool.analysis.catalogue`): a stable
``id`` and a severity: ``error`` (the OS will misbehave or the table breaks the spec),
``warning`` (likely a problem, or worth a look), ``info`` (a fact that matters to
kdump/IOMMU behaviour); ``offset`` is the byte in the table it is about.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

from kdumptool.analysis.catalogue import make
from kdumptool.formats.dmar import (
    SCOPED,
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
from kdumptool.model.finding import Finding

PAGE_MASK = 0xFFF


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
        add(make("table-truncated", offset=dmar.data_length, length=dmar.length, present=dmar.data_length))
    if not dmar.checksum_valid and dmar.data_length >= dmar.length:
        add(make("bad-checksum", offset=9, checksum=f"0x{dmar.checksum:02x}"))
    if dmar.length <= 48:
        add(make("no-structures", offset=48))
    if not 32 <= dmar.host_address_width <= 64:
        add(make("haw-implausible", offset=0x24, haw=dmar.host_address_width))
    if dmar.flags & ~0x07:
        add(make("flags-reserved", offset=0x25, flags=f"0x{dmar.flags:02x}"))
    if any(dmar.reserved):
        add(make("header-reserved-nonzero", offset=0x26, raw=dmar.reserved.hex()))
    if not dmar.intr_remap:
        add(make("intr-remap-not-supported", offset=0x25))
    if dmar.x2apic_opt_out:
        add(make("x2apic-opt-out", offset=0x25))
    if dmar.dma_ctrl_platform_opt_in:
        add(make("dma-ctrl-platform-opt-in", offset=0x25))

    # -- parse problems -------------------------------------------------------------------
    for s in dmar.structures:
        if isinstance(s, Malformed):
            add(make("malformed-structure", offset=s.offset, reason=s.reason))
        for w in s.warnings:
            # A structure with device scopes warns only about their framing (_walk_scopes).
            add(make("malformed-device-scope" if isinstance(s, SCOPED) else "malformed-field", offset=s.offset,
                     reason=w))
        if isinstance(s, UnknownStructure):
            add(make("unknown-structure", offset=s.offset, type_id=s.type_id, length=s.length))

    drhds = [s for s in dmar.structures if isinstance(s, Drhd)]
    rmrrs = [s for s in dmar.structures if isinstance(s, Rmrr)]
    andd_numbers = {s.acpi_device_number: s for s in dmar.structures if isinstance(s, Andd)}

    if not drhds and dmar.length > 48:
        add(make("no-drhd", offset=48))

    # -- DRHD ----------------------------------------------------------------------------
    bases: Dict[int, Drhd] = {}
    include_all_by_seg: Dict[int, List[Drhd]] = {}
    for d in drhds:
        base = d.register_base_address
        if base == 0:
            add(make("drhd-base-zero", offset=d.offset))
        elif base & PAGE_MASK:
            add(make("drhd-base-unaligned", offset=d.offset, base=f"0x{base:x}"))
        if base in bases:
            add(make("drhd-duplicate-base", offset=d.offset, base=f"0x{base:x}", other=f"0x{bases[base].offset:x}"))
        else:
            bases[base] = d
        if d.include_pci_all:
            include_all_by_seg.setdefault(d.segment, []).append(d)
            for sc in d.device_scopes:
                if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE"):
                    add(make("include-all-with-pci-scope", offset=sc.offset, scope_type=sc.type,
                             scope=scope_bdf_text(d.segment, sc)))
        elif not d.device_scopes:
            add(make("drhd-no-devices", offset=d.offset, base=f"0x{base:x}"))
    spans = sorted(((d.register_base_address, d.register_base_address + d.register_set_bytes, d)
                    for d in drhds if d.register_base_address), key=lambda t: t[:2])
    for (a0, a1, da), (b0, _b1, db) in zip(spans, spans[1:]):
        if b0 < a1 and b0 != a0:  # equal bases are drhd-duplicate-base already
            add(make("drhd-registers-overlap", offset=db.offset, base=f"0x{b0:x}", kib=da.register_set_bytes >> 10,
                     other=f"0x{a0:x}"))
    for seg, units in include_all_by_seg.items():
        if len(units) > 1:
            add(make("multiple-include-all", offset=units[1].offset, segment=f"{seg:04x}", n=len(units)))
        last_in_seg = [d for d in drhds if d.segment == seg][-1]
        if units[0] is not last_in_seg:
            add(make("include-all-not-last", offset=units[0].offset, segment=f"{seg:04x}"))
    if dmar.intr_remap and drhds:
        if not any(sc.type == "IOAPIC" for d in drhds for sc in d.device_scopes):
            add(make("intr-remap-no-ioapic", offset=0x25))

    # -- RMRR ----------------------------------------------------------------------------
    for r in rmrrs:
        rng = f"0x{r.base_address:x}-0x{r.end_address:x}"
        if r.end_address < r.base_address:
            add(make("rmrr-end-before-base", offset=r.offset, range=rng))
        else:
            if r.base_address & PAGE_MASK:
                add(make("rmrr-base-unaligned", offset=r.offset, range=rng))
            if (r.end_address + 1) & PAGE_MASK:
                add(make("rmrr-end-unaligned", offset=r.offset, range=rng))
        if reserved is not None and r.end_address >= r.base_address \
                and not range_is_reserved(r.base_address, r.end_address, reserved):
            add(make("rmrr-not-reserved", offset=r.offset, range=rng))
        for c0, c1 in crashkernel or ():
            if r.end_address >= r.base_address and r.base_address <= c1 and c0 <= r.end_address:
                add(make("rmrr-in-crashkernel", offset=r.offset, range=rng, crash=f"0x{c0:x}-0x{c1:x}"))
        if 12 <= dmar.host_address_width <= 64 and r.end_address >> dmar.host_address_width:
            add(make("rmrr-beyond-haw", offset=r.offset, range=rng, haw=dmar.host_address_width))
        if not r.device_scopes:
            add(make("rmrr-no-devices", offset=r.offset, range=rng))
    for i, a in enumerate(rmrrs):
        for b in rmrrs[i + 1:]:
            if a.segment == b.segment and a.base_address <= b.end_address \
                    and b.base_address <= a.end_address \
                    and a.end_address >= a.base_address and b.end_address >= b.base_address:
                add(make("rmrr-overlap", offset=b.offset, range=f"0x{b.base_address:x}-0x{b.end_address:x}",
                         other=f"0x{a.offset:x}", other_range=f"0x{a.base_address:x}-0x{a.end_address:x}"))

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
                add(make("scope-unknown-type", offset=sc.offset, structure=s.type, type_id=sc.type_id))
                continue
            if s.type in allowed and sc.type not in allowed[s.type]:
                add(make("scope-type-not-allowed", offset=sc.offset, structure=s.type, scope_type=sc.type,
                         scope=scope_bdf_text(seg, sc), expected=" or ".join(allowed[s.type])))
            if not sc.path:
                add(make("scope-empty-path", offset=sc.offset, structure=s.type, scope_type=sc.type))
            if sc.type == "ACPI_NAMESPACE" and sc.enumeration_id not in andd_numbers:
                add(make("namespace-scope-no-andd", offset=sc.offset, number=sc.enumeration_id))

    # -- a device under two units --------------------------------------------------------
    owner: Dict[Tuple[int, str, int, Tuple[Tuple[int, int], ...]], Drhd] = {}
    for d in drhds:
        for sc in d.device_scopes:
            key = (d.segment, sc.type, sc.start_bus if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE")
                   else sc.enumeration_id, sc.path if sc.type in ("PCI_ENDPOINT", "PCI_BRIDGE")
                   else ())
            if key in owner and owner[key] is not d:
                add(make("scope-in-two-units", offset=sc.offset, scope_type=sc.type,
                         scope=scope_bdf_text(d.segment, sc), a=f"0x{owner[key].register_base_address:x}",
                         b=f"0x{d.register_base_address:x}"))
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
                    add(make("scope-not-under-any-drhd", offset=sc.offset, structure=s.type,
                             scope=scope_bdf_text(seg, sc), bus=f"{sc.start_bus:02x}", segment=f"{seg:04x}"))

    # -- RHSA, ATSR, ANDD, SATC cross references -----------------------------------------
    drhd_segments = {d.segment for d in drhds}
    for s in dmar.structures:
        if isinstance(s, Rhsa) and s.register_base_address not in bases:
            add(make("rhsa-no-drhd", offset=s.offset, base=f"0x{s.register_base_address:x}"))
        if isinstance(s, (Atsr, Satc, Sidp)) and drhds and s.segment not in drhd_segments:
            add(make("segment-no-drhd", offset=s.offset, structure=s.type, segment=f"{s.segment:04x}"))
        if isinstance(s, Andd):
            referenced = any(sc.type == "ACPI_NAMESPACE" and sc.enumeration_id ==
                             s.acpi_device_number for d in drhds for sc in d.device_scopes)
            if not referenced:
                add(make("andd-unreferenced", offset=s.offset, number=s.acpi_device_number, name=s.acpi_object_name))

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
                    add(make("scope-device-absent", offset=sc.offset, structure=s.type, scope_type=sc.type,
                             scope=scope_bdf_text(seg, sc), why=why))
                    continue
                is_bridge = pci.get(bdf) is not None
                if sc.type == "PCI_ENDPOINT" and is_bridge:
                    add(make("scope-type-mismatch", offset=sc.offset, structure=s.type, bdf=bdf,
                             scope_type="PCI_ENDPOINT", is_what="is a bridge"))
                elif sc.type == "PCI_BRIDGE" and not is_bridge:
                    add(make("scope-type-mismatch", offset=sc.offset, structure=s.type, bdf=bdf,
                             scope_type="PCI_BRIDGE", is_what="is not a bridge"))

        f.extend(_uncovered_devices(drhds, set(include_all_by_seg), pci))

    f.sort(key=lambda x: (-x.rank, x.offset or 0))
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
            out.append(make("device-not-covered", bdf=bdf, segment=f"{seg:04x}", devices=(bdf,)))
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
