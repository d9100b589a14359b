"""Triage: will kdump survive the DMA still in flight at a crash, and what to change.

Given decoded inputs (the system model, the kernel log's VT-d markers, the kdump
configuration, the kdump initramfs module list, capacity figures), produce a verdict,
findings with exact evidence and a remedy in the user's own configuration language, and
the devices at risk with their upstream bridges. No file is read here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from kdumptool.analysis.catalogue import (
    DRIVERLESS_WHY,
    PASSTHROUGH_COPIED_NOTE,
    QUIESCE_ALTERNATIVE,
    QUIESCE_REMEDY,
    make,
)
from kdumptool.analysis.crashed import with_crashed_tables
from kdumptool.analysis.scenario import (
    ECAP_SMTS_BIT,
    KernelState,
    Scenario,
    UnitRegs,
    check_verdict,
    classify,
    infer_first_from_kdump,
    observe_kernel,
    parse_iommu_params,
    predict_kernel,
)
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.formats.kdumpconf import KdumpSettings, build_kdump_cmdline
from kdumptool.model.evidence import Evidence
from kdumptool.model.finding import ERROR, INFO, SEVERITY_RANK, WARNING, Finding
from kdumptool.model.kernel_table import KernelRow, kernel_row, translation_meaning
from kdumptool.model.log import LogMarkers
from kdumptool.model.system import PciDevice, System
from kdumptool.model.triage import CrashedKernel, CrashedTables, FaultLookup, TriageInput

if TYPE_CHECKING:
    from kdumptool.analysis.amdvi_scenario import AmdViScenario

EXIT_CODES = {"ok": 0, "nothing": 0, "warning": 3, "error": 4}

#: Fault reasons (VT-d spec, appendix "Non-recoverable Fault Reason Encodings") worth a
#: word in a finding; the log line itself carries the kernel's text.
PAGE_SIZE = 4096
ERROR_RANK, WARNING_RANK = SEVERITY_RANK[ERROR], SEVERITY_RANK[WARNING]

#: Why a device is at risk (DeviceRisk.causes).
RISK_NO_DRIVER = "no-driver"  # bus master, no driver bound
RISK_MODULE_MISSING = "module-missing"  # bus master whose module is not in the kdump initramfs
RISK_RMRR = "rmrr"
RISK_FAULTS = "dmar-faults"


@dataclass(frozen=True)
class DeviceRisk:
    bdf: str
    ids: str  # vendor:device
    class_code: int
    driver: Optional[str]  # bound now
    modules: Tuple[str, ...]  # modules that drive it (modules.alias / lspci -k)
    in_kdump_initrd: Optional[bool]
    reasons: Tuple[str, ...]  # in words, one per cause
    upstream: Tuple[str, ...]
    rmrrs: Tuple[int, ...] = ()
    faults: Tuple[Evidence, ...] = ()
    causes: Tuple[str, ...] = ()  # RISK_* codes, one per reason (logic keys on these, never on the words)

    @property
    def driverless(self) -> bool:
        """A bus master the kdump kernel will not drive."""
        return bool({RISK_NO_DRIVER, RISK_MODULE_MISSING} & set(self.causes))

    def to_json(self) -> Dict[str, Any]:
        return {
            "bdf": self.bdf,
            "ids": self.ids,
            "class": f"0x{self.class_code:06x}",
            "driver": self.driver,
            "modules": list(self.modules),
            "in_kdump_initramfs": self.in_kdump_initrd,
            "reasons": list(self.reasons),
            "upstream_bridges": list(self.upstream),
            "rmrrs": [f"0x{a:x}" for a in self.rmrrs],
            "faults": [e.to_json() for e in self.faults],
        }


@dataclass(frozen=True)
class TriageReport:
    verdict: str  # ok | warning | error | nothing
    headline: str
    scenario: Scenario
    findings: Tuple[Finding, ...]
    devices: Tuple[DeviceRisk, ...]
    source: str
    kdump_cmdline: Optional[str]
    kdump_cmdline_basis: Optional[str]
    crashed_tables: Optional[CrashedTables] = None  # decoded from the vmcore (not rendered on its own)
    #: the IOMMU the scenario is about: "VT-d", "AMD-Vi", or None (neither: no DMAR, no IVRS).
    #: Renderers word the kernel-state lines by it (never VT-d's words on an AMD machine).
    vendor: Optional[str] = "VT-d"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_json(self) -> Dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "headline": self.headline,
            "source": self.source,
            "vendor": self.vendor,
            "scenario": self.scenario.to_json(),
            "kdump_cmdline": self.kdump_cmdline,
            "kdump_cmdline_basis": self.kdump_cmdline_basis,
            "findings": [f.to_json() for f in self.findings],
            "devices": [d.to_json() for d in self.devices],
        }


# --------------------------------------------------------------------------------------


def unit_regs(system: System) -> List[UnitRegs]:
    out = []
    for u in system.units:
        regs = u.registers
        get = regs.get if regs is not None else (lambda name: None)
        out.append(
            UnitRegs(
                name=u.name,
                gsts=get("GSTS"),
                rtaddr=get("RTADDR"),
                ecap=get("ECAP") if get("ECAP") is not None else u.ecap,
                irta=get("IRTA"),
                source="_kdumptool/vtd_registers.json" if regs is not None else f"/sys/class/iommu/{u.name}/intel-iommu",
            )
        )
    return out


def _module(name: str) -> str:
    return name.replace("-", "_")


def _short(bdf: str) -> str:
    return bdf[5:] if bdf.startswith("0000:") else bdf


def _kdump_cmdline(inp: TriageInput, first_cmdline: str) -> Tuple[str, str, Tuple[Evidence, ...]]:
    s = inp.kdump_settings
    if s is None:
        return (
            " ".join(a for a in first_cmdline.split() if not a.startswith(("crashkernel=", "BOOT_IMAGE="))),
            "assumed: no kdump configuration found; kdumpctl and kdump-config reuse /proc/cmdline",
            (Evidence("/proc/cmdline", first_cmdline),),
        )
    line, steps = build_kdump_cmdline(s, first_cmdline)
    ev: List[Evidence] = [Evidence("/proc/cmdline", first_cmdline)]
    for st in (s.cmdline_replace, s.cmdline_remove, s.cmdline_append):
        if st is not None and st.entry is not None and st.file is not None:
            ev.append(Evidence(st.file, st.entry.raw.strip(), st.entry.line))
    return line, "built from " + "; ".join(steps), tuple(ev)


def kdump_kernel_row(inp: TriageInput) -> Tuple[Optional[KernelRow], Optional[str]]:
    """The kdump kernel's row of the kernel table and how its version is known. Inside a
    kdump kernel: its own release. Otherwise the kdump kernel is taken to be the running
    (first) kernel's build, as kdump-tools and kdumpctl load it."""
    rel = inp.release
    if rel is None:
        return None, None
    r = kernel_row(rel, inp.banner)
    if r is None:
        return None, None
    if inp.system.in_kdump_kernel:
        return r, f"this kdump kernel is {rel}"
    return r, f"the kdump kernel is taken to be the running kernel's build, {rel}"


