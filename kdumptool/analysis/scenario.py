"""What the first kernel and the kdump kernel do with VT-d, reasoned the way the kernel
reasons, and what that means for DMA still in flight at the crash.

Pure functions over small inputs: command lines, kernel config defaults, a few register
bits, and marker lines of the kernel log (with their line numbers). Nothing here reads a
file.

Kernel behaviour modelled (drivers/iommu/intel/iommu.c and irq_remapping.c, Linux 6.1):

- ``intel_iommu=`` is a comma list; ``on`` clears ``dmar_disabled``, ``off`` sets it,
  ``sm_on``/``sm_off`` set ``intel_iommu_sm``; each occurrence is applied in order, so
  the last one wins. Without them: ``CONFIG_INTEL_IOMMU_DEFAULT_ON`` and
  ``CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON``. ``iommu=off`` sets ``no_iommu``.
- Scalable mode is used when ``intel_iommu_sm`` and ``ecap_smts`` (ECAP bit 43); the
  root table's mode is RTADDR bit 10 (``DMA_RTADDR_SMT``).
- In a kdump kernel that finds GSTS.TES set, ``init_dmars`` logs "Translation already
  enabled - trying to copy translation structures" and ``copy_translation_tables``
  refuses a root table whose mode (RTADDR.SMT) differs from its own (``-EINVAL``):
  "Failed to copy translation tables from previous kernel", translation is disabled and
  a clean root table is installed, so ongoing DMA faults. On success the copied context
  entries keep the old page tables live until a driver's probe replaces them.
- With ``intel_iommu=off`` the kdump kernel switches translation off
  (``intel_disable_iommus``) and never writes RTADDR: in-flight DMA addresses become
  raw physical addresses.
- Interrupt remapping is set up even with ``intel_iommu=off``; in a kdump kernel it
  copies the old IR table ("DMAR-IR: Copied IR table for dmar0 from previous kernel").
  IRTA bit 11 (EIME) is x2APIC mode.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from kdumptool.analysis.iommu_common import both_kernels, read_cmdline
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.model.evidence import Evidence
from kdumptool.model.kernel import KernelDefaults
from kdumptool.model.kernel_table import COPY_ECS, MISMATCH_MISREAD, KernelRow
from kdumptool.model.log import LogMarkers

# Register bits, spelled as the kernel spells them (include/linux/intel-iommu.h).
DMA_GSTS_TES = 1 << 31
DMA_GSTS_RTPS = 1 << 30
DMA_GSTS_IRES = 1 << 25
DMA_RTADDR_SMT = 1 << 10
DMA_RTADDR_MASK = ~0xFFF
ECAP_SMTS_BIT = 43
ECAP_IR_BIT = 3
IR_X2APIC_MODE = 1 << 11  # IRTA.EIME

SEVERITIES = ("info", "warning", "error")


# --------------------------------------------------------------------------------------
# Command line and kernel configuration


@dataclass(frozen=True)
class IommuParams:
    dmar: Optional[bool] = None  # intel_iommu=on/off, last wins
    sm: Optional[bool] = None  # sm_on / sm_off
    no_iommu: bool = False  # iommu=off
    passthrough: bool = False  # iommu=pt
    intremap: Optional[bool] = None  # intremap=on/off
    nox2apic: bool = False
    is_kdump: bool = False  # elfcorehdr= present: this command line boots a kdump kernel
    args: Tuple[str, ...] = ()  # the IOMMU-relevant arguments, for evidence


def parse_iommu_params(cmdline: str) -> IommuParams:
    """The VT-d relevant kernel parameters of a command line."""
    return read_cmdline(cmdline, IommuParams(), _vtd_option)


def _vtd_option(p: IommuParams, name: str, val: str) -> Optional[IommuParams]:
    """``intel_iommu=`` (a comma list: on, off, sm_on, sm_off), ``intremap=``, ``nox2apic``."""
    if name == "intel_iommu":
        for opt in val.split(","):
            if opt == "on":
                p = replace(p, dmar=True)
            elif opt == "off":
                p = replace(p, dmar=False)
            elif opt == "sm_on":
                p = replace(p, sm=True)
            elif opt == "sm_off":
                p = replace(p, sm=False)
        return p
    if name == "intremap":
        if val == "off":
            return replace(p, intremap=False)
        return replace(p, intremap=True) if val == "on" else p
    if name == "nox2apic":
        return replace(p, nox2apic=True)
    return None


# --------------------------------------------------------------------------------------
# Registers


@dataclass(frozen=True)
class UnitRegs:
    """The few register values the classifier looks at, for one DMAR unit."""

    name: str
    gsts: Optional[int] = None
    rtaddr: Optional[int] = None
    ecap: Optional[int] = None
    irta: Optional[int] = None
    source: str = "registers"

    @property
    def tes(self) -> Optional[bool]:
        return None if self.gsts is None else bool(self.gsts & DMA_GSTS_TES)

    @property
    def rtps(self) -> Optional[bool]:
        return None if self.gsts is None else bool(self.gsts & DMA_GSTS_RTPS)

    @property
    def ires(self) -> Optional[bool]:
        return None if self.gsts is None else bool(self.gsts & DMA_GSTS_IRES)

    @property
    def rtaddr_smt(self) -> Optional[bool]:
        return None if self.rtaddr is None else bool(self.rtaddr & DMA_RTADDR_SMT)

    @property
    def smts(self) -> Optional[bool]:
        return None if self.ecap is None else bool((self.ecap >> ECAP_SMTS_BIT) & 1)

    @property
    def ecap_ir(self) -> Optional[bool]:
        return None if self.ecap is None else bool((self.ecap >> ECAP_IR_BIT) & 1)

    @property
    def eime(self) -> Optional[bool]:
        return None if self.irta is None else bool(self.irta & IR_X2APIC_MODE)

    def ev(self, reg: str) -> Evidence:
        val = {"GSTS": self.gsts, "RTADDR": self.rtaddr, "ECAP": self.ecap, "IRTA": self.irta}[reg]
        width = 8 if reg == "GSTS" else 16
        return Evidence(self.source, f"{self.name} {reg}=0x{(val or 0):0{width}X} ({_explain(reg, val)})")


def _explain(reg: str, val: Optional[int]) -> str:
    if val is None:
        return "unreadable"
    if reg == "GSTS":
        bits = [n for n, b in (("TES", DMA_GSTS_TES), ("RTPS", DMA_GSTS_RTPS), ("IRES", DMA_GSTS_IRES)) if val & b]
        off = [n for n, b in (("TES", DMA_GSTS_TES),) if not val & b]
        return " ".join([f"{b}=1" for b in bits] + [f"{b}=0" for b in off])
    if reg == "RTADDR":
        mode = "scalable" if val & DMA_RTADDR_SMT else "legacy"
        return f"root table 0x{val & DMA_RTADDR_MASK:x}, {mode} mode"
    if reg == "ECAP":
        return f"SMTS={(val >> ECAP_SMTS_BIT) & 1} IR={(val >> ECAP_IR_BIT) & 1}"
    if reg == "IRTA":
        return "x2APIC mode (EIME=1)" if val & IR_X2APIC_MODE else "xAPIC mode (EIME=0)"
    return ""


# --------------------------------------------------------------------------------------
# One kernel's VT-d state


@dataclass(frozen=True)
class KernelState:
    role: str  # first | kdump
    basis: str  # observed | inferred | predicted | unknown
    cmdline: Optional[str] = None
    vtd: Optional[bool] = None  # DMA remapping (translation) on
    scalable: Optional[bool] = None
    ir: Optional[bool] = None
    x2apic: Optional[bool] = None
    evidence: Tuple[Evidence, ...] = ()

    @property
    def mode(self) -> str:
        if self.vtd is False:
            return "off"
        if self.vtd is None:
            return "unknown"
        if self.scalable is None:
            return "on (mode unknown)"
        return "on, scalable mode" if self.scalable else "on, legacy mode"

    def to_json(self) -> Dict[str, object]:
        return {
            "role": self.role,
            "basis": self.basis,
            "cmdline": self.cmdline,
            "translation": self.vtd,
            "scalable_mode": self.scalable,
            "interrupt_remapping": self.ir,
            "x2apic": self.x2apic,
            "evidence": [e.to_json() for e in self.evidence],
        }


def _any(vals: Sequence[Optional[bool]]) -> Optional[bool]:
    known = [v for v in vals if v is not None]
    if not known:
        return None
    return any(known)


def predict_kernel(
    role: str,
    cmdline: Optional[str],
    defaults: KernelDefaults,
    units: Sequence[UnitRegs],
    cmdline_evidence: Tuple[Evidence, ...] = (),
) -> KernelState:
    """What a kernel booted with ``cmdline`` will do, from its parameters and build
    defaults and the hardware's capabilities (ECAP)."""
    ev: List[Evidence] = list(cmdline_evidence)
    if not units:
        return KernelState(role, "predicted", cmdline, False, None, False, None, tuple(ev))
    p = parse_iommu_params(cmdline or "")
    vtd: Optional[bool]
    if defaults.intel_iommu is False:
        vtd = False
        ev.extend(e for e in defaults.lines if "CONFIG_INTEL_IOMMU" in e.text and "_" not in e.text[18:19])
    elif p.no_iommu:
        vtd = False
    elif p.dmar is not None:
        vtd = p.dmar
    else:
        vtd = defaults.default_on
        ev.extend(e for e in defaults.lines if "DEFAULT_ON" in e.text and "SCALABLE" not in e.text)
    scalable: Optional[bool] = None
    smts = _any([u.smts for u in units])
    if vtd:
        sm = p.sm if p.sm is not None else defaults.sm_default_on
        if p.sm is None:
            ev.extend(e for e in defaults.lines if "SCALABLE_MODE" in e.text)
        if smts is False:
            scalable = False
            ev.append(units[0].ev("ECAP"))
        elif sm is not None and smts:
            scalable = sm
            ev.append(units[0].ev("ECAP"))
    ir: Optional[bool]
    if p.intremap is False or defaults.irq_remap is False:
        ir = False
    else:
        ir = _any([u.ecap_ir for u in units])
    return KernelState(role, "predicted", cmdline, vtd, scalable, ir, None, tuple(ev))


