"""Text dumps of configuration space as ``lspci -x``, ``-xxx`` and ``-xxxx`` print them (the
format pciutils reads back with ``lspci -F``), so a user's bug report becomes an input.

Format (pciutils lib/dump.c): a device line starting with a slot address
(``[DDDD:]BB:DD.F ...``), then hex lines ``OO: xx xx ... xx`` (16 bytes each, the offset
in hex, 2 digits for the first 256 bytes, 3 for the extended space). ``-vvv`` text may sit
between the device line and the hex lines; it is ignored here. Mail quoting (``> ``) and a
common indentation are stripped, so dumps pasted into mails and bug trackers read too.

A dump may hold fewer than 64 bytes of a device (``lspci -x`` on a truncated paste): such a
device is returned with its bytes and a warning; decoding it is the caller's choice.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from kdumptool.errors import DecodeError
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

_QUOTE = re.compile(r"^(?:\s*>)*\s?")
_SLOT = re.compile(
    r"^(?:(?P<dom>[0-9a-fA-F]{4,8}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-9a-fA-F]{2})\.(?P<fn>[0-7])(?:\s+(?P<rest>.*))?$"
)
_HEX = re.compile(r"^(?P<off>[0-9a-fA-F]{2,3}):(?P<bytes>(?:\s+[0-9a-fA-F]{2}){1,16})\s*$")


@dataclass(frozen=True)
class DumpedDevice:
    """One device of a text dump."""

    bdf: str  # normalised ``SSSS:BB:DD.F``
    description: str  # the rest of the device line (lspci's name for it)
    data: bytes  # contiguous bytes from offset 0 (gaps end the data)
    line: int  # 1-based line number of the device line
    text: Tuple[str, ...]  # the non-hex lines after the device line (``-v`` output), unquoted
    warnings: Tuple[str, ...] = ()


def _unquote(line: str) -> str:
    return _QUOTE.sub("", line, count=1).rstrip("\r\n")


def normalise_bdf(text: str, default_domain: int = 0) -> str:
    m = _SLOT.match(text.strip())
    if not m:
        raise DecodeError(text, None, "not a PCI address (BB:DD.F)")
    dom = int(m.group("dom"), 16) if m.group("dom") else default_domain
    return f"{dom:04x}:{int(m.group('bus'), 16):02x}:{int(m.group('dev'), 16):02x}.{m.group('fn')}"


class _Cur:
    def __init__(self, bdf: str, desc: str, line: int) -> None:
        self.bdf = bdf
        self.desc = desc
        self.line = line
        self.chunks: Dict[int, bytes] = {}
        self.text: List[str] = []
        self.warnings: List[str] = []

    def finish(self) -> Optional[DumpedDevice]:
        if not self.chunks:
            return None
        data = bytearray()
        warnings = list(self.warnings)
        off = 0
        while off in self.chunks:
            chunk = self.chunks[off]
            data += chunk
            off += len(chunk)
            if len(chunk) != 16:
                break
        rest = sorted(k for k in self.chunks if k >= off)
        if rest:
            warnings.append(f"bytes from 0x{rest[0]:x} ignored: gap at 0x{off:x}")
        return DumpedDevice(
            bdf=self.bdf,
            description=self.desc,
            data=bytes(data),
            line=self.line,
            text=tuple(self.text),
            warnings=tuple(warnings),
        )


def parse_lspci_dump(text: str, name: str = "lspci dump") -> List[DumpedDevice]:
    """All devices with hex bytes in ``text``. Devices without any hex line are skipped.

    Raises :class:`DecodeError` when no device with hex bytes is found at all.
    """
    devices: List[DumpedDevice] = []
    cur: Optional[_Cur] = None

    def finish() -> None:
        if cur is not None:
            dev = cur.finish()
            if dev is not None:
                devices.append(dev)

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _unquote(raw)
        stripped = line.strip()
        if not stripped:
            continue
        hm = _HEX.match(stripped)
        if hm and cur is not None:
            off = int(hm.group("off"), 16)
            vals = bytes(int(x, 16) for x in hm.group("bytes").split())
            if off % 16 or off >= 4096:
                cur.warnings.append(f"line {lineno}: odd hex offset 0x{off:x} ignored")
            elif off in cur.chunks:
                cur.warnings.append(f"line {lineno}: offset 0x{off:x} repeated; first kept")
            else:
                cur.chunks[off] = vals
            continue
        sm = _SLOT.match(stripped)
        if sm is not None:
            finish()
            cur = _Cur(normalise_bdf(stripped), (sm.group("rest") or "").strip(), lineno)
            continue
        if cur is not None:
            cur.text.append(line)
    finish()
    if not devices:
        raise DecodeError(name, None, "no device with hex bytes (expected lspci -x output)")
    return devices