def _first_mode_from_cmdline(first: KernelState, crashed: CrashedKernel, units: Sequence[UnitRegs]) -> KernelState:
    """The crashed kernel's own command line (and, before 6.0, its "scalable mode
    supported" line) decide its mode when the hardware has scalable mode (ECAP.SMTS)."""
    if first.scalable is not None or first.vtd is False:
        return first
    smts = [u.smts for u in units if u.smts is not None]
    p = parse_iommu_params(crashed.cmdline or "")
    mark = crashed.log.first("sm_param_on") if crashed.log is not None else None
    if p.dmar is False or p.no_iommu:
        return first
    want: Optional[bool] = p.sm
    ev: List[Evidence] = []
    if want is not None:
        ev.append(Evidence(f"{crashed.source}: crashed kernel's command line",
                           next(a for a in reversed(p.args) if a.startswith("intel_iommu="))))
    elif mark is not None:
        want = True
        ev.append(mark.evidence)
    if want is None:
        return first
    if want and not (smts and all(smts)):
        return first  # sm_on on hardware without scalable mode (or unknown): legacy or unknown
    ev.extend(u.ev("ECAP") for u in units if u.ecap is not None)
    return KernelState(first.role, first.basis, first.cmdline, first.vtd, want, first.ir, first.x2apic,
                       first.evidence + tuple(ev))


def assess_scenario(inp: TriageInput) -> Tuple[Scenario, Optional[str], Optional[str]]:
    """The scenario, the kdump kernel's command line and how it was obtained."""
    sysm = inp.system
    units = unit_regs(sysm)
    has_units = bool(units) or sysm.dmar is not None
    sysfs_on = _sysfs_evidence(sysm)
    row, row_basis = kdump_kernel_row(inp)
    crashed = inp.crashed
    tables_mode = None
    if crashed is not None and crashed.tables is not None and any(d.present for d in crashed.tables.devices):
        tables_mode = crashed.tables.mode
    if sysm.in_kdump_kernel:
        kd = observe_kernel("kdump", sysm.cmdline, units, inp.log, sysfs_on)
        first = infer_first_from_kdump(kd, units, inp.log, row)
        if crashed is not None and crashed.log is not None:
            # The crashed kernel's own log (from the vmcore or a saved snapshot).
            seen = observe_kernel("first", crashed.cmdline, [], crashed.log)
            first = _merge_first(first, seen)
        if crashed is not None and crashed.tables is not None:
            first = _with_tables(first, crashed)
        if crashed is not None:
            first = _first_mode_from_cmdline(first, crashed, units)
            if crashed.release:
                first = replace(first, evidence=first.evidence + (Evidence(
                    str(crashed.vmcore or crashed.source), f"crashed kernel {crashed.release} (VMCOREINFO OSRELEASE)"),))
        scen = classify(first, kd, True, has_units, inp.log, row, row_basis)
        scen = check_verdict(scen, tables_mode)
        return scen, kd.cmdline, "observed: /proc/cmdline of this kdump kernel"
    first = observe_kernel("first", sysm.cmdline, units, inp.log, sysfs_on)
    line, basis, ev = _kdump_cmdline(inp, sysm.cmdline or "")
    kd = predict_kernel("kdump", line, inp.defaults, units, ev)
    if kd.vtd and kd.scalable is None and first.scalable is not None:
        p = parse_iommu_params(line)
        fp = parse_iommu_params(sysm.cmdline or "")
        if p.sm is None or p.sm == fp.sm:
            # Same kernel build and the same sm_ setting: the same mode as now.
            kd = KernelState(kd.role, kd.basis, kd.cmdline, kd.vtd, first.scalable, kd.ir, first.x2apic, kd.evidence)
    if kd.vtd is None and first.vtd is not None and inp.defaults.default_on is None:
        p = parse_iommu_params(line)
        fp = parse_iommu_params(sysm.cmdline or "")
        if p.dmar is None and fp.dmar is None and not p.no_iommu:
            # Neither command line decides: same kernel, same build default as now.
            kd = KernelState(kd.role, kd.basis, kd.cmdline, first.vtd, kd.scalable or first.scalable, kd.ir, first.x2apic, kd.evidence)
    if crashed is not None and crashed.tables is not None:
        first = _with_tables(first, crashed)
    scen = classify(first, kd, False, has_units, None, row, row_basis)
    scen = check_verdict(scen, tables_mode)
    return scen, line, basis


def _sysfs_evidence(sysm: System) -> Optional[Evidence]:
    for u in sysm.units:
        if getattr(u, "sysfs_devices", ()):
            return Evidence(f"/sys/class/iommu/{u.name}/devices",
                            f"{len(u.sysfs_devices)} devices: the VT-d driver is up in this kernel")
    groups = [g for g in sysm.groups.values() if g.type in ("DMA", "DMA-FQ", "identity")]
    if groups:
        return Evidence("/sys/kernel/iommu_groups", f"{len(groups)} groups of type DMA/DMA-FQ/identity")
    return None


def first_passthrough(inp: TriageInput, scen: Scenario) -> Optional[Evidence]:
    """Evidence that the first kernel gave devices identity (pass-through) DMA mappings."""
    sysm = inp.system
    cmd = scen.first.cmdline or (inp.crashed.cmdline if inp.crashed is not None else None)
    if cmd is None and not sysm.in_kdump_kernel:
        cmd = sysm.cmdline
    if cmd and parse_iommu_params(cmd).passthrough:
        return Evidence("first kernel command line", next(a for a in cmd.split() if a.startswith("iommu=")))
    if not sysm.in_kdump_kernel:
        types = {g.type for g in sysm.groups.values() if g.devices}
        if types == {"identity"}:
            return Evidence("/sys/kernel/iommu_groups/*/type", f"identity for all {len(sysm.groups)} groups")
    return None


def device_translation(inp: TriageInput, scen: Scenario, bdf: str) -> Tuple[Optional[str], Optional[Evidence]]:
    """The translation type the crashed kernel gave ``bdf`` (legacy TT / scalable PGTT):
    its context entry in the vmcore, else pass-through when the first kernel ran with
    iommu=pt (identity default domains), else unknown (None)."""
    c = inp.crashed
    if c is not None and c.tables is not None:
        td = c.tables.device(bdf)
        if td is not None and td.present:
            return td.translation_type, Evidence(str(c.vmcore or c.source),
                                                 f"{bdf}: context entry {td.translation_type} in the crashed kernel's tables")
        if td is not None or any(d.present for d in c.tables.devices):
            return None, None
    pt = first_passthrough(inp, scen)
    if pt is not None:
        return "pass-through", pt
    return None, None


def _unbounded(translation_type: str) -> bool:
    m = translation_meaning(translation_type)
    return m is not None and not m.bounded


def _tables_evidence(c: CrashedKernel) -> Evidence:
    t = c.tables
    assert t is not None
    present = sum(1 for d in t.devices if d.present)
    if t.mode == "v1":  # AMD-Vi (analysis/crashed.py decode_amdvi_tables)
        return Evidence(str(c.vmcore or c.source),
                        f"crashed kernel's AMD-Vi device table 0x{t.root_address:x}: {present} translating or "
                        f"pass-through entries (address from {t.found_by})")
    return Evidence(
        str(c.vmcore or c.source),
        f"crashed kernel's root table 0x{t.root_address:x}: {t.mode} mode, {present} present context entries "
        f"(address from {t.found_by})",
    )


def _with_tables(first: KernelState, c: CrashedKernel) -> KernelState:
    """The tables decoded from the vmcore are direct evidence of the crashed kernel's mode."""
    t = c.tables
    assert t is not None
    if not any(d.present for d in t.devices):
        return first
    return KernelState(
        first.role, first.basis, first.cmdline, True, t.mode == "scalable", first.ir, first.x2apic,
        first.evidence + (_tables_evidence(c),),
    )


