"""``kdumptool iommu`` leaves a device's own warnings (its config space reads) to
``kdumptool pci``: keyed on the device records, not on the warning's wording."""

from __future__ import annotations

import shutil

from kdumptool.render.iommu import iommu_warnings, render_iommu_text
from kdumptool.sources.root import open_root
from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES


def test_a_devices_config_warning_is_not_repeated_by_iommu(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(FIXTURES / "snapshots" / "live_legacy_on", snap, symlinks=True)
    cfg = snap / "sys/devices/pci0000:00/0000:00:04.0/config"
    cfg.write_bytes(cfg.read_bytes()[:64])  # what a non-root reader gets
    with open_root(snap) as r:
        system = read_system(r)
    mine = [w for w in system.devices["0000:00:04.0"].warnings if "config space" in w]
    assert mine and all(w in system.warnings for w in mine)  # the system lists it too
    shown = iommu_warnings(system)
    assert not set(mine) & set(shown)
    assert shown == [w for w in system.warnings if w not in mine]
    text = render_iommu_text(system)
    assert all(w not in text for w in mine)
