"""The AMD-Vi side of ``kdumptool vmcore iommu|exposure``: the crashed kernel's device
table and v1 page tables out of a dump.

Where the device table comes from, in this order (the output says which):
``--dev-table`` (an address, or a Device Table Base register value whose low 9 bits give
the size): argument; ``--saved DIR`` with ``DIR/_kdumptool/amdvi_registers.json`` (a
snapshot taken before the crash): saved; otherwise a scan of the dump for a block of
plausible DTEs below 4 GiB: scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Tuple

if TYPE_CHECKING:
    from kdumptool.analysis.amdvi_walk import AmdViTables
    from kdumptool.analysis.exposure import Exposure
    from kdumptool.analysis.vtd_walk import DeviceTranslation
    from kdumptool.sources.vmcore import Dump

DEV_TABLE_DEFAULT = 2 << 20


def wants_amd(vendor: str, dev_table: Optional[str], saved: Optional[Path], dump: Dump,
              rtaddr: Optional[str]) -> Tuple[bool, List[str]]:
    """Whether to decode AMD-Vi structures, and the evidence (for the output)."""
    from kdumptool.sources.amdvi import has_saved_amdvi
    from kdumptool.sources.crashlog import iommu_vendor_from_dump

    if vendor == "amd" or dev_table is not None:
        return True, [f"vendor AMD-Vi: {'--vendor amd' if vendor == 'amd' else '--dev-table'}"]
    if vendor == "intel" or rtaddr is not None:
        return False, []
    if saved is not None and has_saved_amdvi(saved):
        return True, [f"vendor AMD-Vi: {saved}/_kdumptool/amdvi_registers.json"]
    got = iommu_vendor_from_dump(dump)
    if got is not None:
        return got[0] == "AMD-Vi", [f"vendor {got[0]}: the crashed kernel's log says {got[1]!r}"]
    return False, []


def resolve_dev_table(dump: Dump, vmcore: Path, dev_table: Optional[str], saved: Optional[Path],
                      unit: Optional[str]) -> Tuple[int, int, str, str, List[str]]:
    """(base, size, source, detail, warnings)."""
    from kdumptool.analysis.amdscan import find_device_tables
    from kdumptool.errors import SourceMissing
    from kdumptool.sources.amdvi import read_saved_dev_tables

    warnings: List[str] = []
    if dev_table is not None:
        try:
            value = int(dev_table, 16)
        except ValueError:
            import typer

            raise typer.BadParameter(f"{dev_table!r} is not a hex address", param_hint="--dev-table") from None
        size = ((value & 0x1FF) + 1) << 12 if value & 0x1FF else DEV_TABLE_DEFAULT
        return value & ~0xFFF, size, "argument", f"--dev-table {dev_table}", warnings
    if saved is not None:
        tabs = read_saved_dev_tables(saved)
        if tabs:
            pick = [t for t in tabs if unit in (None, t[0])]
            if not pick:
                raise SourceMissing(f"{saved}: no unit {unit!r} in amdvi_registers.json")
            if len({(b, s) for _, b, s in tabs}) > 1 and unit is None:
                warnings.append("the saved record has several device tables (one per PCI segment): "
                                f"decoding {pick[0][0]}'s (--unit to choose)")
            name, base, size = pick[0]
            return base, size, "saved", f"{name} DEV_TABLE", warnings
        warnings.append(f"{saved}: no _kdumptool/amdvi_registers.json: scanning the dump")
    ranges = list(dump.iter_dumped_ranges())
    res = find_device_tables(dump, ranges)
    c = res.best
    if c is None:
        raise SourceMissing(f"{vmcore}: no AMD-Vi device table given or saved, and the scan found no valid "
                            "device table below 4 GiB (`kdumptool vmcore scan --vendor amd` lists the candidates)"
                            + (f"; {res.unreadable_pages} page(s) there were unreadable" if res.unreadable_pages
                               else ""))
    others = [x for x in res.candidates[1:] if x.valid_table]
    if others:
        warnings.append("the scan found other device tables: " + ", ".join(
            f"0x{x.address:x}" for x in others) + " (one per PCI segment, or stale: --dev-table to choose)")
    valid = 1 + len(others)
    return c.address, c.size, "scan", (f"scan candidate 1 of {valid}: {c.valid} valid entries, "
                                       f"{c.translated} translated"), warnings


def amd_iommu(dump: Dump, vmcore: Path, dev_table: Optional[str], saved: Optional[Path],
              unit: Optional[str], dev: Optional[Tuple[int, int, int]], fmt: str, evidence: List[str]
              ) -> Tuple[AmdViTables, Optional[List[DeviceTranslation]]]:
    from kdumptool.analysis.amdvi_walk import walk_device_table
    from kdumptool.render import amdvi as ra
    from kdumptool.render.output import emit

    base, size, source, detail, warnings = resolve_dev_table(dump, vmcore, dev_table, saved, unit)
    only = [(dev[1] << 8) | dev[2]] if dev else None
    t = walk_device_table(dump, base, size, segment=dev[0] if dev else 0, only=only)
    devices = None
    if dev is not None:
        devices = [d for d in t.devices if (d.bus, d.devfn) == (dev[1], dev[2])]
        if not devices:
            warnings.append(f"{dev[1]:02x}:{dev[2] >> 3:02x}.{dev[2] & 7:x}: no translating or "
                            "pass-through DTE (blocked, V=0 or not in the table)")
    obj = ra.iommu_json(t, source, detail, evidence + warnings, devices)
    emit(fmt, json_obj=lambda: obj, text=lambda: ra.render_iommu_text(obj, 1 << 62 if dev else 8))
    return t, devices


def amd_exposure(dump: Dump, vmcore: Path, dev_table: Optional[str], saved: Optional[Path],
                 unit: Optional[str], dev: Optional[Tuple[int, int, int]], fmt: str, evidence: List[str],
                 deliver: Any = None) -> Exposure:
    from kdumptool.analysis.amdvi_walk import walk_device_table
    from kdumptool.analysis.exposure import find_exposure
    from kdumptool.render import amdvi as ra
    from kdumptool.render.output import emit

    base, size, source, detail, warnings = resolve_dev_table(dump, vmcore, dev_table, saved, unit)
    t = walk_device_table(dump, base, size)
    ranges = list(dump.iter_dumped_ranges())
    devices = None
    if dev is not None:
        devices = [d for d in t.devices if (d.bus, d.devfn) == (dev[1], dev[2])]
    if t.untranslated:
        warnings.append("requester IDs with V=0 (DMA not checked, all memory reachable if a device "
                        "uses them): " + ", ".join(f"{a:04x}-{b:04x}" for a, b in t.untranslated[:8]))
    ex = find_exposure(t.as_vtd_tables(), ranges, devices=devices)
    obj = ra.exposure_json(ex, t, source, detail, evidence + warnings)
    if deliver is not None:  # vmcore exposure's -o / html
        deliver(obj, ex, lambda: ra.render_exposure_text(obj, 1 << 62 if dev else 12))
    else:
        emit(fmt, json_obj=lambda: obj, text=lambda: ra.render_exposure_text(obj, 1 << 62 if dev else 12))
    return ex


def amd_lookup(dump: Dump, vmcore: Path, dev_table: Optional[str], saved: Optional[Path], unit: Optional[str],
               dev: Tuple[int, int, int], iova: int, fmt: str, evidence: List[str]) -> None:
    """``vmcore iommu --device BDF --iova X`` on AMD-Vi: the DTE and every page-table entry
    read on the way, and where the IOVA lands."""
    from kdumptool.analysis.amdvi_walk import lookup_iova_amd
    from kdumptool.render import amdvi as ra
    from kdumptool.render.output import emit

    base, size, source, detail, warnings = resolve_dev_table(dump, vmcore, dev_table, saved, unit)
    if dev[0] != 0:
        warnings.append(f"segment {dev[0]:04x}: the device table decoded is segment 0000's")
    r = lookup_iova_amd(dump, base, (dev[1] << 8) | dev[2], iova, size)
    obj = ra.lookup_json(r, base, size, source, detail, evidence + warnings)
    emit(fmt, json_obj=lambda: obj, text=lambda: ra.render_lookup_text(obj))


def amd_faults(dump: Dump, vmcore: Path, dev_table: Optional[str], saved: Optional[Path], unit: Optional[str],
               lines: Iterable[str], log_name: str, fmt: str, evidence: List[str]) -> int:
    """``vmcore iommu --faults LOG`` on AMD-Vi: every IO_PAGE_FAULT of the log looked up in
    the crashed kernel's device table and v1 tables. Returns the faults not looked up."""
    from kdumptool.analysis.amdvi_walk import amd_fault_events_in_lines, check_faults_amd
    from kdumptool.render import amdvi as ra
    from kdumptool.render.output import emit

    base, size, source, detail, warnings = resolve_dev_table(dump, vmcore, dev_table, saved, unit)
    unchecked = [0]
    checks = check_faults_amd(dump, base, amd_fault_events_in_lines(lines), size=size, unchecked=unchecked)
    obj = ra.faults_json(checks, log_name, base, size, source, detail, evidence + warnings, unchecked[0])
    emit(fmt, json_obj=lambda: obj, text=lambda: ra.render_faults_text(obj))
    return unchecked[0]
