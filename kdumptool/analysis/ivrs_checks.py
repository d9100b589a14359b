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

Findings use the DMAR checks' :class:`Finding` (id, severity, message, table offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

from kdumptool.analysis.dmar_checks import ERROR, INFO, WARNING, Finding
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
        add(Finding("IVRS_CHECKSUM", ERROR,
                    "bad table checksum: Linux logs \"IVRS invalid checksum\" and does not "
                    "use the AMD IOMMU at all (no DMA remapping, no interrupt remapping)", 9))
    for w in ivrs.warnings:
        if "truncated" in w:
            add(Finding("IVRS_TRUNCATED", ERROR, w, ivrs.data_length))
    for b in ivrs.blocks:
        if isinstance(b, Malformed):
            add(Finding("IVRS_MALFORMED", ERROR,
                        f"{b.reason}; Linux walks the blocks by their length "
                        "(WARN_ON(p != end) in init_iommu_all)", b.offset))
        elif isinstance(b, UnknownBlock):
            add(Finding("IVRS_UNKNOWN_BLOCK", INFO,
                        f"block type {b.type_id:02x}h ({b.length} bytes) is not in the AMD "
                        "IOMMU specification this decoder follows; kept raw. Linux skips it "
                        "by its length", b.offset))
    if not ivrs.ivhds:
        add(Finding("IVRS_NO_IVHD", ERROR,
                    "no IVHD block: the table describes no IOMMU, Linux finds none", None))
        return out
    target = ivrs.target_ivhd_type()
    used = target_ivhds(ivrs)
    n_other = len(ivrs.ivhds) - len(used)
    add(Finding("IVRS_IVHD_TYPE", INFO,
                f"Linux uses the IVHD type {target:02x}h block"
                f"{'s' if len(used) != 1 else ''} ({len(used)} IOMMU"
                f"{'s' if len(used) != 1 else ''}); "
                + (f"the other {n_other} IVHD block{'s describe' if n_other != 1 else ' describes'}"
                   " the same hardware for older operating systems" if n_other
                   else "there is no other IVHD type"),
                used[0].offset if used else None))
    if ivrs.dma_remap:
        add(Finding("IVRS_DMA_REMAP", INFO,
                    "IVinfo bit 1 (DMA remap support): the firmware kept DMA protection on "
                    "until the OS takes over (Linux amdr_ivrs_remap_support)", 0x24))
    for h in ivrs.ivhds:
        in_use = h.type_id == target
        for w in h.warnings:
            add(Finding("IVHD_ENTRIES", ERROR if in_use else WARNING,
                        w + ("" if in_use else f" (an IVHD {h.type_id:02x}h that Linux "
                             "does not use)"), h.offset))
        if not in_use:
            continue
        _check_used_ivhd(h, add)
    _check_ioapics(ivrs, used, madt_ioapic_ids, add)
    efrs = {(h.efr_image, h.efr_image2) for h in used if h.efr_image is not None}
    if ivrs.efr_sup and len(efrs) > 1:
        add(Finding("IVHD_EFR_INCONSISTENT", WARNING,
                    "the IVHD blocks in use carry different EFR images: Linux logs "
                    "\"Found inconsistent EFR/EFR2\" and uses only the features they share",
                    used[1].offset))
    for m in ivrs.ivmds:
        _check_ivmd(m, add)
    return out


