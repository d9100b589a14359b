"""Golden text and JSON of ``kdumptool pci`` and ``kdumptool iommu`` on the lab snapshots.
Regenerate with KDUMPTOOL_REGEN_GOLDEN=1 and read the diff. The snapshot path is written
as ``<root>`` so the files do not depend on the checkout's location."""

from __future__ import annotations

import json

import pytest

from tests.cliutil import check_golden, run
from tests.conftest import FIXTURES

SNAP = FIXTURES / "snapshots"
GOLDEN = FIXTURES / "system_golden"

CASES = [
    ("pci_kdump_legacy_on.txt", ["pci", "kdump_legacy_on"]),
    ("pci_v_live_legacy_on.txt", ["pci", "live_legacy_on", "-v"]),
    ("pci_live_legacy_on.json", ["pci", "live_legacy_on"]),
    ("iommu_live_legacy_on.txt", ["iommu", "live_legacy_on"]),
    ("iommu_live_sm_mismatch.txt", ["iommu", "live_sm_mismatch"]),
    ("iommu_kdump_sm_mismatch.json", ["iommu", "kdump_sm_mismatch"]),
    ("iommu_kdump_legacy_off.txt", ["iommu", "kdump_legacy_off"]),
]


@pytest.mark.parametrize("name,args", CASES, ids=[c[0] for c in CASES])
def test_golden(capsys, name, args):
    cmd, snap, *rest = args
    root = str(SNAP / snap)
    fmt = "json" if name.endswith(".json") else "text"
    code, out, _ = run(capsys, cmd, "--root", root, "-f", fmt, *rest)
    assert code == 0
    out = out.replace(root, "<root>")
    if fmt == "json":
        json.loads(out)
    check_golden(GOLDEN, name, out)


@pytest.mark.parametrize("run", ["kdump_legacy_on", "live_sm_mismatch", "kdump_legacy_off"])
def test_rich_renderers_show_the_same_facts(run):
    from rich.console import Console

    from kdumptool.render.iommu import render_iommu_rich
    from kdumptool.render.pci import render_pci_rich
    from kdumptool.sources.system import read_system

    system = read_system(SNAP / run)
    console = Console(record=True, width=200, color_system=None)
    console.print(render_pci_rich(system, verbose=True))
    console.print(render_iommu_rich(system))
    text = console.export_text()
    for d in system.devices.values():
        assert d.short_bdf in text
    assert ("RISK" in text) == any(d.kdump_risk for d in system.devices.values())
    assert "TES+" in text or "TES-" in text
