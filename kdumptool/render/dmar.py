"""DMAR table and its findings as JSON (the documented contract), plain text, and rich.

JSON contract (docs/dmar.md): top level ``signature``, ``length``, ``revision``,
``checksum_valid``, ``oem_id``, ``oem_table_id``, ``host_address_width`` (bits),
``flags`` {``raw``, ``intr_remap``, ``x2apic_opt_out``, ``dma_ctrl_platform_opt_in``},
``structures``, ``findings``; plus ``checksum``, ``oem_revision``, ``asl_compiler_id``,
``asl_compiler_revision``, ``source``, ``warnings``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from kdumptool.analysis.dmar_checks import scope_bdf_text
from kdumptool.formats.dmar import (
    Andd,
    Atsr,
    DeviceScope,
    Dmar,
    Drhd,
    Malformed,
    Rhsa,
    Rmrr,
    Satc,
    Sidp,
    Structure,
    UnknownStructure,
)
from kdumptool.model.finding import Finding
from kdumptool.render.acpi import findings_lines, findings_rich, header_lines
from kdumptool.render.output import human_size


def scope_json(sc: DeviceScope) -> Dict[str, Any]:
    return {
        "offset": sc.offset,
        "type": sc.type,
        "type_id": sc.type_id,
        "length": sc.length,
        "flags": sc.flags,
        "enumeration_id": sc.enumeration_id,
        "start_bus": sc.start_bus,
        "path": [[d, f] for d, f in sc.path],
    }


def structure_json(s: Structure) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": s.type if not isinstance(s, Malformed) else "MALFORMED",
                           "type_id": s.type_id, "offset": s.offset, "length": s.length}
    if isinstance(s, Drhd):
        out.update(flags=s.flags, include_pci_all=s.include_pci_all, size=s.size,
                   register_set_bytes=s.register_set_bytes, segment=s.segment,
                   register_base_address=s.register_base_address)
    elif isinstance(s, Rmrr):
        out.update(segment=s.segment, base_address=s.base_address, end_address=s.end_address)
    elif isinstance(s, Atsr):
        out.update(flags=s.flags, all_ports=s.all_ports, segment=s.segment)
    elif isinstance(s, Rhsa):
        out.update(register_base_address=s.register_base_address,
                   proximity_domain=s.proximity_domain)
    elif isinstance(s, Andd):
        out.update(acpi_device_number=s.acpi_device_number, acpi_object_name=s.acpi_object_name)
    elif isinstance(s, Satc):
        out.update(flags=s.flags, atc_required=s.atc_required, segment=s.segment)
    elif isinstance(s, Sidp):
        out.update(segment=s.segment)
    elif isinstance(s, UnknownStructure):
        out.update(raw=s.raw.hex())
    elif isinstance(s, Malformed):
        out.update(reason=s.reason, raw=s.raw.hex())
    out["device_scopes"] = [scope_json(sc) for sc in s.device_scopes]
    if s.warnings:
        out["warnings"] = list(s.warnings)
    return out


def dmar_json(dmar: Dmar, findings: Sequence[Finding], source: str = "") -> Dict[str, Any]:
    return {
        "source": source or dmar.name,
        "signature": dmar.signature,
        "length": dmar.length,
        "revision": dmar.revision,
        "checksum": dmar.checksum,
        "checksum_valid": dmar.checksum_valid,
        "oem_id": dmar.oem_id,
        "oem_table_id": dmar.oem_table_id,
        "oem_revision": dmar.oem_revision,
        "asl_compiler_id": dmar.asl_compiler_id,
        "asl_compiler_revision": dmar.asl_compiler_revision,
        "host_address_width": dmar.host_address_width,
        "flags": {
            "raw": dmar.flags,
            "intr_remap": dmar.intr_remap,
            "x2apic_opt_out": dmar.x2apic_opt_out,
            "dma_ctrl_platform_opt_in": dmar.dma_ctrl_platform_opt_in,
        },
        "structures": [structure_json(s) for s in dmar.structures],
        "findings": [f.to_json() for f in findings],
        "warnings": list(dmar.warnings),
    }


# ---------------------------------------------------------------------------- text




def flag_names(dmar: Dmar) -> str:
    names = [n for n, on in (("INTR_REMAP", dmar.intr_remap),
                             ("X2APIC_OPT_OUT", dmar.x2apic_opt_out),
                             ("DMA_CTRL_PLATFORM_OPT_IN", dmar.dma_ctrl_platform_opt_in)) if on]
    return ", ".join(names) if names else "none"


def scope_line(seg: int, sc: DeviceScope) -> str:
    """``PCI_ENDPOINT 0000:00:02.0``; IOAPIC/HPET/ACPI name their id and bus address."""
    where = scope_bdf_text(seg, sc)
    if sc.type == "IOAPIC":
        what = f"IOAPIC id {sc.enumeration_id}"
    elif sc.type == "HPET":
        what = f"HPET number {sc.enumeration_id}"
    elif sc.type == "ACPI_NAMESPACE":
        what = f"ACPI_NAMESPACE ANDD {sc.enumeration_id}"
    elif sc.type == "UNKNOWN":
        what = f"UNKNOWN type {sc.type_id}"
    else:
        what = sc.type
    extra = f" flags 0x{sc.flags:02x}" if sc.flags else ""
    return f"{what:<24} {where}{extra}"


def structure_summary(s: Structure) -> str:
    if isinstance(s, Drhd):
        n = len(s.device_scopes)
        scope = "INCLUDE_PCI_ALL" if s.include_pci_all else f"{n} scope{'' if n == 1 else 's'}"
        return (f"segment {s.segment:04x}  base 0x{s.register_base_address:x}  "
                f"size {human_size(s.register_set_bytes)}  flags 0x{s.flags:02x} ({scope})")
    if isinstance(s, Rmrr):
        n = s.end_address - s.base_address + 1
        size = human_size(n) if n > 0 else "empty"
        return (f"segment {s.segment:04x}  0x{s.base_address:x}-0x{s.end_address:x} "
                f"({size})")
    if isinstance(s, Atsr):
        return (f"segment {s.segment:04x}  flags 0x{s.flags:02x}"
                f"{' (ALL_PORTS)' if s.all_ports else ''}")
    if isinstance(s, Rhsa):
        return (f"base 0x{s.register_base_address:x}  proximity domain "
                f"{s.proximity_domain}")
    if isinstance(s, Andd):
        name = "".join(c if " " <= c < "\x7f" else f"\\x{ord(c):02x}" for c in s.acpi_object_name)
        return f"ACPI device number {s.acpi_device_number}  {name}"
    if isinstance(s, Satc):
        return (f"segment {s.segment:04x}  flags 0x{s.flags:02x}"
                f"{' (ATC_REQUIRED)' if s.atc_required else ''}")
    if isinstance(s, Sidp):
        return f"segment {s.segment:04x}"
    if isinstance(s, UnknownStructure):
        return f"type {s.type_id}, {s.length} bytes kept raw: {s.raw[:16].hex(' ')}" + (
            " ..." if len(s.raw) > 16 else "")
    return f"{s.reason}"


def render_dmar_text(dmar: Dmar, findings: Sequence[Finding], source: str = "") -> str:
    lines = header_lines(dmar, f"DMAR table {source or dmar.name}")
    lines.append(f"  host address width {dmar.host_address_width} bits")
    lines.append(f"  flags 0x{dmar.flags:02x}: {flag_names(dmar)}")
    counts: Dict[str, int] = {}
    for s in dmar.structures:
        counts[s.type] = counts.get(s.type, 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in counts.items())
    lines.append("")
    lines.append(f"Structures ({summary or 'none'}):")
    for s in dmar.structures:
        lines.append(f"  @0x{s.offset:03x} {s.type:<9} {structure_summary(s)}")
        seg = getattr(s, "segment", 0)
        for sc in s.device_scopes:
            lines.append(f"      {scope_line(seg, sc)}")
    lines.append("")
    lines += findings_lines(findings)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- rich

_TYPE_STYLE = {"DRHD": "bold green", "RMRR": "magenta", "MALFORMED": "bold red",
               "UNKNOWN": "red"}


def render_dmar_rich(dmar: Dmar, findings: Sequence[Finding], source: str = "") -> List[Any]:
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    csum = Text("ok", style="green") if dmar.checksum_valid else Text("BAD", style="bold red")
    head.add_row("DMAR", Text(source or dmar.name))
    head.add_row("length / revision", f"{dmar.length} bytes, revision {dmar.revision}")
    head.add_row("checksum", Text.assemble(f"0x{dmar.checksum:02x} ", csum))
    head.add_row("OEM", Text(f"{dmar.oem_id!r} {dmar.oem_table_id!r} rev 0x{dmar.oem_revision:x}"))
    head.add_row("compiler", Text(f"{dmar.asl_compiler_id!r} 0x{dmar.asl_compiler_revision:x}"))
    head.add_row("host address width", f"{dmar.host_address_width} bits")
    head.add_row("flags", f"0x{dmar.flags:02x}: {flag_names(dmar)}")

    tree = Tree(Text("Structures", style="bold"))
    for s in dmar.structures:
        label = Text.assemble((f"@0x{s.offset:03x} ", "dim"),
                              (f"{s.type:<9}", _TYPE_STYLE.get(s.type, "bold")),
                              structure_summary(s))
        node = tree.add(label)
        seg = getattr(s, "segment", 0)
        for sc in s.device_scopes:
            node.add(Text(scope_line(seg, sc)))

    out: List[Any] = [head, Text(""), tree, Text("")]
    out.append(findings_rich(findings))
    return out