def observe_kernel(
    role: str,
    cmdline: Optional[str],
    units: Sequence[UnitRegs],
    log: LogMarkers,
    sysfs_on: Optional[Evidence] = None,
) -> KernelState:
    """The running kernel's VT-d state, from its registers and its own log; failing both,
    ``sysfs_on`` (the kernel registers /sys/class/iommu/dmarN and IOMMU groups only once
    its VT-d driver has set translation up)."""
    ev: List[Evidence] = []
    c = log.first("cmdline")
    if c is not None:
        ev.append(c.evidence)
        if cmdline is None:
            cmdline = c.get("cmdline")
    tes = [u.tes for u in units]
    vtd = _any(tes)
    for u in units:
        if u.gsts is not None:
            ev.append(u.ev("GSTS"))
    for kind in ("param_on", "param_off", "sm_disallowed", "vtd_up"):
        m = log.first(kind)
        if m is not None:
            ev.append(m.evidence)
    if vtd is None:
        if log.first("param_off") is not None or (not log.empty and log.first("vtd_up") is None):
            vtd = False if not log.empty else None
        if log.first("vtd_up") is not None:
            vtd = True
        if vtd is None and sysfs_on is not None:
            vtd = True
            ev.append(sysfs_on)
    scalable: Optional[bool] = None
    if vtd:
        smt = [u.rtaddr_smt for u in units if u.tes]
        if any(v is not None for v in smt):
            scalable = any(bool(v) for v in smt)
            ev.extend(u.ev("RTADDR") for u in units if u.tes and u.rtaddr is not None)
        elif log.first("sm_disallowed") is not None:
            scalable = False
        elif units and all(u.smts is False for u in units):
            # intel-iommu runs scalable mode only on units with ECAP.SMTS (sm_supported()):
            # without it the table mode is legacy whatever RTADDR would say. ECAP comes
            # from sysfs when /dev/mem is refused (kernel lockdown), RTADDR does not.
            scalable = False
            ev.extend(u.ev("ECAP") for u in units)
    ir = _any([u.ires for u in units])
    irm = log.first("ir_enabled")
    if irm is not None:
        ev.append(irm.evidence)
        if ir is None:
            ir = True
    x2apic: Optional[bool] = None
    eime = [u.eime for u in units if u.ires]
    if any(v is not None for v in eime):
        x2apic = any(bool(v) for v in eime)
        ev.extend(u.ev("IRTA") for u in units if u.ires and u.irta is not None)
    elif irm is not None:
        x2apic = irm.get("mode") == "x2apic"
    if log.first("x2apic") is not None:
        x2apic = True
        ev.append(log.first("x2apic").evidence)  # type: ignore[union-attr]
    return KernelState(role, "observed", cmdline, vtd, scalable, ir, x2apic, tuple(_dedup(ev)))


