"""ACPI tables from a root (live host or snapshot) or a file, and the little of the PCI
tree that the DMAR checks need.

Linux exports each firmware table raw under ``/sys/firmware/acpi/tables/<SIG>`` (root
only, mode 0400); ``acpidump`` reads the same bytes. A file may be that raw form or the
acpidump text form (decoded by :mod:`kdumptool.formats.acpi_text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union

from kdumptool.errors import DecodeError, PermissionDenied, SourceMissing
from kdumptool.sources.root import Root

if TYPE_CHECKING:
    from kdumptool.formats.dmar import Dmar
    from kdumptool.formats.ivrs import Ivrs

ACPI_TABLES = "/sys/firmware/acpi/tables"
PCI_DEVICES = "/sys/bus/pci/devices"


def read_dmar(root: Root) -> Optional[bytes]:
    """The raw DMAR table of ``root``, or None when the firmware publishes none."""
    path = f"{ACPI_TABLES}/DMAR"
    if not root.exists(path):
        return None
    return root.read_bytes(path)


def no_dmar_reason(root: Root) -> str:
    """One plain sentence saying why ``root`` has no DMAR table."""
    where = "this machine" if root.is_live else str(root.path)
    if not root.exists(ACPI_TABLES):
        return (
            f"{where}: no {ACPI_TABLES}: not an ACPI system, or sysfs is not mounted "
            "(no DMAR table to read)"
        )
    if root.exists(f"{ACPI_TABLES}/IVRS"):
        return (f"{where}: AMD IOMMU (IVRS table), no DMAR: not an Intel VT-d machine; "
                "decode the AMD table with `kdumptool ivrs`")
    return (
        f"{where}: no DMAR table: the firmware reports no Intel VT-d IOMMU "
        "(usual in VMs without an emulated intel-iommu, or with VT-d disabled in the "
        "firmware set-up)"
    )


def read_table(root: Root, signature: str) -> Optional[bytes]:
    """The raw ACPI table ``signature`` of ``root`` (IVRS, APIC...), or None when the
    firmware publishes none."""
    path = f"{ACPI_TABLES}/{signature}"
    if not root.exists(path):
        return None
    return root.read_bytes(path)


def no_ivrs_reason(root: Root) -> str:
    """One plain sentence saying why ``root`` has no IVRS table."""
    where = "this machine" if root.is_live else str(root.path)
    if not root.exists(ACPI_TABLES):
        return (f"{where}: no {ACPI_TABLES}: not an ACPI system, or sysfs is not mounted "
                "(no IVRS table to read)")
    if root.exists(f"{ACPI_TABLES}/DMAR"):
        return (f"{where}: Intel VT-d (DMAR table), no IVRS: not an AMD-Vi machine; "
                "decode the Intel table with `kdumptool dmar`")
    return (f"{where}: no IVRS table: the firmware reports no AMD IOMMU (usual in VMs "
            "without an emulated amd-iommu, or with the IOMMU disabled in the firmware "
            "set-up)")


def read_dmar_input(root: Root, file: Optional[Union[str, Path]],
                    root_label: Optional[str]) -> Tuple[Dmar, str]:
    """The decoded DMAR table and the name to show: from ``file`` when given (``-`` is
    standard input), else ``root``'s ``/sys/firmware/acpi/tables/DMAR`` (SourceMissing,
    saying why, when there is none)."""
    from kdumptool.formats.dmar import parse_dmar

    if file is not None:
        data = read_table_file(file)
        source = "<stdin>" if str(file) == "-" else str(file)
    else:
        raw = read_dmar(root)
        if raw is None:
            raise SourceMissing(no_dmar_reason(root))
        data = raw
        where = f"{ACPI_TABLES}/DMAR"
        source = where if root_label is None else f"{root_label}:{where}"
    try:
        return parse_dmar(data, source), source
    except DecodeError as err:
        raise err.with_source(source) if err.what != source else err from None


def read_ivrs_input(root: Root, file: Optional[Union[str, Path]],
                    root_label: Optional[str]) -> Tuple[Ivrs, Optional[List[int]], str]:
    """The IVRS to check, the MADT's I/O APIC ids when the machine is known (live or a
    root; None for a bare file), and the name to show: from ``file`` when given
    (``-`` is standard input), else ``root``'s ``/sys/firmware/acpi/tables/IVRS``."""
    from kdumptool.formats.ivrs import parse_ivrs
    from kdumptool.formats.madt import parse_madt_ioapic_ids

    madt: Optional[bytes] = None
    if file is not None:
        data = read_table_file(file, "IVRS")
        source = "<stdin>" if str(file) == "-" else str(file)
    else:
        raw = read_table(root, "IVRS")
        if raw is None:
            raise SourceMissing(no_ivrs_reason(root))
        data = raw
        where = f"{ACPI_TABLES}/IVRS"
        source = where if root_label is None else f"{root_label}:{where}"
    if not (file is not None and root_label is None):
        madt = read_table(root, "APIC")
    try:
        table = parse_ivrs(data, source)
    except DecodeError as err:
        raise err.with_source(source) if err.what != source else err from None
    ioapics: Optional[List[int]] = None
    if madt is not None:
        try:
            ioapics = parse_madt_ioapic_ids(madt, "APIC")
        except DecodeError:
            ioapics = None
    return table, ioapics, source