def _merge_first(inferred: KernelState, seen: KernelState) -> KernelState:
    return KernelState(
        "first",
        "inferred",
        seen.cmdline or inferred.cmdline,
        inferred.vtd if inferred.vtd is not None else seen.vtd,
        inferred.scalable if inferred.scalable is not None else seen.scalable,
        inferred.ir if inferred.ir is not None else seen.ir,
        seen.x2apic if seen.x2apic is not None else inferred.x2apic,
        inferred.evidence + tuple(e for e in seen.evidence if e not in inferred.evidence),
    )


# --------------------------------------------------------------------------------------
# Remedies in the user's configuration language


def _cmdline_remedy(s: Optional[KdumpSettings], want: str, drop: Sequence[str] = ()) -> str:
    """How to make the kdump kernel boot with ``want``: edit the setting that carries the
    conflicting parameter (``KDUMP_CMDLINE``/``KDUMP_COMMANDLINE`` when it replaces the
    command line and holds it), else the append variable (later parameters win)."""
    names = ("intel_iommu", *drop)
    rep = s.cmdline_replace if s is not None else None
    if rep is not None and rep.entry is not None and rep.file is not None:
        cur_args = str(rep.value).split()
        if any(a.split("=", 1)[0] in names for a in cur_args):
            args = [a for a in cur_args if a.split("=", 1)[0] not in names] + [want]
            return (f'set {rep.entry.key}="{" ".join(args)}" in {rep.file} (line {rep.entry.line}), '
                    f"then restart the kdump service")
    if s is not None and s.append_var is not None:
        path, var = s.append_var
        cur = ""
        if s.cmdline_append is not None:
            cur = str(s.cmdline_append.value)
        args = [a for a in cur.split() if a.split("=", 1)[0] not in ("intel_iommu", *drop)]
        args.append(want)
        return f'set {var}="{" ".join(args)}" in {path}, then restart the kdump service'
    if s is not None and s.family == "rhel":
        return f'add {want} to KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump, then `kdumpctl restart`'
    return (
        f"boot the kdump kernel with {want}: KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump "
        f"(RHEL, SUSE) or KDUMP_CMDLINE_APPEND in /etc/default/kdump-tools (Debian, Ubuntu); "
        f"for a hand-run `kexec -p`, its --append"
    )


def _amd_cmdline_remedy(s: Optional[KdumpSettings], drop: Sequence[str]) -> str:
    """How to take amd_iommu=off / iommu=off off the kdump kernel's command line."""
    for st in (s.cmdline_replace, s.cmdline_append) if s is not None else ():
        if st is not None and st.entry is not None and st.file is not None:
            args = str(st.value).split()
            bad = [a for a in args if a.split("=", 1)[0] in drop and a.split("=", 1)[1:] != ["pt"]]
            if bad:
                keep = [a for a in args if a not in bad]
                return (f'remove {" ".join(bad)} from {st.entry.key} in {st.file} (line {st.entry.line}): '
                        f'{st.entry.key}="{" ".join(keep)}", then restart the kdump service')
    return ("remove amd_iommu=off and iommu=off from the kdump kernel's command line "
            "(KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump on RHEL/SUSE, KDUMP_CMDLINE_APPEND in "
            "/etc/default/kdump-tools on Debian/Ubuntu) and from the first kernel's if the kdump "
            "service reuses /proc/cmdline")


def amdvi_controls(inp: TriageInput) -> Tuple[List[Any], Tuple[Evidence, ...]]:
    """The AMD-Vi Control registers of ``inp`` (AmdViControl), and evidence of each IOMMU
    whose registers could not be read or decoded."""
    from kdumptool.analysis.amdvi_scenario import AmdViControl
    from kdumptool.errors import DecodeError
    from kdumptool.formats.amdvi_regs import decode_amdvi_registers

    out: List[Any] = []
    unread: List[Evidence] = []
    for r in inp.amdvi_registers:
        where = f"{r.where} {r.name} (MMIO 0x{r.address:x})"
        if r.values is None or "CONTROL" not in r.values:
            unread.append(Evidence(where, f"registers not read: {r.read_error or 'no CONTROL register'}"))
            continue
        try:
            regs = decode_amdvi_registers(r.values, where)
        except DecodeError as err:
            unread.append(Evidence(where, f"registers do not decode: {err}"))
            continue
        names = " ".join(regs.control_names[:6])
        out.append(AmdViControl(r.name, regs.iommu_en, regs.dev_table_base, Evidence(
            where, f"CONTROL=0x{regs.control:x} ({names or 'no bit set'}): translation "
            f"{'on' if regs.iommu_en else 'off'}, DEV_TABLE base 0x{regs.dev_table_base:x} "
            f"({regs.dev_table_size // 1024} KiB)")))
    return out, tuple(unread)


#: The VT-d case whose device risks an AMD-Vi case shares (the in-flight DMA story is the
#: same: old tables kept, raw addresses, or faults against empty tables).
AMD_AS_VTD_CASE = {"amd-copied": "copied", "amd-on-off": "amd-on-off", "amd-copy-failed": "copy-failed",
                   "amd-off-on": "off-on", "amd-off-both": "off-both"}


def _amdvi_findings(inp: TriageInput, kd_cmdline: Optional[str]) -> Tuple[List[Finding], AmdViScenario]:
    """The AMD-Vi scenario (analysis/amdvi_scenario.py) as catalogue findings, and the scenario."""
    from kdumptool.analysis.amdvi_scenario import classify_amdvi

    sysm = inp.system
    markers = [(m.kind, m.evidence, dict(m.groups)) for m in inp.log.markers if m.kind.startswith("amdvi_")]
    first_markers = []
    crashed = inp.crashed
    if crashed is not None and crashed.log is not None:
        first_markers = [(m.kind, m.evidence, dict(m.groups)) for m in crashed.log.markers
                         if m.kind.startswith("amdvi_")]
    if sysm.in_kdump_kernel:
        first_cmd = crashed.cmdline if crashed is not None else None
        kd = sysm.cmdline
        where = "/proc/cmdline (this kdump kernel)"
    else:
        first_cmd = sysm.cmdline
        kd = kd_cmdline
        where = "the kdump kernel's command line"
    controls, unread = amdvi_controls(inp)
    a = classify_amdvi(sysm.in_kdump_kernel, first_cmd, kd, markers, first_markers, where,
                       "the crashed kernel's command line" if sysm.in_kdump_kernel else "/proc/cmdline",
                       controls)
    fid = "amdvi-" + a.case[len("amd-"):]
    remedy = None
    if fid == "amdvi-on-off":
        remedy = (_amd_cmdline_remedy(inp.kdump_settings, ("amd_iommu", "iommu"))
                  + "; with AMD-Vi on, the kdump kernel copies the device table ('Copied DEV table from "
                  "previous kernel') and DMA stays inside the old kernel's buffers")
    ivrs = (inp.amd_iommu,) if inp.amd_iommu is not None else ()
    out = [make(fid, evidence=a.evidence + ivrs, remedy=remedy, scenario=f"{a.title}. {a.explanation}")]
    if unread:
        out.append(make("amdvi-registers-unread", evidence=unread,
                        who=", ".join(e.source.split()[1] if len(e.source.split()) > 1 else e.source
                                      for e in unread[:4]),
                        why="; ".join(e.text.split(": ", 1)[-1] for e in unread[:2])
                        + " (triage reasons from the command lines and log lines only)"))
    if a.snp:
        out.append(make("amdvi-snp", evidence=tuple(e for k, e, _g in first_markers + markers
                                                    if k == "amdvi_snp")[:2]))
    return out, a


