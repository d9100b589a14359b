"""The lab DMAR table against what the Linux kernel that booted with it printed
(drivers/iommu/intel/dmar.c and irq_remapping.c; ACPICA's table banner)."""

from __future__ import annotations

import re

from kdumptool.formats.dmar import Drhd, Rmrr, parse_dmar
from tests.conftest import FIXTURES

D = FIXTURES / "dmar"


def test_lab_table_matches_kernel_log() -> None:
    dmar = parse_dmar((D / "lab_DMAR.bin").read_bytes())
    log = (D / "lab_dmesg_dmar.txt").read_text()

    # ACPI: DMAR 0x000000003FFE302B 000098 (v01 BOCHS  BXPC     00000001 BXPC 00000001)
    m = re.search(r"ACPI: DMAR 0x[0-9A-F]+ ([0-9A-F]{6}) \(v(\d\d) (.{6}) (.{8}) ([0-9A-F]{8}) "
                  r"(.{4}) ([0-9A-F]{8})\)", log)
    assert m
    assert int(m.group(1), 16) == dmar.length
    assert int(m.group(2)) == dmar.revision
    assert m.group(3) == dmar.oem_id.ljust(6)
    assert m.group(4) == dmar.oem_table_id.ljust(8)
    assert int(m.group(5), 16) == dmar.oem_revision
    assert m.group(6) == dmar.asl_compiler_id
    assert int(m.group(7), 16) == dmar.asl_compiler_revision

    m = re.search(r"DMAR: Host address width (\d+)", log)
    assert m and int(m.group(1)) == dmar.host_address_width

    drhds = [s for s in dmar.structures if isinstance(s, Drhd)]
    logged = [(int(a, 16), int(f, 16)) for a, f in
              re.findall(r"DMAR: DRHD base: (0x[0-9a-f]+) flags: (0x[0-9a-f]+)", log)]
    assert logged == [(d.register_base_address, d.flags) for d in drhds]

    ioapics = [(int(i), int(a, 16)) for i, a in
               re.findall(r"DMAR-IR: IOAPIC id (\d+) under DRHD base\s+(0x[0-9a-f]+)", log)]
    ours = [(sc.enumeration_id, d.register_base_address) for d in drhds
            for sc in d.device_scopes if sc.type == "IOAPIC"]
    assert ioapics == ours and ours

    assert ("DMAR: No RMRR found" in log) == (not any(isinstance(s, Rmrr)
                                                      for s in dmar.structures))
    assert "DMAR-IR: Enabled IRQ remapping" in log and dmar.intr_remap
