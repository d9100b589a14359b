"""What ``kdumptool dmar`` and ``kdumptool ivrs`` show alike: the ACPI table header
(ACPI 6.5, 5.2.6) and the table's findings, as text lines and as a rich table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Sequence, Union

from kdumptool.model.finding import Finding

if TYPE_CHECKING:  # only for the types: `dmar` need not import the IVRS decoder, nor `ivrs` DMAR's
    from rich.console import RenderableType

    from kdumptool.formats.dmar import Dmar
    from kdumptool.formats.ivrs import Ivrs

SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def header_lines(table: Union[Dmar, Ivrs], title: str) -> List[str]:
    """``title``, then length, revision, checksum (and whether it sums to zero), OEM and
    compiler."""
    csum = "ok" if table.checksum_valid else "BAD"
    return [title,
            f"  length {table.length}, revision {table.revision}, checksum 0x{table.checksum:02x} ({csum})",
            f"  OEM {table.oem_id!r} table {table.oem_table_id!r} revision 0x{table.oem_revision:x}, "
            f"compiler {table.asl_compiler_id!r} 0x{table.asl_compiler_revision:x}"]


def count_text(findings: Sequence[Finding]) -> str:
    """``2 error, 1 warning``, in the order the severities first appear."""
    by: Dict[str, int] = {}
    for fd in findings:
        by[fd.severity] = by.get(fd.severity, 0) + 1
    return ", ".join(f"{n} {sev}" for sev, n in by.items())


def findings_lines(findings: Sequence[Finding]) -> List[str]:
    if not findings:
        return ["Findings: none"]
    lines = [f"Findings ({count_text(findings)}):"]
    for fd in findings:
        at = f" @0x{fd.offset:x}" if fd.offset is not None else ""
        lines.append(f"  {fd.severity:<7} {fd.id}{at}: {fd.title}")
    return lines


def findings_rich(findings: Sequence[Finding]) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    if not findings:
        return Text("Findings: none", style="green")
    tab = Table(title=f"Findings ({count_text(findings)})", title_justify="left")
    tab.add_column("severity")
    tab.add_column("id", style="bold")
    tab.add_column("at", justify="right", style="dim")
    tab.add_column("finding")
    for fd in findings:
        # Text(), not str: a message may quote firmware strings with [brackets], which rich
        # would read as markup.
        tab.add_row(Text(fd.severity, style=SEV_STYLE.get(fd.severity, "")), Text(fd.id),
                    f"0x{fd.offset:x}" if fd.offset is not None else "", Text(fd.title))
    return tab