def infer_first_from_kdump(kdump: KernelState, units: Sequence[UnitRegs], log: LogMarkers,
                           row: Optional[KernelRow] = None) -> KernelState:
    """What the crashed (first) kernel had, read from inside the kdump kernel: the
    copy markers of its log and registers it left behind. ``row`` is the kdump kernel's
    row of :mod:`kdumptool.model.kernel_table`: a kernel that decides the old format by the
    ECS bit (before 6.0) "copies" a table of the other mode too, so its "Copied" line says
    nothing about the crashed kernel's mode."""
    ev: List[Evidence] = []
    vtd: Optional[bool] = None
    scalable: Optional[bool] = None
    pre = log.first("pre_enabled")
    copied = log.all("copied")
    failed = log.all("copy_failed")
    if pre is not None:
        vtd = True
        ev.append(pre.evidence)
    if copied:
        vtd = True
        ev.extend(m.evidence for m in copied)
        if row is None or row.table_copy != COPY_ECS:
            scalable = kdump.scalable
    if failed:
        vtd = True
        ev.extend(m.evidence for m in failed)
        # copy_translation_tables fails with -EINVAL on a mode mismatch: the old root
        # table had the other mode. The kdump kernel's own mode is known.
        if kdump.scalable is not None:
            scalable = not kdump.scalable
    if kdump.vtd is False:
        # This kernel never programs RTADDR with translation off: a root table address
        # with RTPS set was left by the previous kernel, which had translation on.
        left = [u for u in units if u.rtaddr and u.rtps]
        if left:
            vtd = True
            scalable = any(bool(u.rtaddr_smt) for u in left)
            for u in left:
                ev.append(u.ev("GSTS"))
                ev.append(u.ev("RTADDR"))
        elif vtd is None and units and all(u.rtaddr == 0 for u in units if u.rtaddr is not None):
            vtd = False
            ev.extend(u.ev("RTADDR") for u in units if u.rtaddr is not None)
    elif kdump.vtd and pre is None and not log.empty and log.first("vtd_up") is not None:
        # init_dmars prints "Translation already enabled" whenever it finds TES set.
        vtd = False
    ir: Optional[bool] = None
    if log.all("ir_copied") or log.all("ir_copy_failed"):
        ir = True
        ev.extend(m.evidence for m in log.all("ir_copied") + log.all("ir_copy_failed"))
    return KernelState("first", "inferred", None, vtd, scalable, ir, None, tuple(_dedup(ev)))


