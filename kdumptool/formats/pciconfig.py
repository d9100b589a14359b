"""PCI configuration space: type 0 and type 1 headers, command and status registers, the
capability list and the PCI Express extended capability list.

References: PCI Local Bus Specification 3.0, section 6 (header, command, status,
capability list); PCI Express Base Specification 5.0, section 7.5.3 (PCI Express
capability, device/port type), 7.8.4 (AER), 7.7.8 (ACS), 10.5.1 (ATS), 7.8.8 (PASID),
10.5.2 (PRI), 9.3.3 (SR-IOV). Constant names follow ``include/uapi/linux/pci_regs.h``.

Walks follow pciutils' ``lspci`` (ls-caps.c, ls-ecaps.c): a capability pointer is masked
with ``~3``; a pointer seen twice ends the walk with ``chain looped``; an ID of 0xff ends it
with ``chain broken``; an extended header of 0 ends the extended list. A pointer past the
bytes we hold (an unprivileged sysfs read gives only the first 64 bytes) ends the walk with
``access denied``. Problems inside a list are recorded as :class:`Malformed` and decoding
carries on; only a buffer too short for the header raises :class:`DecodeError`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from kdumptool.errors import DecodeError
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.formats.pcidetail import Bar, Msi, MsiX, Rom, decode_bars, decode_msi, decode_msix

# Header registers (pci_regs.h)
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_STATUS = 0x06
PCI_CLASS_REVISION = 0x08
PCI_CACHE_LINE_SIZE = 0x0C
PCI_LATENCY_TIMER = 0x0D
PCI_HEADER_TYPE = 0x0E
PCI_BIST = 0x0F
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_CAPABILITY_LIST = 0x34
PCI_CB_CAPABILITY_LIST = 0x14
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D
PCI_PRIMARY_BUS = 0x18
PCI_SECONDARY_BUS = 0x19
PCI_SUBORDINATE_BUS = 0x1A
PCI_BRIDGE_CONTROL = 0x3E

PCI_HEADER_TYPE_NORMAL = 0
PCI_HEADER_TYPE_BRIDGE = 1
PCI_HEADER_TYPE_CARDBUS = 2

# Command register bits
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_MASTER = 0x4
PCI_COMMAND_SPECIAL = 0x8
PCI_COMMAND_INVALIDATE = 0x10
PCI_COMMAND_VGA_PALETTE = 0x20
PCI_COMMAND_PARITY = 0x40
PCI_COMMAND_WAIT = 0x80
PCI_COMMAND_SERR = 0x100
PCI_COMMAND_FAST_BACK = 0x200
PCI_COMMAND_INTX_DISABLE = 0x400

# Status register bits
PCI_STATUS_IMM_READY = 0x01
PCI_STATUS_INTERRUPT = 0x08
PCI_STATUS_CAP_LIST = 0x10
PCI_STATUS_66MHZ = 0x20
PCI_STATUS_UDF = 0x40
PCI_STATUS_FAST_BACK = 0x80
PCI_STATUS_PARITY = 0x100
PCI_STATUS_DEVSEL_MASK = 0x600
PCI_STATUS_SIG_TARGET_ABORT = 0x800
PCI_STATUS_REC_TARGET_ABORT = 0x1000
PCI_STATUS_REC_MASTER_ABORT = 0x2000
PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000
PCI_STATUS_DETECTED_PARITY = 0x8000

#: (bit, lspci's label) for the ``Control:`` line, in lspci's order.
COMMAND_BITS: Tuple[Tuple[int, str], ...] = (
    (PCI_COMMAND_IO, "I/O"),
    (PCI_COMMAND_MEMORY, "Mem"),
    (PCI_COMMAND_MASTER, "BusMaster"),
    (PCI_COMMAND_SPECIAL, "SpecCycle"),
    (PCI_COMMAND_INVALIDATE, "MemWINV"),
    (PCI_COMMAND_VGA_PALETTE, "VGASnoop"),
    (PCI_COMMAND_PARITY, "ParErr"),
    (PCI_COMMAND_WAIT, "Stepping"),
    (PCI_COMMAND_SERR, "SERR"),
    (PCI_COMMAND_FAST_BACK, "FastB2B"),
    (PCI_COMMAND_INTX_DISABLE, "DisINTx"),
)

#: (bit, lspci's label) for the ``Status:`` line, in lspci's order (DEVSEL is separate).
STATUS_BITS: Tuple[Tuple[int, str], ...] = (
    (PCI_STATUS_CAP_LIST, "Cap"),
    (PCI_STATUS_66MHZ, "66MHz"),
    (PCI_STATUS_UDF, "UDF"),
    (PCI_STATUS_FAST_BACK, "FastB2B"),
    (PCI_STATUS_PARITY, "ParErr"),
    (PCI_STATUS_SIG_TARGET_ABORT, ">TAbort"),
    (PCI_STATUS_REC_TARGET_ABORT, "<TAbort"),
    (PCI_STATUS_REC_MASTER_ABORT, "<MAbort"),
    (PCI_STATUS_SIG_SYSTEM_ERROR, ">SERR"),
    (PCI_STATUS_DETECTED_PARITY, "<PERR"),
    (PCI_STATUS_INTERRUPT, "INTx"),
)

DEVSEL_NAMES = ("fast", "medium", "slow", "??")

# Capability IDs (PCI_CAP_ID_*), named as lspci names them.
PCI_CAP_ID_PM = 0x01
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_VNDR = 0x09
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11
CAP_NAMES: Dict[int, str] = {
    0x01: "Power Management",
    0x02: "AGP",
    0x03: "Vital Product Data",
    0x04: "Slot ID",
    0x05: "MSI",
    0x06: "CompactPCI hot-swap",
    0x07: "PCI-X",
    0x08: "HyperTransport",
    0x09: "Vendor Specific Information",
    0x0A: "Debug port",
    0x0B: "CompactPCI central resource control",
    0x0C: "Hot-plug capable",
    0x0D: "Subsystem",
    0x0E: "AGP3",
    0x0F: "Secure device",
    0x10: "Express",
    0x11: "MSI-X",
    0x12: "SATA HBA",
    0x13: "PCI Advanced Features",
    0x14: "Enhanced Allocation",
    0x15: "Flattening Portal Bridge",
}

# Extended capability IDs (PCI_EXT_CAP_ID_*).
PCI_EXT_CAP_ID_ERR = 0x0001
PCI_EXT_CAP_ID_ACS = 0x000D
PCI_EXT_CAP_ID_ATS = 0x000F
PCI_EXT_CAP_ID_SRIOV = 0x0010
PCI_EXT_CAP_ID_PRI = 0x0013
PCI_EXT_CAP_ID_PASID = 0x001B
EXT_CAP_NAMES: Dict[int, str] = {
    0x0001: "Advanced Error Reporting",
    0x0002: "Virtual Channel",
    0x0003: "Device Serial Number",
    0x0004: "Power Budgeting",
    0x0005: "Root Complex Link",
    0x0006: "Root Complex Internal Link",
    0x0007: "Root Complex Event Collector",
    0x0008: "Multi-Function Virtual Channel",
    0x0009: "Virtual Channel",
    0x000A: "Root Complex Register Block",
    0x000B: "Vendor Specific Information",
    0x000C: "Configuration Access Correlation",
    0x000D: "Access Control Services",
    0x000E: "Alternative Routing-ID Interpretation (ARI)",
    0x000F: "Address Translation Service (ATS)",
    0x0010: "Single Root I/O Virtualization (SR-IOV)",
    0x0011: "Multi-Root I/O Virtualization (MR-IOV)",
    0x0012: "Multicast",
    0x0013: "Page Request Interface (PRI)",
    0x0014: "Reserved for AMD",
    0x0015: "Physical Resizable BAR",
    0x0016: "Dynamic Power Allocation",
    0x0017: "Transaction Processing Hints",
    0x0018: "Latency Tolerance Reporting",
    0x0019: "Secondary PCI Express",
    0x001A: "Protocol Multiplexing",
    0x001B: "Process Address Space ID (PASID)",
    0x001C: "LN Requester",
    0x001D: "Downstream Port Containment",
    0x001E: "L1 PM Substates",
    0x001F: "Precision Time Measurement",
    0x0020: "PCI Express over M_PHY",
    0x0021: "FRS Queueing",
    0x0022: "Readiness Time Reporting",
    0x0023: "Designated Vendor-Specific",
    0x0024: "VF Resizable BAR",
    0x0025: "Data Link Feature",
    0x0026: "Physical Layer 16.0 GT/s",
    0x0027: "Lane Margining at the Receiver",
    0x0028: "Hierarchy ID",
    0x0029: "Native PCIe Enclosure Management",
    0x002A: "Physical Layer 32.0 GT/s",
    0x002B: "Alternate Protocol",
    0x002C: "System Firmware Intermediary",
    0x002D: "Shadow Functions",
    0x002E: "Data Object Exchange",
    0x002F: "Device 3",
    0x0030: "Integrity and Data Encryption",
    0x0031: "Physical Layer 64.0 GT/s",
    0x0032: "Flit Logging",
}

# PCI Express capability: flags register (+0x02) bits 7:4 are the device/port type.
PCI_EXP_FLAGS = 0x02
PCI_EXP_FLAGS_VERS = 0x000F
PCI_EXP_FLAGS_TYPE = 0x00F0
PCI_EXP_FLAGS_SLOT = 0x0100
PCI_EXP_FLAGS_IRQ = 0x3E00
PCI_EXP_DEVCAP = 0x04
PCI_EXP_DEVCTL = 0x08
PCI_EXP_DEVSTA = 0x0A
PCI_EXP_DEVCTL_BCR_FLR = 0x8000
PCI_EXP_DEVCAP_FLR = 0x10000000

#: Device/port type -> (kernel PCI_EXP_TYPE_* suffix, lspci's words).
PORT_TYPES: Dict[int, Tuple[str, str]] = {
    0x0: ("ENDPOINT", "Endpoint"),
    0x1: ("LEG_END", "Legacy Endpoint"),
    0x4: ("ROOT_PORT", "Root Port"),
    0x5: ("UPSTREAM", "Upstream Port"),
    0x6: ("DOWNSTREAM", "Downstream Port"),
    0x7: ("PCI_BRIDGE", "PCI-Express to PCI/PCI-X Bridge"),
    0x8: ("PCIE_BRIDGE", "PCI/PCI-X to PCI-Express Bridge"),
    0x9: ("RC_END", "Root Complex Integrated Endpoint"),
    0xA: ("RC_EC", "Root Complex Event Collector"),
}

MAX_CAPS = 48  # 192 bytes of a 256-byte space / 4: a longer chain must loop
MAX_EXT_CAPS = 1024  # (4096 - 256) / 4


@dataclass(frozen=True)
class Malformed:
    """A problem inside the capability lists; the walk stopped or skipped here."""

    offset: int
    reason: str  # lspci's words where it has some: "chain looped", "chain broken", "access denied"


@dataclass(frozen=True)
class PcieCap:
    """PCI Express capability (PCIe 5.0 section 7.5.3)."""

    version: int  # flags 3:0
    port_type: int  # flags 7:4
    slot: bool  # flags 8, slot implemented
    msi_vector: int  # flags 13:9, interrupt message number
    devcap: Optional[int]
    devctl: Optional[int]
    devsta: Optional[int]

    @property
    def port_type_name(self) -> str:
        return PORT_TYPES.get(self.port_type, ("UNKNOWN", f"Unknown type {self.port_type}"))[1]

    @property
    def port_type_kernel(self) -> str:
        return "PCI_EXP_TYPE_" + PORT_TYPES.get(self.port_type, ("UNKNOWN", ""))[0]

    @property
    def flr(self) -> bool:
        return bool(self.devcap is not None and self.devcap & PCI_EXP_DEVCAP_FLR)


# AER (PCIe 5.0 section 7.8.4), offsets inside the capability.
PCI_ERR_UNCOR_STATUS = 0x04
PCI_ERR_UNCOR_MASK = 0x08
PCI_ERR_UNCOR_SEVER = 0x0C
PCI_ERR_COR_STATUS = 0x10
PCI_ERR_COR_MASK = 0x14
PCI_ERR_CAP = 0x18
#: Uncorrectable error bits, lspci's labels (UESta line).
AER_UNCOR_BITS: Tuple[Tuple[int, str], ...] = (
    (0x00000010, "DLP"),
    (0x00000020, "SDES"),
    (0x00001000, "TLP"),
    (0x00002000, "FCP"),
    (0x00004000, "CmpltTO"),
    (0x00008000, "CmpltAbrt"),
    (0x00010000, "UnxCmplt"),
    (0x00020000, "RxOF"),
    (0x00040000, "MalfTLP"),
    (0x00080000, "ECRC"),
    (0x00100000, "UnsupReq"),
    (0x00200000, "ACSViol"),
)
AER_COR_BITS: Tuple[Tuple[int, str], ...] = (
    (0x00000001, "RxErr"),
    (0x00000040, "BadTLP"),
    (0x00000080, "BadDLLP"),
    (0x00000100, "Rollover"),
    (0x00001000, "Timeout"),
    (0x00002000, "AdvNonFatalErr"),
)


@dataclass(frozen=True)
class Aer:
    uncor_status: int
    uncor_mask: int
    uncor_severity: int
    cor_status: int
    cor_mask: int
    cap_control: int

    @property
    def first_error_pointer(self) -> int:
        return self.cap_control & 0x1F


# ACS (PCIe 5.0 section 7.7.8): capability +0x04 (16 bits), control +0x06 (16 bits).
PCI_ACS_CAP = 0x04
PCI_ACS_CTRL = 0x06
ACS_BITS: Tuple[Tuple[int, str], ...] = (
    (0x0001, "SrcValid"),  # PCI_ACS_SV
    (0x0002, "TransBlk"),  # PCI_ACS_TB
    (0x0004, "ReqRedir"),  # PCI_ACS_RR
    (0x0008, "CmpltRedir"),  # PCI_ACS_CR
    (0x0010, "UpstreamFwd"),  # PCI_ACS_UF
    (0x0020, "EgressCtrl"),  # PCI_ACS_EC
    (0x0040, "DirectTrans"),  # PCI_ACS_DT
)


@dataclass(frozen=True)
class Acs:
    cap: int
    ctrl: int


@dataclass(frozen=True)
class Ats:
    """ATS (PCIe 5.0 section 10.5.1): capability +0x04, control +0x06."""

    cap: int
    ctrl: int

    @property
    def invalidate_queue_depth(self) -> int:
        return (self.cap & 0x1F) or 32  # PCI_ATS_CAP_QDEP, 0 means 32

    @property
    def page_aligned(self) -> bool:
        return bool(self.cap & 0x20)  # PCI_ATS_CAP_PAGE_ALIGNED

    @property
    def enabled(self) -> bool:
        return bool(self.ctrl & 0x8000)  # PCI_ATS_CTRL_ENABLE

    @property
    def stu(self) -> int:
        return self.ctrl & 0x1F  # smallest translation unit, 2^(12+stu)


@dataclass(frozen=True)
class Pasid:
    """PASID (PCIe 5.0 section 7.8.8): capability +0x04, control +0x06."""

    cap: int
    ctrl: int

    @property
    def exec_perm(self) -> bool:
        return bool(self.cap & 0x2)  # PCI_PASID_CAP_EXEC

    @property
    def priv_mode(self) -> bool:
        return bool(self.cap & 0x4)  # PCI_PASID_CAP_PRIV

    @property
    def max_width(self) -> int:
        return (self.cap >> 8) & 0x1F

    @property
    def enabled(self) -> bool:
        return bool(self.ctrl & 0x1)  # PCI_PASID_CTRL_ENABLE


@dataclass(frozen=True)
class Pri:
    """Page Request Interface (PCIe 5.0 section 10.5.2): control +0x04, status +0x06,
    outstanding request capacity +0x08, allocation +0x0c."""

    ctrl: int
    status: int
    max_requests: int
    alloc_requests: int

    @property
    def enabled(self) -> bool:
        return bool(self.ctrl & 0x1)  # PCI_PRI_CTRL_ENABLE

    @property
    def stopped(self) -> bool:
        return bool(self.status & 0x100)  # PCI_PRI_STATUS_STOPPED


@dataclass(frozen=True)
class Sriov:
    """SR-IOV (PCIe 5.0 section 9.3.3): cap +0x04, ctrl +0x08, status +0x0a, initial VFs
    +0x0c, total VFs +0x0e, num VFs +0x10, first VF offset +0x14, stride +0x16, VF device
    ID +0x1a."""

    cap: int
    ctrl: int
    status: int
    initial_vfs: int
    total_vfs: int
    num_vfs: int
    first_vf_offset: int
    vf_stride: int
    vf_device_id: int

    @property
    def vf_enabled(self) -> bool:
        return bool(self.ctrl & 0x1)  # PCI_SRIOV_CTRL_VFE

    @property
    def vf_memory_space(self) -> bool:
        return bool(self.ctrl & 0x8)  # PCI_SRIOV_CTRL_MSE


@dataclass(frozen=True)
class Capability:
    """One entry of the capability list (``extended=False``) or extended list."""

    offset: int
    cap_id: int
    extended: bool
    version: int = 0  # extended capabilities only (header 19:16)
    next_ptr: int = 0

    @property
    def name(self) -> str:
        if self.extended:
            return EXT_CAP_NAMES.get(self.cap_id, f"Extended Capability ID {self.cap_id:#x}")
        return CAP_NAMES.get(self.cap_id, f"Capability ID {self.cap_id:#04x}")


@dataclass(frozen=True)
class PciConfig:
    """A decoded configuration space (as many bytes of it as were readable)."""

    size: int  # bytes held (64 for an unprivileged sysfs read, 256, 4096)
    vendor_id: int
    device_id: int
    command: int
    status: int
    revision: int
    class_code: int  # 24 bits: base class, subclass, programming interface
    cache_line_size: int
    latency_timer: int
    header_type: int  # full byte including the multi-function bit 7
    bist: int
    interrupt_line: Optional[int]
    interrupt_pin: Optional[int]
    subsystem_vendor_id: Optional[int]  # type 0 only
    subsystem_id: Optional[int]
    primary_bus: Optional[int]  # type 1 (and 2) only
    secondary_bus: Optional[int]
    subordinate_bus: Optional[int]
    bridge_control: Optional[int]
    capabilities: Tuple[Capability, ...]
    ext_capabilities: Tuple[Capability, ...]
    malformed: Tuple[Malformed, ...]
    pcie: Optional[PcieCap] = None
    aer: Optional[Aer] = None
    acs: Optional[Acs] = None
    ats: Optional[Ats] = None
    pasid: Optional[Pasid] = None
    pri: Optional[Pri] = None
    sriov: Optional[Sriov] = None
    # formats/pcidetail: what lspci -vv shows for DMA questions
    bars: Tuple[Bar, ...] = ()
    rom: Optional[Rom] = None
    msi: Optional[Msi] = None
    msix: Optional[MsiX] = None

    @property
    def layout(self) -> int:
        return self.header_type & 0x7F

    @property
    def multifunction(self) -> bool:
        return bool(self.header_type & 0x80)

    @property
    def is_bridge(self) -> bool:
        return self.layout in (PCI_HEADER_TYPE_BRIDGE, PCI_HEADER_TYPE_CARDBUS)

    @property
    def bus_master(self) -> bool:
        return bool(self.command & PCI_COMMAND_MASTER)

    @property
    def memory_space(self) -> bool:
        return bool(self.command & PCI_COMMAND_MEMORY)

    @property
    def io_space(self) -> bool:
        return bool(self.command & PCI_COMMAND_IO)

    @property
    def intx_disable(self) -> bool:
        return bool(self.command & PCI_COMMAND_INTX_DISABLE)

    @property
    def devsel(self) -> str:
        return DEVSEL_NAMES[(self.status & PCI_STATUS_DEVSEL_MASK) >> 9]

    @property
    def base_class(self) -> int:
        return self.class_code >> 16

    @property
    def subclass(self) -> int:
        return (self.class_code >> 8) & 0xFF

    @property
    def prog_if(self) -> int:
        return self.class_code & 0xFF

    @property
    def port_type(self) -> Optional[int]:
        return self.pcie.port_type if self.pcie else None

    def find(self, cap_id: int, extended: bool = False) -> Optional[Capability]:
        caps = self.ext_capabilities if extended else self.capabilities
        for cap in caps:
            if cap.cap_id == cap_id:
                return cap
        return None


def flag_words(value: int, bits: Tuple[Tuple[int, str], ...]) -> List[str]:
    """lspci's ``Name+``/``Name-`` words for the bits of ``value``."""
    return [f"{name}{'+' if value & bit else '-'}" for bit, name in bits]


