"""Snappy raw-format decompression in pure Python: the fallback for makedumpfile's ``-p``
pages when cramjam is not installed for this interpreter.

Written from the format's description (google/snappy ``format_description.txt``): the
raw format (what ``snappy_compress`` writes; not the framing format) is a little-endian
base-128 varint of the uncompressed length, then elements whose first byte's low two
bits give the type:

- ``00`` literal: length - 1 in the upper six bits; 60..63 there mean 1..4 following
  little-endian bytes hold length - 1;
- ``01`` copy, 1-byte offset: length 4 + bits 2..4, offset = bits 5..7 << 8 | next byte;
- ``10`` copy, 2-byte offset: length 1 + upper six bits, offset a LE16;
- ``11`` copy, 4-byte offset: length 1 + upper six bits, offset a LE32.

Offset 0 is invalid; copies may overlap their own output. Every read is bounded and the
result must have exactly the declared length (at most ``max_size``); anything else is a
:class:`~kdumptool.errors.DecodeError` naming the input offset.
"""

from __future__ import annotations

from kdumptool.errors import DecodeError

_WHAT = "snappy stream"


def decompress(data: bytes, max_size: int) -> bytes:
    src = bytes(data)
    n = len(src)
    ip = 0
    size = shift = 0
    while True:
        if ip >= n:
            raise DecodeError(_WHAT, ip, "input ends inside the length varint")
        b = src[ip]
        ip += 1
        size |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 28:
            raise DecodeError(_WHAT, ip, "length varint longer than 5 bytes")
    if size > max_size:
        raise DecodeError(_WHAT, 0, f"declared length {size} exceeds {max_size}")
    out = bytearray()
    while ip < n:
        tag = src[ip]
        ip += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                k = length - 59
                if ip + k > n:
                    raise DecodeError(_WHAT, ip, "input ends inside a literal length")
                length = int.from_bytes(src[ip:ip + k], "little")
                ip += k
            length += 1
            if ip + length > n:
                raise DecodeError(_WHAT, ip, f"literal of {length} bytes runs past the input")
            if len(out) + length > size:
                raise DecodeError(_WHAT, ip, f"output exceeds the declared {size} bytes")
            out += src[ip:ip + length]
            ip += length
            continue
        if kind == 1:
            if ip + 1 > n:
                raise DecodeError(_WHAT, ip, "input ends inside a copy")
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | src[ip]
            ip += 1
        else:
            k = 2 if kind == 2 else 4
            if ip + k > n:
                raise DecodeError(_WHAT, ip, "input ends inside a copy")
            length = 1 + (tag >> 2)
            offset = int.from_bytes(src[ip:ip + k], "little")
            ip += k
        if offset == 0 or offset > len(out):
            raise DecodeError(_WHAT, ip, f"copy offset {offset} outside the {len(out)} bytes so far")
        if len(out) + length > size:
            raise DecodeError(_WHAT, ip, f"output exceeds the declared {size} bytes")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:
            chunk = bytes(out[start:])
            reps, rest = divmod(length, offset)
            out += chunk * reps + chunk[:rest]
    if len(out) != size:
        raise DecodeError(_WHAT, ip, f"stream ends after {len(out)} of {size} bytes")
    return bytes(out)
