"""IOMMU groups (``sys/kernel/iommu_groups/N/{type,reserved_regions,devices}``), Intel
IOMMU units (``sys/class/iommu/dmar*/intel-iommu/{address,cap,ecap,version}``) and their
VT-d registers: from ``_kdumptool/vtd_registers.json`` in a snapshot, or read through
``/dev/mem`` on the live host (see :mod:`kdumptool.sources.devmem`).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from kdumptool.errors import DecodeError, KdumptoolError, PermissionDenied, SourceMissing
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.model.system import IommuGroup, ReservedRegion
from kdumptool.sources.root import Root

GROUPS = "/sys/kernel/iommu_groups"
CLASS_IOMMU = "/sys/class/iommu"
REGS_JSON = "vtd_registers.json"


@dataclass(frozen=True)
class SysfsUnit:
    name: str
    address: Optional[int]
    cap: Optional[int]
    ecap: Optional[int]
    version: Optional[str]
    devices: Tuple[str, ...]
    domains_supported: Optional[int] = None
    domains_used: Optional[int] = None


def parse_reserved_regions(text: str, what: str = "reserved_regions") -> Tuple[ReservedRegion, ...]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DecodeError(what, n, f"expected 'start end type', got {line!r}", unit="line")
        try:
            out.append(ReservedRegion(int(parts[0], 16), int(parts[1], 16), parts[2]))
        except ValueError:
            raise DecodeError(what, n, f"bad address in {line!r}", unit="line") from None
    return tuple(out)


def read_groups(root: Root, warnings: Optional[List[str]] = None) -> Dict[int, IommuGroup]:
    groups: Dict[int, IommuGroup] = {}
    for name in root.listdir(GROUPS):
        if not name.isdigit():
            continue
        base = f"{GROUPS}/{name}"
        regions: Tuple[ReservedRegion, ...] = ()
        text = root.read_optional(f"{base}/reserved_regions")
        if text:
            try:
                regions = parse_reserved_regions(text, str(root.p(f"{base}/reserved_regions")))
            except DecodeError as err:
                if warnings is not None:
                    warnings.append(str(err))
        groups[int(name)] = IommuGroup(
            number=int(name),
            type=root.read_optional(f"{base}/type"),
            devices=tuple(root.listdir(f"{base}/devices")),
            reserved_regions=regions,
        )
    return dict(sorted(groups.items()))


def _hex(text: Optional[str]) -> Optional[int]:
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def read_sysfs_units(root: Root) -> List[SysfsUnit]:
    out = []
    for name in root.listdir(CLASS_IOMMU):
        base = f"{CLASS_IOMMU}/{name}/intel-iommu"
        if not root.exists(base):
            continue  # an AMD or virtio IOMMU: not ours
        ds = root.read_optional(f"{base}/domains_supported")
        du = root.read_optional(f"{base}/domains_used")
        out.append(
            SysfsUnit(
                name=name,
                address=_hex(root.read_optional(f"{base}/address")),
                cap=_hex(root.read_optional(f"{base}/cap")),
                ecap=_hex(root.read_optional(f"{base}/ecap")),
                version=root.read_optional(f"{base}/version"),
                devices=tuple(root.listdir(f"{CLASS_IOMMU}/{name}/devices")),
                domains_supported=int(ds) if ds and ds.isdigit() else None,
                domains_used=int(du) if du and du.isdigit() else None,
            )
        )
    return out


def read_registers_json(root: Root, name: str = REGS_JSON) -> Optional[List[Dict[str, Any]]]:
    """The ``units`` list of a snapshot's register file, None when there is none."""
    path = root.extra(name)
    text = root.read_extra(name)  # json.loads finds the encoding; bad bytes are a ValueError
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise DecodeError(str(path), None, f"not JSON: {exc}") from None
    units = doc.get("units") if isinstance(doc, dict) else None
    if not isinstance(units, list):
        raise DecodeError(str(path), None, "no 'units' list")
    for i, u in enumerate(units):
        if not isinstance(u, dict) or not isinstance(u.get("address"), int):
            raise DecodeError(str(path), None, f"units[{i}] has no integer 'address'")
    return units


def read_live_registers(addresses: List[Tuple[str, int]], root: Optional[Root] = None) -> List[Dict[str, Any]]:
    """Registers of each (name, address) through /dev/mem, in the snapshot JSON shape;
    a refusal is kept as ``read_error`` and the next unit is tried."""
    from kdumptool.sources.devmem import read_vtd_page

    out: List[Dict[str, Any]] = []
    for name, address in addresses:
        entry: Dict[str, Any] = {"name": name, "address": address, "read_error": None, "registers": None}
        try:
            entry["registers"] = read_vtd_page(address, root)
        except (PermissionDenied, SourceMissing) as err:
            entry["read_error"] = str(err)
        except KdumptoolError as err:  # pragma: no cover - defensive
            entry["read_error"] = str(err)
        out.append(entry)
    return out