def _u8(b: bytes, off: int) -> int:
    return b[off]


def _u16(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 2], "little")


def _u32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 4], "little")


def _have(b: bytes, off: int, n: int) -> bool:
    return 0 <= off and off + n <= len(b)


def parse_pci_config(data: bytes, name: str = "config") -> PciConfig:
    """Decode configuration space bytes (at least the 64-byte header).

    Raises :class:`DecodeError` only when the standard header is not all there.
    """
    data = bytes(data)
    if len(data) < 64:
        raise DecodeError(name, len(data), f"config space is {len(data)} bytes, the header needs 64")
    vendor = _u16(data, PCI_VENDOR_ID)
    if vendor in (0xFFFF, 0x0000):
        # Decode anyway: a device that fell off the bus reads all ones, and that is a finding.
        pass
    header_type = _u8(data, PCI_HEADER_TYPE)
    layout = header_type & 0x7F
    status = _u16(data, PCI_STATUS)
    malformed: List[Malformed] = []

    sub_vendor = sub_id = prim = sec = subord = bctl = None
    cap_ptr_reg = PCI_CAPABILITY_LIST
    if layout == PCI_HEADER_TYPE_NORMAL:
        sub_vendor = _u16(data, PCI_SUBSYSTEM_VENDOR_ID)
        sub_id = _u16(data, PCI_SUBSYSTEM_ID)
    elif layout == PCI_HEADER_TYPE_BRIDGE:
        prim = _u8(data, PCI_PRIMARY_BUS)
        sec = _u8(data, PCI_SECONDARY_BUS)
        subord = _u8(data, PCI_SUBORDINATE_BUS)
        bctl = _u16(data, PCI_BRIDGE_CONTROL)
    elif layout == PCI_HEADER_TYPE_CARDBUS:
        prim = _u8(data, 0x18)
        sec = _u8(data, 0x19)
        subord = _u8(data, 0x1A)
        bctl = _u16(data, PCI_BRIDGE_CONTROL)
        cap_ptr_reg = PCI_CB_CAPABILITY_LIST
    else:
        malformed.append(Malformed(PCI_HEADER_TYPE, f"unknown header type {layout:#x}"))

    caps: List[Capability] = []
    if status & PCI_STATUS_CAP_LIST and layout in (0, 1, 2):
        caps = _walk_caps(data, _u8(data, cap_ptr_reg), malformed)

    pcie = None
    exp = next((c for c in caps if c.cap_id == PCI_CAP_ID_EXP), None)
    if exp is not None and _have(data, exp.offset, 4):
        flags = _u16(data, exp.offset + PCI_EXP_FLAGS)
        pcie = PcieCap(
            version=flags & PCI_EXP_FLAGS_VERS,
            port_type=(flags & PCI_EXP_FLAGS_TYPE) >> 4,
            slot=bool(flags & PCI_EXP_FLAGS_SLOT),
            msi_vector=(flags & PCI_EXP_FLAGS_IRQ) >> 9,
            devcap=_u32(data, exp.offset + 4) if _have(data, exp.offset + 4, 4) else None,
            devctl=_u16(data, exp.offset + 8) if _have(data, exp.offset + 8, 2) else None,
            devsta=_u16(data, exp.offset + 10) if _have(data, exp.offset + 10, 2) else None,
        )

    ext: List[Capability] = []
    # Like lspci: only a PCI Express function has an extended space worth walking.
    if pcie is not None and len(data) > 0x100:
        ext = _walk_ext_caps(data, malformed)

    extras = _decode_ext(data, ext, malformed)
    if layout in (0, 1):
        extras["bars"], extras["rom"] = decode_bars(data, layout)
    msi_cap = next((c for c in caps if c.cap_id == PCI_CAP_ID_MSI), None)
    if msi_cap is not None:
        extras["msi"] = decode_msi(data, msi_cap.offset)
    msix_cap = next((c for c in caps if c.cap_id == PCI_CAP_ID_MSIX), None)
    if msix_cap is not None:
        extras["msix"] = decode_msix(data, msix_cap.offset)
    return PciConfig(
        size=len(data),
        vendor_id=vendor,
        device_id=_u16(data, PCI_DEVICE_ID),
        command=_u16(data, PCI_COMMAND),
        status=status,
        revision=_u8(data, PCI_CLASS_REVISION),
        class_code=_u32(data, PCI_CLASS_REVISION) >> 8,
        cache_line_size=_u8(data, PCI_CACHE_LINE_SIZE),
        latency_timer=_u8(data, PCI_LATENCY_TIMER),
        header_type=header_type,
        bist=_u8(data, PCI_BIST),
        interrupt_line=_u8(data, PCI_INTERRUPT_LINE),
        interrupt_pin=_u8(data, PCI_INTERRUPT_PIN),
        subsystem_vendor_id=sub_vendor,
        subsystem_id=sub_id,
        primary_bus=prim,
        secondary_bus=sec,
        subordinate_bus=subord,
        bridge_control=bctl,
        capabilities=tuple(caps),
        ext_capabilities=tuple(ext),
        malformed=tuple(malformed),
        pcie=pcie,
        **extras,  # type: ignore[arg-type]
    )


