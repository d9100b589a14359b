"""ACPI IVRS (I/O Virtualization Reporting Structure) table decoder: AMD-Vi.

Spec: AMD I/O Virtualization Technology (IOMMU) Specification, #48882 rev 3.08 (2023),
section 5 "I/O Virtualization ACPI Table": 5.2.1 IVRS header (IVinfo), 5.2.2 IVHD
types 10h/11h/40h, 5.2.2.2 IVHD device entries (4-byte, 8-byte, variable-length ACPI
HID entry F0h), 5.2.3 IVMD types 20h/21h/22h. Cross-checked with Linux
``drivers/iommu/amd/init.c`` (``struct ivhd_header``, ``struct ivhd_entry``,
``struct ivmd_header``, ``IVHD_DEV_*``, ``ivhd_entry_length()``) and with ACPICA's
``actbl2.h`` (``ACPI_IVRS_*``), and field by field against ``iasl -d`` output for every
table of the corpus (tests/ivrs_dsl_oracle.py).

Framing follows the kernel: a device entry's length is in the top two bits of its type
(00b 4 bytes, 01b 8 bytes) except the ACPI HID entry (F0h, 22 bytes + UID length);
any other type from 80h up has no length the kernel (or we) can know, so the walk of
that IVHD stops there with a :class:`Malformed` entry. Subtable types this decoder does
not know (e.g. 51h in some 2022 Lenovo firmware) are kept raw and the walk goes on by
their length, as ``iasl`` and the kernel do. The outer framing (ACPI header, signature)
raises; problems inside become warnings and :class:`Malformed` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from kdumptool.errors import DecodeError, UnsupportedFormat
from kdumptool.formats.dmar import AcpiHeaderStruct, _hexsig, _text

# AMD IOMMU spec 5.2.1: the IVRS header after the ACPI header. 48 bytes in all.
IvrsHeaderStruct = Struct(
    "acpi" / AcpiHeaderStruct,  # +0x00
    "iv_info" / Int32ul,  # +0x24 IVinfo: EFRSup, DMA remap, GVA/PA/VA sizes
    "reserved" / Bytes(8),  # +0x28
)
IVRS_HEADER_LEN = 48  # Linux IVRS_HEADER_LENGTH

# 5.2.2.1 IVHD type 10h: 24 bytes, then device entries. Linux struct ivhd_header.
Ivhd10Struct = Struct(
    "type" / Const(0x10, Int8ul),  # +0x00
    "flags" / Int8ul,  # +0x01 HtTunEn PassPW ResPassPW Isoc IotlbSup Coherent PrefSup PPRSup
    "length" / Int16ul,  # +0x02 whole block, device entries included
    "device_id" / Int16ul,  # +0x04 the IOMMU's own PCI requester ID (bus << 8 | devfn)
    "capability_offset" / Int16ul,  # +0x06 its IOMMU capability in PCI config space
    "base_address" / Int64ul,  # +0x08 MMIO register base
    "pci_segment" / Int16ul,  # +0x10 PCI segment group
    "info" / Int16ul,  # +0x12 IOMMU info: 12:8 UnitID, 4:0 MSInum
    "feature_reporting" / Int32ul,  # +0x14 IOMMU feature reporting (Linux efr_attr)
)
IVHD10_LEN = 24

# 5.2.2.1 IVHD types 11h and 40h: 40 bytes, then device entries.
Ivhd11Struct = Struct(
    "type" / Int8ul,  # +0x00 11h or 40h
    "flags" / Int8ul,  # +0x01 as 10h (bits 0-5; 6, 7 reserved)
    "length" / Int16ul,  # +0x02
    "device_id" / Int16ul,  # +0x04
    "capability_offset" / Int16ul,  # +0x06
    "base_address" / Int64ul,  # +0x08
    "pci_segment" / Int16ul,  # +0x10
    "info" / Int16ul,  # +0x12
    "attributes" / Int32ul,  # +0x14 IOMMU attributes (PNCounters, PNBanks, MsiNumPPR)
    "efr_image" / Int64ul,  # +0x18 copy of the Extended Feature Register (MMIO 0x30)
    "efr_image2" / Int64ul,  # +0x20 EFR2 image (MMIO 0x1A0); iasl prints it "Reserved"
)
IVHD11_LEN = 40

# 5.2.3 IVMD types 20h (all peripherals), 21h (one device), 22h (device range): 32 bytes.
IvmdStruct = Struct(
    "type" / Int8ul,  # +0x00
    "flags" / Int8ul,  # +0x01 bit0 Unity, bit1 IR, bit2 IW, bit3 ExclusionRange
    "length" / Int16ul,  # +0x02
    "device_id" / Int16ul,  # +0x04 21h: the device; 22h: first of the range; 20h: reserved
    "auxiliary_data" / Int16ul,  # +0x06 22h: last device of the range
    "pci_segment" / Int16ul,  # +0x08 Linux ivmd_header.pci_seg (rev 3.x); iasl: Reserved
    "reserved" / Bytes(6),  # +0x0a
    "start_address" / Int64ul,  # +0x10
    "memory_length" / Int64ul,  # +0x18
)
IVMD_LEN = 32

# 5.2.2.2 device entries. 4-byte: type, DeviceID, DTE setting.
DevEntry4Struct = Struct(
    "type" / Int8ul,  # +0x00
    "device_id" / Int16ul,  # +0x01
    "data_setting" / Int8ul,  # +0x03 Lint1 Lint0 SysMgt(2) - NMI EIntPass INITPass
)
# 8-byte alias entries 42h/43h.
DevEntryAliasStruct = Struct(
    "type" / Int8ul,  # +0x00
    "device_id" / Int16ul,  # +0x01
    "data_setting" / Int8ul,  # +0x03
    "reserved1" / Int8ul,  # +0x04
    "source_device_id" / Int16ul,  # +0x05 the requester ID the device uses instead
    "reserved2" / Int8ul,  # +0x07
)
# 8-byte extended entries 46h/47h (and 40h, a reserved 8-byte pad).
DevEntryExtStruct = Struct(
    "type" / Int8ul,  # +0x00
    "device_id" / Int16ul,  # +0x01
    "data_setting" / Int8ul,  # +0x03
    "extended_data" / Int32ul,  # +0x04 bit31 ATS disabled (Linux ACPI_DEVFLAG_ATSDIS)
)
# 8-byte special device entry 48h (IOAPIC, HPET).
DevEntrySpecialStruct = Struct(
    "type" / Const(0x48, Int8ul),  # +0x00
    "device_id" / Int16ul,  # +0x01 reserved (iasl names it Device ID)
    "data_setting" / Int8ul,  # +0x03
    "handle" / Int8ul,  # +0x04 IOAPIC ID or HPET number
    "source_device_id" / Int16ul,  # +0x05 its requester ID (Linux: ext >> 8)
    "variety" / Int8ul,  # +0x07 1 IOAPIC, 2 HPET
)
# Variable-length ACPI HID entry F0h: 22 bytes, then UID.
DevEntryHidStruct = Struct(
    "type" / Const(0xF0, Int8ul),  # +0x00
    "device_id" / Int16ul,  # +0x01
    "data_setting" / Int8ul,  # +0x03
    "acpi_hid" / Bytes(8),  # +0x04
    "acpi_cid" / Bytes(8),  # +0x0c
    "uid_format" / Int8ul,  # +0x14 0 none, 1 integer, 2 string
    "uid_length" / Int8ul,  # +0x15
)
HID_FIXED_LEN = 22

# Linux drivers/iommu/amd/init.c spelling.
ACPI_IVHD_TYPE_MAX_SUPPORTED = 0x40
ACPI_IVMD_TYPE_ALL = 0x20
ACPI_IVMD_TYPE = 0x21
ACPI_IVMD_TYPE_RANGE = 0x22
IVHD_DEV_ALL = 0x01
IVHD_DEV_SELECT = 0x02
IVHD_DEV_SELECT_RANGE_START = 0x03
IVHD_DEV_RANGE_END = 0x04
IVHD_DEV_ALIAS = 0x42
IVHD_DEV_ALIAS_RANGE = 0x43
IVHD_DEV_EXT_SELECT = 0x46
IVHD_DEV_EXT_SELECT_RANGE = 0x47
IVHD_DEV_SPECIAL = 0x48
IVHD_DEV_ACPI_HID = 0xF0
UID_NOT_PRESENT = 0
UID_IS_INTEGER = 1
UID_IS_CHARACTER = 2
IVHD_SPECIAL_IOAPIC = 1
IVHD_SPECIAL_HPET = 2
IVHD_FLAG_HT_TUN_EN_MASK = 0x01
IVHD_FLAG_PASSPW_EN_MASK = 0x02
IVHD_FLAG_RESPASSPW_EN_MASK = 0x04
IVHD_FLAG_ISOC_EN_MASK = 0x08
IVMD_FLAG_EXCL_RANGE = 0x08
IVMD_FLAG_IW = 0x04
IVMD_FLAG_IR = 0x02
IVMD_FLAG_UNITY_MAP = 0x01
IOMMU_IVINFO_EFRSUP = 0x01
IOMMU_IVINFO_DMA_REMAP = 0x02
ACPI_DEVFLAG_ATSDIS = 0x10000000

#: IVHD flag bits (spec 5.2.2.1; iasl's names).
IVHD_FLAG_NAMES: Tuple[Tuple[int, str], ...] = (
    (0x01, "HtTunEn"), (0x02, "PassPW"), (0x04, "ResPassPW"), (0x08, "Isoc"),
    (0x10, "IotlbSup"), (0x20, "Coherent"), (0x40, "PrefSup"), (0x80, "PPRSup"),
)
#: DTE setting bits of a device entry (spec Table 94; Linux ACPI_DEVFLAG_*).
DATA_SETTING_NAMES: Tuple[Tuple[int, str], ...] = (
    (0x01, "INITPass"), (0x02, "EIntPass"), (0x04, "NMIPass"), (0x10, "SysMgt1"),
    (0x20, "SysMgt2"), (0x40, "Lint0Pass"), (0x80, "Lint1Pass"),
)
IVMD_FLAG_NAMES: Tuple[Tuple[int, str], ...] = (
    (0x01, "Unity"), (0x02, "IR"), (0x04, "IW"), (0x08, "ExclusionRange"),
)

#: Device entry types (spec Table 93). "PAD4"/"PAD8" are the reserved 00h/40h types.
ENTRY_TYPES: Dict[int, str] = {
    0x00: "PAD4",
    0x01: "ALL",
    0x02: "SELECT",
    0x03: "START",
    0x04: "END",
    0x40: "PAD8",
    0x42: "ALIAS_SELECT",
    0x43: "ALIAS_START",
    0x46: "EXT_SELECT",
    0x47: "EXT_START",
    0x48: "SPECIAL",
    0xF0: "HID",
}
BLOCK_TYPES: Dict[int, str] = {0x10: "IVHD", 0x11: "IVHD", 0x40: "IVHD",
                               0x20: "IVMD", 0x21: "IVMD", 0x22: "IVMD"}
SPECIAL_VARIETIES: Dict[int, str] = {IVHD_SPECIAL_IOAPIC: "IOAPIC", IVHD_SPECIAL_HPET: "HPET"}


def devid_text(devid: int) -> str:
    """``BB:DD.F`` of a 16-bit requester ID."""
    return f"{devid >> 8:02x}:{(devid >> 3) & 0x1F:02x}.{devid & 7:x}"


def flag_names(value: int, names: Tuple[Tuple[int, str], ...]) -> List[str]:
    return [n for bit, n in names if value & bit]


@dataclass(frozen=True)
class DeviceEntry:
    """One IVHD device entry. Fields that a kind does not have are None."""

    offset: int  # absolute byte offset in the table
    type_id: int
    type: str  # see ENTRY_TYPES; UNKNOWN for a type this decoder (and the spec) lacks
    length: int
    device_id: int
    data_setting: int
    source_device_id: Optional[int] = None  # ALIAS_*: the alias; SPECIAL: the requester ID
    extended_data: Optional[int] = None  # EXT_*, PAD8
    handle: Optional[int] = None  # SPECIAL: IOAPIC id / HPET number
    variety: Optional[int] = None  # SPECIAL: 1 IOAPIC, 2 HPET
    acpi_hid: Union[str, int, None] = None  # HID: string, or an integer (EISA id form)
    acpi_cid: Union[str, int, None] = None
    uid_format: Optional[int] = None
    uid_length: Optional[int] = None
    uid: Union[str, int, None] = None
    raw: bytes = b""

    @property
    def special_name(self) -> Optional[str]:
        if self.variety is None:
            return None
        return SPECIAL_VARIETIES.get(self.variety, f"variety {self.variety}")


@dataclass(frozen=True)
class Ivhd:
    """I/O Virtualization Hardware Definition: one IOMMU and the devices it translates."""

    offset: int
    type_id: int  # 0x10, 0x11, 0x40
    length: int
    flags: int
    device_id: int
    capability_offset: int
    base_address: int
    pci_segment: int
    info: int
    device_entries: Tuple[DeviceEntry, ...]
    feature_reporting: Optional[int] = None  # 10h only
    attributes: Optional[int] = None  # 11h/40h
    efr_image: Optional[int] = None  # 11h/40h
    efr_image2: Optional[int] = None  # 11h/40h
    warnings: Tuple[str, ...] = ()
    type: str = "IVHD"

    @property
    def unit_id(self) -> int:
        return (self.info >> 8) & 0x1F

    @property
    def msi_number(self) -> int:
        return self.info & 0x1F

    @property
    def header_length(self) -> int:
        return IVHD10_LEN if self.type_id == 0x10 else IVHD11_LEN


@dataclass(frozen=True)
class Ivmd:
    """I/O Virtualization Memory Definition: a unity-mapped or excluded memory range."""

    offset: int
    type_id: int  # 0x20 all devices, 0x21 one device, 0x22 a range of devices
    length: int
    flags: int
    device_id: int
    auxiliary_data: int
    pci_segment: int
    start_address: int
    memory_length: int
    warnings: Tuple[str, ...] = ()
    device_entries: Tuple[DeviceEntry, ...] = ()
    type: str = "IVMD"

    @property
    def devices(self) -> Optional[Tuple[int, int]]:
        """(first, last) requester ID covered; None for 20h (every device)."""
        if self.type_id == ACPI_IVMD_TYPE:
            return (self.device_id, self.device_id)
        if self.type_id == ACPI_IVMD_TYPE_RANGE:
            return (self.device_id, self.auxiliary_data)
        return None


@dataclass(frozen=True)
class UnknownBlock:
    """A subtable type this decoder does not know (e.g. 51h): kept raw."""

    offset: int
    length: int
    type_id: int
    raw: bytes
    warnings: Tuple[str, ...] = ()
    device_entries: Tuple[DeviceEntry, ...] = ()
    type: str = "UNKNOWN"


@dataclass(frozen=True)
class Malformed:
    """Bytes where a block (or device entry) should be but that do not frame as one."""

    offset: int
    length: int  # the bytes left from ``offset``
    type_id: Optional[int]
    reason: str
    raw: bytes
    warnings: Tuple[str, ...] = ()
    device_entries: Tuple[DeviceEntry, ...] = ()
    type: str = "MALFORMED"


Block = Union[Ivhd, Ivmd, UnknownBlock, Malformed]


@dataclass(frozen=True)
class Ivrs:
    """A decoded IVRS table."""

    name: str
    signature: str
    length: int
    revision: int
    checksum: int
    checksum_valid: bool
    oem_id: str
    oem_table_id: str
    oem_revision: int
    asl_compiler_id: str
    asl_compiler_revision: int
    iv_info: int
    reserved: bytes
    blocks: Tuple[Block, ...]
    data_length: int
    warnings: Tuple[str, ...] = field(default=())
    #: the one of ``warnings`` that says the data ends before the header's length
    truncation: Optional[str] = None

    @property
    def efr_sup(self) -> bool:
        return bool(self.iv_info & IOMMU_IVINFO_EFRSUP)

    @property
    def dma_remap(self) -> bool:
        """IVinfo bit 1: the firmware asks the OS to keep DMA remapping on (DMA
        protection, Linux ``amdr_ivrs_remap_support``)."""
        return bool(self.iv_info & IOMMU_IVINFO_DMA_REMAP)

    @property
    def gva_size(self) -> int:
        return (self.iv_info >> 5) & 0x7

    @property
    def pa_size(self) -> int:
        return (self.iv_info >> 8) & 0x7F

    @property
    def va_size(self) -> int:
        return (self.iv_info >> 15) & 0x7F

    @property
    def ivhds(self) -> List[Ivhd]:
        return [b for b in self.blocks if isinstance(b, Ivhd)]

    @property
    def ivmds(self) -> List[Ivmd]:
        return [b for b in self.blocks if isinstance(b, Ivmd)]

    def target_ivhd_type(self) -> Optional[int]:
        """The IVHD type Linux uses (``get_highest_supported_ivhd_type``): walking the
        blocks while their type is <= 40h, the last type seen with the first block's
        device ID. None when the table has no block."""
        if not self.blocks or isinstance(self.blocks[0], Malformed):
            return None
        first = self.blocks[0]
        last = first.type_id
        devid = getattr(first, "device_id", None)
        for b in self.blocks:
            if isinstance(b, Malformed) or b.type_id > ACPI_IVHD_TYPE_MAX_SUPPORTED:
                break
            if getattr(b, "device_id", None) == devid:
                last = b.type_id
        return last


def check_signature(data: bytes, name: str = "IVRS") -> None:
    if len(data) < 4:
        raise DecodeError(name, 0, f"{len(data)} bytes: too short for an ACPI table header")
    sig = bytes(data[:4])
    if sig == b"IVRS":
        return
    if sig == b"DMAR":
        raise UnsupportedFormat(
            f"{name}: Intel VT-d table (DMAR): not an AMD IVRS table; decode it with "
            "`kdumptool dmar`")
    if len(data) >= 36 and all(0x20 < b < 0x7F for b in sig):
        raise UnsupportedFormat(f"{name}: ACPI table {_hexsig(sig)!r}: not an IVRS table")
    raise DecodeError(name, 0, f"signature {_hexsig(sig)!r}: not an ACPI IVRS table")


def parse_ivrs(data: bytes, name: str = "IVRS") -> Ivrs:
    """Decode a raw IVRS table (/sys/firmware/acpi/tables/IVRS, ``acpidump -b``).

    Raises :class:`UnsupportedFormat` for other ACPI tables and :class:`DecodeError`
    when the header itself does not decode; problems inside the table become warnings
    and :class:`Malformed` records.
    """
    data = bytes(data)
    check_signature(data, name)
    if len(data) < IVRS_HEADER_LEN:
        raise DecodeError(
            name, len(data), f"only {len(data)} bytes: the IVRS header needs {IVRS_HEADER_LEN}")
    hdr = IvrsHeaderStruct.parse(data[:IVRS_HEADER_LEN])
    acpi = hdr.acpi
    warnings: List[str] = []
    length = acpi.length
    if length < IVRS_HEADER_LEN:
        raise DecodeError(
            name, 4,
            f"header length {length} is shorter than the {IVRS_HEADER_LEN}-byte IVRS header")
    end = length
    truncation: Optional[str] = None
    if length > len(data):
        truncation = (f"offset 0x{len(data):x}: table truncated: header says {length} bytes, "
                      f"only {len(data)} present; decoding what is there")
        warnings.append(truncation)
        end = len(data)
    elif len(data) > length:
        warnings.append(
            f"offset 0x{length:x}: {len(data) - length} bytes after the table's end ignored")
    checksum_valid = length <= len(data) and sum(data[:length]) & 0xFF == 0
    if not checksum_valid and length <= len(data):
        warnings.append(
            f"offset 0x9: bad checksum 0x{acpi.checksum:02x}: the bytes sum to "
            f"0x{sum(data[:length]) & 0xFF:02x}, not 0 (decoded anyway)")
    blocks = _walk_blocks(data, IVRS_HEADER_LEN, end, warnings)
    return Ivrs(
        name=name,
        signature=acpi.signature.decode("latin-1"),
        length=length,
        revision=acpi.revision,
        checksum=acpi.checksum,
        checksum_valid=checksum_valid,
        oem_id=_text(acpi.oem_id),
        oem_table_id=_text(acpi.oem_table_id),
        oem_revision=acpi.oem_revision,
        asl_compiler_id=_text(acpi.asl_compiler_id),
        asl_compiler_revision=acpi.asl_compiler_revision,
        iv_info=hdr.iv_info,
        reserved=hdr.reserved,
        blocks=tuple(blocks),
        data_length=end,
        warnings=tuple(warnings),
        truncation=truncation,
    )


def _fixed_length(type_id: int) -> int:
    if type_id == 0x10:
        return IVHD10_LEN
    if type_id in (0x11, 0x40):
        return IVHD11_LEN
    if type_id in (0x20, 0x21, 0x22):
        return IVMD_LEN
    return 4


def _walk_blocks(data: bytes, pos: int, end: int, warnings: List[str]) -> List[Block]:
    out: List[Block] = []
    while pos < end:
        remaining = end - pos
        if remaining < 4:
            reason = f"{remaining} trailing bytes: too short for a block header"
            out.append(Malformed(pos, remaining, None, reason, data[pos:end]))
            warnings.append(f"offset 0x{pos:x}: {reason}")
            break
        type_id = data[pos]
        blen = int.from_bytes(data[pos + 2 : pos + 4], "little")
        tname = f"{BLOCK_TYPES.get(type_id, 'block')} type {type_id:02x}h"
        fixed = _fixed_length(type_id)
        reason = ""
        if blen < 4:
            reason = f"{tname} length {blen} is shorter than the 4-byte block header"
        elif blen > remaining:
            reason = f"{tname} length {blen} overruns the table: only {remaining} bytes left"
        elif blen < fixed:
            reason = f"{tname} length {blen} is shorter than its {fixed}-byte fixed part"
        if reason:
            out.append(Malformed(pos, remaining, type_id, reason, data[pos:end]))
            warnings.append(f"offset 0x{pos:x}: {reason}")
            break
        raw = data[pos : pos + blen]
        if type_id in (0x10, 0x11, 0x40):
            out.append(_decode_ivhd(raw, pos))
        elif type_id in (0x20, 0x21, 0x22):
            s = IvmdStruct.parse(raw)
            w: List[str] = []
            if blen > IVMD_LEN:
                w.append(f"offset 0x{pos + IVMD_LEN:x}: IVMD has {blen - IVMD_LEN} bytes "
                         "past its 32-byte body")
            out.append(Ivmd(pos, type_id, blen, s.flags, s.device_id, s.auxiliary_data,
                            s.pci_segment, s.start_address, s.memory_length, tuple(w)))
        else:
            out.append(UnknownBlock(pos, blen, type_id, raw))
        pos += blen
    return out


def _decode_ivhd(raw: bytes, pos: int) -> Ivhd:
    w: List[str] = []
    type_id = raw[0]
    if type_id == 0x10:
        s = Ivhd10Struct.parse(raw)
        entries = _walk_entries(raw, IVHD10_LEN, pos, w)
        return Ivhd(pos, type_id, len(raw), s.flags, s.device_id, s.capability_offset,
                    s.base_address, s.pci_segment, s.info, entries,
                    feature_reporting=s.feature_reporting, warnings=tuple(w))
    s = Ivhd11Struct.parse(raw)
    entries = _walk_entries(raw, IVHD11_LEN, pos, w)
    return Ivhd(pos, type_id, len(raw), s.flags, s.device_id, s.capability_offset,
                s.base_address, s.pci_segment, s.info, entries, attributes=s.attributes,
                efr_image=s.efr_image, efr_image2=s.efr_image2, warnings=tuple(w))


def _id_value(raw: bytes) -> Union[str, int]:
    """An ACPI HID/CID field: an integer when the upper four bytes are 0 (ACPI 6.5,
    ``_HID``: "the lower 4 bytes contain the integer and the upper 4 bytes are padded
    with 0"), else the characters up to the first NUL."""
    if raw[4:8] == b"\0\0\0\0":
        return int.from_bytes(raw, "little")
    nul = raw.find(b"\0")
    return raw[: nul if nul >= 0 else len(raw)].decode("latin-1")


def _walk_entries(raw: bytes, start: int, base: int, warnings: List[str]) -> Tuple[DeviceEntry, ...]:
    """Device entries of an IVHD ``raw`` (at table offset ``base``) from ``start``."""
    out: List[DeviceEntry] = []
    pos = start
    end = len(raw)
    while pos < end:
        remaining = end - pos
        at = base + pos
        type_id = raw[pos]
        tname = ENTRY_TYPES.get(type_id, f"type {type_id:02x}h")
        if type_id < 0x80:
            elen = 4 << (type_id >> 6)
        elif type_id == IVHD_DEV_ACPI_HID:
            if remaining < HID_FIXED_LEN:
                warnings.append(
                    f"offset 0x{at:x}: ACPI HID entry needs {HID_FIXED_LEN} bytes, only "
                    f"{remaining} left in the IVHD; entries from here on skipped")
                break
            elen = HID_FIXED_LEN + raw[pos + 21]
        else:
            warnings.append(
                f"offset 0x{at:x}: device entry type {type_id:02x}h has no known length "
                f"(Linux's ivhd_entry_length() gives 0 for it); the {remaining} bytes "
                "left in this IVHD are not decoded")
            out.append(DeviceEntry(at, type_id, "UNKNOWN", remaining, 0, 0,
                                   raw=raw[pos:end]))
            break
        if elen > remaining:
            warnings.append(
                f"offset 0x{at:x}: device entry ({tname}) of {elen} bytes overruns its IVHD: "
                f"only {remaining} bytes left; entries from here on skipped")
            break
        body = raw[pos : pos + elen]
        out.append(_decode_entry(body, at, type_id, warnings))
        pos += elen
    return tuple(out)


def _decode_entry(body: bytes, at: int, type_id: int, warnings: List[str]) -> DeviceEntry:
    name = ENTRY_TYPES.get(type_id, "UNKNOWN")
    elen = len(body)
    if type_id in (IVHD_DEV_ALIAS, IVHD_DEV_ALIAS_RANGE):
        a = DevEntryAliasStruct.parse(body)
        return DeviceEntry(at, type_id, name, elen, a.device_id, a.data_setting,
                           source_device_id=a.source_device_id, raw=body)
    if type_id in (IVHD_DEV_EXT_SELECT, IVHD_DEV_EXT_SELECT_RANGE, 0x40):
        e = DevEntryExtStruct.parse(body)
        return DeviceEntry(at, type_id, name, elen, e.device_id, e.data_setting,
                           extended_data=e.extended_data, raw=body)
    if type_id == IVHD_DEV_SPECIAL:
        sp = DevEntrySpecialStruct.parse(body)
        return DeviceEntry(at, type_id, name, elen, sp.device_id, sp.data_setting,
                           source_device_id=sp.source_device_id, handle=sp.handle,
                           variety=sp.variety, raw=body)
    if type_id == IVHD_DEV_ACPI_HID:
        h = DevEntryHidStruct.parse(body)
        uid_raw = body[HID_FIXED_LEN:]
        uid: Union[str, int, None] = None
        if h.uid_length:
            if h.uid_format == UID_IS_INTEGER:
                uid = int.from_bytes(uid_raw, "little")
            else:
                nul = uid_raw.find(b"\0")
                uid = uid_raw[: nul if nul >= 0 else len(uid_raw)].decode("latin-1")
        return DeviceEntry(at, type_id, name, elen, h.device_id, h.data_setting,
                           acpi_hid=_id_value(h.acpi_hid), acpi_cid=_id_value(h.acpi_cid),
                           uid_format=h.uid_format, uid_length=h.uid_length, uid=uid,
                           raw=body)
    d = DevEntry4Struct.parse(body[:4])
    return DeviceEntry(at, type_id, name, elen, d.device_id, d.data_setting, raw=body)
