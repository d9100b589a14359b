"""Build synthetic IVRS tables in code for the entry kinds real tables lack and for
malformed input. Independent of the decoder: plain ``struct.pack`` from the AMD IOMMU
specification's byte layout (#48882 section 5.2) and Linux drivers/iommu/amd/init.c
(``struct ivhd_header``, ``struct ivhd_entry``, ``struct ivmd_header``)."""

from __future__ import annotations

import struct
from typing import Iterable


def dev4(type_id: int, devid: int, data: int = 0) -> bytes:
    return struct.pack("<BHB", type_id, devid, data)


def alias(type_id: int, devid: int, source: int, data: int = 0) -> bytes:
    return struct.pack("<BHBBHB", type_id, devid, data, 0, source, 0)


def ext(type_id: int, devid: int, ext_data: int, data: int = 0) -> bytes:
    return struct.pack("<BHBI", type_id, devid, data, ext_data)


def special(handle: int, source: int, variety: int, data: int = 0) -> bytes:
    return struct.pack("<BHBBHB", 0x48, 0, data, handle, source, variety)


def hid(devid: int, hid_: bytes, cid: bytes = b"\0" * 8, uid_format: int = 2,
        uid: bytes = b"", data: int = 0, uid_length: int = -1) -> bytes:
    ln = len(uid) if uid_length < 0 else uid_length
    return (struct.pack("<BHB", 0xF0, devid, data) + hid_.ljust(8, b"\0")[:8]
            + cid.ljust(8, b"\0")[:8] + bytes([uid_format, ln]) + uid)


def ivhd10(base: int, entries: Iterable[bytes] = (), devid: int = 2, flags: int = 0xB0,
           segment: int = 0, info: int = 0, feature: int = 0, length: int = -1) -> bytes:
    body = b"".join(entries)
    ln = 24 + len(body) if length < 0 else length
    return struct.pack("<BBHHHQHHI", 0x10, flags, ln, devid, 0x40, base, segment, info,
                       feature) + body


def ivhd11(base: int, entries: Iterable[bytes] = (), type_id: int = 0x11, devid: int = 2,
           flags: int = 0x30, segment: int = 0, info: int = 0, attributes: int = 0,
           efr: int = 0, efr2: int = 0, length: int = -1) -> bytes:
    body = b"".join(entries)
    ln = 40 + len(body) if length < 0 else length
    return struct.pack("<BBHHHQHHIQQ", type_id, flags, ln, devid, 0x40, base, segment,
                       info, attributes, efr, efr2) + body


def ivmd(type_id: int, start: int, size: int, devid: int = 0, aux: int = 0,
         flags: int = 0x08, segment: int = 0) -> bytes:
    return struct.pack("<BBHHHH6sQQ", type_id, flags, 32, devid, aux, segment, b"\0" * 6,
                       start, size)


def block(type_id: int, payload: bytes) -> bytes:
    return struct.pack("<BBH", type_id, 0, 4 + len(payload)) + payload


def table(blocks: Iterable[bytes], iv_info: int = 0x00203041, revision: int = 2,
          fix_checksum: bool = True) -> bytes:
    body = b"".join(blocks)
    length = 48 + len(body)
    hdr = (b"IVRS" + struct.pack("<IBB", length, revision, 0) + b"KDTEST" + b"BUILDER "
           + struct.pack("<I", 1) + b"KDT " + struct.pack("<I", 1)
           + struct.pack("<I", iv_info) + b"\0" * 8)
    data = bytearray(hdr + body)
    if fix_checksum:
        data[9] = (-sum(data)) & 0xFF
    return bytes(data)
