"""What the crashed kernel and the kdump kernel do with AMD-Vi, reasoned the way Linux
reasons (drivers/iommu/amd/init.c, 6.12), and what that means for DMA in flight.

Pure functions over a few inputs: both command lines, whether this is the kdump kernel,
and the AMD-Vi marker lines of the kernel logs (formats/klog.py kinds ``amdvi_*``).

Kernel behaviour modelled:

- AMD-Vi is used whenever the firmware has an IVRS, unless ``amd_iommu=off`` (sets
  ``amd_iommu_disabled``) or ``iommu=off`` (``no_iommu``: ``amd_iommu_detect`` returns
  at once). There is no DEFAULT_ON config as with VT-d. ``iommu=pt`` keeps translation
  on with identity (pass-through) domains.
- A kdump kernel that finds IommuEn set (``init_translation_status``) logs
  "Translation is already enabled - trying to copy translation structures" and copies
  the old device table (``copy_device_table``): "Copied DEV table from previous kernel."
  keeps every device's old DTE (domain, page table) live; the copy is refused when the
  old table's size differs from the one this kernel computes from the IVRS, when it is
  above 4 GiB, on an unexpected interrupt-remapping setting or a domain ID it cannot
  reserve: "Failed to copy DEV table from previous kernel." and the IOMMU restarts with
  a fresh table in which every device is blocked (``init_device_table_dma``).
- With ``amd_iommu=off`` or ``iommu=off`` the kdump kernel never reaches
  ``early_amd_iommu_init``: the state machine stops at IOMMU_CMDLINE_DISABLED and
  ``disable_iommus()`` walks an empty IOMMU list, so the hardware is left as the crashed
  kernel left it: translating through the old device table, which this kernel neither
  copied nor reserved, while its own drivers hand devices physical addresses.
- A kernel that is not a kdump kernel and finds IommuEn set logs "Translation was
  enabled for IOMMU:N but we are not in kdump mode" and turns it off (kexec reboot).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

from kdumptool.analysis.iommu_common import both_kernels, read_cmdline
from kdumptool.model.evidence import Evidence


@dataclass(frozen=True)
class AmdViParams:
    amd_off: bool = False  # amd_iommu=off
    no_iommu: bool = False  # iommu=off
    passthrough: bool = False  # iommu=pt
    is_kdump: bool = False  # elfcorehdr=
    args: Tuple[str, ...] = ()

    @property
    def off(self) -> bool:
        return self.amd_off or self.no_iommu


def parse_amdvi_params(cmdline: str) -> AmdViParams:
    """The AMD-Vi relevant parameters of a command line (Linux parse_amd_iommu_options:
    a comma list, each option applied)."""
    return read_cmdline(cmdline, AmdViParams(), _amd_option)


def _amd_option(p: AmdViParams, name: str, val: str) -> Optional[AmdViParams]:
    if name != "amd_iommu":
        return None
    return replace(p, amd_off=True) if "off" in val.split(",") else p


CASES = {
    "amd-off-both": ("info", "AMD-Vi off in both kernels: in-flight DMA lands in the old kernel's memory"),
    "amd-off-on": ("info", "AMD-Vi off in the first kernel, on in the kdump kernel: IO_PAGE_FAULTs until "
                   "drivers reset their devices"),
    "amd-on-off": ("error", "AMD-Vi on in the first kernel but disabled on the kdump kernel's command line: "
                   "the IOMMU keeps translating through the crashed kernel's device table, which the kdump "
                   "kernel neither copies nor protects"),
    "amd-copied": ("info", "AMD-Vi on in both kernels: the kdump kernel copies the device table, old "
                   "mappings stay live"),
    "amd-copy-failed": ("warning", "AMD-Vi on in both kernels, but the kdump kernel cannot copy the crashed "
                        "kernel's device table: it restarts with every device blocked"),
    "amd-not-kdump": ("warning", "a previous kernel left AMD-Vi translation on and this is not a kdump kernel "
                      "(kexec reboot): translation was switched off"),
    "amd-unknown": ("warning", "AMD-Vi state of the kdump kernel cannot be determined"),
}

EXPLAIN = {
    "amd-off-both": "Without remapping, devices still mastering at the crash write to the addresses the "
    "crashed kernel gave them: its own memory, which kdump only reads.",
    "amd-off-on": "The kdump kernel sets up AMD-Vi with every device blocked: DMA still in flight is refused "
    "(IO_PAGE_FAULT event lines) until the drivers reset their devices. Noisy, harmless to the dump.",
    "amd-on-off": "The kdump kernel stops AMD-Vi's set-up at the command line (IOMMU_CMDLINE_DISABLED) and "
    "never touches the hardware: the IOMMU goes on translating every device's DMA through the crashed "
    "kernel's device table and page tables in old memory. The kdump kernel's own drivers (the disk or "
    "NIC that saves the dump) hand out physical addresses that those old tables translate somewhere "
    "else or fault: the dump can fail or land in the wrong memory.",
    "amd-copied": "The kdump kernel copies the old device table: every device keeps its old domain and "
    "page table (the crashed kernel's memory) until a driver probes and attaches it to a new domain. "
    "Devices without a driver in the kdump kernel keep mastering through the old page tables.",
    "amd-copy-failed": "The copy is refused (table size differs from what this kernel computes from the "
    "IVRS, table above 4 GiB, unexpected interrupt-remapping setting, or a domain ID it cannot reserve): "
    "the IOMMU gets a fresh table with every device blocked, so DMA still in flight faults "
    "(IO_PAGE_FAULT) and devices may hang; interrupts from them are not remapped as before.",
    "amd-not-kdump": "A kexec'd kernel (not kdump) found translation on and disabled it before setting up "
    "its own tables.",
    "amd-unknown": "Not enough evidence (command lines, kernel log) to tell what the kdump kernel does "
    "with AMD-Vi.",
}


@dataclass(frozen=True)
class AmdViControl:
    """One IOMMU's Control register as read in the kernel triage runs in: IommuEn, the
    device table it points at, and the evidence line."""

    unit: str
    iommu_en: bool
    dev_table: int
    evidence: Evidence


@dataclass(frozen=True)
class AmdViScenario:
    case: str
    severity: str
    title: str
    explanation: str
    first_on: Optional[bool]
    kdump_on: Optional[bool]
    copy: Optional[str]  # "copied" "failed" "expected" or None
    copy_why: Tuple[str, ...]
    snp: bool
    evidence: Tuple[Evidence, ...]


_AMD_CASE = {"unknown": "amd-unknown", "off-both": "amd-off-both", "off-on": "amd-off-on", "on-off": "amd-on-off"}


def _ev_of(markers: Sequence[Tuple[str, Evidence, dict]], kind: str) -> List[Tuple[Evidence, dict]]:
    return [(e, g) for k, e, g in markers if k == kind]


def classify_amdvi(
    in_kdump: bool,
    first_cmdline: Optional[str],
    kdump_cmdline: Optional[str],
    markers: Sequence[Tuple[str, Evidence, dict]],
    first_markers: Sequence[Tuple[str, Evidence, dict]] = (),
    kdump_cmdline_where: str = "the kdump kernel's command line",
    first_cmdline_where: str = "the crashed kernel's command line",
    controls: Sequence[AmdViControl] = (),
) -> AmdViScenario:
    """The AMD-Vi case. ``markers``: (kind, evidence, groups) of this kernel's log;
    ``first_markers``: the crashed kernel's own log when known (offline); ``controls``:
    the IOMMUs' Control registers as read now, in this kernel (evidence over inference:
    IommuEn is what the hardware does, whatever the command line says)."""
    ev: List[Evidence] = []
    first_on: Optional[bool] = None
    kdump_on: Optional[bool] = None
    copy: Optional[str] = None
    why: List[str] = []
    en = [c for c in controls if c.iommu_en]
    if controls and not in_kdump:
        # the first kernel, live: its translation is on exactly when IommuEn is set
        first_on = bool(en)
        ev.extend(c.evidence for c in (en or list(controls))[:2])
    if in_kdump:
        pre = _ev_of(markers, "amdvi_translation_preenabled")
        copied = _ev_of(markers, "amdvi_tables_copied")
        failed = _ev_of(markers, "amdvi_copy_failed")
        refused = _ev_of(markers, "amdvi_copy_refused")
        if pre:
            first_on, kdump_on = True, True
            ev.append(pre[0][0])
        if copied:
            copy = "copied"
            ev.append(copied[0][0])
        if failed or refused:
            copy = "failed"
            ev.extend(e for e, _ in (refused + failed)[:3])
            why = [str(g.get("why")) for _, g in refused if g.get("why")]
        if kdump_on is None and (_ev_of(markers, "amdvi_found") or _ev_of(markers, "amdvi_features")):
            kdump_on = True
            ev.append((_ev_of(markers, "amdvi_found") or _ev_of(markers, "amdvi_features"))[0][0])
            if first_on is None and not pre:
                # the kdump kernel set AMD-Vi up and found no translation left on
                first_on = False
    if controls and in_kdump:
        kd_off = parse_amdvi_params(kdump_cmdline).off if kdump_cmdline else False
        if en and kd_off:
            # amd_iommu=off here, yet translation is on: the crashed kernel left it on and
            # this kernel never touched the IOMMU (the register still names its table)
            first_on = True
            ev.extend(c.evidence for c in en[:2])
        elif en:
            # this kernel set AMD-Vi up (its own table in DEV_TABLE): on, as its log says
            kdump_on = True if kdump_on is None else kdump_on
            ev.extend(c.evidence for c in en[:2])
    for cmd, who in ((first_cmdline, "first"), (kdump_cmdline, "kdump")):
        if not cmd:
            continue
        p = parse_amdvi_params(cmd)
        where = first_cmdline_where if who == "first" else kdump_cmdline_where
        if who == "first" and first_on is None:
            first_on = not p.off
            ev.append(Evidence(where, " ".join(p.args) or "no amd_iommu=/iommu= option: AMD-Vi on "
                               "(the IVRS is present)"))
        if who == "kdump" and kdump_on is None:
            kdump_on = not p.off
            ev.append(Evidence(where, " ".join(p.args) or "no amd_iommu=/iommu= option: AMD-Vi on"))
        elif who == "kdump" and p.off and kdump_on:
            kdump_on = False  # the command line wins over a log line of another boot
            ev.append(Evidence(where, " ".join(p.args)))
    snp_lines = [e for k, e, g in list(first_markers) + list(markers)
                 if k == "amdvi_snp" and "support enabled" in str(g.get("what", ""))]
    if _ev_of(markers, "amdvi_not_kdump") and not in_kdump:
        case = "amd-not-kdump"
        ev.append(_ev_of(markers, "amdvi_not_kdump")[0][0])
    elif both_kernels(first_on, kdump_on) != "on-both":
        case = _AMD_CASE[both_kernels(first_on, kdump_on)]
    elif copy == "failed":
        case = "amd-copy-failed"
    else:
        case = "amd-copied"
        copy = copy or "expected"
    severity, title = CASES[case]
    if case == "amd-copy-failed" and why:
        title += f" ({'; '.join(why)})"
    return AmdViScenario(case, severity, title, EXPLAIN[case], first_on, kdump_on, copy, tuple(why),
                         bool(snp_lines), tuple(ev + snp_lines[:1]))
