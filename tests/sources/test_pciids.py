"""Names from pci.ids, checked against lspci (pciutils 3.9) on every lab snapshot.

The oracle: each snapshot's ``_kdumptool/lspci_vvv.txt`` (``lspci -vvv -nn`` in the guest,
fixtures/snapshots/PROVENANCE.md). Its header line ``BDF Class [cccc]: Vendor Device
[vvvv:dddd]`` and its ``Subsystem:`` line must read as ours once the ``-nn`` numbers are
put back the way plain lspci prints them.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Dict, Tuple

import pytest

from kdumptool.cli.names import naming
from kdumptool.formats.pciids import PciIds
from kdumptool.render.names import Naming
from kdumptool.sources.pciids import read_pci_names
from kdumptool.sources.system import read_system
from tests.conftest import FIXTURES, PCI_IDS_FIXTURE

SNAPS = sorted(p for p in (FIXTURES / "snapshots").iterdir() if (p / "_kdumptool/lspci_vvv.txt").is_file())
HEAD = re.compile(r"^(\S+) (.+) \[([0-9a-f]{4})\]: (.+) \[([0-9a-f]{4}):([0-9a-f]{4})\]")
SUB = re.compile(r"^\tSubsystem: (.+) \[([0-9a-f]{4}):([0-9a-f]{4})\]$")


def lspci_nn(path: Path) -> Dict[str, Tuple[str, str, str]]:
    """bdf -> (class, vendor+device, subsystem) as lspci -vvv -nn printed them."""
    out: Dict[str, Tuple[str, str, str]] = {}
    bdf = None
    for line in path.read_text().splitlines():
        m = HEAD.match(line)
        if m:
            bdf = m.group(1)
            out[bdf] = (f"{m.group(2)} [{m.group(3)}]", m.group(4), "")
            continue
        s = SUB.match(line)
        if s and bdf is not None:
            out[bdf] = out[bdf][:2] + (s.group(1),)
    return out


def as_nn(name: str, number: int) -> str:
    """Plain lspci's ``... Device 000e`` reads ``... Device`` under -nn (the id follows)."""
    suffix = f" Device {number:04x}"
    return name[: -len(suffix)] + " Device" if name.endswith(suffix) else name


@pytest.mark.parametrize("snap", SNAPS, ids=[s.name for s in SNAPS])
def test_names_equal_lspci(snap: Path) -> None:
    names = read_pci_names(str(PCI_IDS_FIXTURE))
    assert names is not None
    oracle = lspci_nn(snap / "_kdumptool/lspci_vvv.txt")
    system = read_system(snap)
    assert oracle and set(oracle) == {d.short_bdf for d in system.devices.values()}
    for d in system.devices.values():
        cls, dev, sub = oracle[d.short_bdf]
        ours_cls = names.class_name(d.class_code)
        code = f"{d.class_code >> 8:04x}"
        # lspci -nn: "Host bridge [0600]"; an unknown subclass already carries the number
        assert (ours_cls if ours_cls.endswith(f"[{code}]") else f"{ours_cls} [{code}]") == cls
        assert as_nn(names.device(d.vendor_id, d.device_id), d.device_id) == dev
        c = d.config
        assert c is not None
        if c.subsystem_vendor_id is not None and sub:
            assert as_nn(names.subsystem(d.vendor_id, d.device_id, c.subsystem_vendor_id, c.subsystem_id),
                         c.subsystem_id) == sub


def test_unknown_ids_read_like_lspci() -> None:
    names = read_pci_names(str(PCI_IDS_FIXTURE))
    assert names is not None
    assert names.device(0x8086, 0xFFFE) == "Intel Corporation Device fffe"
    assert names.device(0x0001, 0x0002) == "Device 0001:0002"
    assert names.class_name(0x020000) == "Ethernet controller"
    assert names.class_name(0x02EE00) == "Network controller [02ee]"
    assert names.class_name(0xEE0000) == "Class ee00"
    assert names.subsystem(0x8086, 0x10D3, 0x8086, 0x0000) == "Intel Corporation Device 0000"
    # subsystem == device: lspci names it after the device
    assert names.subsystem(0x8086, 0x10D3, 0x8086, 0x10D3) == "Intel Corporation 82574L Gigabit Network Connection"


def test_gzip_missing_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gz = tmp_path / "pci.ids.gz"
    gz.write_bytes(gzip.compress(PCI_IDS_FIXTURE.read_bytes()))
    n = read_pci_names(str(gz))
    assert isinstance(n, PciIds) and n.vendor(0x1B36) == "Red Hat, Inc."
    bad = tmp_path / "bad.ids.gz"
    bad.write_bytes(b"not gzip")
    assert read_pci_names(str(bad)) is None
    assert read_pci_names(str(tmp_path / "absent")) is None
    monkeypatch.setenv("KDUMPTOOL_PCI_IDS", str(gz))
    assert naming().names is not None and naming().note is None
    monkeypatch.setenv("KDUMPTOOL_PCI_IDS", str(tmp_path / "absent"))
    nm = naming()
    assert nm.names is None and nm.note and "pci.ids" in nm.note
    assert nm.title(0x8086, 0x10D3, 0x020000) == "Network controller [0200]: [8086:10d3]"
    assert naming(numeric=True).note is None


def test_numeric() -> None:
    n = Naming(read_pci_names(str(PCI_IDS_FIXTURE)), numeric=True)
    assert n.title(0x8086, 0x10D3, 0x020000) == "0200: 8086:10d3"
    assert n.json(0x8086, 0x10D3, 0x020000) == {"vendor_name": None, "device_name": None, "class_name": None}
