"""The PCI ID database (``pci.ids``, https://pci-ids.ucw.cz) as pciutils and hwdata ship it.

Layout (the file's own header describes it; lspci's ``-n`` shows numbers instead)::

    vendor  vendor_name
    <TAB>device  device_name
    <TAB><TAB>subvendor subdevice  subsystem_name
    C class  class_name
    <TAB>subclass  subclass_name
    <TAB><TAB>prog-if  prog-if_name

ids are lower-case hex (4 digits for vendor/device/subsystem, 2 for class fields) and two
spaces separate the id from its name. ``#`` starts a comment line. Pure: text in, a frozen
record out. A line that does not fit is counted in ``malformed`` (line number, reason) and
skipped, as lspci skips what it cannot parse; decoding goes on.
"""

from __future__ import annotations

import re
from typing import AbstractSet, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from kdumptool.formats.frozen import dataclass, field  # records made without dataclasses: start-up

_HEX4 = re.compile(r"[0-9a-fA-F]{4}\Z")
_HEX2 = re.compile(r"[0-9a-fA-F]{2}\Z")

#: How many malformed lines are kept (their count is always exact).
MAX_MALFORMED = 20


@dataclass(frozen=True)
class PciIds:
    vendors: Mapping[int, str] = field(default_factory=dict)
    devices: Mapping[Tuple[int, int], str] = field(default_factory=dict)
    subsystems: Mapping[Tuple[int, int, int, int], str] = field(default_factory=dict)
    classes: Mapping[int, str] = field(default_factory=dict)  # base class
    subclasses: Mapping[Tuple[int, int], str] = field(default_factory=dict)
    prog_ifs: Mapping[Tuple[int, int, int], str] = field(default_factory=dict)
    version: Optional[str] = None  # the header's "Version:" line
    malformed: Tuple[Tuple[int, str], ...] = ()  # (1-based line, reason), first MAX_MALFORMED
    malformed_count: int = 0
    #: When decoded for some vendors only (``parse_pci_ids(text, vendors=...)``): those
    #: vendors. ``devices`` and ``subsystems`` then hold theirs only, and a look-up of
    #: another vendor's device raises (every vendor name and class is still there).
    only_vendors: Optional[AbstractSet[int]] = None

    # Look-ups, with lspci's words for what the database lacks.

    def vendor(self, vendor_id: int) -> Optional[str]:
        return self.vendors.get(vendor_id)

    def device_only(self, vendor_id: int, device_id: int) -> Optional[str]:
        """The device's own name (without the vendor's), None when the database lacks it."""
        if self.only_vendors is not None and vendor_id not in self.only_vendors:
            raise ValueError(f"pci.ids decoded for vendors {sorted(self.only_vendors)} only, "
                             f"not {vendor_id:04x}")
        return self.devices.get((vendor_id, device_id))

    def device(self, vendor_id: int, device_id: int) -> str:
        """``Vendor Device`` as lspci prints it (``Device 10d3`` for an unknown device)."""
        v = self.vendors.get(vendor_id)
        d = self.device_only(vendor_id, device_id)
        if v is None:
            return f"Device {vendor_id:04x}:{device_id:04x}"
        return f"{v} {d if d is not None else f'Device {device_id:04x}'}"

    def subsystem(self, vendor_id: int, device_id: int, sub_vendor: int, sub_device: int) -> str:
        """The subsystem as lspci -v prints it: ``Red Hat, Inc. QEMU Virtual Machine``."""
        name = self.subsystems.get((vendor_id, device_id, sub_vendor, sub_device))
        if name is None and (vendor_id, device_id) == (sub_vendor, sub_device):
            name = self.device_only(vendor_id, device_id)  # lspci does the same
        elif name is None:
            self.device_only(vendor_id, device_id)  # refused when this vendor was not decoded
        v = self.vendors.get(sub_vendor)
        if v is None:
            return f"Device {sub_vendor:04x}:{sub_device:04x}"
        if name is None:
            d = f"Device {sub_device:04x}"
        else:
            d = name
        return f"{v} {d}"

    def class_name(self, class_code: int) -> str:
        """As lspci: the subclass name (``Ethernet controller``); for a subclass the
        database lacks, the base class name and the number (``Unclassified device [0002]``);
        ``Class 0002`` when neither is known. ``class_code`` is the 24-bit register."""
        base, sub = class_code >> 16, (class_code >> 8) & 0xFF
        name = self.subclasses.get((base, sub))
        if name is not None:
            return name
        b = self.classes.get(base)
        return f"{b} [{base:02x}{sub:02x}]" if b is not None else f"Class {base:02x}{sub:02x}"

    def prog_if(self, class_code: int) -> Optional[str]:
        base, sub, pi = class_code >> 16, (class_code >> 8) & 0xFF, class_code & 0xFF
        return self.prog_ifs.get((base, sub, pi))


def _split(body: str) -> Optional[Tuple[str, str]]:
    """``"8086  Intel Corporation"`` -> ("8086", "Intel Corporation")."""
    parts = body.split(None, 1)
    if len(parts) != 2 or not parts[1].strip():
        return None
    return parts[0], parts[1].strip()


