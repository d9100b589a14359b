"""Checks of a decoded IVRS table: what Linux's AMD-Vi driver complains about.

Every check names the kernel's own reaction (``drivers/iommu/amd/init.c``, Linux 6.12)
so that a finding can be matched with a line of ``dmesg``:

- ``check_ivrs_checksum()``: "[Firmware Bug]: AMD-Vi: IVRS invalid checksum"; the
  driver gives up, no IOMMU is used.
- ``find_last_devid_from_ivhd()``: an IVHD of the type in use without a device entry
  that names a device (select, range end, alias, extended select, all) makes the
  driver's set-up fail; ``WARN_ON(p != end)`` when the entries do not end at the
  IVHD's end.
- ``init_iommu_from_acpi()``: a special entry of a variety other than IOAPIC/HPET
  fails the set-up (``add_special_device`` returns -EINVAL); an ACPI HID entry in a
  10h/11h block is "Invalid IVHD device type 0xf0"; "Invalid HID."; "Invalid UID length.".
- ``check_ioapic_information()``: "No southbridge IOAPIC found" (no IOAPIC at
  requester ID 00:14.0) and "IOAPIC[N] not in IVRS table" -> "Disabling interrupt
  remapping".
- ``get_global_efr()``: "Found inconsistent EFR/EFR2".
- ``init_unity_map_range()``: IVMD ranges become unity (1:1) mappings; exclusion
  ranges are mapped read/write.

Findings are entries of the catalogue (:mod:`kdumptool.analysis.catalogue`, one
:class:`~kdumptool.model.finding.Finding` for every check; ``offset``: the byte in the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

from kdumptool.analysis.catalogue import make
from kdumptool.formats.ivrs import (
    IVHD_DEV_ACPI_HID,
    IVHD_DEV_ALIAS,
    IVHD_DEV_ALIAS_RANGE,
    IVHD_DEV_ALL,
    IVHD_DEV_EXT_SELECT,
    IVHD_DEV_EXT_SELECT_RANGE,
    IVHD_DEV_RANGE_END,
    IVHD_DEV_SELECT,
    IVHD_DEV_SELECT_RANGE_START,
    IVHD_DEV_SPECIAL,
    IVHD_SPECIAL_IOAPIC,
    IVMD_FLAG_EXCL_RANGE,
    IVMD_FLAG_IR,
    IVMD_FLAG_IW,
    IVMD_FLAG_UNITY_MAP,
    UID_NOT_PRESENT,
    Ivhd,
    Ivmd,
    Ivrs,
    Malformed,
    UnknownBlock,
    devid_text,
)
from kdumptool.model.finding import ERROR, WARNING, Finding

#: Linux IOAPIC_SB_DEVID: "SB IOAPIC is always on this device in AMD systems" (00:14.0).
IOAPIC_SB_DEVID = (0x00 << 8) | (0x14 << 3) | 0


@dataclass(frozen=True)
class DeviceRange:
    """Requester IDs ``first..last`` that an IVHD hands to its IOMMU, as the kernel's
    ``init_iommu_from_acpi`` reads the entries; ``alias`` is the ID they use instead."""

    first: int
    last: int
    data_setting: int
    alias: Optional[int] = None
    offset: int = 0  # the entry that ends the range


def device_ranges(ivhd: Ivhd, last_bdf: int = 0xFFFF) -> List[DeviceRange]:
    """The devices an IVHD covers (special and HID entries not included)."""
    out: List[DeviceRange] = []
    start: Optional[Tuple[int, int, Optional[int]]] = None
    for e in ivhd.device_entries:
        t = e.type_id
        if t == IVHD_DEV_ALL:
            out.append(DeviceRange(0, last_bdf, e.data_setting, None, e.offset))
        elif t in (IVHD_DEV_SELECT, IVHD_DEV_EXT_SELECT):
            out.append(DeviceRange(e.device_id, e.device_id, e.data_setting, None, e.offset))
        elif t == IVHD_DEV_ALIAS:
            out.append(DeviceRange(e.device_id, e.device_id, e.data_setting,
                                   e.source_device_id, e.offset))
        elif t in (IVHD_DEV_SELECT_RANGE_START, IVHD_DEV_EXT_SELECT_RANGE):
            start = (e.device_id, e.data_setting, None)
        elif t == IVHD_DEV_ALIAS_RANGE:
            start = (e.device_id, e.data_setting, e.source_device_id)
        elif t == IVHD_DEV_RANGE_END and start is not None:
            out.append(DeviceRange(start[0], e.device_id, start[1], start[2], e.offset))
            start = None
    return out


def target_ivhds(ivrs: Ivrs) -> List[Ivhd]:
    """The IVHD blocks Linux uses: those of ``Ivrs.target_ivhd_type()``."""
    t = ivrs.target_ivhd_type()
    return [h for h in ivrs.ivhds if h.type_id == t]


def ioapic_handles(ivrs: Ivrs) -> Dict[int, int]:
    """IOAPIC id -> requester ID, from the special entries of the IVHDs in use."""
    out: Dict[int, int] = {}
    for h in target_ivhds(ivrs):
        for e in h.device_entries:
            if e.type_id == IVHD_DEV_SPECIAL and e.variety == IVHD_SPECIAL_IOAPIC:
                out.setdefault(e.handle or 0, e.source_device_id or 0)
    return out


def check_ivrs(ivrs: Ivrs, madt_ioapic_ids: Optional[Sequence[int]] = None) -> List[Finding]:
    """Findings for ``ivrs``; ``madt_ioapic_ids`` (the I/O APIC ids of the MADT, when
    known) enables the kernel's per-IOAPIC check."""
    out: List[Finding] = []
    add = out.append
    if ivrs.length <= ivrs.data_length and not ivrs.checksum_valid:
        add(make("ivrs-checksum", offset=9))
    if ivrs.truncation is not None:
        add(make("ivrs-truncated", offset=ivrs.data_length, reason=ivrs.truncation))
    for b in ivrs.blocks:
        if isinstance(b, Malformed):
            add(make("ivrs-malformed", offset=b.offset, reason=b.reason))
        elif isinstance(b, UnknownBlock):
            add(make("ivrs-unknown-block", offset=b.offset, type_id=f"{b.type_id:02x}", length=b.length))
    if not ivrs.ivhds:
        add(make("ivrs-no-ivhd"))
        return out
    target = ivrs.target_ivhd_type()
    used = target_ivhds(ivrs)
    n_other = len(ivrs.ivhds) - len(used)
    add(make("ivrs-ivhd-type", offset=used[0].offset if used else None, type_id=f"{target:02x}",
             plural="s" if len(used) != 1 else "", n=len(used),
             others=(f"the other {n_other} IVHD block{'s describe' if n_other != 1 else ' describes'}"
                     " the same hardware for older operating systems" if n_other else "there is no other IVHD type")))
    if ivrs.dma_remap:
        add(make("ivrs-dma-remap", offset=0x24))
    for h in ivrs.ivhds:
        in_use = h.type_id == target
        for w in h.warnings:
            add(make("ivhd-entries", severity=ERROR if in_use else WARNING, offset=h.offset, reason=w,
                     unused="" if in_use else f" (an IVHD {h.type_id:02x}h that Linux does not use)"))
        if not in_use:
            continue
        _check_used_ivhd(h, add)
    _check_ioapics(ivrs, used, madt_ioapic_ids, add)
    efrs = {(h.efr_image, h.efr_image2) for h in used if h.efr_image is not None}
    if ivrs.efr_sup and len(efrs) > 1:
        add(make("ivhd-efr-inconsistent", offset=used[1].offset))
    for m in ivrs.ivmds:
        _check_ivmd(m, add)
    return out


