"""Where the crashed kernel's root table may be, read from what the machine or a saved
snapshot kept: the RTADDR values of a snapshot's ``_kdumptool/vtd_registers.json`` or a
``drhd_regs.txt`` listing, and the registers read live in a kdump kernel whose translation
is off (RTADDR still names the crashed kernel's table). Each is a
:class:`~kdumptool.model.roottable.RtaddrCandidate` for
:func:`kdumptool.analysis.crashed.resolve_root_tables`, which checks it against the dump.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

from kdumptool.errors import DecodeError, KdumptoolError, SourceMissing
from kdumptool.formats.vtd_tables import (
    SavedUnit,
    old_table_in_rtaddr,
    parse_drhd_regs_text,
    parse_vtd_registers_json,
)
from kdumptool.model.roottable import RtaddrCandidate
from kdumptool.sources.root import read_file_capped


def read_saved_rtaddr(
    saved: Path, unit: Optional[str], warnings: List[str], all_units: bool = False
) -> List[RtaddrCandidate]:
    """RTADDR of each unit a saved snapshot (or a crash folder) kept."""
    candidates = [saved / "_kdumptool" / "vtd_registers.json", saved / "drhd_regs.txt", saved]
    units: Optional[Sequence[SavedUnit]] = None
    path = saved
    for path in candidates:
        if not path.is_file():
            continue
        text = read_file_capped(path).decode("utf-8", "replace")  # binary junk fails to parse below
        try:
            if path.suffix == ".json":
                try:
                    units = parse_vtd_registers_json(json.loads(text), str(path))
                except ValueError as exc:
                    raise DecodeError(str(path), None, f"not JSON: {exc}") from None
            else:
                units = parse_drhd_regs_text(text, str(path))
        except DecodeError:
            if path == saved:
                raise
            continue
        break
    if units is None:
        raise SourceMissing(f"{saved}: no _kdumptool/vtd_registers.json or drhd_regs.txt")
    out = []
    for u in units:
        if unit is not None and u.name != unit:
            continue
        if not u.rtaddr:
            warnings.append(f"{path} {u.name}: no RTADDR saved")
            continue
        out.append(RtaddrCandidate(u.name, u.rtaddr, "saved", f"{path} {u.name} RTADDR 0x{u.rtaddr:x}"))
    if unit is not None and not out:
        raise SourceMissing(f"{path}: no unit {unit!r} with an RTADDR")
    if len(out) > 1 and not all_units:
        warnings.append(f"{path} has {len(out)} units; using the first that decodes (--unit to choose, "
                        "--all-units for every one)")
    return out


def read_live_rtaddr(unit: Optional[str], warnings: List[str]) -> List[RtaddrCandidate]:
    """RTADDR of each unit read now, when translation is off (GSTS.TES clear)."""
    from kdumptool.sources.root import open_root
    from kdumptool.sources.system import read_dmar_table, read_units

    out: List[RtaddrCandidate] = []
    try:
        with open_root(None) as root:
            _, dmar = read_dmar_table(root, warnings)
            units = read_units(root, dmar, warnings)
    except KdumptoolError as err:
        warnings.append(f"live registers: {err}")
        return out
    for u in units:
        if unit is not None and u.name != unit:
            continue
        regs = u.registers
        if regs is None:
            continue
        rt, gsts = regs.get("RTADDR"), regs.get("GSTS")
        if rt is None or gsts is None:
            continue
        if not old_table_in_rtaddr(gsts):
            warnings.append(f"{u.name}: translation is on in this kernel (GSTS.TES): RTADDR 0x{rt:x} is the "
                            "kdump kernel's own table, not used")
            continue
        out.append(RtaddrCandidate(u.name, rt, "register", f"{u.name} RTADDR register 0x{rt:x}, GSTS 0x{gsts:x}",
                                   u.segment))
    return out
