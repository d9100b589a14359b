"""An independent reader of ACPICA ``iasl -d`` IVRS disassembly (.dsl text).

The oracle the IVRS decoder is compared with. It knows nothing of the binary layout:
it reads iasl's ``[HexOffset DecimalOffset ByteLength]  Field Name : value`` lines and
tells blocks (IVHD, IVMD) from device entries by iasl's own labels in brackets after
``Subtable Type``. iasl prints ``**** Unknown IVRS subtable type 0xNN`` for a block type
it does not know and moves on by the block's length; that becomes an ``unknown`` block
without fields (iasl shows none). Returns plain dicts keyed by our field names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from tests.acpi_dsl import ACPI_HEADER_FIELDS, dsl_lines, field_diffs, read_dsl_file
from tests.acpi_dsl import hex_value as _hex
from tests.acpi_dsl import quoted as _quoted

_UNKNOWN_BLOCK = re.compile(r"^\*\*\*\* Unknown IVRS subtable type 0x(?P<t>[0-9A-Fa-f]+)")
_UNKNOWN_ENTRY = re.compile(
    r"^\*\*\*\* Unknown IVRS device entry type/length: 0x(?P<t>[0-9A-Fa-f]+)/0x"
    r"(?P<l>[0-9A-Fa-f]+) at offset 0x(?P<o>[0-9A-Fa-f]+)")

def _str_or_hex(value: str) -> Union[str, int]:
    return _quoted(value) if value.startswith('"') else _hex(value)


HEADER_FIELDS = {
    **ACPI_HEADER_FIELDS,
    "Virtualization Info": ("iv_info", _hex),
}

BLOCK_FIELDS = {
    "Flags (decoded below)": ("flags", _hex),
    "Length": ("length", _hex),
    "DeviceId": ("device_id", _hex),
    "Capability Offset": ("capability_offset", _hex),
    "Base Address": ("base_address", _hex),
    "PCI Segment Group": ("pci_segment", _hex),
    "Virtualization Info": ("info", _hex),
    "Feature Reporting": ("feature_reporting", _hex),
    "Attributes": ("attributes", _hex),
    "EFR Image": ("efr_image", _hex),
    "Auxiliary Data": ("auxiliary_data", _hex),
    "Start Address": ("start_address", _hex),
    "Memory Length": ("memory_length", _hex),
}

ENTRY_FIELDS = {
    "Device ID": ("device_id", _hex),
    "Data Setting (decoded below)": ("data_setting", _hex),
    "Source Used Device ID": ("source_device_id", _hex),
    "Handle": ("handle", _hex),
    "Variety": ("variety", _hex),
    "Extended Data": ("extended_data", _hex),
    "ACPI HID": ("acpi_hid", _str_or_hex),
    "ACPI CID": ("acpi_cid", _str_or_hex),
    "UID Format": ("uid_format", _hex),
    "UID Length": ("uid_length", _hex),
    "UID": ("uid", _str_or_hex),
}


def parse_dsl(text: str) -> Dict[str, Any]:
    """``{"header": {...}, "blocks": [{"offset", "type_id", ..., "entries": [...]}]}``;
    an unknown block is ``{"unknown": True, "type_id": N}``."""
    header: Dict[str, Any] = {}
    blocks: List[Dict[str, Any]] = []
    cur: Optional[Dict[str, Any]] = None
    entry: Optional[Dict[str, Any]] = None
    for line, field in dsl_lines(text):
        s = line.strip()
        mu = _UNKNOWN_BLOCK.match(s)
        if mu:
            blocks.append({"unknown": True, "type_id": int(mu.group("t"), 16), "entries": []})
            cur, entry = None, None
            continue
        me = _UNKNOWN_ENTRY.match(s)
        if me:
            # The entry's own fields follow as an ordinary "Subtable Type" line.
            continue
        if field is None:
            continue
        name, value, off = field
        if name == "Subtable Type":
            label = value.partition("[")[2]
            tid = _hex(value)
            if "Definition Block" in label:
                cur = {"offset": off, "type_id": tid, "entries": []}
                blocks.append(cur)
                entry = None
            elif "Device Entry" in label:
                if cur is None:
                    raise ValueError(f"device entry outside an IVHD: {line!r}")
                entry = {"offset": off, "type_id": tid}
                cur["entries"].append(entry)
            else:
                raise ValueError(f"unknown subtable label: {line!r}")
            continue
        if name == "Reserved":
            continue
        if cur is None:
            if name in HEADER_FIELDS:
                key, conv = HEADER_FIELDS[name]
                header[key] = conv(value)
                continue
            raise ValueError(f"unknown IVRS header field {name!r}")
        if entry is not None:
            if name not in ENTRY_FIELDS:
                raise ValueError(f"unknown device entry field {name!r}: {line!r}")
            key, conv = ENTRY_FIELDS[name]
            entry[key] = conv(value)
            continue
        if name not in BLOCK_FIELDS:
            raise ValueError(f"unknown IVRS block field {name!r}: {line!r}")
        key, conv = BLOCK_FIELDS[name]
        cur[key] = conv(value)
    return {"header": header, "blocks": blocks}


def parse_dsl_file(path: Union[str, Path]) -> Dict[str, Any]:
    return parse_dsl(read_dsl_file(path))


def compare_with_dsl(ivrs: Any, oracle: Dict[str, Any]) -> List[str]:
    """Every difference between a decoded :class:`~kdumptool.formats.ivrs.Ivrs` and
    the oracle, as readable lines (empty when they agree on every field)."""
    diffs = field_diffs("header", ivrs, oracle["header"])
    ours = list(ivrs.blocks)
    theirs = oracle["blocks"]
    # iasl stops the dump at nothing but the table's end; a block type it does not
    # know has no offset in its output: compare it by position and type.
    if len(ours) != len(theirs):
        diffs.append(f"{len(ours)} blocks decoded, iasl shows {len(theirs)}")
    for b, o in zip(ours, theirs):
        if o.get("unknown"):
            if b.type != "UNKNOWN" or b.type_id != o["type_id"]:
                diffs.append(f"block @0x{b.offset:x}: decoder {b.type} {b.type_id:#x}, "
                             f"iasl unknown type {o['type_id']:#x}")
            continue
        where = f"block @0x{o['offset']:x}"
        diffs += field_diffs(where, b, o, skip="entries")
        entries = list(b.device_entries)
        if len(entries) != len(o["entries"]):
            diffs.append(f"{where}: {len(entries)} device entries decoded, "
                         f"iasl {len(o['entries'])}")
        for e, oe in zip(entries, o["entries"]):
            diffs += field_diffs(f"{where} entry @0x{oe['offset']:x}", e, oe)
    return diffs