#: Largest table file read: an acpidump text of a whole large server is a few MiB.
MAX_TABLE_FILE = 64 << 20


def _check_size(data: bytes, what: str) -> None:
    if len(data) > MAX_TABLE_FILE:
        raise DecodeError(what, MAX_TABLE_FILE, "larger than 64 MiB: not an ACPI table nor an acpidump file")


def read_table_file(path: Union[str, Path], signature: str = "DMAR") -> bytes:
    """A table from a file (``-`` is standard input): raw binary (sysfs,
    ``acpidump -b``) or acpidump text."""
    from kdumptool.formats.acpi_text import extract_table

    if str(path) == "-":
        import sys

        data = sys.stdin.buffer.read(MAX_TABLE_FILE + 1)
        _check_size(data, "<stdin>")
        if not data:
            raise DecodeError("<stdin>", 0, "empty input")
        return extract_table(data, signature, "<stdin>")
    p = Path(path)
    try:
        with open(p, "rb") as fh:  # bounded: /dev/zero or a disk image must not fill memory
            data = fh.read(MAX_TABLE_FILE + 1)
    except FileNotFoundError:
        raise SourceMissing(f"{p}: no such file") from None
    except IsADirectoryError:
        raise SourceMissing(f"{p}: is a directory") from None
    except PermissionError:
        raise PermissionDenied(f"{p}: permission denied") from None
    except OSError as exc:
        raise SourceMissing(f"{p}: {exc.strerror}") from None
    _check_size(data, str(p))
    if not data:
        raise DecodeError(str(p), 0, "empty file")
    return extract_table(data, signature, str(p))


def read_pci_bridges(root: Root) -> Optional[Dict[str, Optional[int]]]:
    """The PCI devices of ``root`` keyed by ``SSSS:BB:DD.F``: the secondary bus number
    for a PCI-to-PCI bridge (header type 1), None for anything else.

    Returns None when the tree is not there at all (a snapshot without /sys/bus/pci).
    """
    names = root.listdir(PCI_DEVICES)
    if not names:
        return None
    out: Dict[str, Optional[int]] = {}
    for bdf in names:
        sec: Optional[int] = None
        try:
            cfg = root.read_bytes(f"{PCI_DEVICES}/{bdf}/config", 64)
        except (SourceMissing, PermissionDenied):
            cfg = b""
        if len(cfg) >= 0x1A and (cfg[0x0E] & 0x7F) == 1:
            sec = cfg[0x19]
        out[bdf.lower()] = sec
    return out


def read_iomem_ranges(root: Root, name: str) -> Optional[List[Tuple[int, int]]]:
    """Inclusive ranges of the ``/proc/iomem`` entries called ``name`` (case-insensitive,
    any depth), or None when /proc/iomem is unreadable or shows only zeros (unprivileged)."""
    text = root.read_optional("/proc/iomem")
    if not text:
        return None
    # "start-end : name", indented two spaces per level. Parsed here rather than with
    # sources.system.parse_iomem so that `kdumptool dmar` does not import the whole
    # system model (about 40 ms of start-up).
    out: List[Tuple[int, int]] = []
    nonzero = False
    for line in text.splitlines():
        rng, sep, label = line.strip().partition(" : ")
        a, dash, b = rng.partition("-")
        if not sep or not dash:
            continue
        try:
            start, end = int(a, 16), int(b, 16)
        except ValueError:
            continue
        nonzero = nonzero or end != 0
        if label.strip().lower() == name.lower():
            out.append((start, end))
    return out if nonzero else None


def read_reserved_ranges(root: Root) -> Optional[List[Tuple[int, int]]]:
    """Memory the firmware reserved (e820 type 2), inclusive ranges: the ``Reserved``
    entries of ``/proc/iomem`` (built from the kernel's e820 table, at any depth, since
    they nest under PCI windows), else ``/sys/firmware/memmap``. None when neither is
    readable (an unprivileged /proc/iomem shows every address as 0)."""
    from_iomem = read_iomem_ranges(root, "Reserved")
    if from_iomem is not None:
        return from_iomem
    out: List[Tuple[int, int]] = []
    for entry in root.listdir("/sys/firmware/memmap"):
        base = f"/sys/firmware/memmap/{entry}"
        kind = root.read_optional(f"{base}/type")
        start = root.read_optional(f"{base}/start")
        end = root.read_optional(f"{base}/end")
        if kind is None or start is None or end is None:
            continue
        if kind.lower() == "reserved":
            try:
                out.append((int(start, 16), int(end, 16)))
            except ValueError:
                continue
    return out or None