def amdvi_as_scenario(scen: Scenario, a: AmdViScenario) -> Scenario:
    """The report's scenario on an AMD-Vi machine: the AMD-Vi case and each kernel's
    AMD-Vi translation, nothing of VT-d's (no kernel-table row: that table is about
    VT-d's root-table copy; no scalable mode, no VT-d interrupt-remapping state)."""

    def state(k: KernelState, on: Optional[bool]) -> KernelState:
        return KernelState(k.role, k.basis if on is not None else "unknown", k.cmdline, on, None, None, k.x2apic,
                           k.evidence)

    return replace(scen, case=a.case, severity=a.severity, title=a.title, explanation=a.explanation,
                   first=state(scen.first, a.first_on), kdump=state(scen.kdump, a.kdump_on), table_copy=a.copy,
                   ir_copy=None, evidence=a.evidence, kernel_row=None, kernel_basis=None, contradictions=())


def _module_remedy(s: Optional[KdumpSettings], modules: Sequence[str]) -> str:
    mods = " ".join(sorted(set(modules)))
    fam = s.family if s is not None else "unknown"
    if fam == "rhel":
        return f"add `extra_modules {mods}` to /etc/kdump.conf and run `kdumpctl restart` (rebuilds the kdump initramfs)"
    if fam == "suse":
        return f'add `add_drivers+=" {mods} "` to /etc/dracut.conf.d/99-kdump-drivers.conf and run `mkdumprd -f`'
    if fam == "debian":
        return (
            f"list {mods} in /etc/initramfs-tools/modules (kdump-tools builds its initrd with "
            f"initramfs-tools) and run `kdump-config unload; kdump-config load`"
        )
    return (
        f"put {mods} into the kdump initramfs (`extra_modules {mods}` in /etc/kdump.conf on "
        f"RHEL/Fedora; /etc/initramfs-tools/modules on Debian/Ubuntu)"
    )


QUIESCE_PARAM = "kdumptool.quiesce=1"


def quiesce_state(inp: TriageInput, kd_cmdline: Optional[str]) -> Tuple[Optional[bool], Tuple[Evidence, ...]]:
    """Whether kdumptool's quiesce hook will run in the kdump kernel (None: cannot tell)."""
    ev: List[Evidence] = []
    enabled_by = None
    if kd_cmdline and QUIESCE_PARAM in kd_cmdline.split():
        enabled_by = Evidence("/proc/cmdline" if inp.system.in_kdump_kernel else "kdump command line", QUIESCE_PARAM)
    elif inp.quiesce_conf is not None:
        enabled_by = inp.quiesce_conf
    if enabled_by is None:
        return False, ()
    ev.append(enabled_by)
    if inp.system.in_kdump_kernel:
        return True, tuple(ev)
    ig = inp.integration
    if ig is not None and ig.stack == "kdump-tools":
        # the kdump kernel boots this root: the hooks are its files, not initramfs files
        # (quiesce runs from kdump-tools' init script after savecore, before its `reboot -f`)
        hooks = ("lib/lsb/init-functions.d/50-kdumptool", "usr/libexec/kdumptool/kdump-tools-after-dump")
        for hook in hooks:
            if hook not in ig.installed:
                ev.append(Evidence("/" + hook, "absent: kdumptool install-integration has not run for kdump-tools"))
                return False, tuple(ev)
        if ig.command_ok is False:
            ev.append(Evidence("/usr/lib/systemd/system/kdumptool-boot-record.service",
                               f"runs {ig.command}, which is not an executable file here"))
            return False, tuple(ev)
        ev.append(Evidence("/" + hooks[0], "installed (kdump-tools' init script runs the quiesce after "
                                           "savecore, before its reboot -f, in the kdump kernel booting this root)"))
        return True, tuple(ev)
    initrd = inp.kdump_initrd
    if initrd is None:
        return None, tuple(ev)
    if not initrd.has_kdumptool:
        ev.append(Evidence(initrd.path, "no usr/bin/kdumptool: the dracut module is not in the kdump initramfs"))
        return False, tuple(ev)
    ev.append(Evidence(initrd.path, "holds usr/bin/kdumptool and /usr/libexec/kdumptool/kdump-post"))
    return True, tuple(ev)


# --------------------------------------------------------------------------------------


def _device_modules(inp: TriageInput, bdf: str, dev: PciDevice) -> Tuple[str, ...]:
    mods = tuple(inp.device_modules.get(bdf, ()))
    if not mods and inp.crashed is not None and bdf in inp.crashed.drivers:
        mods = (_module(inp.crashed.drivers[bdf]),)
    if not mods and dev.driver:
        mods = (_module(dev.driver),)
    return tuple(_module(m) for m in mods)


def find_device_risks(inp: TriageInput, scen: Scenario) -> Tuple[List[DeviceRisk], Dict[str, List[Evidence]]]:
    sysm = inp.system
    faults: Dict[str, List[Evidence]] = {}
    for log in (inp.log, inp.crashed.log if inp.crashed is not None else None):
        if log is None:
            continue
        for m in log.all("fault"):
            b = m.get("bdf") or ""
            full = b if len(b) > 8 else f"0000:{b}"
            faults.setdefault(full, []).append(m.evidence)
    initrd_mods = set(inp.kdump_initrd.modules) if inp.kdump_initrd is not None else None
    builtin = inp.builtin_modules or frozenset()
    risks: List[DeviceRisk] = []
    for bdf, dev in sysm.devices.items():
        reasons: List[str] = []
        causes: List[str] = []
        mods = _device_modules(inp, bdf, dev)
        in_initrd: Optional[bool] = None
        if dev.bus_master and not dev.is_bridge and not dev.is_host_bridge:
            if sysm.in_kdump_kernel:
                if not dev.driver:
                    causes.append(RISK_NO_DRIVER)
                    reasons.append("bus master with no driver in the kdump kernel")
            else:
                if not dev.driver:
                    causes.append(RISK_NO_DRIVER)
                    reasons.append("bus master with no driver bound (now, and so in kdump)")
                elif initrd_mods is not None:
                    in_initrd = any(m in initrd_mods or m in builtin for m in mods)
                    if not in_initrd and _module(dev.driver) not in builtin:
                        causes.append(RISK_MODULE_MISSING)
                        reasons.append(
                            f"bus master; its module ({', '.join(mods) or dev.driver}) is not in the kdump initramfs"
                        )
        if dev.rmrrs:
            causes.append(RISK_RMRR)
            reasons.append("named by an RMRR (firmware DMA to a reserved range)")
        if bdf in faults:
            causes.append(RISK_FAULTS)
            reasons.append("AMD-Vi DMA fault events in the log" if all("AMD-Vi" in e.text for e in faults[bdf])
                           else "DMAR faults in the log")
        if reasons:
            risks.append(
                DeviceRisk(
                    bdf=bdf,
                    ids=f"{dev.vendor_id:04x}:{dev.device_id:04x}",
                    class_code=dev.class_code,
                    driver=dev.driver,
                    modules=mods,
                    in_kdump_initrd=in_initrd,
                    reasons=tuple(reasons),
                    upstream=tuple(dev.upstream),
                    rmrrs=tuple(dev.rmrrs),
                    faults=tuple(faults.get(bdf, ())),
                    causes=tuple(causes),
                )
            )
    return risks, faults


