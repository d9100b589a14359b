#!/usr/bin/env python3
"""Build a sos-report-shaped directory from a kdumptool lab snapshot, holding only what
sos's pci, kernel and kdump plugins collect (see kdumptool/sources/sos.py):

    python3 tools/make_sos_fixture.py SNAPSHOT OUT

- proc/bus/pci/BB/DD.F          <- sys/bus/pci/devices/*/config (the same bytes the kernel
                                   serves through /proc/bus/pci)
- sos_commands/pci/lspci_-nnvv  <- _kdumptool/lspci_vvv.txt (the guest's lspci -vvv -nn)
- sos_commands/pci/lspci_-tv    <- _kdumptool/lspci_tree.txt
- sos_commands/kernel/dmesg     <- _kdumptool/dmesg.txt
- proc/cmdline, proc/iomem, sys/firmware/acpi/tables/DMAR, sys/kernel/kexec_crash_*,
  etc/kdump.conf, etc/sysconfig/kdump, etc/default/kdump-tools: copied where present
- sos_reports/manifest.json     a minimal manifest naming the source snapshot

Left out, as sos leaves them out: sys/bus/pci (device links), sys/kernel/iommu_groups,
sys/class/iommu, _kdumptool/vtd_registers.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

COPY = ("proc/cmdline", "proc/iomem", "sys/firmware/acpi/tables/DMAR", "sys/kernel/kexec_crash_loaded",
        "sys/kernel/kexec_crash_size", "etc/kdump.conf", "etc/sysconfig/kdump", "etc/default/kdump-tools")
CMDS = {"_kdumptool/lspci_vvv.txt": "sos_commands/pci/lspci_-nnvv",
        "_kdumptool/lspci_tree.txt": "sos_commands/pci/lspci_-tv",
        "_kdumptool/dmesg.txt": "sos_commands/kernel/dmesg"}


def main() -> int:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    if out.exists():
        shutil.rmtree(out)
    for rel in COPY:
        if (src / rel).is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)
    for a, b in CMDS.items():
        if (src / a).is_file():
            (out / b).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / a, out / b)
    devs = src / "sys/bus/pci/devices"
    for bdf in sorted(os.listdir(devs)):
        dom, bus, df = bdf.split(":")
        d = out / "proc/bus/pci" / (bus if dom == "0000" else f"{dom}:{bus}")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(devs / bdf / "config", d / df)
    (out / "sos_reports").mkdir(parents=True, exist_ok=True)
    (out / "sos_reports/manifest.json").write_text(json.dumps(
        {"note": f"built by tools/make_sos_fixture.py from {src.name} (not a sos run)"}, indent=2) + "\n")
    print(f"{out}: sos-shaped copy of {src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
