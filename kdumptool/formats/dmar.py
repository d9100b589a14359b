"""ACPI DMAR (DMA Remapping Reporting) table decoder.

Spec: Intel Virtualization Technology for Directed I/O, Architecture Specification,
rev. 4.1 (March 2023), chapter 8 "BIOS Considerations": 8.1 DMAR table header, 8.3 DRHD,
8.3.1 Device Scope, 8.4 RMRR, 8.5 ATSR, 8.6 RHSA, 8.7 ANDD, 8.8 SATC, 8.9 SIDP.
Cross-checked with Linux ``include/acpi/actbl1.h`` (``struct acpi_table_dmar``,
``acpi_dmar_*``) and ``drivers/iommu/intel/dmar.c``, and field by field against
ACPICA ``iasl -d`` output for every table of the corpus (tests/dsl_oracle.py).

The outer framing (ACPI header, signature) raises; everything inside the table is walked
with explicit loops that check ``header <= length <= remaining``: a structure or device
scope that does not fit becomes a :class:`Malformed` record or a warning, and the walk
keeps what decoded before it.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Tuple, Union

from kdumptool.errors import DecodeError, UnsupportedFormat
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.formats.lazyspec import lazy_specs

DMAR_HEADER_LEN = 48
DEVICE_SCOPE_HEADER_LEN = 6

# The decoder reads each fixed layout with ``struct`` (importing construct costs ~40 ms, a
# third of `kdumptool dmar`'s start-up: bench/bench_ratios.py); the construct specs below
# are the documented layouts, built on first use (``dmar.DrhdStruct``), and
# tests/formats/test_dmar.py checks both decodings agree field by field on every table of
# fixtures/ and on random bytes.
_ACPI_HEADER = struct.Struct("<4sIBB6s8sI4sI")
_ACPI_HEADER_FIELDS = ("signature", "length", "revision", "checksum", "oem_id", "oem_table_id",
                       "oem_revision", "asl_compiler_id", "asl_compiler_revision")
_DMAR_HEADER = struct.Struct("<4sIBB6s8sI4sIBB10s")
_DMAR_HEADER_FIELDS = _ACPI_HEADER_FIELDS + ("host_address_width", "flags", "reserved")
_REMAPPING_HEADER = struct.Struct("<HH")
#: type -> (layout, field names) of each structure's fixed part
_FIXED: Dict[int, Tuple[struct.Struct, Tuple[str, ...]]] = {
    0: (struct.Struct("<HHBBHQ"), ("type", "length", "flags", "size", "segment", "register_base_address")),
    1: (struct.Struct("<HHHHQQ"), ("type", "length", "reserved", "segment", "base_address", "end_address")),
    2: (struct.Struct("<HHBBH"), ("type", "length", "flags", "reserved", "segment")),
    3: (struct.Struct("<HHIQI"), ("type", "length", "reserved", "register_base_address", "proximity_domain")),
    4: (struct.Struct("<HH3sB"), ("type", "length", "reserved", "acpi_device_number")),
    5: (struct.Struct("<HHBBH"), ("type", "length", "flags", "reserved", "segment")),
    6: (struct.Struct("<HHHH"), ("type", "length", "reserved", "segment")),
}
_DEVICE_SCOPE = struct.Struct("<BBBBBB")
_DEVICE_SCOPE_FIELDS = ("type", "length", "flags", "reserved", "enumeration_id", "start_bus")


def _construct_specs() -> Dict[str, Any]:
    from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

    # ACPI 6.5, 5.2.6 "System Description Table Header": 36 bytes, little-endian.
    AcpiHeaderStruct = Struct(
        "signature" / Bytes(4),  # +0x00
        "length" / Int32ul,  # +0x04 whole table, header included
        "revision" / Int8ul,  # +0x08
        "checksum" / Int8ul,  # +0x09 all bytes of the table sum to 0 mod 256
        "oem_id" / Bytes(6),  # +0x0a
        "oem_table_id" / Bytes(8),  # +0x10
        "oem_revision" / Int32ul,  # +0x18
        "asl_compiler_id" / Bytes(4),  # +0x1c
        "asl_compiler_revision" / Int32ul,  # +0x20
    )

    # VT-d 8.1: the DMAR header after the ACPI header. 48 bytes in all.
    DmarHeaderStruct = Struct(
        "acpi" / AcpiHeaderStruct,  # +0x00
        "host_address_width" / Int8ul,  # +0x24 HAW: N means N+1 address bits
        "flags" / Int8ul,  # +0x25 bit0 INTR_REMAP, bit1 X2APIC_OPT_OUT, bit2 DMA_CTRL_PLATFORM_OPT_IN
        "reserved" / Bytes(10),  # +0x26
    )

    # VT-d 8.2: every remapping structure starts with Type (2) and Length (2).
    RemappingHeaderStruct = Struct(
        "type" / Int16ul,  # +0x00
        "length" / Int16ul,  # +0x02 whole structure, header and device scopes included
    )

    # VT-d 8.3 DMA Remapping Hardware Unit Definition. Fixed part 16 bytes, then scopes.
    DrhdStruct = Struct(
        "type" / Const(0, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "flags" / Int8ul,  # +0x04 bit0 INCLUDE_PCI_ALL
        "size" / Int8ul,  # +0x05 register set size, 2^N 4 KiB pages (rev 3.x+; reserved before)
        "segment" / Int16ul,  # +0x06 PCI segment number
        "register_base_address" / Int64ul,  # +0x08
    )

    # VT-d 8.4 Reserved Memory Region Reporting. Fixed part 24 bytes.
    RmrrStruct = Struct(
        "type" / Const(1, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "reserved" / Int16ul,  # +0x04
        "segment" / Int16ul,  # +0x06
        "base_address" / Int64ul,  # +0x08 4 KiB aligned
        "end_address" / Int64ul,  # +0x10 limit: last byte, (end + 1) 4 KiB aligned
    )

    # VT-d 8.5 Root Port ATS Capability Reporting. Fixed part 8 bytes.
    AtsrStruct = Struct(
        "type" / Const(2, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "flags" / Int8ul,  # +0x04 bit0 ALL_PORTS
        "reserved" / Int8ul,  # +0x05
        "segment" / Int16ul,  # +0x06
    )

    # VT-d 8.6 Remapping Hardware Static Affinity. 20 bytes, no scopes.
    RhsaStruct = Struct(
        "type" / Const(3, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "reserved" / Int32ul,  # +0x04
        "register_base_address" / Int64ul,  # +0x08 matches a DRHD
        "proximity_domain" / Int32ul,  # +0x10 ACPI _PXM value
    )

    # VT-d 8.7 ACPI Name-space Device Declaration. 8 bytes, then a NUL-terminated name.
    AnddStruct = Struct(
        "type" / Const(4, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "reserved" / Bytes(3),  # +0x04
        "acpi_device_number" / Int8ul,  # +0x07 matches ACPI_NAMESPACE scopes' enumeration ID
    )

    # VT-d 8.8 SoC Integrated Address Translation Cache. Fixed part 8 bytes.
    SatcStruct = Struct(
        "type" / Const(5, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "flags" / Int8ul,  # +0x04 bit0 ATC_REQUIRED
        "reserved" / Int8ul,  # +0x05
        "segment" / Int16ul,  # +0x06
    )

    # VT-d 8.9 SoC Integrated Device Property. Fixed part 8 bytes.
    SidpStruct = Struct(
        "type" / Const(6, Int16ul),  # +0x00
        "length" / Int16ul,  # +0x02
        "reserved" / Int16ul,  # +0x04
        "segment" / Int16ul,  # +0x06
    )

    # VT-d 8.3.1 Device Scope Structure: 6 bytes, then (device, function) pairs.
    DeviceScopeStruct = Struct(
        "type" / Int8ul,  # +0x00
        "length" / Int8ul,  # +0x01 6 + 2 * path entries
        "flags" / Int8ul,  # +0x02 reserved before rev 4.0; SIDP property bits since
        "reserved" / Int8ul,  # +0x03
        "enumeration_id" / Int8ul,  # +0x04 IOAPIC id, HPET number, ANDD device number
        "start_bus" / Int8ul,  # +0x05
    )
    return {
        "AcpiHeaderStruct": AcpiHeaderStruct,
        "DmarHeaderStruct": DmarHeaderStruct,
        "RemappingHeaderStruct": RemappingHeaderStruct,
        "DrhdStruct": DrhdStruct,
        "RmrrStruct": RmrrStruct,
        "AtsrStruct": AtsrStruct,
        "RhsaStruct": RhsaStruct,
        "AnddStruct": AnddStruct,
        "SatcStruct": SatcStruct,
        "SidpStruct": SidpStruct,
        "DeviceScopeStruct": DeviceScopeStruct,
    }


__getattr__ = lazy_specs(__name__, _construct_specs)

# Linux include/acpi/actbl1.h spelling.
ACPI_DMAR_INTR_REMAP = 0x01
ACPI_DMAR_X2APIC_OPT_OUT = 0x02
ACPI_DMAR_X2APIC_MODE = ACPI_DMAR_X2APIC_OPT_OUT
ACPI_DMAR_DMA_CTRL_PLATFORM_OPT_IN = 0x04  # Linux: DMAR_PLATFORM_OPT_IN
ACPI_DMAR_INCLUDE_ALL = 0x01  # DRHD flags
ACPI_DMAR_ALL_PORTS = 0x01  # ATSR flags
ACPI_DMAR_ATC_REQUIRED = 0x01  # SATC flags

ACPI_DMAR_TYPE_HARDWARE_UNIT = 0
ACPI_DMAR_TYPE_RESERVED_MEMORY = 1
ACPI_DMAR_TYPE_ROOT_ATS = 2
ACPI_DMAR_TYPE_HARDWARE_AFFINITY = 3
ACPI_DMAR_TYPE_NAMESPACE = 4
ACPI_DMAR_TYPE_SATC = 5
ACPI_DMAR_TYPE_SIDP = 6

STRUCTURE_NAMES: Dict[int, str] = {
    0: "DRHD",
    1: "RMRR",
    2: "ATSR",
    3: "RHSA",
    4: "ANDD",
    5: "SATC",
    6: "SIDP",
}

#: Device scope types (VT-d 8.3.1), ACPI_DMAR_SCOPE_TYPE_* in Linux.
SCOPE_TYPES: Dict[int, str] = {
    1: "PCI_ENDPOINT",
    2: "PCI_BRIDGE",
    3: "IOAPIC",
    4: "HPET",
    5: "ACPI_NAMESPACE",
}

#: Fixed part (before device scopes) of each structure type.
FIXED_LENGTH: Dict[int, int] = {0: 16, 1: 24, 2: 8, 3: 20, 4: 8, 5: 8, 6: 8}

#: Other ACPI tables someone may hand us instead of a DMAR, and what they are.
OTHER_SIGNATURES: Dict[bytes, str] = {
    b"IVRS": "AMD IOMMU (IVRS): not an Intel VT-d table; decode it with `kdumptool ivrs`",
    b"IORT": "Arm IO remapping table (IORT): not an Intel VT-d table",
    b"VIOT": "virtual IOMMU table (VIOT): not an Intel VT-d table",
    b"APIC": "ACPI MADT (APIC): not a DMAR table",
    b"FACP": "ACPI FADT (FACP): not a DMAR table",
    b"DSDT": "ACPI DSDT: not a DMAR table",
    b"SSDT": "ACPI SSDT: not a DMAR table",
    b"MCFG": "ACPI MCFG (PCI ECAM): not a DMAR table",
    b"HPET": "ACPI HPET table: not a DMAR table",
    b"SRAT": "ACPI SRAT: not a DMAR table",
}


@dataclass(frozen=True)
class DeviceScope:
    """VT-d 8.3.1 device scope: a device named by start bus and a (dev, fn) path."""

    offset: int  # byte offset in the table
    type_id: int
    type: str  # PCI_ENDPOINT PCI_BRIDGE IOAPIC HPET ACPI_NAMESPACE UNKNOWN
    length: int
    enumeration_id: int
    start_bus: int
    path: Tuple[Tuple[int, int], ...]
    flags: int = 0

    @property
    def bdf(self) -> Optional[Tuple[int, int, int]]:
        """(bus, device, function) of a single-hop path; None for longer paths."""
        if len(self.path) != 1:
            return None
        return (self.start_bus, self.path[0][0], self.path[0][1])


@dataclass(frozen=True)
class Drhd:
    offset: int
    length: int
    flags: int
    size: int  # log2 of the register set size in 4 KiB pages
    segment: int
    register_base_address: int
    device_scopes: Tuple[DeviceScope, ...]
    warnings: Tuple[str, ...] = ()
    type_id: int = 0
    type: str = "DRHD"

    @property
    def include_pci_all(self) -> bool:
        return bool(self.flags & ACPI_DMAR_INCLUDE_ALL)

    @property
    def register_set_bytes(self) -> int:
        return 4096 << self.size


@dataclass(frozen=True)
class Rmrr:
    offset: int
    length: int
    segment: int
    base_address: int
    end_address: int  # inclusive limit
    device_scopes: Tuple[DeviceScope, ...]
    reserved: int = 0
    warnings: Tuple[str, ...] = ()
    type_id: int = 1
    type: str = "RMRR"


@dataclass(frozen=True)
class Atsr:
    offset: int
    length: int
    flags: int
    segment: int
    device_scopes: Tuple[DeviceScope, ...]
    warnings: Tuple[str, ...] = ()
    type_id: int = 2
    type: str = "ATSR"

    @property
    def all_ports(self) -> bool:
        return bool(self.flags & ACPI_DMAR_ALL_PORTS)


@dataclass(frozen=True)
class Rhsa:
    offset: int
    length: int
    register_base_address: int
    proximity_domain: int
    warnings: Tuple[str, ...] = ()
    device_scopes: Tuple[DeviceScope, ...] = ()
    type_id: int = 3
    type: str = "RHSA"


@dataclass(frozen=True)
class Andd:
    offset: int
    length: int
    acpi_device_number: int
    acpi_object_name: str
    warnings: Tuple[str, ...] = ()
    device_scopes: Tuple[DeviceScope, ...] = ()
    type_id: int = 4
    type: str = "ANDD"


@dataclass(frozen=True)
class Satc:
    offset: int
    length: int
    flags: int
    segment: int
    device_scopes: Tuple[DeviceScope, ...]
    warnings: Tuple[str, ...] = ()
    type_id: int = 5
    type: str = "SATC"

    @property
    def atc_required(self) -> bool:
        return bool(self.flags & ACPI_DMAR_ATC_REQUIRED)


@dataclass(frozen=True)
class Sidp:
    offset: int
    length: int
    segment: int
    device_scopes: Tuple[DeviceScope, ...]
    warnings: Tuple[str, ...] = ()
    type_id: int = 6
    type: str = "SIDP"


@dataclass(frozen=True)
class UnknownStructure:
    """A structure type this decoder does not know (a future spec revision): kept raw."""

    offset: int
    length: int
    type_id: int
    raw: bytes
    warnings: Tuple[str, ...] = ()
    device_scopes: Tuple[DeviceScope, ...] = ()
    type: str = "UNKNOWN"


@dataclass(frozen=True)
class Malformed:
    """Bytes where a structure should be but that do not frame as one; the walk stops."""

    offset: int
    length: int  # the bytes left in the table from ``offset``
    type_id: Optional[int]  # None when even the 4-byte header does not fit
    reason: str
    raw: bytes
    warnings: Tuple[str, ...] = ()
    device_scopes: Tuple[DeviceScope, ...] = ()
    type: str = "MALFORMED"


Structure = Union[Drhd, Rmrr, Atsr, Rhsa, Andd, Satc, Sidp, UnknownStructure, Malformed]
#: The structures that carry device scopes: their ``warnings`` are the scopes' framing
#: problems (``_walk_scopes`` is their only writer).
SCOPED = (Drhd, Rmrr, Atsr, Satc, Sidp)


@dataclass(frozen=True)
class Dmar:
    """A decoded DMAR table."""

    name: str
    signature: str
    length: int  # from the header
    revision: int
    checksum: int
    checksum_valid: bool
    oem_id: str
    oem_table_id: str
    oem_revision: int
    asl_compiler_id: str
    asl_compiler_revision: int
    haw: int  # the raw Host Address Width field
    flags: int
    reserved: bytes
    structures: Tuple[Structure, ...]
    data_length: int  # bytes actually decoded (< length when the input was truncated)
    warnings: Tuple[str, ...] = ()

    @property
    def host_address_width(self) -> int:
        """Host address width in bits (the field holds N - 1)."""
        return self.haw + 1

    @property
    def intr_remap(self) -> bool:
        return bool(self.flags & ACPI_DMAR_INTR_REMAP)

    @property
    def x2apic_opt_out(self) -> bool:
        return bool(self.flags & ACPI_DMAR_X2APIC_OPT_OUT)

    @property
    def dma_ctrl_platform_opt_in(self) -> bool:
        return bool(self.flags & ACPI_DMAR_DMA_CTRL_PLATFORM_OPT_IN)

    def of_type(self, cls: type) -> List[Structure]:
        return [s for s in self.structures if isinstance(s, cls)]


def _hexsig(sig: bytes) -> str:
    if all(0x20 <= b < 0x7F for b in sig):
        return sig.decode("ascii")
    return sig.hex()


def _text(raw: bytes) -> str:
    """An ACPI fixed-size ID as ACPICA's disassembler prints it: the bytes up to the
    first NUL, each non-printable byte shown as a space."""
    nul = raw.find(b"\0")
    raw = raw if nul < 0 else raw[:nul]
    return "".join(chr(b) if 0x20 <= b < 0x7F else " " for b in raw)


def check_signature(data: bytes, name: str = "DMAR") -> None:
    """Raise for input that is not a DMAR table: UnsupportedFormat for another ACPI
    table (an AMD IVRS above all), DecodeError for anything else."""
    if len(data) < 4:
        raise DecodeError(name, 0, f"{len(data)} bytes: too short for an ACPI table header")
    sig = bytes(data[:4])
    if sig == b"DMAR":
        return
    if sig in OTHER_SIGNATURES:
        raise UnsupportedFormat(f"{name}: {OTHER_SIGNATURES[sig]}")
    if len(data) >= 36 and all(0x20 < b < 0x7F for b in sig):
        raise UnsupportedFormat(f"{name}: ACPI table {_hexsig(sig)!r}: not a DMAR table")
    raise DecodeError(name, 0, f"signature {_hexsig(sig)!r}: not an ACPI DMAR table")


def parse_dmar(data: bytes, name: str = "DMAR") -> Dmar:
    """Decode a raw DMAR table (as in /sys/firmware/acpi/tables/DMAR or ``acpidump -b``).

    Raises :class:`UnsupportedFormat` for other ACPI tables and :class:`DecodeError`
    when the header itself does not decode; problems inside the table become warnings
    and :class:`Malformed` records.
    """
    data = bytes(data)
    check_signature(data, name)
    if len(data) < DMAR_HEADER_LEN:
        raise DecodeError(
            name, len(data), f"only {len(data)} bytes: the DMAR header needs {DMAR_HEADER_LEN}"
        )
    (signature, length, revision, checksum, oem_id, oem_table_id, oem_revision, asl_compiler_id,
     asl_compiler_revision, haw, flags, reserved) = _DMAR_HEADER.unpack_from(data)
    warnings: List[str] = []
    if length < DMAR_HEADER_LEN:
        raise DecodeError(
            name, 4, f"header length {length} is shorter than the {DMAR_HEADER_LEN}-byte DMAR header"
        )
    end = length
    if length > len(data):
        warnings.append(
            f"offset 0x{len(data):x}: table truncated: header says {length} bytes, "
            f"only {len(data)} present; decoding what is there"
        )
        end = len(data)
    elif len(data) > length:
        warnings.append(
            f"offset 0x{length:x}: {len(data) - length} bytes after the table's end ignored"
        )
    checksum_valid = length <= len(data) and sum(data[:length]) & 0xFF == 0
    if not checksum_valid and length <= len(data):
        warnings.append(
            f"offset 0x9: bad checksum 0x{checksum:02x}: the bytes sum to "
            f"0x{sum(data[:length]) & 0xFF:02x}, not 0 (decoded anyway)"
        )
    structures = _walk_structures(data, DMAR_HEADER_LEN, end, warnings)
    return Dmar(
        name=name,
        signature=signature.decode("latin-1"),
        length=length,
        revision=revision,
        checksum=checksum,
        checksum_valid=checksum_valid,
        oem_id=_text(oem_id),
        oem_table_id=_text(oem_table_id),
        oem_revision=oem_revision,
        asl_compiler_id=_text(asl_compiler_id),
        asl_compiler_revision=asl_compiler_revision,
        haw=haw,
        flags=flags,
        reserved=reserved,
        structures=tuple(structures),
        data_length=end,
        warnings=tuple(warnings),
    )


def _walk_structures(data: bytes, pos: int, end: int, warnings: List[str]) -> List[Structure]:
    out: List[Structure] = []
    while pos < end:
        remaining = end - pos
        if remaining < 4:
            reason = f"{remaining} trailing bytes: too short for a structure header"
            out.append(Malformed(pos, remaining, None, reason, data[pos:end]))
            warnings.append(f"offset 0x{pos:x}: {reason}")
            break
        rtype, rlength = _REMAPPING_HEADER.unpack_from(data, pos)
        tname = STRUCTURE_NAMES.get(rtype, f"type {rtype}")
        fixed = FIXED_LENGTH.get(rtype, 4)
        reason = ""
        if rlength < 4:
            reason = f"{tname} length {rlength} is shorter than the 4-byte structure header"
        elif rlength > remaining:
            reason = (
                f"{tname} length {rlength} overruns the table: only {remaining} bytes left"
            )
        elif rlength < fixed:
            reason = f"{tname} length {rlength} is shorter than its {fixed}-byte fixed part"
        if reason:
            out.append(Malformed(pos, remaining, rtype, reason, data[pos:end]))
            warnings.append(f"offset 0x{pos:x}: {reason}")
            break
        out.append(_decode_structure(data[pos : pos + rlength], pos, rtype))
        pos += rlength
    return out


def _fixed(type_id: int, raw: bytes) -> Tuple[Any, ...]:
    """The fixed part of a structure whose length was checked against FIXED_LENGTH."""
    return _FIXED[type_id][0].unpack_from(raw)


def _decode_structure(raw: bytes, pos: int, type_id: int) -> Structure:
    length = len(raw)
    w: List[str] = []
    if type_id == ACPI_DMAR_TYPE_HARDWARE_UNIT:
        _, _, flags, size, segment, rba = _fixed(type_id, raw)
        scopes = _walk_scopes(raw, 16, pos, w)
        return Drhd(pos, length, flags, size, segment, rba, scopes, tuple(w))
    if type_id == ACPI_DMAR_TYPE_RESERVED_MEMORY:
        _, _, reserved, segment, base, end = _fixed(type_id, raw)
        scopes = _walk_scopes(raw, 24, pos, w)
        return Rmrr(pos, length, segment, base, end, scopes, reserved, tuple(w))
    if type_id == ACPI_DMAR_TYPE_ROOT_ATS:
        _, _, flags, _, segment = _fixed(type_id, raw)
        scopes = _walk_scopes(raw, 8, pos, w)
        return Atsr(pos, length, flags, segment, scopes, tuple(w))
    if type_id == ACPI_DMAR_TYPE_HARDWARE_AFFINITY:
        _, _, _, rba, proximity = _fixed(type_id, raw)
        if length > 20:
            w.append(f"offset 0x{pos + 20:x}: RHSA has {length - 20} bytes past its 20-byte body")
        return Rhsa(pos, length, rba, proximity, tuple(w))
    if type_id == ACPI_DMAR_TYPE_NAMESPACE:
        number = _fixed(type_id, raw)[3]
        name_raw = raw[8:]
        nul = name_raw.find(b"\0")
        if nul < 0:
            if name_raw:
                w.append(f"offset 0x{pos + 8:x}: ANDD object name is not NUL-terminated")
            nul = len(name_raw)
        return Andd(pos, length, number, name_raw[:nul].decode("latin-1"), tuple(w))
    if type_id == ACPI_DMAR_TYPE_SATC:
        _, _, flags, _, segment = _fixed(type_id, raw)
        scopes = _walk_scopes(raw, 8, pos, w)
        return Satc(pos, length, flags, segment, scopes, tuple(w))
    if type_id == ACPI_DMAR_TYPE_SIDP:
        segment = _fixed(type_id, raw)[3]
        scopes = _walk_scopes(raw, 8, pos, w)
        return Sidp(pos, length, segment, scopes, tuple(w))
    return UnknownStructure(pos, length, type_id, raw)


def _walk_scopes(raw: bytes, start: int, base: int, warnings: List[str]) -> Tuple[DeviceScope, ...]:
    """Device scopes from ``start`` to the end of the structure ``raw`` (at ``base``)."""
    out: List[DeviceScope] = []
    pos = start
    end = len(raw)
    while pos < end:
        remaining = end - pos
        at = base + pos
        if remaining < 2:
            warnings.append(f"offset 0x{at:x}: {remaining} trailing byte(s) after the device scopes")
            break
        stype, slen = raw[pos], raw[pos + 1]
        tname = SCOPE_TYPES.get(stype, f"type {stype}")
        if slen < DEVICE_SCOPE_HEADER_LEN:
            warnings.append(
                f"offset 0x{at:x}: device scope ({tname}) length {slen} is shorter than "
                f"its 6-byte header; scopes from here on skipped"
            )
            break
        if slen > remaining:
            warnings.append(
                f"offset 0x{at:x}: device scope ({tname}) length {slen} overruns its "
                f"structure: only {remaining} bytes left; scopes from here on skipped"
            )
            break
        _, _, sflags, _, enumeration_id, start_bus = _DEVICE_SCOPE.unpack_from(raw, pos)
        body = raw[pos + DEVICE_SCOPE_HEADER_LEN : pos + slen]
        if len(body) % 2:
            warnings.append(
                f"offset 0x{at:x}: device scope length {slen} leaves an odd byte in its path"
            )
        path = tuple((body[i], body[i + 1]) for i in range(0, len(body) - 1, 2))
        out.append(DeviceScope(at, stype, SCOPE_TYPES.get(stype, "UNKNOWN"), slen,
                               enumeration_id, start_bus, path, sflags))
        pos += slen
    return tuple(out)
