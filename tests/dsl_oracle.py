"""An independent reader of ACPICA ``iasl -d`` DMAR disassembly (.dsl text).

This is the oracle the DMAR decoder is compared with: it knows nothing of the binary
layout, only iasl's ``[HexOffset DecimalOffset ByteLength]  Field Name : value`` lines,
both the current form (``[030h 0048 002h]``) and the older one (``[030h 0048   2]``).
It returns plain dicts keyed by our field names, so a test compares field by field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from tests.acpi_dsl import ACPI_HEADER_FIELDS, dsl_lines, field_diffs, read_dsl_file
from tests.acpi_dsl import hex_value as _hex
from tests.acpi_dsl import quoted as _quoted

HEADER_FIELDS = {
    **ACPI_HEADER_FIELDS,
    "Host Address Width": ("haw", _hex),
    "Flags": ("flags", _hex),
}

STRUCT_FIELDS = {
    "Length": ("length", _hex),
    "Flags": ("flags", _hex),
    "Size (decoded below)": ("size", _hex),
    "PCI Segment Number": ("segment", _hex),
    "Register Base Address": ("register_base_address", _hex),
    "Base Address": ("base_address", _hex),  # RMRR; RHSA's is its register base
    "End Address (limit)": ("end_address", _hex),
    "Proximity Domain": ("proximity_domain", _hex),
    "Device Number": ("acpi_device_number", _hex),
    "Device Name": ("acpi_object_name", _quoted),
}

SCOPE_FIELDS = {
    "Entry Length": ("length", _hex),
    "Flags": ("flags", _hex),
    "Enumeration ID": ("enumeration_id", _hex),
    "PCI Bus Number": ("start_bus", _hex),
}


def parse_dsl(text: str) -> Dict[str, Any]:
    """``{"header": {...}, "structures": [{"offset", "type_id", ..., "scopes": [...]}]}``."""
    header: Dict[str, Any] = {}
    structures: List[Dict[str, Any]] = []
    cur: Optional[Dict[str, Any]] = None
    scope: Optional[Dict[str, Any]] = None
    for line, field in dsl_lines(text):
        if field is None:
            continue
        name, value, off = field
        if name == "Subtable Type":
            cur = {"offset": off, "type_id": _hex(value), "scopes": []}
            structures.append(cur)
            scope = None
            continue
        if name == "Device Scope Type":
            if cur is None:
                raise ValueError(f"device scope outside a subtable: {line!r}")
            scope = {"offset": off, "type_id": _hex(value), "path": []}
            cur["scopes"].append(scope)
            continue
        if cur is None:
            if name in HEADER_FIELDS:
                key, conv = HEADER_FIELDS[name]
                header[key] = conv(value)
            continue
        if scope is not None and name == "PCI Path":
            dev, fn = (int(x, 16) for x in value.split(","))
            scope["path"].append((dev, fn))
            continue
        if scope is not None and name in SCOPE_FIELDS:
            key, conv = SCOPE_FIELDS[name]
            scope[key] = conv(value)
            continue
        if name == "Reserved":
            continue
        if name in STRUCT_FIELDS:
            if scope is not None:
                raise ValueError(f"structure field {name!r} after a device scope: {line!r}")
            key, conv = STRUCT_FIELDS[name]
            if cur["type_id"] == 3 and key == "base_address":
                key = "register_base_address"
            cur[key] = conv(value)
            continue
        raise ValueError(f"unknown DMAR field {name!r}")
    return {"header": header, "structures": structures}


def parse_dsl_file(path: Union[str, Path]) -> Dict[str, Any]:
    return parse_dsl(read_dsl_file(path))


def compare_with_dsl(dmar: Any, oracle: Dict[str, Any]) -> List[str]:
    """Every difference between a decoded :class:`~kdumptool.formats.dmar.Dmar` and the
    oracle, as readable lines (empty when they agree on every field)."""
    diffs = field_diffs("header", dmar, oracle["header"])
    ours = list(dmar.structures)
    theirs = oracle["structures"]
    if len(ours) != len(theirs):
        diffs.append(f"{len(ours)} structures decoded, iasl shows {len(theirs)}")
    for s, o in zip(ours, theirs):
        where = f"structure @0x{o['offset']:x}"
        diffs += field_diffs(where, s, o, skip="scopes")
        scopes = list(s.device_scopes)
        if len(scopes) != len(o["scopes"]):
            diffs.append(f"{where}: {len(scopes)} device scopes decoded, iasl {len(o['scopes'])}")
        for sc, osc in zip(scopes, o["scopes"]):
            diffs += field_diffs(f"{where} scope @0x{osc['offset']:x}", sc, osc)
    return diffs
