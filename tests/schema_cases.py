"""Every command with JSON output, on every fixture it applies to: the cases the JSON
Schema test (tests/test_json_schema.py) runs and tools/gen_schema.py drafted docs/schema from.
Each case: (schema name, argv)."""

from __future__ import annotations

from typing import List, Tuple

from tests.conftest import FIXTURES

SNAPS = sorted(p for p in (FIXTURES / "snapshots").iterdir() if (p / "sys").is_dir())
SOS = sorted(p for p in (FIXTURES / "sos").iterdir() if p.is_dir())
VTD = FIXTURES / "vmcore" / "vtd"
DUMPS = sorted((FIXTURES / "vmcore").glob("*.trim.*")) + sorted((FIXTURES / "vmcore" / "lzo").glob("*.trim.*")) + [
    FIXTURES / "vmcore" / "flat" / "legacy_on.lzo.cut.flat"]


def cases() -> List[Tuple[str, List[str]]]:
    out: List[Tuple[str, List[str]]] = []
    for t in sorted((FIXTURES / "dmar" / "tables").glob("*.dat"))[:20] + [FIXTURES / "dmar" / "lab_DMAR.bin"]:
        out.append(("dmar", ["dmar", str(t)]))
    for t in sorted((FIXTURES / "dmar" / "ivrs").glob("*.dat")):
        out.append(("ivrs", ["ivrs", str(t)]))
    for root in SNAPS + SOS:
        for cmd in ("pci", "iommu", "triage", "log"):
            out.append((cmd, [cmd, "--root", str(root)]))
    amd = FIXTURES / "lab_amdvi" / "amd_on"
    out.append(("triage", ["triage", "--root", str(amd / "kdump_snapshot.tar.gz")]))
    out.append(("triage", ["triage", "--offline", "--root", str(amd / "kdump_snapshot.tar.gz"),
                           "--vmcore", str(amd / "vmcore.iommu.elf")]))
    for root in SNAPS:
        out.append(("quiesce", ["quiesce", "--plan", "--root", str(root)]))
        for f in (root / "_kdumptool").glob("lspci_*.txt"):
            if f.name in ("lspci_xxxx.txt", "lspci_vvv.txt", "lspci_nn.txt"):
                out.append(("pci", ["pci", "--from-lspci", str(f)]))
    for d in DUMPS:
        out.append(("vmcore-info", ["vmcore", "info", str(d)]))
        out.append(("vmcore-log", ["vmcore", "log", str(d)]))
    leg, sm = VTD / "legacy_on.trim.kdump", VTD / "sm_mismatch_vmcore.trim.kdump"
    out += [
        ("vmcore-iommu", ["vmcore", "iommu", str(leg), "--saved", str(VTD / "legacy_on")]),
        ("vmcore-iommu", ["vmcore", "iommu", str(sm), "--saved", str(VTD / "sm_mismatch_vmcore")]),
        ("vmcore-iommu", ["vmcore", "iommu", str(sm), "--saved", str(VTD / "sm_mismatch_vmcore"),
                          "--device", "00:02.0", "--iova", "0xffffc000"]),
        ("vmcore-exposure", ["vmcore", "exposure", str(leg), "--saved", str(VTD / "legacy_on")]),
        ("vmcore-exposure", ["vmcore", "exposure", str(sm), "--saved", str(VTD / "sm_mismatch_vmcore")]),
        ("vmcore-scan", ["vmcore", "scan", str(leg)]),
        ("vmcore-scan", ["vmcore", "scan", str(sm)]),
        ("vmcore-scan", ["vmcore", "scan", str(FIXTURES / "lab_amdvi" / "amd_on" / "vmcore.iommu.elf")]),
    ]
    return out