def _dedup(ev: Iterable[Evidence]) -> List[Evidence]:
    seen = set()
    out = []
    for e in ev:
        k = (e.source, e.line, e.text)
        if k not in seen:
            seen.add(k)
            out.append(e)
    return out


# --------------------------------------------------------------------------------------
# The scenario


@dataclass(frozen=True)
class Scenario:
    case: str  # no-vtd | off-both | off-on | on-off | copied | sm-mismatch | copy-misread | unknown
    severity: str  # info | warning | error
    title: str
    explanation: str
    first: KernelState
    kdump: KernelState
    in_kdump: bool
    table_copy: Optional[str] = None  # copied | failed | expected | expected-to-fail | none
    ir_copy: Optional[str] = None  # copied | failed | None
    evidence: Tuple[Evidence, ...] = ()
    #: The kdump kernel's row of the kernel table (kdumptool.model.kernel_table) and how
    #: its version was known ("kdump kernel 5.10.0-32-amd64 (/proc/sys/kernel/osrelease)").
    kernel_row: Optional[KernelRow] = None
    kernel_basis: Optional[str] = None
    #: What the consistency check over the final verdict found (empty: consistent).
    contradictions: Tuple[str, ...] = ()

    def to_json(self) -> Dict[str, object]:
        return {
            "case": self.case,
            "severity": self.severity,
            "title": self.title,
            "explanation": self.explanation,
            "in_kdump_kernel": self.in_kdump,
            "table_copy": self.table_copy,
            "ir_copy": self.ir_copy,
            "kernel_row": self.kernel_row.id if self.kernel_row is not None else None,
            "kernel_row_versions": self.kernel_row.versions if self.kernel_row is not None else None,
            "kernel_basis": self.kernel_basis,
            "contradictions": list(self.contradictions),
            "first_kernel": self.first.to_json(),
            "kdump_kernel": self.kdump.to_json(),
        }


