"""ACPI tables in text form: ``acpidump`` output and iasl's "Raw Table Data" hex.

``acpidump`` (ACPICA) prints each table as a ``SIG @ 0xADDRESS`` line followed by
hex lines ``    0000: 44 4D 41 52 ...  DMAR....`` (offset, up to 16 bytes, ASCII).
``iasl -d`` ends its disassembly with the same hex lines under ``Raw Table Data:``, with
``//`` before the ASCII column. Both decode to the raw table bytes here; the ASCII
column is ignored. Anything else that is text is refused with the line that failed.
"""

from __future__ import annotations

import re
from typing import List, Optional

from kdumptool.errors import DecodeError, UnsupportedFormat
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

_TABLE_LINE = re.compile(r"^\s*([A-Za-z0-9_!$ ]{4}) @ 0x([0-9A-Fa-f]+)\s*$")
_RAW_HEADER = re.compile(r"^\s*Raw Table Data: Length (\d+)")
# Offset, then 1..16 bytes each as " XX"; the ASCII column that follows is separated by
# two or more spaces (or "//"), so a single-space-hex repetition cannot run into it.
_HEX_LINE = re.compile(r"^\s*([0-9A-Fa-f]{4,8}):((?: [0-9A-Fa-f]{2}){1,16})(?:\s|$)")


@dataclass(frozen=True)
class TextTable:
    signature: str
    address: Optional[int]
    data: bytes
    line: int  # 1-based line of the table's first line


def looks_like_text(data: bytes) -> bool:
    """True for input that is plain text (acpidump output), not a binary table.

    A binary ACPI table always has NUL bytes in its header (the high bytes of the
    32-bit length, for any table under 16 MiB); text never does.
    """
    head = data[:4096]
    return bool(head) and b"\0" not in head


def parse_acpi_text(text: str, name: str = "<text>") -> List[TextTable]:
    """Every table in an acpidump text dump (or an iasl .dsl's raw table data)."""
    tables: List[TextTable] = []
    sig: Optional[str] = None
    addr: Optional[int] = None
    start_line = 0
    buf = bytearray()
    in_table = False

    def close() -> None:
        nonlocal in_table
        if in_table and buf:
            tables.append(TextTable(sig or _sig_of(bytes(buf)), addr, bytes(buf), start_line))
        in_table = False

    for lineno, line in enumerate(text.splitlines(), 1):
        m = _TABLE_LINE.match(line)
        if m:
            close()
            sig, addr, start_line = m.group(1), int(m.group(2), 16), lineno
            buf = bytearray()
            in_table = True
            continue
        if _RAW_HEADER.match(line):
            close()
            sig, addr, start_line = None, None, lineno
            buf = bytearray()
            in_table = True
            continue
        h = _HEX_LINE.match(line)
        if h and in_table:
            off = int(h.group(1), 16)
            if off != len(buf):
                raise DecodeError(
                    name, lineno, f"hex line at offset 0x{off:x}, expected 0x{len(buf):x}", unit="line"
                )
            buf.extend(bytes.fromhex(h.group(2)))
            continue
        if h and not in_table and off_is_zero(h.group(1)):
            # Hex lines without a "SIG @ addr" line: one anonymous table.
            sig, addr, start_line = None, None, lineno
            buf = bytearray(bytes.fromhex(h.group(2)))
            in_table = True
            continue
        if in_table and buf and line.strip():
            # Any other non-blank line ends a table's hex block.
            close()
    close()
    return tables


def off_is_zero(s: str) -> bool:
    return int(s, 16) == 0


def _sig_of(data: bytes) -> str:
    return data[:4].decode("latin-1") if len(data) >= 4 else "????"


def extract_table(data: bytes, signature: str = "DMAR", name: str = "<input>") -> bytes:
    """The raw bytes of table ``signature`` from ``data``: returned as is when binary,
    taken from the acpidump text form otherwise.

    A text dump with no such table but an AMD IVRS says so (UnsupportedFormat); one with
    no table at all is a DecodeError.
    """
    if not looks_like_text(data):
        return data
    text = data.decode("utf-8", "replace")
    tables = parse_acpi_text(text, name)
    if not tables:
        raise DecodeError(name, None, "text input holds no acpidump hex table")
    for t in tables:
        if t.signature == signature:
            return t.data
    sigs = [t.signature for t in tables]
    if "IVRS" in sigs and signature == "DMAR":
        raise UnsupportedFormat(f"{name}: AMD IOMMU (IVRS): not an Intel VT-d table; "
                                "decode it with `kdumptool ivrs`")
    if "DMAR" in sigs and signature == "IVRS":
        raise UnsupportedFormat(f"{name}: Intel VT-d table (DMAR): not an AMD IVRS table; "
                                "decode it with `kdumptool dmar`")
    if len(tables) == 1:
        # One table under another name: let the binary decoder name what it is.
        return tables[0].data
    raise UnsupportedFormat(
        f"{name}: no {signature} table in this acpidump text (tables: {', '.join(sigs)})"
    )