def _probe_evidence(log: LogMarkers, bdf: str) -> Optional[Evidence]:
    for m in log.all("probe"):
        if m.get("bdf") == bdf:
            return m.evidence
    return None


def triage(inp: TriageInput) -> TriageReport:
    inp = with_crashed_tables(inp)
    sysm = inp.system
    scen, kd_cmdline, kd_basis = assess_scenario(inp)
    findings: List[Finding] = []
    s = inp.kdump_settings
    src = sysm.source

    if scen.case == "no-vtd":
        risks: List[DeviceRisk] = []
        vendor: Optional[str] = None
        if inp.amd_iommu is None:
            nv_ev: List[Evidence] = [Evidence("/sys/firmware/acpi/tables/DMAR", "absent"),
                                     Evidence("/sys/class/iommu", "no dmar units")]
            findings.append(make("no-vtd", evidence=nv_ev))
        else:
            # an AMD-Vi machine: its case is the scenario (the IVRS is evidence of its
            # finding); nothing is said of VT-d, whose absence is no news on an EPYC
            amd, a = _amdvi_findings(inp, kd_cmdline)
            findings.extend(amd)
            vendor = "AMD-Vi"
            # the same per-device risks as VT-d, weighed by the AMD-Vi case
            as_vtd = replace(scen, case=AMD_AS_VTD_CASE.get(a.case, "no-vtd"))
            risks, faults = find_device_risks(inp, as_vtd)
            findings.extend(_device_findings(inp, as_vtd, risks, faults, kd_cmdline))
            if not sysm.in_kdump_kernel:
                findings.extend(_config_findings(inp, as_vtd))
            findings.extend(_crashed_tables_findings(inp, risks, "AMD-Vi"))
            c0 = inp.crashed
            if c0 is not None:
                for w in c0.warnings[:10]:
                    findings.append(make("offline-source", severity=WARNING if w in c0.unread else INFO,
                                         evidence=(Evidence(str(c0.vmcore or c0.source), w),), warning=w))
            scen = amdvi_as_scenario(scen, a)
        findings.extend(_capacity_findings(inp))
        return replace(_report(scen, findings, risks, src, kd_cmdline, kd_basis),
                       crashed_tables=inp.crashed.tables if inp.crashed is not None else None, vendor=vendor)

    # ---- the scenario itself
    scen_ev = tuple(scen.evidence)
    pt = first_passthrough(inp, scen)
    if scen.case == "on-off" and pt is not None:
        findings.append(make("translation-off-in-kdump-passthrough", evidence=scen_ev + (pt,)))
    elif scen.case == "on-off":
        fp = parse_iommu_params(scen.first.cmdline or sysm.cmdline or "")
        want = "intel_iommu=on" + (",sm_on" if scen.first.scalable else "") if fp.sm is None else (
            "intel_iommu=on," + ("sm_on" if fp.sm else "sm_off"))
        findings.append(make(
            "translation-off-in-kdump", evidence=scen_ev,
            remedy=_cmdline_remedy(s, want, drop=("iommu",))
            + "; keep the kdump kernel's VT-d on so the copied tables keep DMA inside the old kernel's buffers",
        ))
    elif scen.case == "sm-mismatch":
        want_sm = scen.first.scalable
        fp = parse_iommu_params(scen.first.cmdline or "")
        opt = "sm_on" if want_sm else "sm_off"
        if fp.sm is not None:
            opt = "sm_on" if fp.sm else "sm_off"
        if scen.table_copy in ("misread", "expected-misread"):
            row_ev = (Evidence("kernel table", f"row {scen.kernel_row.id}: {scen.kernel_row.reads_old_mode}"),) \
                if scen.kernel_row is not None else ()
            remedy = ("use the same intel_iommu= setting in both kernels, in legacy mode: this kdump kernel copies "
                      "scalable-mode tables in the wrong format even when both kernels run sm_on, so boot the first "
                      "kernel with intel_iommu=on (without sm_on) and keep the kdump kernel's intel_iommu=on"
                      + (",sm_off" if not scen.kdump.scalable else ""))
        else:
            row_ev = ()
            remedy = ("use the same intel_iommu= setting in both kernels: "
                      + _cmdline_remedy(s, f"intel_iommu=on,{opt}")
                      + (f" (or boot the first kernel with intel_iommu=on,{'sm_off' if want_sm else 'sm_on'} too)"))
        findings.append(make("scalable-mode-mismatch", evidence=scen_ev + row_ev, remedy=remedy, scenario=scen.title))
    elif scen.case == "copy-misread":
        row_ev = (Evidence("kernel table", f"row {scen.kernel_row.id}: {scen.kernel_row.reads_old_mode}"),) \
            if scen.kernel_row is not None else ()
        findings.append(make("copy-misread", evidence=scen_ev + row_ev, scenario=scen.title))
    elif scen.case == "off-on":
        findings.append(make("iommu-off-then-on", evidence=scen_ev, scenario=scen.title))
    elif scen.case == "off-both":
        findings.append(make("iommu-off", evidence=scen_ev, scenario=scen.title))
    elif scen.case == "copied":
        if pt is not None:
            scen_ev = scen_ev + (pt,)
        findings.append(make("tables-copied", evidence=scen_ev, scenario=scen.title,
                             expected="" if scen.table_copy == "copied" else " (expected)",
                             pt_note=PASSTHROUGH_COPIED_NOTE if pt is not None else ""))
    elif scen.contradictions:
        findings.append(make(
            "verdict-contradiction", scenario=scen.title,
            evidence=scen_ev + tuple(Evidence("kdumptool consistency check", c) for c in scen.contradictions)))
    else:
        findings.append(make("scenario-unknown", evidence=scen_ev, scenario=scen.title))

    # ---- interrupt remapping
    if scen.in_kdump and scen.ir_copy == "failed":
        m = inp.log.first("ir_copy_failed")
        findings.append(make("ir-copy-failed", evidence=(m.evidence,) if m else ()))
    elif scen.first.ir and scen.kdump.ir is False:
        findings.append(make("ir-off-in-kdump", evidence=scen.first.evidence + scen.kdump.evidence,
                             remedy=_cmdline_remedy(s, "intremap=on", drop=("intremap",))))
    if scen.first.x2apic and scen.kdump.ir is False:
        findings.append(make("x2apic-without-ir", evidence=scen.first.evidence,
                             remedy=_cmdline_remedy(s, "intremap=on", drop=("intremap", "nox2apic"))))

    # ---- devices
    risks, faults = find_device_risks(inp, scen)
    findings.extend(_device_findings(inp, scen, risks, faults, kd_cmdline))

    # ---- copied tables torn down by driver probes (inside kdump)
    if scen.in_kdump and scen.table_copy == "copied":
        replaced = []
        ev: List[Evidence] = []
        for bdf, dev in sysm.devices.items():
            if dev.driver and not dev.is_host_bridge and dev.driver not in ("pcieport",):
                replaced.append(bdf)
                pe = _probe_evidence(inp.log, bdf)
                ev.append(pe or Evidence(f"/sys/bus/pci/devices/{bdf}/driver", f"-> {dev.driver}"))
        if replaced:
            findings.append(make(
                "copied-tables-replaced", evidence=ev, devices=replaced, n=len(replaced),
                devices_text=", ".join(_short(b) + " (" + str(sysm.devices[b].driver) + ")" for b in replaced)))

    # ---- the crashed kernel's tables in the vmcore (offline)
    findings.extend(_crashed_tables_findings(inp, risks))
    c = inp.crashed
    if c is not None:
        # No root table to locate when the crashed kernel had translation off.
        notes = [w for w in c.warnings if not (scen.first.vtd is False and w in c.moot_if_off)]
        for w in notes[:10]:
            # Evidence that was there but could not be read is a warning, not a note.
            sev = WARNING if w in c.unread else INFO
            findings.append(make("offline-source", severity=sev, evidence=(Evidence(str(c.vmcore or c.source), w),),
                                 warning=w))

    # ---- kdump configuration and initramfs
    if not sysm.in_kdump_kernel:
        findings.extend(_config_findings(inp, scen))
        findings.extend(integration_findings(inp, kd_cmdline))
    findings.extend(_lockdown_findings(inp, scen))
    findings.extend(_input_warnings(inp))
    findings.extend(_capacity_findings(inp))
    return replace(_report(scen, findings, risks, src, kd_cmdline, kd_basis),
                   crashed_tables=c.tables if c is not None else None)