def _check_used_ivhd(h: Ivhd, add) -> None:  # type: ignore[no-untyped-def]
    where = f"IVHD {h.type_id:02x}h of IOMMU {h.pci_segment:04x}:{devid_text(h.device_id)}"
    if h.base_address == 0:
        add(make("ivhd-base-zero", offset=h.offset, where=where))
    named = [e for e in h.device_entries
             if e.type_id in (IVHD_DEV_ALL, IVHD_DEV_SELECT, IVHD_DEV_RANGE_END, IVHD_DEV_ALIAS,
                              IVHD_DEV_EXT_SELECT)]
    if not named:
        add(make("ivhd-no-devices", offset=h.offset, where=where))
    start = None
    for e in h.device_entries:
        if e.type_id in (IVHD_DEV_SELECT_RANGE_START, IVHD_DEV_ALIAS_RANGE,
                         IVHD_DEV_EXT_SELECT_RANGE):
            start = e
        elif e.type_id == IVHD_DEV_RANGE_END:
            if start is None:
                add(make("ivhd-range-end-alone", offset=e.offset, where=where, end=devid_text(e.device_id)))
            elif e.device_id < start.device_id:
                add(make("ivhd-range-backwards", offset=start.offset, where=where,
                         start=devid_text(start.device_id), end=devid_text(e.device_id)))
            start = None
        elif e.type_id == IVHD_DEV_SPECIAL and e.variety not in (1, 2):
            add(make("ivhd-special-variety", offset=e.offset, where=where, variety=e.variety))
        elif e.type_id == IVHD_DEV_ACPI_HID:
            if h.type_id != 0x40:
                add(make("ivhd-hid-type", offset=e.offset, where=where, type_id=f"{h.type_id:02x}"))
                continue
            if e.acpi_hid in ("", 0):
                add(make("ivhd-hid-empty", offset=e.offset, where=where))
            if e.uid_format == UID_NOT_PRESENT and e.uid_length:
                add(make("ivhd-uid-length", offset=e.offset, where=where, length=e.uid_length))


