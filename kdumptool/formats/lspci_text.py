"""``lspci -nnvv`` / ``-nvv`` / ``-nnk`` text (what sos reports and bug reports carry), for
devices that come without hex bytes.

What the text holds and we keep, per device: the slot, class, vendor and device ids (the
``[vvvv:dddd]`` of ``-nn`` or the bare ``vvvv:dddd`` of ``-n``), revision and prog-if, the
``Control:`` and ``Status:`` words (the COMMAND and STATUS registers, bit for bit), the
``Subsystem:`` ids, a bridge's ``Bus:`` numbers, the PCI Express capability's offset,
version and port type, ``IOMMU group:`` and ``Kernel driver in use:``/``Kernel modules:``.

:func:`rebuild_config` writes those facts back into a 64-byte header (plus the Express
capability's first word when its offset is inside 256 bytes) so the one config decoder
reads them; every other byte is zero and the caller says so. Text without any ``-v``
output (no ``Control:`` line) leaves COMMAND unknown: ``command`` is None.

Whether the driver is known: ``lspci -v`` and ``-k`` print ``Kernel driver in use`` for
every device that has one, so in such text a device without that line has no driver.
A text with neither (plain ``lspci -nn``) leaves drivers unknown (``driver_known`` False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from kdumptool.errors import DecodeError
from kdumptool.formats.pciconfig import COMMAND_BITS, DEVSEL_NAMES, PORT_TYPES, STATUS_BITS

_SLOT = re.compile(r"^(?:(?P<dom>[0-9a-fA-F]{4,8}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-9a-fA-F]{2})\.(?P<fn>[0-7])\s+(?P<rest>.*)$")
# -nn: "Ethernet controller [0200]: Intel ... [8086:10d3] (rev 01) (prog-if 02 [NVM Express])"
_NN = re.compile(r"^(?P<cname>.*?)\s*\[(?P<cls>[0-9a-fA-F]{4})\]: (?P<name>.*?)\s*\[(?P<ven>[0-9a-fA-F]{4}):(?P<dev>[0-9a-fA-F]{4})\](?P<tail>.*)$")
# -n: "0200: 8086:10d3 (rev 01)"
_N = re.compile(r"^(?P<cls>[0-9a-fA-F]{4}): (?P<ven>[0-9a-fA-F]{4}):(?P<dev>[0-9a-fA-F]{4})(?P<tail>.*)$")
_REV = re.compile(r"\(rev ([0-9a-fA-F]{2})\)")
_PROGIF = re.compile(r"\(prog-if ([0-9a-fA-F]{2})")
_SUBSYS = re.compile(r"\[([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\]\s*$|^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")
_BUS = re.compile(r"primary=([0-9a-fA-F]{2}), secondary=([0-9a-fA-F]{2}), subordinate=([0-9a-fA-F]{2})")
_EXP = re.compile(r"^Capabilities: \[([0-9a-fA-F]{2,3})\] Express \(v(\d)\) (.+?)(?: \(Slot[+-]\))?(?:,|$)")
_QUOTE = re.compile(r"^(?:\s*>)*\s?")


@dataclass(frozen=True)
class TextDevice:
    bdf: str
    line: int
    class_code: int  # 24 bits (prog-if 0 when the text does not say)
    vendor_id: int
    device_id: int
    revision: int
    command: Optional[int]  # None: no Control: line
    status: Optional[int]
    subsystem: Optional[Tuple[int, int]]
    buses: Optional[Tuple[int, int, int]]
    express: Optional[Tuple[int, int, int]]  # (offset, version, port type)
    iommu_group: Optional[int]
    driver: Optional[str]
    modules: Tuple[str, ...]
    verbose: bool  # the text has -v output (Control: line) for this device


def _words(text: str, bits: Tuple[Tuple[int, str], ...]) -> int:
    words = set(text.split())
    value = 0
    for bit, name in bits:
        if f"{name}+" in words:
            value |= bit
    return value


def parse_lspci_text(text: str, name: str = "lspci text") -> Tuple[List[TextDevice], bool]:
    """The devices of ``text`` and whether it tells drivers (``-v`` or ``-k`` output).

    Raises :class:`DecodeError` when no device line carries ids (plain ``lspci`` or
    ``lspci -k`` without ``-n``: names are not ids).
    """
    devices: List[TextDevice] = []
    cur: Optional[dict] = None
    drivers_told = False
    unnumbered = 0

    def finish() -> None:
        if cur is not None:
            devices.append(TextDevice(**cur))

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _QUOTE.sub("", raw, count=1).rstrip()
        s = line.strip()
        if not s:
            continue
        m = _SLOT.match(s) if not line[:1].isspace() else None
        if m is not None:
            rest = m.group("rest")
            h = _NN.match(rest) or _N.match(rest)
            finish()
            cur = None
            if h is None:
                unnumbered += 1
                continue
            dom = int(m.group("dom"), 16) if m.group("dom") else 0
            bdf = f"{dom:04x}:{int(m.group('bus'), 16):02x}:{int(m.group('dev'), 16):02x}.{m.group('fn')}"
            tail = h.group("tail")
            rev = _REV.search(tail)
            pif = _PROGIF.search(tail)
            cur = dict(
                bdf=bdf, line=lineno,
                class_code=(int(h.group("cls"), 16) << 8) | (int(pif.group(1), 16) if pif else 0),
                vendor_id=int(h.group("ven"), 16), device_id=int(h.group("dev"), 16),
                revision=int(rev.group(1), 16) if rev else 0,
                command=None, status=None, subsystem=None, buses=None, express=None,
                iommu_group=None, driver=None, modules=(), verbose=False,
            )
            continue
        if cur is None:
            continue
        if s.startswith("Control:") and cur["command"] is None:
            cur["command"] = _words(s[8:], COMMAND_BITS)
            cur["verbose"] = True
            drivers_told = True
        elif s.startswith("Status:") and cur["status"] is None and cur["command"] is not None:
            st = _words(s[7:], STATUS_BITS)
            dm = re.search(r"DEVSEL=(\w+|\?\?)", s)
            if dm and dm.group(1) in DEVSEL_NAMES:
                st |= DEVSEL_NAMES.index(dm.group(1)) << 9
            cur["status"] = st
        elif s.startswith("Subsystem:"):
            sm = _SUBSYS.search(s[10:].strip())
            if sm:
                a, b = (sm.group(1), sm.group(2)) if sm.group(1) else (sm.group(3), sm.group(4))
                cur["subsystem"] = (int(a, 16), int(b, 16))
        elif s.startswith("Bus:"):
            bm = _BUS.search(s)
            if bm:
                cur["buses"] = tuple(int(x, 16) for x in bm.groups())
        elif s.startswith("Capabilities:"):
            em = _EXP.match(s)
            if em and cur["express"] is None:
                words = em.group(3).strip()
                ptype = next((k for k, (_, w) in PORT_TYPES.items() if w == words), None)
                if ptype is not None:
                    cur["express"] = (int(em.group(1), 16), int(em.group(2)), ptype)
        elif s.startswith("IOMMU group:"):
            try:
                cur["iommu_group"] = int(s.split(":", 1)[1])
            except ValueError:
                pass
        elif s.startswith("Kernel driver in use:"):
            cur["driver"] = s.split(":", 1)[1].strip() or None
            drivers_told = True
        elif s.startswith("Kernel modules:"):
            cur["modules"] = tuple(x.strip() for x in s.split(":", 1)[1].split(",") if x.strip())
            drivers_told = True
    finish()
    if not devices:
        why = (f"{unnumbered} device lines without ids: use lspci -nn (or -n) output"
               if unnumbered else "no lspci device line (BB:DD.F ...)")
        raise DecodeError(name, None, why)
    return devices, drivers_told


def rebuild_config(d: TextDevice) -> bytes:
    """A header carrying exactly the text's facts (zeros elsewhere); see the module doc."""
    b = bytearray(64)
    b[0:2] = d.vendor_id.to_bytes(2, "little")
    b[2:4] = d.device_id.to_bytes(2, "little")
    b[4:6] = (d.command or 0).to_bytes(2, "little")
    status = d.status or 0
    if d.express is not None and d.express[0] < 0x100:
        status |= 0x0010  # capability list
    b[6:8] = status.to_bytes(2, "little")
    b[8] = d.revision
    b[9:12] = d.class_code.to_bytes(3, "little")
    bridge = d.buses is not None or (d.class_code >> 8) == 0x0604
    b[0x0E] = 1 if bridge else 0
    if bridge and d.buses is not None:
        b[0x18], b[0x19], b[0x1A] = d.buses
    if not bridge and d.subsystem is not None:
        b[0x2C:0x2E] = d.subsystem[0].to_bytes(2, "little")
        b[0x2E:0x30] = d.subsystem[1].to_bytes(2, "little")
    if d.express is not None and 0x40 <= d.express[0] <= 0xF8:
        off, ver, ptype = d.express
        b += bytes(max(0, off + 4 - len(b)))
        b[0x34] = off
        b[off] = 0x10
        b[off + 1] = 0
        b[off + 2:off + 4] = ((ver & 0xF) | (ptype << 4)).to_bytes(2, "little")
        b += bytes((-len(b)) % 4)
    return bytes(b)
