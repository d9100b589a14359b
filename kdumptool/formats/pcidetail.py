"""The config-space fields ``lspci -vv`` users read for DMA questions, decoded from the
bytes: base address registers and the expansion ROM, MSI and MSI-X state, and the PCI
Express DevCap/DevCtl/DevSta words (Function Level Reset, Transactions Pending).

PCI Local Bus 3.0 section 6.2.5 (BARs, ROM), 6.8 (MSI, MSI-X); PCIe 5.0 section 7.5.3.3-5
(Device Capabilities/Control/Status). Field names follow the kernel's
include/uapi/linux/pci_regs.h; words follow lspci so output compares field by field.

Sizes are not in config space (sizing a BAR means writing it): they come from sysfs
``resource`` when a source has it, else they are left out, as lspci leaves them out of a
dump it replays.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

PCI_BASE_ADDRESS_0 = 0x10
PCI_BASE_ADDRESS_SPACE_IO = 0x01
PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06
PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04
PCI_BASE_ADDRESS_MEM_TYPE_1M = 0x02
PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08
PCI_ROM_ADDRESS = 0x30  # type 0
PCI_ROM_ADDRESS1 = 0x38  # type 1
PCI_ROM_ADDRESS_ENABLE = 0x01

# MSI (offsets inside the capability)
PCI_MSI_FLAGS = 0x02
PCI_MSI_FLAGS_ENABLE = 0x0001
PCI_MSI_FLAGS_QMASK = 0x000E  # multiple message capable
PCI_MSI_FLAGS_QSIZE = 0x0070  # multiple message enable
PCI_MSI_FLAGS_64BIT = 0x0080
PCI_MSI_FLAGS_MASKBIT = 0x0100
# MSI-X
PCI_MSIX_FLAGS = 0x02
PCI_MSIX_FLAGS_QSIZE = 0x07FF
PCI_MSIX_FLAGS_MASKALL = 0x4000
PCI_MSIX_FLAGS_ENABLE = 0x8000
PCI_MSIX_TABLE = 0x04
PCI_MSIX_PBA = 0x08
PCI_MSIX_BIR = 0x7

# PCIe Device Capabilities / Control / Status
PCI_EXP_DEVCAP_PAYLOAD = 0x00000007
PCI_EXP_DEVCAP_PHANTOM = 0x00000018
PCI_EXP_DEVCAP_EXT_TAG = 0x00000020
PCI_EXP_DEVCAP_RBER = 0x00008000
PCI_EXP_DEVCAP_FLR = 0x10000000
#: DevCtl error-reporting and feature bits, lspci's words, in its order.
DEVCTL_ERR_BITS: Tuple[Tuple[int, str], ...] = (
    (0x0001, "CorrErr"), (0x0002, "NonFatalErr"), (0x0004, "FatalErr"), (0x0008, "UnsupReq"),
)
DEVCTL_FEATURE_BITS: Tuple[Tuple[int, str], ...] = (
    (0x0010, "RlxdOrd"), (0x0100, "ExtTag"), (0x0200, "PhantFunc"), (0x0400, "AuxPwr"), (0x0800, "NoSnoop"),
)
PCI_EXP_DEVCTL_PAYLOAD = 0x00E0
PCI_EXP_DEVCTL_READRQ = 0x7000
PCI_EXP_DEVCTL_BCR_FLR = 0x8000
DEVSTA_BITS: Tuple[Tuple[int, str], ...] = (
    (0x0001, "CorrErr"), (0x0002, "NonFatalErr"), (0x0004, "FatalErr"), (0x0008, "UnsupReq"),
    (0x0010, "AuxPwr"), (0x0020, "TransPend"),
)
PCI_EXP_DEVSTA_TRPND = 0x0020


@dataclass(frozen=True)
class Bar:
    index: int  # Region N
    io: bool
    address: int
    is64: bool
    prefetchable: bool
    below_1m: bool = False  # the old "1M" memory type


@dataclass(frozen=True)
class Rom:
    address: int
    enabled: bool


@dataclass(frozen=True)
class Msi:
    enabled: bool
    count_enabled: int  # messages allocated (MME)
    count_capable: int  # messages requested (MMC)
    maskable: bool
    is64: bool
    address: Optional[int]  # None when the bytes are not there
    data: Optional[int]


@dataclass(frozen=True)
class MsiX:
    enabled: bool
    masked: bool  # Function Mask
    table_size: int
    table_bar: Optional[int]
    table_offset: Optional[int]
    pba_bar: Optional[int]
    pba_offset: Optional[int]


def _u16(b: bytes, off: int) -> Optional[int]:
    return int.from_bytes(b[off:off + 2], "little") if 0 <= off and off + 2 <= len(b) else None


def _u32(b: bytes, off: int) -> Optional[int]:
    return int.from_bytes(b[off:off + 4], "little") if 0 <= off and off + 4 <= len(b) else None


def decode_bars(data: bytes, layout: int) -> Tuple[Tuple[Bar, ...], Optional[Rom]]:
    """The BARs that hold an address (lspci omits all-zero ones) and the expansion ROM."""
    nbars = {0: 6, 1: 2}.get(layout, 0)
    bars: List[Bar] = []
    i = 0
    while i < nbars:
        v = _u32(data, PCI_BASE_ADDRESS_0 + 4 * i)
        if v is None:
            break
        if v & PCI_BASE_ADDRESS_SPACE_IO:
            if v & ~0x3:
                bars.append(Bar(i, True, v & ~0x3, False, False))
            i += 1
            continue
        mtype = v & PCI_BASE_ADDRESS_MEM_TYPE_MASK
        addr = v & ~0xF
        is64 = mtype == PCI_BASE_ADDRESS_MEM_TYPE_64
        step = 1
        if is64:
            hi = _u32(data, PCI_BASE_ADDRESS_0 + 4 * (i + 1)) if i + 1 < nbars else None
            if hi is not None:
                addr |= hi << 32
                step = 2
        if addr:
            bars.append(Bar(i, False, addr, is64, bool(v & PCI_BASE_ADDRESS_MEM_PREFETCH),
                            mtype == PCI_BASE_ADDRESS_MEM_TYPE_1M))
        i += step
    rom = None
    reg = {0: PCI_ROM_ADDRESS, 1: PCI_ROM_ADDRESS1}.get(layout)
    r = _u32(data, reg) if reg is not None else None
    if r is not None and r & ~0x7FF:
        rom = Rom(r & ~0x7FF, bool(r & PCI_ROM_ADDRESS_ENABLE))
    return tuple(bars), rom


def decode_msi(data: bytes, off: int) -> Optional[Msi]:
    flags = _u16(data, off + PCI_MSI_FLAGS)
    if flags is None:
        return None
    is64 = bool(flags & PCI_MSI_FLAGS_64BIT)
    lo = _u32(data, off + 4)
    addr: Optional[int] = lo
    if is64 and lo is not None:
        hi = _u32(data, off + 8)
        addr = None if hi is None else lo | (hi << 32)
    msg = _u16(data, off + (12 if is64 else 8))
    return Msi(
        enabled=bool(flags & PCI_MSI_FLAGS_ENABLE),
        count_enabled=1 << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4),
        count_capable=1 << ((flags & PCI_MSI_FLAGS_QMASK) >> 1),
        maskable=bool(flags & PCI_MSI_FLAGS_MASKBIT),
        is64=is64,
        address=addr,
        data=msg,
    )


def decode_msix(data: bytes, off: int) -> Optional[MsiX]:
    flags = _u16(data, off + PCI_MSIX_FLAGS)
    if flags is None:
        return None
    t = _u32(data, off + PCI_MSIX_TABLE)
    p = _u32(data, off + PCI_MSIX_PBA)
    return MsiX(
        enabled=bool(flags & PCI_MSIX_FLAGS_ENABLE),
        masked=bool(flags & PCI_MSIX_FLAGS_MASKALL),
        table_size=(flags & PCI_MSIX_FLAGS_QSIZE) + 1,
        table_bar=None if t is None else t & PCI_MSIX_BIR,
        table_offset=None if t is None else t & ~PCI_MSIX_BIR,
        pba_bar=None if p is None else p & PCI_MSIX_BIR,
        pba_offset=None if p is None else p & ~PCI_MSIX_BIR,
    )