#: Line breaks ``str.splitlines`` knows besides ``\n``: a text with any of them is decoded
#: whole (the block search below splits at ``\n`` only).
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: A line that is not indented and not a comment follows: where blocks begin (a search
#: for the newline is 5 times faster than ``^`` with re.M).
_TOP_LINE = re.compile(r"\n[^\t\n#]")
_VERSION = "\n#\tVersion:"


def _numbered_lines(text: str, vendors: Optional[AbstractSet[int]]) -> Iterator[Tuple[int, str]]:
    """(1-based line number, line) of every line, or with ``vendors``, of every line but the
    device and subsystem lines of the other vendors' blocks (skipped without looking at
    them: most of the 36,000 lines of today's database)."""
    if vendors is None or _OTHER_BREAKS.search(text):
        yield from enumerate(text.splitlines(), 1)
        return
    starts = [0] if text[:1] not in ("", "\t", "\n", "#") else []
    starts += [m.start() + 1 for m in _TOP_LINE.finditer(text)]
    ends = starts[1:] + [len(text)]
    first = starts[0] if starts else len(text)
    yield from enumerate(text[:first].splitlines(), 1)  # the header: comments, the version
    lineno = 1 + text.count("\n", 0, first)
    keep = False
    pos = first
    for start, end in zip(starts, ends):
        lineno += text.count("\n", pos, start)
        pos = start
        nl = text.find("\n", start, end)
        head = text[start:end if nl < 0 else nl]
        line = head.rstrip()
        if line:  # a blank line (spaces) ends no block, as in the whole decode
            p = _split(line) if not line.startswith("C ") else None
            keep = line.startswith("C ") or (p is not None and _HEX4.match(p[0]) is not None
                                             and int(p[0], 16) in vendors)
        if keep:
            for n, raw in enumerate(text[start:end].splitlines()):
                yield lineno + n, raw
            continue
        yield lineno, head
        v = text.find(_VERSION, start, end)  # the version comment, wherever it is
        while v >= 0:
            e = text.find("\n", v + 1, end)
            yield lineno + text.count("\n", start, v + 1), text[v + 1:end if e < 0 else e]
            v = text.find(_VERSION, v + 1, end)


def parse_pci_ids(text: str, vendors: Optional[Iterable[int]] = None) -> PciIds:
    """Decode a whole ``pci.ids`` text; with ``vendors``, the devices and subsystems of
    those vendors only (every vendor name and class still): what naming a few devices
    needs, in a fraction of the time (the kdump kernel's ``record``). Malformed lines are
    then counted among the lines read."""
    only = None if vendors is None else frozenset(vendors)
    vendors_: Dict[int, str] = {}
    devices: Dict[Tuple[int, int], str] = {}
    subsystems: Dict[Tuple[int, int, int, int], str] = {}
    classes: Dict[int, str] = {}
    subclasses: Dict[Tuple[int, int], str] = {}
    prog_ifs: Dict[Tuple[int, int, int], str] = {}
    malformed: List[Tuple[int, str]] = []
    count = 0
    version: Optional[str] = None
    vendor: Optional[int] = None
    device: Optional[int] = None
    cls: Optional[int] = None
    sub: Optional[int] = None

    def bad(lineno: int, reason: str) -> None:
        nonlocal count
        count += 1
        if len(malformed) < MAX_MALFORMED:
            malformed.append((lineno, reason))

    for lineno, raw in _numbered_lines(text, only):
        line = raw.rstrip()
        if not line:
            continue
        if line.startswith("#"):
            if version is None and line.startswith("#\tVersion:"):
                version = line.split(":", 1)[1].strip() or None
            continue
        depth = len(line) - len(line.lstrip("\t"))
        body = line[depth:]
        if depth == 0:
            vendor = device = cls = sub = None
            if body.startswith("C "):
                p = _split(body[2:])
                if p is None or not _HEX2.match(p[0]):
                    bad(lineno, "class line is not 'C cc  name'")
                    continue
                cls = int(p[0], 16)
                classes[cls] = p[1]
                continue
            p = _split(body)
            if p is None or not _HEX4.match(p[0]):
                # other top-level lists (none in today's file) end the current block
                bad(lineno, "vendor line is not 'vvvv  name'")
                continue
            vendor = int(p[0], 16)
            vendors_[vendor] = p[1]
        elif depth == 1:
            device = sub = None
            p = _split(body)
            if cls is not None:
                if p is None or not _HEX2.match(p[0]):
                    bad(lineno, "subclass line is not '<TAB>ss  name'")
                    continue
                sub = int(p[0], 16)
                subclasses[(cls, sub)] = p[1]
            elif vendor is not None:
                if p is None or not _HEX4.match(p[0]):
                    bad(lineno, "device line is not '<TAB>dddd  name'")
                    continue
                device = int(p[0], 16)
                devices[(vendor, device)] = p[1]
            else:
                bad(lineno, "indented line outside a vendor or class")
        elif depth == 2:
            if cls is not None:
                p = _split(body)
                if sub is None or p is None or not _HEX2.match(p[0]):
                    bad(lineno, "prog-if line is not '<TAB><TAB>pp  name' under a subclass")
                    continue
                prog_ifs[(cls, sub, int(p[0], 16))] = p[1]
            elif vendor is not None and device is not None:
                parts = body.split(None, 2)
                if len(parts) != 3 or not (_HEX4.match(parts[0]) and _HEX4.match(parts[1])):
                    bad(lineno, "subsystem line is not '<TAB><TAB>ssss ssss  name'")
                    continue
                subsystems[(vendor, device, int(parts[0], 16), int(parts[1], 16))] = parts[2].strip()
            else:
                bad(lineno, "doubly indented line outside a device or subclass")
        else:
            bad(lineno, f"indented {depth} tabs deep (at most 2)")
    if only is not None:  # a text decoded whole (other line breaks) holds other vendors' too
        devices = {k: v for k, v in devices.items() if k[0] in only}
        subsystems = {k: v for k, v in subsystems.items() if k[0] in only}
    return PciIds(vendors_, devices, subsystems, classes, subclasses, prog_ifs, version,
                  tuple(malformed), count, only)