def _walk_caps(data: bytes, first: int, malformed: List[Malformed]) -> List[Capability]:
    caps: List[Capability] = []
    seen = set()
    where = first & ~3
    while where:
        if where < 0x40 or where > 0xFC:
            # lspci would read it anyway; a pointer into the header is nonsense.
            malformed.append(Malformed(where, "capability pointer out of range"))
            break
        if not _have(data, where, 2):
            malformed.append(Malformed(where, f"access denied (only {len(data)} bytes readable)"))
            break
        if where in seen or len(caps) >= MAX_CAPS:
            malformed.append(Malformed(where, "chain looped"))
            break
        seen.add(where)
        cap_id = data[where]
        nxt = data[where + 1] & ~3
        if cap_id == 0xFF:
            malformed.append(Malformed(where, "chain broken"))
            break
        caps.append(Capability(offset=where, cap_id=cap_id, extended=False, next_ptr=nxt))
        where = nxt
    return caps


def _walk_ext_caps(data: bytes, malformed: List[Malformed]) -> List[Capability]:
    caps: List[Capability] = []
    seen = set()
    where = 0x100
    while where:
        if where < 0x100 or where > 0xFFC:
            malformed.append(Malformed(where, "extended capability pointer out of range"))
            break
        if not _have(data, where, 4):
            malformed.append(Malformed(where, f"access denied (only {len(data)} bytes readable)"))
            break
        header = _u32(data, where)
        if header == 0:
            break
        if header == 0xFFFFFFFF:
            malformed.append(Malformed(where, "chain broken"))
            break
        if where in seen or len(caps) >= MAX_EXT_CAPS:
            malformed.append(Malformed(where, "chain looped"))
            break
        seen.add(where)
        nxt = (header >> 20) & ~3
        caps.append(
            Capability(
                offset=where,
                cap_id=header & 0xFFFF,
                extended=True,
                version=(header >> 16) & 0xF,
                next_ptr=nxt,
            )
        )
        where = nxt
    return caps


