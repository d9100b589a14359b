"""AMD-Vi IOMMU registers: read-only through ``/dev/mem`` on a live host, or from a
snapshot's ``_kdumptool/amdvi_registers.json``.

Each IOMMU's MMIO block is at the base address of its IVHD. The registers the decoder
needs are in two 4 KiB pages: base (Device Table Base ... Extended Feature 2, below
1000h) and base + 2000h (command/event/PPR head and tail pointers, Status). Each page is
mapped read-only with the same refusals as the VT-d pages (not root, kernel lockdown,
CONFIG_STRICT_DEVMEM without ``iomem=relaxed``: the amd_iommu driver claims the region);
a refusal is kept as ``read_error`` and the next IOMMU is tried. Nothing is written.

Snapshot shape (as vtd_registers.json): ``{"units": [{"name": "ivhd0", "address": <int>,
"read_error": <str|null>, "registers": {"DEV_TABLE": <int>, "CONTROL": <int>, ...}}]}``
with the register names of :mod:`kdumptool.formats.amdvi_regs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from kdumptool.errors import KdumptoolError, PermissionDenied, SourceMissing
from kdumptool.formats.amdvi_regs import REGISTERS
from kdumptool.sources.devmem import DEV_MEM, DevMemPage
from kdumptool.sources.iommu import read_registers_json
from kdumptool.sources.root import Root

AMDVI_REGS_JSON = "amdvi_registers.json"
_WHAT = "AMD-Vi registers"
_PAGE = "AMD-Vi register page"


def read_amdvi_mmio(address: int, root: Optional[Root] = None, path: str = DEV_MEM) -> Dict[str, int]:
    """The registers of the IOMMU whose MMIO base is ``address``."""
    values: Dict[str, int] = {}
    for page_off in (0x0000, 0x2000):
        with DevMemPage(address + page_off, root, path, _WHAT, _PAGE) as page:
            for name, (off, width) in REGISTERS.items():
                if page_off <= off < page_off + 0x1000:
                    rel = off - page_off
                    values[name] = page.read64(rel) if width == 64 else page.read32(rel)
    return values


def amdvi_units(root: Root) -> List[Tuple[str, int]]:
    """(ivhdN, MMIO base) of the IVHD blocks Linux uses, from ``root``'s IVRS; empty when
    there is none or it does not decode."""
    path = "/sys/firmware/acpi/tables/IVRS"
    if not root.exists(path):
        return []
    from kdumptool.formats.ivrs import parse_ivrs  # construct: only when there is an IVRS

    try:
        ivrs = parse_ivrs(root.read_bytes(path), path)
    except KdumptoolError:
        return []
    t = ivrs.target_ivhd_type()
    return [(f"ivhd{i}", h.base_address) for i, h in enumerate(h for h in ivrs.ivhds if h.type_id == t)]


def read_amdvi_live(units: List[Tuple[str, int]], root: Optional[Root] = None,
                    path: str = DEV_MEM) -> List[Dict[str, Any]]:
    """Registers of each (name, MMIO base) in the snapshot JSON shape."""
    out: List[Dict[str, Any]] = []
    for name, address in units:
        entry: Dict[str, Any] = {"name": name, "address": address, "read_error": None,
                                 "registers": None}
        try:
            entry["registers"] = read_amdvi_mmio(address, root, path)
        except (PermissionDenied, SourceMissing) as err:
            entry["read_error"] = str(err)
        except KdumptoolError as err:  # pragma: no cover - defensive
            entry["read_error"] = str(err)
        out.append(entry)
    return out


def read_amdvi_snapshot(root: Root) -> Optional[List[Dict[str, Any]]]:
    """The ``units`` of a snapshot's amdvi_registers.json, None when it has none."""
    return read_registers_json(root, AMDVI_REGS_JSON)


def has_saved_amdvi(saved: Path) -> bool:
    """Whether ``saved`` is a directory holding ``_kdumptool/amdvi_registers.json``."""
    return saved.is_dir() and (saved / "_kdumptool" / AMDVI_REGS_JSON).is_file()


def read_saved_dev_tables(saved: Path) -> Optional[List[Tuple[str, int, int]]]:
    """(unit name, device table base, size) from a saved directory's
    ``_kdumptool/amdvi_registers.json`` (a snapshot taken before the crash); None when
    the directory has no such file."""
    from kdumptool.formats.amdvi_regs import decode_amdvi_registers

    units = read_registers_json(Root(str(saved)), AMDVI_REGS_JSON)
    if units is None:
        return None
    out: List[Tuple[str, int, int]] = []
    for i, u in enumerate(units):
        regs = u.get("registers")
        if not isinstance(regs, dict):
            continue
        try:
            r = decode_amdvi_registers(regs, f"{saved} unit {i}")
        except KdumptoolError:
            continue
        out.append((str(u.get("name") or f"ivhd{i}"), r.dev_table_base, r.dev_table_size))
    return out




#: The kdump kernel's lines about the crashed kernel's device table (formats/klog.py kinds).
COPY_KINDS = ("amdvi_translation_preenabled", "amdvi_tables_copied", "amdvi_copy_refused", "amdvi_copy_failed")


def read_saved_copy_lines(saved: Path) -> List[Tuple[str, str]]:
    """The kdump kernel's own lines about the old device table ("Translation is already
    enabled", "Copied DEV table from previous kernel.", the refusals) in a saved
    snapshot's ``_kdumptool/dmesg.txt``, read through the one kernel-log pattern table:
    evidence beside ``vmcore scan``'s device tables, as (kind, quoted line). Empty when
    there is no such log."""
    from kdumptool.model.log import scan_log_text

    root = Root(str(saved))
    rel = "/_kdumptool/dmesg.txt"
    try:
        if not saved.is_dir() or not root.exists(rel):
            return []
        markers = scan_log_text(root.read_bytes(rel), "_kdumptool/dmesg.txt", probes=False)
    except KdumptoolError:
        return []
    return [(kind, str(m.evidence)) for kind in COPY_KINDS for m in markers.all(kind)[:2]]