def _crashed_tables_findings(inp: TriageInput, risks: Sequence[DeviceRisk], vendor: str = "VT-d") -> List[Finding]:
    """Offline: what the crashed kernel's tables in the vmcore say about the risky devices."""
    findings: List[Finding] = []
    c = inp.crashed
    if c is None or c.tables is None:
        return findings
    t = c.tables
    ev = [_tables_evidence(c)]
    for r in risks:
        td = t.device(r.bdf)
        if td is not None and td.present:
            ev.append(Evidence(str(c.vmcore), f"{r.bdf}: {td.translation_type}, DID {td.domain_id}, "
                               f"{td.mapped_4k} mapped 4 KiB + {td.mapped_large} large pages"))
    mapped = [t.device(r.bdf) for r in risks]
    unbounded = [td for td in mapped if td is not None and td.present
                 and _unbounded(td.translation_type)]
    live = sum(1 for td in mapped if td is not None and td.mapped_4k + td.mapped_large > 0 and td not in unbounded)
    types = sorted({td.translation_type for td in mapped if td is not None and td.present})
    summary = f"{live} of the risky devices still had mapped pages at the crash"
    if unbounded:
        summary = (f"{len(unbounded)} of the risky devices are pass-through (no page table: unrestricted DMA to "
                   f"all of memory, so mapped-page counts do not apply to them: "
                   f"{', '.join(_short(td.bdf) for td in unbounded)}); "
                   f"{live} other risky device(s) still had mapped pages at the crash")
    guest = [td for td in mapped if td is not None and td.present and td.not_walked]
    if guest:
        summary += (f"; UNKNOWN for {', '.join(_short(td.bdf) for td in guest)}: guest page tables (GCR3) "
                    "not walked, DMA with a PASID may reach more")
    # Pages of the tables that could not be read or decompressed: a partial result,
    # said in the title and the severity (never a plain "0 devices").
    partial = (f"INCOMPLETE: {len(t.unreadable)} table page(s) could not be read or decompressed; "
               if t.unreadable else "")
    findings.append(make(
        "crashed-kernel-tables", severity=WARNING if unbounded or t.unreadable or guest else INFO,
        evidence=tuple(ev) + tuple(Evidence(str(c.vmcore), f"unreadable: {u}") for u in t.unreadable[:5])
        + tuple(Evidence(str(c.vmcore), p) for p in t.problems[:5]),
        devices=tuple(r.bdf for r in risks if t.device(r.bdf) is not None),
        partial=partial, vendor=vendor, mode=t.mode, n=len(t.devices), readable=" readable" if t.unreadable else "",
        types=", ".join(types) or "none present", summary=summary))
    return findings


def _device_findings(
    inp: TriageInput, scen: Scenario, risks: Sequence[DeviceRisk], faults: Mapping[str, List[Evidence]],
    kd_cmdline: Optional[str] = None,
) -> List[Finding]:
    out: List[Finding] = []
    quiesce, q_ev = quiesce_state(inp, kd_cmdline)
    sysm = inp.system
    s = inp.kdump_settings
    driverless = [r for r in risks if r.driverless]
    if scen.case == "on-off" and first_passthrough(inp, scen) is None:
        sev, why = ERROR, DRIVERLESS_WHY["on-off"]
    elif scen.case == "copied":
        sev, why = WARNING, DRIVERLESS_WHY["copied"]
    elif scen.case == "amd-on-off":
        # AMD-Vi left on by the crashed kernel, never touched by this one: the old tables
        # keep translating (and remapping interrupts) for every device
        sev, why = ERROR, DRIVERLESS_WHY["copied"]
    elif scen.case in ("sm-mismatch", "copy-misread") and scen.table_copy in ("misread", "expected-misread"):
        sev, why = WARNING, DRIVERLESS_WHY["misread"]
    elif scen.case in ("sm-mismatch", "copy-failed"):
        sev, why = WARNING, DRIVERLESS_WHY["sm-mismatch"]
    elif scen.case == "off-on":
        sev, why = WARNING if sysm.in_kdump_kernel else INFO, DRIVERLESS_WHY["off-on"]
    else:
        sev, why = WARNING if sysm.in_kdump_kernel else INFO, DRIVERLESS_WHY["other"]
    for r in driverless:
        ev: List[Evidence] = []
        dev = sysm.devices[r.bdf]
        ev.append(Evidence(f"/sys/bus/pci/devices/{r.bdf}/config", f"COMMAND=0x{dev.command:04x} (Bus Master on)"))
        dwhy = why
        tt, tt_ev = device_translation(inp, scen, r.bdf) if scen.case in ("copied", "on-off") else (None, None)
        meaning = translation_meaning(tt)
        if meaning is not None and not meaning.bounded and tt_ev is not None:
            ev.append(tt_ev)
            dwhy = (f"its translation is {tt} ({meaning.where}): unrestricted DMA, {meaning.in_flight.split(': ', 1)[1]}")
        if sysm.in_kdump_kernel:
            ev.append(Evidence(f"/sys/bus/pci/devices/{r.bdf}/driver", "absent (no driver bound in the kdump kernel)"))
        elif inp.kdump_initrd is not None:
            ev.append(Evidence(inp.kdump_initrd.path, f"no {', '.join(r.modules) or '?'} module among {len(inp.kdump_initrd.modules)} modules ({inp.kdump_initrd.method})"))
        mods = list(r.modules) or ([r.driver] if r.driver else [])
        bridges = f" below {' -> '.join(_short(b) for b in r.upstream)}" if r.upstream else ""
        remedy: Optional[str]
        if quiesce:
            remedy = (_module_remedy(s, mods) + " (the quiesce hook stops it only after the dump)") if mods else None
        else:
            remedy = (_module_remedy(s, mods) + "; " + QUIESCE_ALTERNATIVE) if mods else QUIESCE_REMEDY
        out.append(make("driverless-bus-master", severity=sev, evidence=ev, remedy=remedy, devices=(r.bdf,),
                        bdf=_short(r.bdf), ids=r.ids, modules=", ".join(mods) or "no known module", bridges=bridges,
                        why=dwhy))
    # Bridges above driverless bus masters: the shutdown-order hazard.
    pairs: Dict[str, List[str]] = {}
    for r in driverless:
        for b in r.upstream:
            pairs.setdefault(b, []).append(r.bdf)
    if pairs:
        ev = [
            Evidence(f"/sys/bus/pci/devices/{b}", f"bridge above {', '.join(_short(x) for x in devs)}")
            for b, devs in sorted(pairs.items())
        ]
        out.append(make("bridge-shutdown-order", severity=INFO if quiesce else WARNING, evidence=tuple(ev) + q_ev,
                        devices=tuple(sorted(pairs)), n=len(pairs),
                        bridges=", ".join(_short(b) for b in sorted(pairs)), quiesce=QUIESCE_ALTERNATIVE))
    for r in risks:
        if r.rmrrs:
            rm = ", ".join(hex(a) for a in r.rmrrs)
            out.append(make("rmrr-device", evidence=(Evidence("DMAR", f"RMRR base {rm} scope {_short(r.bdf)}"),),
                            devices=(r.bdf,), bdf=_short(r.bdf), rmrrs=rm))
    supp = inp.log.all("suppressed")
    if supp:
        n = sum(int(m.get("value") or 0) for m in supp)
        out.append(make("faults-suppressed", evidence=tuple(m.evidence for m in supp[:5]), n=n))
    lookups: Dict[str, List[FaultLookup]] = {}
    c = inp.crashed
    if c is not None and c.tables is not None:
        for fl in c.tables.fault_lookups:
            lookups.setdefault(fl.bdf, []).append(fl)
    for bdf, evs in sorted(faults.items()):
        extra = tuple(Evidence(str(c.vmcore if c is not None else ""), fl.text()) for fl in lookups.get(bdf, [])[:3])
        fdev = sysm.devices.get(bdf)
        fmods: Tuple[str, ...] = _device_modules(inp, bdf, fdev) if fdev is not None else ()
        driver_now = fdev.driver if fdev is not None else None
        who = ", ".join(fmods) if fmods else "unknown driver"
        sev = ERROR if scen.case in ("sm-mismatch", "on-off", "copy-misread", "copy-failed", "amd-on-off") \
            or sysm.in_kdump_kernel \
            else WARNING
        amd = all("AMD-Vi" in e.text for e in evs)
        tie = f"the {who} device" if fmods else "a device"
        state = f", driver now {driver_now}" if driver_now else (", no driver bound now" if fdev is not None else "")
        out.append(make(
            "amdvi-fault" if amd else "dmar-fault", severity=sev, evidence=tuple(evs[:5]) + extra, devices=(bdf,),
            remedy="the fault is DMA the device started under the crashed kernel; "
            + ("fix the scalable-mode mismatch above" if scen.case == "sm-mismatch" else
               "fix the table-copy misread above" if scen.case == "copy-misread" else
               "fix the device-table copy failure above" if scen.case == "copy-failed" else
               _module_remedy(s, list(fmods)) if fmods else QUIESCE_REMEDY),
            plural="s" if len(evs) > 1 else "", bdf=_short(bdf), tie=tie, state=state, count=len(evs),
        ))
    return out


