"""``kdumptool pci``: the PCI tree with bus mastering, driver, IOMMU group and VT-d unit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdumptool.cli.common import FormatOpt, RootOpt, check_format


def register(app: typer.Typer) -> None:
    @app.command("pci")
    def pci(
        root: RootOpt = None,
        fmt: FormatOpt = "auto",
        verbose: int = typer.Option(
            0, "--verbose", "-v", count=True,
            help="Decode each device's config space (BARs, MSI/MSI-X state, AER); -vv adds "
            "DevCap/DevCtl/DevSta (FLReset, TransPend) and MSI addresses, as lspci -vv."),
        slot: Optional[str] = typer.Option(None, "--slot", "-s", help="Only this device (BB:DD.F or SSSS:BB:DD.F)."),
        numeric: bool = typer.Option(False, "--numeric", "-n", help="Numbers only, no names from pci.ids (like lspci -n)."),
        from_lspci: Optional[Path] = typer.Option(
            None, "--from-lspci", readable=False, help="Read devices from lspci output instead: -x/-xxx/-xxxx hex dumps, or -nnvv / -nnk text (a sos report's; drivers from \"Kernel driver in use\")."
        ),
    ) -> None:
        """PCI devices as a tree (like lspci -tv) with BusMaster, driver, IOMMU group and VT-d unit."""
        fmt = check_format(fmt)
        if slot is not None:
            import re

            slot = slot.lower()
            if not re.fullmatch(r"([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", slot):
                raise typer.BadParameter(f"{slot!r} is not BB:DD.F or SSSS:BB:DD.F", param_hint="--slot")
        from kdumptool.cli.names import naming
        from kdumptool.render.output import emit
        from kdumptool.render.pci import render_pci_json, render_pci_rich, render_pci_text

        if from_lspci is not None:
            from kdumptool.sources.system import read_system_from_lspci

            system = read_system_from_lspci(from_lspci)
        else:
            from kdumptool.sources.system import read_system

            system = read_system(root)
        if slot is not None and not any(slot in (d.bdf, d.short_bdf) for d in system.devices.values()):
            from kdumptool.errors import SourceMissing

            raise SourceMissing(f"{from_lspci or root or '/'}: no PCI device {slot}")
        names = naming(numeric)
        emit(
            fmt,
            json_obj=lambda: render_pci_json(system, slot, names),
            text=lambda: render_pci_text(system, verbose, slot, names),
            rich=lambda: render_pci_rich(system, verbose, slot, names),
        )
