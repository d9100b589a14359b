"""An independent reader of ACPICA ``iasl -d`` DMAR disassembly (.dsl text).

This is the oracle the DMAR decoder is compared with: it knows nothing of the binary
layout, only iasl's ``[HexOffset DecimalOffset ByteLength]  Field Name : value`` lines,
both the current form (``[030h 0048 002h]``) and the older one (``[030h 0048   2]``).
It returns plain dicts keyed by our field names, so a test compares field by field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

_FIELD = re.compile(
    r"^\[(?P<hex>[0-9A-Fa-f]+)h (?P<dec>\d+)\s+(?P<len>[0-9A-Fa-f]+h|\d+)\]\s+"
    r"(?P<name>.+?)\s+:\s?(?P<value>.*)$"
)
_QUOTED = re.compile(r'^"(.*)"')


def _hex(value: str) -> int:
    return int(value.split()[0], 16)


def _quoted(value: str) -> str:
    m = _QUOTED.match(value)
    if not m:
        raise ValueError(f"expected a quoted string: {value!r}")
    return m.group(1)


HEADER_FIELDS = {
    "Signature": ("signature", _quoted),
    "Table Length": ("length", _hex),
    "Revision": ("revision", _hex),
    "Checksum": ("checksum", _hex),
    "Oem ID": ("oem_id", _quoted),
    "Oem Table ID": ("oem_table_id", _quoted),
    "Oem Revision": ("oem_revision", _hex),
    "Asl Compiler ID": ("asl_compiler_id", _quoted),
    "Asl Compiler Revision": ("asl_compiler_revision", _hex),
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
    for line in text.splitlines():
        if line.startswith("Raw Table Data"):
            break
        m = _FIELD.match(line.strip())
        if not m:
            continue
        name, value, off = m.group("name"), m.group("value").strip(), int(m.group("hex"), 16)
        if int(m.group("dec")) != off:
            raise ValueError(f"offset columns disagree: {line!r}")
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
    return parse_dsl(Path(path).read_text(encoding="latin-1"))


def compare_with_dsl(dmar: Any, oracle: Dict[str, Any]) -> List[str]:
    """Every difference between a decoded :class:`~kdumptool.formats.dmar.Dmar` and the
    oracle, as readable lines (empty when they agree on every field)."""
    diffs: List[str] = []
    hdr = oracle["header"]
    for key, want in hdr.items():
        got = getattr(dmar, key)
        if got != want:
            diffs.append(f"header {key}: decoder {got!r}, iasl {want!r}")
    ours = list(dmar.structures)
    theirs = oracle["structures"]
    if len(ours) != len(theirs):
        diffs.append(f"{len(ours)} structures decoded, iasl shows {len(theirs)}")
    for s, o in zip(ours, theirs):
        where = f"structure @0x{o['offset']:x}"
        for key, want in o.items():
            if key == "scopes":
                continue
            got = getattr(s, key, None)
            if got != want:
                diffs.append(f"{where} {key}: decoder {got!r}, iasl {want!r}")
        scopes = list(s.device_scopes)
        if len(scopes) != len(o["scopes"]):
            diffs.append(f"{where}: {len(scopes)} device scopes decoded, iasl {len(o['scopes'])}")
        for sc, osc in zip(scopes, o["scopes"]):
            for key, want in osc.items():
                got = getattr(sc, key)
                if key == "path":
                    got = list(got)
                if got != want:
                    diffs.append(
                        f"{where} scope @0x{osc['offset']:x} {key}: decoder {got!r}, iasl {want!r}"
                    )
    return diffs
