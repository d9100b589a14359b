"""LZO1X decompression in pure Python: the fallback for makedumpfile's ``-l`` pages when no
compiled LZO module (lzokay, python-lzo) is installed for this interpreter.

Written from the format's description (Linux ``Documentation/staging/lzo.rst``, "LZO
stream format as understood by Linux's LZO decompressor"; the stream is LZO1X as
makedumpfile writes it with ``lzo1x_1_compress``). An instruction is one opcode byte; the
``state`` is the number of literals the previous instruction copied (0..3, 4 for "4 or
more"), and it changes how opcodes 0..15 read:

- first byte 18..21: copy ``byte - 17`` (1..4) literals; 22..255: copy ``byte - 17``
  literals, state 4; 0..17: a regular instruction.
- ``0000LLLL`` with state 0: a literal run of ``3 + L`` bytes (L == 0: ``18 + 255 *
  zero bytes + the next non-zero byte``), state 4.
- ``0000DDSS`` with state 1..3: copy 2 bytes from ``distance = (H << 2) + D + 1``;
  with state 4: copy 3 bytes from ``(H << 2) + D + 2049`` (H: the next byte).
- ``0001HLLL``: copy ``2 + L`` bytes (L == 0: ``9 + 255 * zeros + byte``) from
  ``16384 + (H << 14) + (LE16 >> 2)``; distance 16384 is the end of the stream.
- ``001LLLLL``: copy ``2 + L`` bytes (L == 0: ``33 + ...``) from ``(LE16 >> 2) + 1``.
- ``01LDDDSS``: copy ``3 + L`` bytes from ``(H << 3) + D + 1``.
- ``1LLDDDSS``: copy ``5 + L`` bytes from ``(H << 3) + D + 1``.

After each copy, ``S`` (the low two bits of the opcode or of the LE16) literals follow
and become the state. Copies may overlap their own output (distance < length).

Every read and every copy is bounded: input past its end, a distance before the start of
the output, output beyond ``max_size`` or a stream without its end marker is a
:class:`~kdumptool.errors.DecodeError` naming the input offset.
"""

from __future__ import annotations

from kdumptool.errors import DecodeError

_WHAT = "LZO1X stream"


def _fail(pos: int, reason: str) -> DecodeError:
    return DecodeError(_WHAT, pos, reason)


def decompress(data: bytes, max_size: int) -> bytes:
    """Decompress one LZO1X stream whose output is at most ``max_size`` bytes."""
    src = bytes(data)
    n = len(src)
    out = bytearray()
    ip = 0

    def need(k: int) -> None:
        if ip + k > n:
            raise _fail(ip, f"input ends: {k} more byte(s) needed, {n - ip} left")

    def run_length(base: int) -> int:
        # ``base`` plus 255 per zero byte plus the first non-zero byte.
        nonlocal ip
        zeros = 0
        while True:
            need(1)
            b = src[ip]
            ip += 1
            if b:
                return base + 255 * zeros + b
            zeros += 1
            if zeros > max_size // 255 + 1:
                raise _fail(ip, "run length longer than the output can be")

    def literals(k: int) -> None:
        nonlocal ip
        need(k)
        if len(out) + k > max_size:
            raise _fail(ip, f"output exceeds {max_size} bytes")
        out.extend(src[ip:ip + k])
        ip += k

    def copy(dist: int, length: int) -> None:
        start = len(out) - dist
        if start < 0:
            raise _fail(ip, f"match distance {dist} reaches before the start of the output")
        if len(out) + length > max_size:
            raise _fail(ip, f"output exceeds {max_size} bytes")
        if dist >= length:
            out.extend(out[start:start + length])
        else:  # overlapping: the run repeats the last ``dist`` bytes
            chunk = bytes(out[start:])
            reps, rest = divmod(length, dist)
            out.extend(chunk * reps + chunk[:rest])

    need(1)
    state = 0
    first = src[0]
    if first > 17:
        ip = 1
        k = first - 17
        literals(k)
        state = 4 if k >= 4 else k
    while True:
        need(1)
        op = src[ip]
        ip += 1
        if op < 16:
            if state == 0:
                length = 3 + op if op else run_length(18)
                literals(length)
                state = 4
                continue
            need(1)
            h = src[ip]
            ip += 1
            if state == 4:
                copy((h << 2) + ((op >> 2) & 3) + 2049, 3)
            else:
                copy((h << 2) + ((op >> 2) & 3) + 1, 2)
            s = op & 3
        elif op < 32:
            length = 2 + (op & 7) if op & 7 else run_length(9)
            need(2)
            le = src[ip] | (src[ip + 1] << 8)
            ip += 2
            dist = 16384 + ((op & 8) << 11) + (le >> 2)
            if dist == 16384:
                if ip != n:
                    raise _fail(ip, f"{n - ip} byte(s) after the end marker")
                return bytes(out)
            copy(dist, length)
            s = le & 3
        elif op < 64:
            length = 2 + (op & 31) if op & 31 else run_length(33)
            need(2)
            le = src[ip] | (src[ip + 1] << 8)
            ip += 2
            copy((le >> 2) + 1, length)
            s = le & 3
        else:
            need(1)
            h = src[ip]
            ip += 1
            length = (3 + ((op >> 5) & 1)) if op < 128 else (5 + ((op >> 5) & 3))
            copy((h << 3) + ((op >> 2) & 7) + 1, length)
            s = op & 3
        if s:
            literals(s)
        state = s
