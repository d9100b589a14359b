"""AMD-Vi IOMMU state from its registers, checked the way the kdump kernel will see it.

Facts from Linux ``drivers/iommu/amd/init.c`` (6.12):

- the device table size is computed from the IVRS (``tbl_size(DEV_TABLE_ENTRY_SIZE,
  last_bdf)``: the highest requester ID any IVHD of the type in use names, rounded up
  to a power-of-two number of pages); in a kdump kernel ``__copy_device_table()``
  compares it with the Size field of the old Device Table Base register and refuses
  the copy when they differ ("The device table size of IOMMU:%d is not expected!");
- it also refuses an old device table above 4 GiB ("The address of old device table
  is above 4G, not trustworthy!"), after clearing the SME mask;
- ``late_iommu_features_init()`` warns "EFR mismatch" when the Extended Feature
  Register differs from the IVHD's EFR image;
- ``init_translation_status()``: IommuEn set at boot means translation was left on by
  the previous kernel (kdump) or the firmware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from kdumptool.analysis.catalogue import make
from kdumptool.analysis.ivrs_checks import target_ivhds
from kdumptool.errors import DecodeError
from kdumptool.formats.amdvi_regs import AmdViRegisters, decode_amdvi_registers
from kdumptool.formats.ivrs import (
    IVHD_DEV_ALIAS,
    IVHD_DEV_ALL,
    IVHD_DEV_EXT_SELECT,
    IVHD_DEV_RANGE_END,
    IVHD_DEV_SELECT,
    Ivhd,
    Ivrs,
    devid_text,
)
from kdumptool.model.finding import Finding

DEV_TABLE_ENTRY_SIZE = 32


@dataclass(frozen=True)
class AmdViUnit:
    """One IOMMU: its IVHD (the type in use) and, when read, its registers."""

    name: str  # ivhd0, ivhd1... as Linux names them in /sys/class/iommu
    ivhd: Ivhd
    source: str  # "/dev/mem", the snapshot file, or "" when not read
    registers: Optional[AmdViRegisters] = None
    read_error: Optional[str] = None


def last_devid(ivhd: Ivhd) -> int:
    """Linux ``find_last_devid_from_ivhd()``: -1 when the IVHD names no device."""
    last = -1
    for e in ivhd.device_entries:
        if e.type_id == IVHD_DEV_ALL:
            return 0xFFFF
        if e.type_id in (IVHD_DEV_SELECT, IVHD_DEV_RANGE_END, IVHD_DEV_ALIAS,
                         IVHD_DEV_EXT_SELECT):
            last = max(last, e.device_id)
    return last


def expected_dev_table_size(ivrs: Ivrs, segment: int) -> Optional[int]:
    """The device table size Linux allocates for ``segment`` (bytes), None when no IVHD
    in use names a device there."""
    last = max((last_devid(h) for h in target_ivhds(ivrs) if h.pci_segment == segment),
               default=-1)
    if last < 0:
        return None
    need = (last + 1) * DEV_TABLE_ENTRY_SIZE
    size = 4096
    while size < need:  # PAGE_SIZE << get_order(need)
        size <<= 1
    return size


def build_units(ivrs: Ivrs, entries: Optional[Sequence[Mapping[str, Any]]],
                source: str) -> List[AmdViUnit]:
    """Pair the IVHDs in use with register entries (snapshot JSON shape), by address."""
    by_addr: Dict[int, Mapping[str, Any]] = {}
    for ent in entries or ():
        if isinstance(ent, Mapping) and isinstance(ent.get("address"), int):
            by_addr.setdefault(ent["address"], ent)
    out: List[AmdViUnit] = []
    for i, h in enumerate(target_ivhds(ivrs)):
        name = f"ivhd{i}"
        e = by_addr.get(h.base_address)
        if entries is None:
            out.append(AmdViUnit(name, h, ""))
            continue
        if e is None:
            out.append(AmdViUnit(name, h, source, None,
                                 f"no registers recorded for MMIO base {h.base_address:#x}"))
            continue
        regs = None
        err = e.get("read_error")
        if e.get("registers") is not None:
            try:
                regs = decode_amdvi_registers(e["registers"], f"{source} {name}")
            except DecodeError as exc:
                err = str(exc)
        out.append(AmdViUnit(name, h, source, regs, err if regs is None else None))
    return out


def check_units(ivrs: Ivrs, units: Sequence[AmdViUnit]) -> List[Finding]:
    out: List[Finding] = []
    for u in units:
        who = f"{u.name} ({u.ivhd.pci_segment:04x}:{devid_text(u.ivhd.device_id)} at " \
              f"{u.ivhd.base_address:#x})"
        if u.registers is None:
            if u.source:
                out.append(make("amdvi-registers-unread", offset=u.ivhd.offset, who=who,
                                why=u.read_error or "unknown"))
            continue
        r = u.registers
        out.append(make("amdvi-translation", offset=u.ivhd.offset, who=who,
                        state=("on: DMA from the devices it covers is translated through the device table at "
                               f"{r.dev_table_base:#x}" if r.iommu_en
                               else "off: DMA goes untranslated to physical addresses")))
        want = expected_dev_table_size(ivrs, u.ivhd.pci_segment)
        if r.iommu_en and want is not None and r.dev_table_size != want:
            out.append(make("amdvi-dev-table-size", offset=u.ivhd.offset, who=who, size=r.dev_table_size,
                            want=want))
        if r.iommu_en and r.dev_table_base >= 1 << 32:
            out.append(make("amdvi-dev-table-above-4g", offset=u.ivhd.offset, who=who,
                            base=f"{r.dev_table_base:#x}"))
        efr = r.efr
        if efr is not None and u.ivhd.efr_image is not None and ivrs.efr_sup \
                and efr.value != u.ivhd.efr_image:
            out.append(make("amdvi-efr-mismatch", offset=u.ivhd.offset, who=who, efr=f"{efr.value:#x}",
                            image=f"{u.ivhd.efr_image:#x}"))
        if "EventOverflow" in r.status_names:
            out.append(make("amdvi-event-overflow", offset=u.ivhd.offset, who=who))
        ring = r.ring("EVT_BUF", "EVT_HEAD", "EVT_TAIL")
        if ring is not None and ring[2]:
            out.append(make("amdvi-events-pending", offset=u.ivhd.offset, who=who, n=ring[2],
                            plural="y" if ring[2] == 1 else "ies", head=ring[0], tail=ring[1]))
    return out
