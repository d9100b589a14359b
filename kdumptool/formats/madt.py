"""The little of the ACPI MADT ("APIC") that the AMD-Vi checks need: the I/O APIC ids.

ACPI 6.5, 5.2.12 "Multiple APIC Description Table": the 36-byte ACPI header, Local
Interrupt Controller Address (4) and Flags (4), then interrupt controller structures,
each Type (1) and Length (1); type 1 "I/O APIC Structure" (12 bytes) has the I/O
APIC ID at +2. Linux's AMD-Vi driver checks each of these ids against the IVRS special
entries (``check_ioapic_information`` in drivers/iommu/amd/init.c).
"""

from __future__ import annotations

from typing import List

from kdumptool.errors import DecodeError

MADT_HEADER_LEN = 44
ACPI_MADT_TYPE_IO_APIC = 1


def parse_madt_ioapic_ids(data: bytes, name: str = "APIC") -> List[int]:
    """The I/O APIC ids of a raw MADT, in table order. Raises DecodeError for input that
    is not a MADT; a structure that overruns ends the walk."""
    data = bytes(data)
    if len(data) < MADT_HEADER_LEN or data[:4] != b"APIC":
        raise DecodeError(name, 0, "not an ACPI MADT (APIC) table")
    end = min(len(data), int.from_bytes(data[4:8], "little"))
    pos = MADT_HEADER_LEN
    out: List[int] = []
    while pos + 2 <= end:
        typ, ln = data[pos], data[pos + 1]
        if ln < 2 or pos + ln > end:
            break
        if typ == ACPI_MADT_TYPE_IO_APIC and ln >= 12:
            out.append(data[pos + 2])
        pos += ln
    return out
