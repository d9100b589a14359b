"""What each Linux kernel range does with VT-d across kdump: one table, as data.

Triage picks the row of the kdump kernel (the one that copies, or does not copy, the
crashed kernel's tables) from its release string and names it in its verdict. The row
explains and predicts; the evidence (the kernels' own log lines, the registers, the
crashed kernel's tables in the vmcore) still decides: a kernel whose release string hides
its upstream sublevel (Debian's ``5.10.0-32``, Ubuntu's ``5.15.0-91``, RHEL's
``4.18.0-553``/``5.14.0-427`` with their own backports) gets the row of its base version,
said as uncertain where a stable backport moved the boundary.

Every row carries where its facts come from (a mainline release, a commit, a stable
series, or a lab run here). docs/triage.md shows the same table (``kernel_table_markdown``).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

Version = Tuple[int, int, int]

#: How the kdump kernel decides the format of the crashed kernel's root table
#: (``copy_translation_tables`` in drivers/iommu/intel/iommu.c).
COPY_NONE = "none"          # no copy: translation disabled, new tables
COPY_ECS = "ecs-bit"        # old format = RTADDR bit 11 (RTT); own format = ECAP.ECS
COPY_SMT = "rtaddr-smt"     # old format = RTADDR bit 10 (SMT/TTM); own format = scalable mode in use

#: What a legacy/scalable mismatch between the crashed kernel's tables and the kdump
#: kernel's mode does.
MISMATCH_MISREAD = "misread"    # "Copied translation tables", entries of the other format read as its own
MISMATCH_FAILS = "copy-fails"   # "Failed to copy translation tables", empty tables, DMA faults
MISMATCH_NA = "n/a"             # the kernel has no scalable mode


@dataclass(frozen=True)
class KernelRow:
    id: str
    versions: str               # as people say it
    since: Version               # first version of the row (inclusive)
    until: Optional[Version]     # first version of the next row (exclusive), None: open
    table_copy: str              # COPY_*
    reads_old_mode: str          # in words
    mismatch: str                # MISMATCH_*
    sm_default: str              # scalable-mode default and how it is set
    sm_params: str               # intel_iommu= words for scalable mode this kernel parses
    fault_format: str            # the DMAR fault line this range prints
    ir_copy: str                 # the interrupt-remapping table across kdump
    printk: str                  # the log buffer layout (for reading the crashed kernel's log)
    source: str                  # where the facts come from
    uncertain: str = ""          # what a release string cannot tell for this row

    def to_json(self) -> Dict[str, object]:
        return {"id": self.id, "versions": self.versions, "table_copy": self.table_copy,
                "reads_old_mode": self.reads_old_mode, "mismatch": self.mismatch,
                "sm_default": self.sm_default, "sm_params": self.sm_params,
                "fault_format": self.fault_format, "ir_copy": self.ir_copy,
                "printk": self.printk, "source": self.source, "uncertain": self.uncertain}


_FAULT_41 = "one line, decimal reason: `DMAR: [DMA Read] Request device [00:02.0] fault addr 8900a000 [fault reason 05] ...`"
_FAULT_53 = ("one line with `PASID %x` (ffffffff = none), decimal reason: `DMAR: [DMA Read] Request device "
             "[00:02.0] PASID ffffffff fault addr ffffc000 [fault reason 11] non-zero reserved fields in CTP` "
             "(5.10.223, lab)")
_FAULT_514 = ("`DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x0b] ...`, "
              "hex reason (commit 719a19335692, 5.14)")
_IR = "copied: `DMAR-IR: Copied IR table for dmar0 from previous kernel` (4.2+)"

KERNEL_TABLE: Tuple[KernelRow, ...] = (
    KernelRow(
        "pre-4.2", "before 4.2", (0, 0, 0), (4, 2, 0), COPY_NONE,
        "does not read it: a kdump kernel that finds translation on disables it and builds new tables",
        MISMATCH_NA, "no scalable mode", "none",
        "two lines up to 4.0 (`DMAR:[DMA Read] Request device [00:02.0] fault addr ...` then "
        "`DMAR:[fault reason 12] ...`); one line from 4.1",
        "not copied (the IR table is rebuilt)", "`printk_log` records from 3.5, `log_buf` text before",
        "Linux 4.2 merged the copy of translation and IR tables (Joerg Roedel's kdump series, "
        "'iommu/vt-d: Copy translation tables from old kernel')",
    ),
    KernelRow(
        "ecs-bit", "4.2 to 5.19 (5.15.y until its September 2022 stable update; all of 5.10.y)",
        (4, 2, 0), (6, 0, 0), COPY_ECS,
        "from the ECS bit: old format = RTADDR bit 11 (RTT), own format = ECAP.ECS (extended context, "
        "deprecated since VT-d 3.0, never built); RTADDR.SMT (bit 10) is not looked at",
        MISMATCH_MISREAD,
        "scalable mode from 5.0, only with `intel_iommu=sm_on` (prints `DMAR: Intel-IOMMU: scalable mode "
        "supported`); CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON exists in 5.10 (Debian 11: not set)",
        "`sm_on` (5.0+); `sm_off` ignored without a word by 5.10 (the lab's 5.10 kdump kernel took "
        "`intel_iommu=on,sm_off` silently and ran legacy mode)",
        f"{_FAULT_41} up to 5.2; {_FAULT_53} from 5.3; {_FAULT_514} from 5.14", _IR,
        "`printk_log` records (3.5-5.9), the lockless ring from 5.10",
        "Linux v4.2-v5.19 iommu.c copy_translation_tables (`ext = !!(rtaddr_reg & DMA_RTADDR_RTT); "
        "new_ext = !!ecap_ecs(iommu->ecap)`); lab: Debian 11's 5.10.0-32 (5.10.223) prints `DMAR: Copied "
        "translation tables from previous kernel for dmar0` over a scalable-mode table, then "
        "`[fault reason 11] non-zero reserved fields in CTP`; sashal's pending-5.10 queue of 2022-09-15 "
        "took the sagaw fix but not the kdump fix",
        uncertain="5.15.y got the fix in its September 2022 stable update ([PATCH 5.15 12/35], "
        "2022-09-16); a release string that hides the sublevel (Ubuntu 5.15.0-N) cannot tell which side; "
        "RHEL 8 (4.18) and RHEL 9 (5.14) carry their own backports",
    ),
    KernelRow(
        "rtaddr-smt", "6.0 and later (and 5.15.y after September 2022)", (6, 0, 0), None, COPY_SMT,
        "from RTADDR.SMT (bit 10, the TTM field): old format = the crashed kernel's RTADDR, own format = "
        "scalable mode in use",
        MISMATCH_FAILS,
        "CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON decides without `sm_on`/`sm_off` (Debian 12's 6.1 and "
        "6.12: =y, so scalable mode whenever the hardware has ECAP.SMTS)",
        "`sm_on`, `sm_off`", _FAULT_514, _IR, "the lockless ring",
        "Linux commit 0c5f6c0d8201 'iommu/vt-d: Fix kdump kernels boot failure with scalable mode' "
        "(Lu Baolu, merged for 6.0): `ext = !!(rtaddr_reg & DMA_RTADDR_SMT); new_ext = !!sm_supported(iommu)`, "
        "mismatch -> -EINVAL; lab: Debian 12's 6.1 and 6.12 print `DMAR: Failed to copy translation tables "
        "from previous kernel for dmar0`",
    ),
)

_ROWS: Dict[str, KernelRow] = {r.id: r for r in KERNEL_TABLE}


def parse_version(release: Optional[str], banner: Optional[str] = None) -> Optional[Version]:
    """(major, minor, sublevel) of a kernel release string (``5.10.0-32-amd64``,
    ``6.12.95+deb12-amd64``, ``4.18.0-553.el8_10.x86_64``); a ``Linux version`` banner
    that names the upstream version (Debian's ``#1 SMP Debian 5.10.223-1``) fills in the
    sublevel the release string hides."""
    if not release:
        return None
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release.strip())
    if not m:
        return None
    ver = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    if banner:
        b = re.search(r"\b(?:Debian|Ubuntu)\s+(\d+)\.(\d+)\.(\d+)", banner)
        if b and (int(b.group(1)), int(b.group(2))) == ver[:2]:
            ver = (ver[0], ver[1], int(b.group(3)))
    return ver


def kernel_row(release: Optional[str], banner: Optional[str] = None) -> Optional[KernelRow]:
    """The row of a kernel release, or None when the release is unknown."""
    ver = parse_version(release, banner)
    if ver is None:
        return None
    for row in KERNEL_TABLE:
        if ver >= row.since and (row.until is None or ver < row.until):
            if row.id == "ecs-bit" and ver[:2] == (5, 15) and ver[2] >= 69:
                return _ROWS["rtaddr-smt"]  # the September 2022 stable backport
            return row
    return None


def row(row_id: str) -> KernelRow:
    return _ROWS[row_id]


def kernel_table_markdown() -> str:
    """The table as docs/triage.md shows it (one row per kernel range)."""
    cols: List[Tuple[str, str]] = [
        ("versions", "kernels"), ("reads_old_mode", "how the kdump kernel reads the old table's mode"),
        ("mismatch", "legacy/scalable mismatch"), ("sm_default", "scalable-mode default"),
        ("sm_params", "intel_iommu= scalable words"), ("fault_format", "DMAR fault line"),
        ("ir_copy", "IR table"), ("source", "from"),
    ]
    out = ["| row | " + " | ".join(h for _, h in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in KERNEL_TABLE:
        vals = [str(getattr(r, k)).replace("|", "\\|") for k, _ in cols]
        if r.uncertain:
            vals[0] += f" (uncertain: {r.uncertain})"
        out.append(f"| `{r.id}` | " + " | ".join(vals) + " |")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class TranslationMeaning:
    """What one context-entry translation type means for DMA in flight at the crash and
    for the dump (VT-d spec 9.3 legacy TT, 9.6 scalable-mode PASID entry PGTT)."""
    name: str
    where: str          # legacy TT / scalable PGTT encoding
    bounded: bool       # the device's DMA is limited to what a page table maps
    in_flight: str
    dump: str


TRANSLATION_TYPES: Dict[str, TranslationMeaning] = {t.name: t for t in (
    TranslationMeaning(
        "multi-level", "legacy TT=0", True,
        "translated through the crashed kernel's second-level page table: DMA reaches only the pages it maps",
        "only those mapped pages of the dump can change after the panic"),
    TranslationMeaning(
        "dev-iotlb", "legacy TT=1", True,
        "as multi-level, and the device may also use translations cached in its own IOTLB (ATS), "
        "even after the entry is torn down",
        "the mapped pages (and stale cached ones) can change"),
    TranslationMeaning(
        "second-level", "scalable PGTT=2", True,
        "translated through the crashed kernel's second-level page table: DMA reaches only the pages it maps",
        "only those mapped pages of the dump can change after the panic"),
    TranslationMeaning(
        "first-level", "scalable PGTT=1", True,
        "translated through a first-level (CPU-format) page table: DMA reaches only the pages it maps",
        "only those mapped pages of the dump can change after the panic"),
    TranslationMeaning(
        "nested", "scalable PGTT=3", True,
        "first-level over second-level (a vIOMMU guest's tables over the host's): DMA reaches only pages both map",
        "only those mapped pages can change"),
    TranslationMeaning(
        "pass-through", "legacy TT=2, scalable PGTT=4", False,
        "untranslated: DMA addresses are physical addresses, no page table bounds them: the device can "
        "read and write anywhere in memory, the kdump kernel's own included",
        "any page of the dump can change after the panic; '0 mapped pages' means no page table, not no exposure"),
)}


def translation_meaning(name: Optional[str]) -> Optional[TranslationMeaning]:
    return TRANSLATION_TYPES.get(name or "")