def _decode_ext(data: bytes, ext: List[Capability], malformed: List[Malformed]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for cap in ext:
        o = cap.offset
        key = None
        if cap.cap_id == PCI_EXT_CAP_ID_ERR and "aer" not in out:
            if _have(data, o, 0x1C):
                out["aer"] = Aer(
                    uncor_status=_u32(data, o + PCI_ERR_UNCOR_STATUS),
                    uncor_mask=_u32(data, o + PCI_ERR_UNCOR_MASK),
                    uncor_severity=_u32(data, o + PCI_ERR_UNCOR_SEVER),
                    cor_status=_u32(data, o + PCI_ERR_COR_STATUS),
                    cor_mask=_u32(data, o + PCI_ERR_COR_MASK),
                    cap_control=_u32(data, o + PCI_ERR_CAP),
                )
            else:
                key = "AER"
        elif cap.cap_id == PCI_EXT_CAP_ID_ACS and "acs" not in out:
            if _have(data, o, 8):
                out["acs"] = Acs(cap=_u16(data, o + PCI_ACS_CAP), ctrl=_u16(data, o + PCI_ACS_CTRL))
            else:
                key = "ACS"
        elif cap.cap_id == PCI_EXT_CAP_ID_ATS and "ats" not in out:
            if _have(data, o, 8):
                out["ats"] = Ats(cap=_u16(data, o + 4), ctrl=_u16(data, o + 6))
            else:
                key = "ATS"
        elif cap.cap_id == PCI_EXT_CAP_ID_PASID and "pasid" not in out:
            if _have(data, o, 8):
                out["pasid"] = Pasid(cap=_u16(data, o + 4), ctrl=_u16(data, o + 6))
            else:
                key = "PASID"
        elif cap.cap_id == PCI_EXT_CAP_ID_PRI and "pri" not in out:
            if _have(data, o, 0x10):
                out["pri"] = Pri(
                    ctrl=_u16(data, o + 4),
                    status=_u16(data, o + 6),
                    max_requests=_u32(data, o + 8),
                    alloc_requests=_u32(data, o + 0xC),
                )
            else:
                key = "PRI"
        elif cap.cap_id == PCI_EXT_CAP_ID_SRIOV and "sriov" not in out:
            if _have(data, o, 0x1C):
                out["sriov"] = Sriov(
                    cap=_u32(data, o + 4),
                    ctrl=_u16(data, o + 8),
                    status=_u16(data, o + 0xA),
                    initial_vfs=_u16(data, o + 0xC),
                    total_vfs=_u16(data, o + 0xE),
                    num_vfs=_u16(data, o + 0x10),
                    first_vf_offset=_u16(data, o + 0x14),
                    vf_stride=_u16(data, o + 0x16),
                    vf_device_id=_u16(data, o + 0x1A),
                )
            else:
                key = "SR-IOV"
        if key:
            malformed.append(Malformed(o, f"{key} capability runs past the end of config space"))
    return out