def _config_findings(inp: TriageInput, scen: Scenario) -> List[Finding]:
    out: List[Finding] = []
    s = inp.kdump_settings
    if s is None:
        out.append(make("no-kdump-config",
                        evidence=(Evidence("/etc", "no kdump.conf, sysconfig/kdump or default/kdump-tools"),)))
    elif s.enabled is not None and str(s.enabled.value).strip() not in ("1", "true", "yes"):
        e = s.enabled
        out.append(make("kdump-disabled", file=e.file, evidence=(
            Evidence(e.file or "", e.entry.raw.strip() if e.entry else str(e.value), e.entry.line if e.entry else None),)))
    if inp.initrd_error:
        out.append(make("kdump-initramfs-unreadable", evidence=(Evidence("initramfs", inp.initrd_error),)))
    elif inp.kdump_initrd is None and inp.system.kexec_crash_loaded is not False:
        out.append(make("kdump-initramfs-missing", evidence=(Evidence("/boot", "no kdump initramfs"),)))
    return out


def integration_findings(inp: TriageInput, kd_cmdline: Optional[str]) -> List[Finding]:
    """kdumptool's own kdump integration: installed or not for the kdump stack found, in the
    kdump initramfs or not (dracut stacks; kdump-tools boots the root file system), quiesce
    enabled or not; a unit naming a kdumptool that is not there; an initramfs older than
    the configuration it was built from, with the command that rebuilds it."""
    ig = inp.integration
    if ig is None:
        return []
    out: List[Finding] = []
    quiesce, q_ev = quiesce_state(inp, kd_cmdline)
    if ig.stack is None:
        return out
    installed = not ig.missing
    where = "installed" if installed else ("not installed" if not ig.installed else "partly installed")
    ev: List[Evidence] = [Evidence(f, f"{ig.stack} installed") for f in ig.stack_files[:2]]
    ev += [Evidence("/" + f, "present") for f in ig.installed]
    ev += [Evidence("/" + f, "absent") for f in ig.missing]
    parts = [f"kdumptool integration for {ig.stack}: {where}"]
    initrd = inp.kdump_initrd
    if ig.stack in ("kdump-utils", "dracut", "suse-kdump"):
        if initrd is not None:
            parts.append("in the kdump initramfs" if initrd.has_kdumptool else "not in the kdump initramfs")
            ev.append(Evidence(initrd.path, "holds usr/bin/kdumptool" if initrd.has_kdumptool
                               else "no usr/bin/kdumptool"))
        else:
            parts.append("kdump initramfs not read")
    elif ig.stack == "kdump-tools":
        parts.append("runs from the root file system the kdump kernel boots (no initramfs part)")
    parts.append({True: "quiesce enabled", False: "quiesce disabled", None: "quiesce: cannot tell"}[quiesce])
    ev += list(q_ev)
    remedy = None
    if not installed:
        remedy = "run `kdumptool install-integration` (`--dry-run` shows every file it writes)"
    elif ig.stack in ("kdump-utils", "dracut") and initrd is not None and not initrd.has_kdumptool:
        remedy = ("add `--add kdumptool` to the dracut_args line of /etc/kdump.conf, then `kdumpctl rebuild && "
                  "kdumpctl restart`" if ig.stack == "kdump-utils" else
                  f"rebuild the kdump initramfs with the module: dracut --force --add kdumptool {initrd.path} "
                  f"{initrd.release}")
    out.append(make("kdumptool-integration", evidence=ev, remedy=remedy, state="; ".join(parts)))
    if ig.command_ok is False:
        out.append(make(
            "kdumptool-integration-broken", command=ig.command,
            evidence=(Evidence("/usr/lib/systemd/system/kdumptool-boot-record.service", f"ExecStart={ig.command} ..."),)))
    if ig.newer_than_initrd and ig.initrd_path:
        out.append(make(
            "kdump-initramfs-stale", files=", ".join("/" + f for f in ig.newer_than_initrd),
            evidence=tuple(Evidence("/" + f, f"changed after {ig.initrd_path} was built") for f in ig.newer_than_initrd),
            remedy=f"rebuild it: `{ig.rebuild}`" if ig.rebuild else None))
    return out


def _input_warnings(inp: TriageInput) -> List[Finding]:
    """What could not be read or decoded cleanly, so a reader knows what the verdict rests on."""
    out: List[Finding] = []
    if inp.log.lines == 0:
        out.append(make("input-warning", evidence=(Evidence(inp.log.source, "no lines"),),
                        warning=f"No kernel log read: {inp.log.source}"))
    for w in list(getattr(inp.system, "warnings", ()))[:20]:
        out.append(make("input-warning", evidence=(Evidence(str(inp.system.source), w),), warning=w))
    if inp.kdump_settings is not None:
        for w in inp.kdump_settings.warnings[:20]:
            out.append(make("kdump-config-warning", evidence=(Evidence(w.split(":", 1)[0], w),), warning=w))
    if inp.kdump_initrd is not None:
        for w in inp.kdump_initrd.warnings[:5]:
            out.append(make("kdump-initramfs-partly-read", evidence=(Evidence(inp.kdump_initrd.path, w),)))
    return out


