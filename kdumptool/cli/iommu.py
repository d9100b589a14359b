"""``kdumptool iommu``: VT-d units with decoded registers, and IOMMU groups."""

from __future__ import annotations

import typer

from kdumptool.cli.common import FormatOpt, RootOpt, check_format


def register(app: typer.Typer) -> None:
    @app.command("iommu")
    def iommu(
        root: RootOpt = None,
        fmt: FormatOpt = "auto",
        no_registers: bool = typer.Option(
            False, "--no-registers", help="Do not read VT-d registers through /dev/mem on a live host."
        ),
    ) -> None:
        """VT-d units (translation, interrupt remapping, legacy/scalable mode, faults) and IOMMU groups."""
        fmt = check_format(fmt)
        from kdumptool.render.iommu import render_iommu_json, render_iommu_rich, render_iommu_text
        from kdumptool.render.output import emit
        from kdumptool.sources.system import read_system

        system = read_system(root, read_registers=not no_registers)
        emit(
            fmt,
            json_obj=lambda: render_iommu_json(system),
            text=lambda: render_iommu_text(system),
            rich=lambda: render_iommu_rich(system),
        )
