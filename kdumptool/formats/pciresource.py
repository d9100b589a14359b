"""A PCI device's sysfs ``resource`` file: the kernel's resources of the device, one line
each, ``0x%016llx 0x%016llx 0x%016llx`` start, end (inclusive) and IORESOURCE flags
(Linux drivers/pci/pci-sysfs.c ``resource_show``, include/linux/ioport.h). Lines 0-5 are
the BARs, line 6 the expansion ROM, then SR-IOV BARs and a bridge's windows; an unused
resource is all zeros.

This is where lspci's ``[size=...]`` comes from (pciutils lib/sysfs.c
``sysfs_get_resources``: the size is ``end - start + 1`` when ``end > start``, else none):
config space holds no sizes, and an I/O BAR's size is nowhere else in sysfs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

from kdumptool.errors import DecodeError

IORESOURCE_IO = 0x00000100
IORESOURCE_MEM = 0x00000200
#: BARs 0-5, the ROM, 6 SR-IOV BARs, 4 bridge windows and a spare (the kernel's
#: PCI_NUM_RESOURCES is 17 on x86): more lines than this are not a resource file.
MAX_LINES = 32
MAX_BYTES = MAX_LINES * 60


@dataclass(frozen=True)
class PciResource:
    index: int  # the line: 0-5 BARs, 6 the expansion ROM
    start: int
    end: int  # inclusive
    flags: int

    @property
    def size(self) -> int:
        """Bytes (or I/O ports) as lspci counts them; 0 for an unused resource."""
        return self.end - self.start + 1 if self.end > self.start else 0

    @property
    def io(self) -> bool:
        return bool(self.flags & IORESOURCE_IO)

    @property
    def mem(self) -> bool:
        return bool(self.flags & IORESOURCE_MEM)


def parse_pci_resource(text: str, what: str = "resource") -> Tuple[PciResource, ...]:
    """Every line of a ``resource`` file; :class:`DecodeError` (line number) on a line that
    is not three hex numbers, on more than :data:`MAX_LINES` lines or :data:`MAX_BYTES`."""
    if len(text) > MAX_BYTES:
        raise DecodeError(what, None, f"{len(text)} characters, a resource file has at most {MAX_BYTES}")
    out: List[PciResource] = []
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise DecodeError(what, MAX_LINES + 1, f"more than {MAX_LINES} lines", unit="line")
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) != 3 or not all(w.lower().startswith("0x") for w in words):
            raise DecodeError(what, i + 1, f"not 'start end flags' in hex: {line[:80]!r}", unit="line")
        try:
            start, end, flags = (int(w, 16) for w in words)
        except ValueError:
            raise DecodeError(what, i + 1, f"not hex: {line[:80]!r}", unit="line") from None
        out.append(PciResource(i, start, end, flags))
    return tuple(out)