CASES = {
    "no-vtd": ("info", "No Intel VT-d DMA remapping hardware: nothing to triage for VT-d"),
    "off-both": ("info", "VT-d translation off in both kernels: in-flight DMA lands in the old kernel's memory"),
    "off-on": ("info", "VT-d off in the first kernel, on in the kdump kernel: faults until drivers reset their devices"),
    "on-off": ("error", "VT-d translation on in the first kernel but off in the kdump kernel: DMA goes to raw physical addresses"),
    "copied": ("info", "VT-d on in both kernels, same mode: translation tables copied, old mappings stay live"),
    "sm-mismatch": ("error", "VT-d scalable-mode mismatch between the kernels: the table copy fails"),
    "copy-misread": ("error", "VT-d scalable-mode tables copied in the wrong format: this kdump kernel reads "
                     "them with its legacy-format copy code (Linux before 6.0)"),
    "unknown": ("warning", "VT-d state of the kdump kernel cannot be determined"),
}

EXPLAIN = {
    "no-vtd": "No DMAR table and no DMAR units: the kernel does no DMA remapping on this machine.",
    "off-both": "Without remapping, devices still mastering at the crash write to the addresses the "
    "crashed kernel gave them: the old kernel's memory, which kdump only reads. Harmless to the "
    "dump unless a device writes into the crashkernel region (it cannot: the region was never "
    "handed to drivers).",
    "off-on": "The kdump kernel starts translation with empty tables: DMA still in flight faults "
    "(DMAR fault lines) until the drivers reset their devices. Noisy, harmless to the dump.",
    "on-off": "The first kernel handed devices I/O virtual addresses; the kdump kernel switches "
    "translation off, so those addresses are used as raw physical addresses: DMA in flight can "
    "corrupt arbitrary memory, including the kdump kernel itself and the dump.",
    "copied": "The kdump kernel copies the old context entries: devices keep their old mappings "
    "(into the crashed kernel's memory) until a driver probes and replaces them. Devices without "
    "a driver in the kdump kernel keep mastering through the old page tables.",
    "sm-mismatch": "The kdump kernel refuses to copy a root table of the other mode "
    "(legacy vs scalable), switches translation off and installs empty tables: every device "
    "still doing DMA faults, and devices can hang or corrupt the dump.",
    "sm-misread": "The kdump kernel (before Linux 6.0, which tells the old table's format by the "
    "ECS bit, not RTADDR.SMT) copies the crashed kernel's tables of the other mode as if they "
    "were its own format: the copied context entries are garbage to the hardware (reserved "
    "fields set, wrong table pointers), so DMA still in flight faults or, worse, is translated "
    "through misread page-table pointers into memory nobody mapped.",
    "unknown": "Not enough evidence to tell whether the kdump kernel will have VT-d on.",
    "copy-misread": "Before Linux 6.0 the kdump kernel tells the old table's format by the ECS bit "
    "(RTADDR bit 11), never set with scalable mode: it copies a scalable-mode table as a legacy "
    "one, even when it runs scalable mode itself. Only the lower context table of each bus is "
    "copied (devfn 0x80-0xff lose their entries) and each entry is edited as a legacy one (bit "
    "11 cleared, bit 67 set: in a scalable-mode entry those are PDTS and RID_PASID), so DMA "
    "still in flight faults against corrupt entries (5.10 lab: 'fault reason 88 SM: Error "
    "attempting to access PASID Table Entry').",
}


