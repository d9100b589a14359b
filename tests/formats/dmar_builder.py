"""Build synthetic DMAR tables in code (drgn's elfwriter idea) for edge cases.

Independent of the decoder: plain ``struct.pack`` from the VT-d spec's byte layout.
"""

from __future__ import annotations

import struct
from typing import Iterable, Sequence, Tuple


def scope(stype: int, bus: int, path: Sequence[Tuple[int, int]], enum_id: int = 0,
          flags: int = 0, length: int = -1) -> bytes:
    body = b"".join(bytes([d, f]) for d, f in path)
    ln = 6 + len(body) if length < 0 else length
    return bytes([stype, ln, flags, 0, enum_id, bus]) + body


def drhd(base: int, scopes: Iterable[bytes] = (), flags: int = 0, segment: int = 0,
         size: int = 0, length: int = -1) -> bytes:
    body = b"".join(scopes)
    ln = 16 + len(body) if length < 0 else length
    return struct.pack("<HHBBHQ", 0, ln, flags, size, segment, base) + body


def rmrr(base: int, end: int, scopes: Iterable[bytes] = (), segment: int = 0,
         length: int = -1) -> bytes:
    body = b"".join(scopes)
    ln = 24 + len(body) if length < 0 else length
    return struct.pack("<HHHHQQ", 1, ln, 0, segment, base, end) + body


def atsr(scopes: Iterable[bytes] = (), flags: int = 0, segment: int = 0) -> bytes:
    body = b"".join(scopes)
    return struct.pack("<HHBBH", 2, 8 + len(body), flags, 0, segment) + body


def rhsa(base: int, pxm: int) -> bytes:
    return struct.pack("<HHIQI", 3, 20, 0, base, pxm)


def andd(number: int, name: str) -> bytes:
    body = name.encode() + b"\0"
    return struct.pack("<HH3sB", 4, 8 + len(body), b"\0\0\0", number) + body


def satc(scopes: Iterable[bytes] = (), flags: int = 0, segment: int = 0) -> bytes:
    body = b"".join(scopes)
    return struct.pack("<HHBBH", 5, 8 + len(body), flags, 0, segment) + body


def sidp(scopes: Iterable[bytes] = (), segment: int = 0) -> bytes:
    body = b"".join(scopes)
    return struct.pack("<HHHH", 6, 8 + len(body), 0, segment) + body


def unknown(type_id: int, payload: bytes) -> bytes:
    return struct.pack("<HH", type_id, 4 + len(payload)) + payload


def table(structures: Iterable[bytes], haw: int = 38, flags: int = 1,
          signature: bytes = b"DMAR", length: int = -1, fix_checksum: bool = True) -> bytes:
    body = b"".join(structures)
    ln = 48 + len(body) if length < 0 else length
    hdr = struct.pack("<4sIBB6s8sI4sI", signature, ln, 1, 0, b"KDTEST", b"SYNTHTBL", 1,
                      b"KDT ", 1)
    data = bytearray(hdr + bytes([haw, flags]) + bytes(10) + body)
    if fix_checksum:
        data[9] = (-sum(data[: min(ln, len(data))])) & 0xFF
    return bytes(data)