def _check_used_ivhd(h: Ivhd, add) -> None:  # type: ignore[no-untyped-def]
    where = f"IVHD {h.type_id:02x}h of IOMMU {h.pci_segment:04x}:{devid_text(h.device_id)}"
    if h.base_address == 0:
        add(Finding("IVHD_BASE_ZERO", ERROR,
                    f"{where}: register base address 0: Linux cannot map its registers", h.offset))
    named = [e for e in h.device_entries
             if e.type_id in (IVHD_DEV_ALL, IVHD_DEV_SELECT, IVHD_DEV_RANGE_END, IVHD_DEV_ALIAS,
                              IVHD_DEV_EXT_SELECT)]
    if not named:
        add(Finding("IVHD_NO_DEVICES", ERROR,
                    f"{where} names no device (no select, range, alias or all entry): Linux's "
                    "find_last_devid_from_ivhd() fails and AMD-Vi is not set up", h.offset))
    start = None
    for e in h.device_entries:
        if e.type_id in (IVHD_DEV_SELECT_RANGE_START, IVHD_DEV_ALIAS_RANGE,
                         IVHD_DEV_EXT_SELECT_RANGE):
            start = e
        elif e.type_id == IVHD_DEV_RANGE_END:
            if start is None:
                add(Finding("IVHD_RANGE_END_ALONE", WARNING,
                            f"{where}: range end {devid_text(e.device_id)} without a range "
                            "start: Linux applies it to the range from the last start it "
                            "saw (or from device 00:00.0)", e.offset))
            elif e.device_id < start.device_id:
                add(Finding("IVHD_RANGE_BACKWARDS", WARNING,
                            f"{where}: range {devid_text(start.device_id)}.."
                            f"{devid_text(e.device_id)} ends before it starts: no device is "
                            "covered", start.offset))
            start = None
        elif e.type_id == IVHD_DEV_SPECIAL and e.variety not in (1, 2):
            add(Finding("IVHD_SPECIAL_VARIETY", ERROR,
                        f"{where}: special device entry of variety {e.variety} (neither "
                        "IOAPIC 1 nor HPET 2): Linux's add_special_device() returns "
                        "-EINVAL and the AMD-Vi set-up fails", e.offset))
        elif e.type_id == IVHD_DEV_ACPI_HID:
            if h.type_id != 0x40:
                add(Finding("IVHD_HID_TYPE", WARNING,
                            f"{where}: ACPI HID entry in an IVHD {h.type_id:02x}h: Linux "
                            "logs \"[Firmware Bug]: Invalid IVHD device type 0xf0\" and "
                            "ignores it", e.offset))
                continue
            if e.acpi_hid in ("", 0):
                add(Finding("IVHD_HID_EMPTY", WARNING,
                            f"{where}: ACPI HID entry with an empty HID: Linux logs "
                            "\"[Firmware Bug]: Invalid HID.\" and ignores it", e.offset))
            if e.uid_format == UID_NOT_PRESENT and e.uid_length:
                add(Finding("IVHD_UID_LENGTH", WARNING,
                            f"{where}: ACPI HID entry says no UID but gives UID length "
                            f"{e.uid_length}: Linux logs \"[Firmware Bug]: Invalid UID "
                            "length.\"", e.offset))


def _check_ioapics(ivrs: Ivrs, used: Sequence[Ivhd], madt_ids: Optional[Sequence[int]],
                   add) -> None:  # type: ignore[no-untyped-def]
    handles = ioapic_handles(ivrs)
    if madt_ids is not None:
        missing = [i for i in madt_ids if i not in handles]
        for i in missing:
            add(Finding("IVRS_IOAPIC_MISSING", WARNING,
                        f"I/O APIC id {i} of the MADT has no special entry in the IVHDs in "
                        f"use: Linux logs \"[Firmware Bug]: IOAPIC[{i}] not in IVRS table\" "
                        "and disables interrupt remapping", None))
        sb = any(handles.get(i) == IOAPIC_SB_DEVID for i in madt_ids)
    else:
        sb = IOAPIC_SB_DEVID in handles.values()
    if not sb:
        first = used[0].offset if used else None
        add(Finding("IVRS_NO_SB_IOAPIC", WARNING,
                    "no I/O APIC at requester ID 00:14.0 in the IVHDs in use"
                    + ("" if madt_ids is None else " (among the MADT's I/O APICs)")
                    + ": Linux logs \"[Firmware Bug]: No southbridge IOAPIC found\" and "
                    "\"Disabling interrupt remapping\" (then x2APIC above 255 CPUs is not "
                    "possible; DMA remapping goes on)", first))


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
        add(Finding("IVMD_RANGE_BACKWARDS", WARNING,
                    f"IVMD 22h device range {devid_text(devs[0])}..{devid_text(devs[1])} "
                    "ends before it starts: no device gets the mapping", m.offset))
    if m.memory_length == 0:
        add(Finding("IVMD_EMPTY", WARNING, f"IVMD {m.type_id:02x}h for {who} has memory length 0",
                    m.offset))
    if m.flags & (IVMD_FLAG_UNITY_MAP | IVMD_FLAG_EXCL_RANGE):
        if m.flags & IVMD_FLAG_EXCL_RANGE:
            how = "an exclusion range, which Linux maps read/write 1:1 (unity)"
        else:
            perm = "/".join(n for bit, n in ((IVMD_FLAG_IR, "read"), (IVMD_FLAG_IW, "write"))
                            if m.flags & bit) or "no access"
            how = f"a unity range, mapped 1:1 ({perm})"
        add(Finding("IVMD_UNITY", INFO,
                    f"IVMD {m.type_id:02x}h: {rng} for {who} is {how}: DMA there is never "
                    "blocked, also not in the kdump kernel", m.offset))


def _page_align(x: int) -> int:
    return (x + 0xFFF) & ~0xFFF & 0xFFFFFFFFFFFFFFFF


def covered_devids(ivrs: Ivrs) -> Set[int]:
    """Every requester ID the IVHDs in use hand to an IOMMU (ranges expanded)."""
    out: Set[int] = set()
    for h in target_ivhds(ivrs):
        for r in device_ranges(h):
            out.update(range(r.first, r.last + 1))
    return out