def classify(
    first: KernelState,
    kdump: KernelState,
    in_kdump: bool,
    has_units: bool,
    log: Optional[LogMarkers] = None,
    row: Optional[KernelRow] = None,
    kernel_basis: Optional[str] = None,
) -> Scenario:
    """Combine the two kernels' states into one of the issue's cases. ``row`` is the
    kdump kernel's row of the kernel table: it says whether a mode mismatch fails the
    copy (6.0+) or is copied and misread (4.2-5.x)."""
    misreads = row is not None and row.mismatch == MISMATCH_MISREAD
    ev: List[Evidence] = []
    table_copy: Optional[str] = None
    ir_copy: Optional[str] = None
    if log is not None:
        if log.all("copied"):
            table_copy = "copied"
        if log.all("copy_failed"):
            table_copy = "failed"
        if log.all("ir_copied"):
            ir_copy = "copied"
        if log.all("ir_copy_failed"):
            ir_copy = "failed"
    onoff = both_kernels(first.vtd, kdump.vtd)
    if not has_units:
        case = "no-vtd"
    elif onoff in ("off-both", "off-on"):
        case = onoff
    elif onoff == "on-off":
        case = "on-off"
        table_copy = table_copy or "none"
    elif onoff == "on-both":
        differ = first.scalable is not None and kdump.scalable is not None and first.scalable != kdump.scalable
        if table_copy == "failed":
            case = "sm-mismatch" if first.scalable != kdump.scalable or first.scalable is None else "unknown"
        elif table_copy == "copied" and differ:
            # The kernel said "Copied" over a table of the other mode: only a kernel that
            # reads the old format from the ECS bit does that (see kernels.py).
            case = "sm-mismatch"
            table_copy = "misread"
        elif table_copy == "copied" and misreads and first.scalable:
            case = "copy-misread"
            table_copy = "misread"
        elif table_copy == "copied":
            case = "copied"
        elif differ:
            case = "sm-mismatch"
            table_copy = "expected-misread" if misreads else "expected-to-fail"
        elif misreads and first.scalable and table_copy is None:
            case = "copy-misread"
            table_copy = "expected-misread"
        else:
            case = "copied"
            table_copy = table_copy or "expected"
    else:
        case = "unknown"
    if case == "unknown" and table_copy == "failed":
        # Copy failed for another reason than the mode (e.g. no memory): same outcome.
        case = "sm-mismatch" if first.scalable != kdump.scalable else "unknown"
    severity, title = CASES[case]
    explanation = EXPLAIN[case]
    if case == "sm-mismatch" and first.scalable is not None and kdump.scalable is not None:
        how = {"failed": "the table copy failed", "expected-to-fail": "the table copy will fail",
               "misread": "the kdump kernel copied the other mode's tables as its own (misread)",
               "expected-misread": "the kdump kernel will copy the other mode's tables as its own (misread)",
               }.get(table_copy or "", "the table copy will fail")
        title = (
            f"VT-d scalable-mode mismatch: first kernel {'scalable' if first.scalable else 'legacy'}, "
            f"kdump kernel {'scalable' if kdump.scalable else 'legacy'}: {how}"
        )
        if table_copy in ("misread", "expected-misread"):
            explanation = EXPLAIN["sm-misread"]
    ev.extend(first.evidence)
    ev.extend(e for e in kdump.evidence if e not in ev)
    scen = Scenario(
        case, severity, title, explanation, first, kdump, in_kdump, table_copy, ir_copy, tuple(ev),
        row, kernel_basis,
    )
    return check_verdict(scen)