def expected_dump_size(level: Optional[int], mem_used: Optional[int], mem_total: Optional[int]) -> Optional[int]:
    """A conservative estimate of a vmcore's size for a makedumpfile dump level.

    Level 31 keeps kernel pages only (about the used memory minus page cache and user
    pages: we take a quarter of what is in use as the planning figure makedumpfile -c
    usually beats); level 0 keeps all RAM. Levels in between keep more than 31."""
    if mem_total is None:
        return None
    if level is None or level == 0:
        return mem_total
    used = mem_used if mem_used is not None else mem_total
    if level & 31 == 31:
        return used // 4
    # Levels that keep user pages (bit 8 clear) or cache pages (bits 2,4 clear) keep
    # most of what is in use.
    return used


def _yes_no(v: Optional[bool], yes: str, no: str) -> str:
    return "UNKNOWN" if v is None else (yes if v else no)


def _lockdown_findings(inp: TriageInput, scen: Scenario) -> List[Finding]:
    """Lockdown (integrity/confidentiality) kept /dev/mem shut: name the conclusions that
    lost their register evidence, and what they rest on now (the state of the kernel the
    snapshot was taken in: the kdump kernel inside kdump, else the first kernel)."""
    sysm = inp.system
    unread = [u for u in sysm.units if u.registers is None]
    locked = sysm.lockdown in ("integrity", "confidentiality")
    if not unread or not (locked or any("lockdown" in (u.read_error or "") for u in unread)):
        return []
    state = scen.kdump if scen.in_kdump else scen.first
    # Without RTADDR the mode can still follow from CAP/ECAP in sysfs: no ECAP.SMTS, no
    # scalable mode (analysis/scenario.py observed_state).
    no_smts = bool(unread) and all(u.ecap is not None and not (u.ecap >> ECAP_SMTS_BIT) & 1 for u in unread)
    smts_basis = " (ECAP.SMTS=0 in sysfs: this hardware has no scalable mode)" if no_smts and state.scalable is False else ""
    lost = [
        f"VT-d translation (GSTS.TES): {_yes_no(state.vtd, 'on', 'off')}",
        f"table mode (RTADDR.SMT): {_yes_no(state.scalable, 'scalable', 'legacy')}{smts_basis}",
        f"interrupt remapping (GSTS.IRES): {_yes_no(state.ir, 'on', 'off')}",
        f"x2APIC interrupt mode (IRTA.EIME): {_yes_no(state.x2apic, 'on', 'off')}",
    ]
    with_sysfs = [u.name for u in unread if u.cap is not None or u.ecap is not None]
    sysfs = (f" and on CAP/ECAP from /sys/class/iommu/{{{','.join(with_sysfs)}}}/intel-iommu" if with_sysfs else "")
    ev = [Evidence("/sys/kernel/security/lockdown", f"[{sysm.lockdown}]" if sysm.lockdown else "not readable")]
    ev.extend(Evidence(f"{u.name} registers", u.read_error or "not read") for u in unread)
    return [make("registers-refused-by-lockdown", evidence=tuple(ev), mode=sysm.lockdown or "seen in the read error",
                 units=", ".join(u.name for u in unread), sysfs=sysfs, lost="; ".join(lost))]


def _capacity_findings(inp: TriageInput) -> List[Finding]:
    out: List[Finding] = []
    c = inp.capacity
    sysm = inp.system
    if sysm.in_kdump_kernel:
        return out
    loaded = c.crash_loaded if c.crash_loaded is not None else sysm.kexec_crash_loaded
    size = c.crash_size if c.crash_size is not None else sysm.kexec_crash_size
    if loaded is False:
        out.append(make("kdump-not-loaded", evidence=(Evidence("/sys/kernel/kexec_crash_loaded", "0"),)))
        if sysm.lockdown in ("integrity", "confidentiality"):
            out.append(make("kdump-load-locked-down", mode=sysm.lockdown, evidence=(
                Evidence("/sys/kernel/security/lockdown", f"[{sysm.lockdown}]"),
                Evidence("/sys/kernel/kexec_crash_loaded", "0"))))
    if size is not None and size == 0:
        out.append(make("no-crashkernel", evidence=(Evidence("/sys/kernel/kexec_crash_size", "0"),)))
    elif size and c.mem_total:
        # kdump-utils' default for x86_64 (crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M),
        # and at least the kdump kernel + initramfs (~160 MiB) plus makedumpfile's
        # bitmaps (2 bits per page of RAM).
        table = 192 << 20 if c.mem_total < 4 << 30 else (256 << 20 if c.mem_total < 64 << 30 else 512 << 20)
        need = max(table, 160 * 2**20 + (c.mem_total // PAGE_SIZE) // 4)
        if size < need:
            out.append(make(
                "crashkernel-small",
                evidence=(Evidence("/sys/kernel/kexec_crash_size", str(size)),
                          Evidence("MemTotal", f"{c.mem_total >> 10} kB")),
                size_mib=size >> 20, need_mib=need >> 20, ram_gib=c.mem_total >> 30,
                min_mib=((need >> 20) + 63) // 64 * 64))
    s = inp.kdump_settings
    if c.target_free is not None and s is not None:
        level = int(s.dump_level.value) if s.dump_level is not None else None  # type: ignore[call-overload]
        exp = expected_dump_size(level, c.mem_used, c.mem_total)
        if exp is not None and c.target_free < exp:
            cite = s.dump_level.cite() if s.dump_level is not None else "(default)"
            out.append(make(
                "dump-target-space",
                evidence=(Evidence(str(c.target_path), f"{c.target_free} bytes free"), Evidence("dump level", cite)),
                path=c.target_path, free_mib=c.target_free >> 20, level=level, need_mib=exp >> 20))
    if c.target_error:
        out.append(make("dump-target-unchecked", evidence=(Evidence(str(c.target_path or "target"), c.target_error),),
                        why=c.target_error))
    return out


def _report(
    scen: Scenario,
    findings: List[Finding],
    risks: List[DeviceRisk],
    source: str,
    kd_cmdline: Optional[str],
    kd_basis: Optional[str],
) -> TriageReport:
    findings = sorted(findings, key=lambda f: -f.rank)
    worst = max((f.rank for f in findings), default=0)
    if scen.case == "no-vtd" and worst == 0:
        verdict = "nothing"
        headline = "Nothing to triage for VT-d: this machine has no Intel VT-d remapping hardware"
    elif worst == ERROR_RANK:
        verdict = "error"
        errs = [f for f in findings if f.severity == ERROR]
        headline = f"kdump is at risk: {errs[0].title}" + (f" (+{len(errs) - 1} more errors)" if len(errs) > 1 else "")
    elif worst == WARNING_RANK:
        verdict = "warning"
        w = [f for f in findings if f.severity == WARNING]
        headline = f"kdump should survive, with {len(w)} warning(s): {w[0].title}"
    else:
        verdict = "ok"
        headline = "kdump should survive in-flight DMA: " + scen.title
    return TriageReport(verdict, headline, scen, tuple(findings), tuple(risks), source, kd_cmdline, kd_basis)
