"""The DMAR table QEMU's firmware gave both kernels: kdumptool's decode against iasl -d
(ACPICA, an independent decoder of the same bytes), the kernel's own DMAR log lines, and
the guest's lspci (every device scope names a device that exists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from tests.lab.labrun import Run, has_command, kdumptool

pytestmark = pytest.mark.lab

SCOPE_TYPES = {1: "PCI_ENDPOINT", 2: "PCI_BRIDGE", 3: "IOAPIC", 4: "HPET", 5: "ACPI_NAMESPACE"}


def _parse(run: Run):  # type: ignore[no-untyped-def]
    dmar_mod = pytest.importorskip("kdumptool.formats.dmar")
    data = run.path("live", "DMAR.bin").read_bytes()
    return dmar_mod.parse_dmar(data, "DMAR.bin")


def iasl_scopes(dsl: str) -> Tuple[int, int, List[Tuple[int, int, int, Tuple[int, int]]]]:
    """(register base, host address width field, [(type, enum id, bus, (dev, fn))])."""
    base = int(re.search(r"Register Base Address : ([0-9A-F]+)", dsl).group(1), 16)  # type: ignore[union-attr]
    haw = int(re.search(r"Host Address Width : ([0-9A-F]+)", dsl).group(1), 16)  # type: ignore[union-attr]
    scopes = []
    for m in re.finditer(r"Device Scope Type : ([0-9A-F]+).*?Enumeration ID : ([0-9A-F]+).*?"
                         r"PCI Bus Number : ([0-9A-F]+).*?PCI Path : ([0-9A-F]+),([0-9A-F]+)", dsl, re.S):
        scopes.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16),
                       (int(m.group(4), 16), int(m.group(5), 16))))
    return base, haw, scopes


def test_dmar_same_in_both_kernels(run: Run) -> None:
    assert run.path("live", "DMAR.bin").read_bytes() == run.path("kdump", "DMAR.bin").read_bytes(), \
        f"{run.name}: the kdump kernel saw a different DMAR table"


def test_dmar_decode_vs_iasl(run: Run, tmp_path: Path) -> None:
    if not shutil.which("iasl"):
        pytest.skip("iasl (acpica-tools) is not installed")
    dmar = _parse(run)
    shutil.copyfile(run.path("live", "DMAR.bin"), tmp_path / "DMAR.dat")
    subprocess.run(["iasl", "-d", "DMAR.dat"], cwd=tmp_path, capture_output=True, check=True)
    base, haw, scopes = iasl_scopes((tmp_path / "DMAR.dsl").read_text())
    drhds = [s for s in dmar.structures if type(s).__name__ == "Drhd"]
    assert len(drhds) == 1, f"{run.name}: {len(drhds)} DRHDs decoded"
    d = drhds[0]
    assert d.register_base_address == base, f"{run.name}: DRHD base {d.register_base_address:#x} != iasl {base:#x}"
    assert dmar.haw == haw, f"{run.name}: HAW {dmar.haw} != iasl {haw}"
    got = [(s.type_id, s.enumeration_id, s.start_bus, s.path[0]) for s in d.device_scopes]
    assert got == scopes, f"{run.name}: device scopes {got} != iasl {scopes}"
    assert {SCOPE_TYPES[s[0]] for s in scopes} == {s.type for s in d.device_scopes}


def test_dmar_decode_vs_kernel_log(run: Run) -> None:
    dmar = _parse(run)
    log = run.text("live", "dmesg.txt")
    m = re.search(r"DMAR: Host address width (\d+)", log)
    assert m and int(m.group(1)) == dmar.haw + 1, f"{run.name}: kernel says HAW {m and m.group(1)}, kdumptool {dmar.haw} + 1"
    bases = [int(x, 16) for x in re.findall(r"DMAR: DRHD base: 0x([0-9a-f]+) flags", log)]
    got = [s.register_base_address for s in dmar.structures if type(s).__name__ == "Drhd"]
    assert got == bases, f"{run.name}: DRHD bases {got} != kernel's {bases}"
    ioapic = re.findall(r"DMAR-IR: IOAPIC id (\d+) under DRHD", log)
    scoped = [s.enumeration_id for d in dmar.structures if type(d).__name__ == "Drhd"
              for s in d.device_scopes if s.type == "IOAPIC"]
    assert [int(x) for x in ioapic] == scoped, f"{run.name}: IOAPIC scopes {scoped} != kernel's {ioapic}"


def test_dmar_scopes_name_real_devices(run: Run) -> None:
    """Every bus-0 endpoint/bridge scope is a device the guest's lspci lists."""
    dmar = _parse(run)
    lspci = {ln.split()[0] for ln in run.text("live", "lspci_n.txt").splitlines() if ln.strip()}
    for d in dmar.structures:
        for s in getattr(d, "device_scopes", ()):
            if s.type in ("PCI_ENDPOINT", "PCI_BRIDGE") and len(s.path) == 1:
                bdf = f"{s.start_bus:02x}:{s.path[0][0]:02x}.{s.path[0][1]}"
                assert bdf in lspci, f"{run.name}: DMAR scope {bdf} is not in lspci {sorted(lspci)}"


@pytest.mark.parametrize("mode", ["live", "kdump"])
def test_kdumptool_dmar_command_in_guest(run: Run, mode: str) -> None:
    res = run.kdt(mode, "dmar")
    if res is None:
        pytest.skip("kdumptool dmar is not in this tree")
    rc, out, err = res
    assert rc == 0, f"{run.name} ({mode}): kdumptool dmar rc={rc}: {err[-1500:]}"
    host = kdumptool("dmar", str(run.path(mode, "DMAR.bin")), "--no-pci", "-f", "json")
    assert host.returncode == 0, host.stderr
    g, h = json.loads(out), json.loads(host.stdout)
    # The guest read /sys/firmware/acpi/tables/DMAR itself: same table, same decode (the
    # source path differs; findings may differ as only the guest checks scopes against PCI).
    for key in set(g) | set(h):
        if key not in ("source", "findings"):
            assert g.get(key) == h.get(key), f"{run.name} ({mode}): kdumptool dmar {key}: guest {g.get(key)!r} != host {h.get(key)!r}"
    assert g.get("structures"), f"{run.name} ({mode}): kdumptool dmar decoded no structure"


def test_kdumptool_dmar_command_host(run: Run) -> None:
    if not has_command("dmar"):
        pytest.skip("kdumptool dmar is not in this tree")
    r = kdumptool("dmar", str(run.path("live", "DMAR.bin")), "--no-pci", "-f", "text")
    assert r.returncode == 0, f"{run.name}: kdumptool dmar: {r.stderr[-1500:]}"
    assert re.search(r"fed90000", r.stdout, re.I), f"{run.name}: kdumptool dmar text shows no DRHD base:\n{r.stdout[:1500]}"