def _check_ioapics(ivrs: Ivrs, used: Sequence[Ivhd], madt_ids: Optional[Sequence[int]],
                   add) -> None:  # type: ignore[no-untyped-def]
    handles = ioapic_handles(ivrs)
    if madt_ids is not None:
        missing = [i for i in madt_ids if i not in handles]
        for i in missing:
            add(make("ivrs-ioapic-missing", ioapic=i))
        sb = any(handles.get(i) == IOAPIC_SB_DEVID for i in madt_ids)
    else:
        sb = IOAPIC_SB_DEVID in handles.values()
    if not sb:
        first = used[0].offset if used else None
        add(make("ivrs-no-sb-ioapic", offset=first,
                 among="" if madt_ids is None else " (among the MADT's I/O APICs)"))


def _check_ivmd(m: Ivmd, add) -> None:  # type: ignore[no-untyped-def]
    devs = m.devices
    who = ("every device" if devs is None else
           f"device {devid_text(devs[0])}" if devs[0] == devs[1] else
           f"devices {devid_text(devs[0])}..{devid_text(devs[1])}")
    # init_unity_map_range(): start = PAGE_ALIGN(range_start), end = start +
    # PAGE_ALIGN(range_length): a 1-byte range is a whole 4 KiB page.
    start = _page_align(m.start_address)
    end = start + _page_align(m.memory_length)
    rng = (f"0x{start:x}-0x{end - 1:x} (page-aligned from 0x{m.start_address:x} "
           f"+0x{m.memory_length:x})" if end > start else f"0x{start:x} (empty)")
    if devs is not None and devs[1] < devs[0]:
        add(make("ivmd-range-backwards", offset=m.offset, start=devid_text(devs[0]), end=devid_text(devs[1])))
    if m.memory_length == 0:
        add(make("ivmd-empty", offset=m.offset, type_id=f"{m.type_id:02x}", who=who))
    if m.flags & (IVMD_FLAG_UNITY_MAP | IVMD_FLAG_EXCL_RANGE):
        if m.flags & IVMD_FLAG_EXCL_RANGE:
            how = "an exclusion range, which Linux maps read/write 1:1 (unity)"
        else:
            perm = "/".join(n for bit, n in ((IVMD_FLAG_IR, "read"), (IVMD_FLAG_IW, "write"))
                            if m.flags & bit) or "no access"
            how = f"a unity range, mapped 1:1 ({perm})"
        add(make("ivmd-unity", offset=m.offset, type_id=f"{m.type_id:02x}", range=rng, who=who, how=how))


def _page_align(x: int) -> int:
    return (x + 0xFFF) & ~0xFFF & 0xFFFFFFFFFFFFFFFF


def covered_devids(ivrs: Ivrs) -> Set[int]:
    """Every requester ID the IVHDs in use hand to an IOMMU (ranges expanded)."""
    out: Set[int] = set()
    for h in target_ivhds(ivrs):
        for r in device_ranges(h):
            out.update(range(r.first, r.last + 1))
    return out