def contradictions(scen: Scenario, tables_mode: Optional[str] = None) -> List[str]:
    """Where the verdict says something its own evidence contradicts (empty: consistent).
    ``tables_mode``: the mode of the crashed kernel's root table as decoded from the
    vmcore ("legacy" / "scalable"), the most direct evidence of the first kernel's mode."""
    out: List[str] = []
    f, k = scen.first, scen.kdump
    if tables_mode is not None and f.scalable is not None and (tables_mode == "scalable") != f.scalable:
        out.append(f"the crashed kernel's tables in the vmcore are {tables_mode} but the verdict has the first "
                   f"kernel in {'scalable' if f.scalable else 'legacy'} mode")
    if scen.case == "copied" and f.scalable is not None and k.scalable is not None and f.scalable != k.scalable:
        out.append("'same mode' verdict with the first kernel "
                   f"{'scalable' if f.scalable else 'legacy'} and the kdump kernel {'scalable' if k.scalable else 'legacy'}")
    if scen.case == "copied" and tables_mode is not None and k.scalable is not None and (tables_mode == "scalable") != k.scalable:
        out.append(f"'same mode' verdict, but the crashed kernel's tables are {tables_mode} and the kdump kernel runs "
                   f"{'scalable' if k.scalable else 'legacy'} mode")
    if scen.case == "copy-misread" and f.scalable is False:
        out.append("copy-misread verdict with the first kernel in legacy mode")
    if scen.case in ("copied", "sm-mismatch", "on-off", "copy-misread") and f.vtd is False:
        out.append(f"case {scen.case} needs translation on in the first kernel, the evidence has it off")
    if scen.case in ("off-on", "off-both") and f.vtd is True:
        out.append(f"case {scen.case} has translation off in the first kernel, the evidence has it on")
    if scen.case in ("on-off", "off-both") and k.vtd is True:
        out.append(f"case {scen.case} has translation off in the kdump kernel, the evidence has it on")
    if scen.case in ("copied", "sm-mismatch", "off-on", "copy-misread") and k.vtd is False:
        out.append(f"case {scen.case} needs translation on in the kdump kernel, the evidence has it off")
    if scen.case == "sm-mismatch" and scen.table_copy != "failed" and f.scalable is not None \
            and k.scalable is not None and f.scalable == k.scalable:
        out.append("mismatch verdict with both kernels in the same mode")
    return out


def check_verdict(scen: Scenario, tables_mode: Optional[str] = None) -> Scenario:
    """The consistency check over the final verdict: a case its own evidence contradicts
    is never reported; the verdict becomes ``unknown`` (a warning) naming the
    contradiction, so the user sees it and the exit code says it."""
    bad = contradictions(scen, tables_mode)
    if not bad:
        return scen
    return replace(scen, case="unknown", severity="warning",
                   title="VT-d verdict withheld: the evidence contradicts itself (" + "; ".join(bad) + ")",
                   explanation=EXPLAIN["unknown"], contradictions=tuple(bad))
