"""What the two ``iasl -d`` oracles (tests/dsl_oracle.py for DMAR, tests/ivrs_dsl_oracle.py
for IVRS) read alike: iasl's ``[HexOffset DecimalOffset ByteLength]  Field Name : value``
lines in the current form (``[030h 0048 002h]``) and the older one (``[030h 0048   2]``),
the standard ACPI table header, and the comparison of a decoded record's fields with the
oracle's, one readable line per difference. Knows nothing of either binary layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

_FIELD = re.compile(
    r"^\[(?P<hex>[0-9A-Fa-f]+)h (?P<dec>\d+)\s+(?P<len>[0-9A-Fa-f]+h|\d+)\]\s+"
    r"(?P<name>.+?)\s+:\s?(?P<value>.*)$"
)
_QUOTED = re.compile(r'^"(.*)"')


def hex_value(value: str) -> int:
    return int(value.split()[0], 16)


def quoted(value: str) -> str:
    m = _QUOTED.match(value)
    if not m:
        raise ValueError(f"expected a quoted string: {value!r}")
    return m.group(1)


#: The ACPI table header (ACPI 6.5, 5.2.6) as iasl names its fields.
ACPI_HEADER_FIELDS: Dict[str, Tuple[str, Callable[[str], Any]]] = {
    "Signature": ("signature", quoted),
    "Table Length": ("length", hex_value),
    "Revision": ("revision", hex_value),
    "Checksum": ("checksum", hex_value),
    "Oem ID": ("oem_id", quoted),
    "Oem Table ID": ("oem_table_id", quoted),
    "Oem Revision": ("oem_revision", hex_value),
    "Asl Compiler ID": ("asl_compiler_id", quoted),
    "Asl Compiler Revision": ("asl_compiler_revision", hex_value),
}


def dsl_lines(text: str) -> Iterator[Tuple[str, Optional[Tuple[str, str, int]]]]:
    """Each line up to ``Raw Table Data`` with its field (name, value, offset), or None for
    a line that is not a field; raises when the two offset columns disagree."""
    for line in text.splitlines():
        if line.startswith("Raw Table Data"):
            break
        m = _FIELD.match(line.strip())
        if not m:
            yield line, None
            continue
        off = int(m.group("hex"), 16)
        if int(m.group("dec")) != off:
            raise ValueError(f"offset columns disagree: {line!r}")
        yield line, (m.group("name"), m.group("value").strip(), off)


def read_dsl_file(path: Union[str, Path]) -> str:
    return Path(path).read_text(encoding="latin-1")


def field_diffs(where: str, record: object, fields: Dict[str, Any], skip: str = "") -> List[str]:
    """``{where} {key}: decoder ..., iasl ...`` for each oracle field (but ``skip``, its
    list of children) the record holds otherwise; a tuple compares equal to a list."""
    diffs = []
    for key, want in fields.items():
        if key == skip:
            continue
        got = getattr(record, key, None)
        if isinstance(got, tuple) and isinstance(want, list):
            got = list(got)
        if got != want:
            diffs.append(f"{where} {key}: decoder {got!r}, iasl {want!r}")
    return diffs
