"""What a kernel log says about VT-d faults and kdump, summarised and tied to devices.

:func:`analyse_log` takes :class:`~kdumptool.formats.klog.LogEvent` records (from
:func:`~kdumptool.formats.klog.parse_log`, or a list of strings, parsed here) and an
optional system model (:class:`kdumptool.model.system.System`), and returns a
:class:`LogReport`:

* faults grouped per device, kind and reason, with first/last line and time, access
  counts and the first distinct addresses;
* bursts: faults close in time (``BURST_GAP_S``) or, without timestamps, close in the
  log (``BURST_GAP_LINES``), with the ``dmar_fault: N callbacks suppressed`` counts;
* kdump / kexec markers in log order; IOMMU units the kernel announced;
* correlation to the system model: device driver, IOMMU group, covering DRHD, RMRRs,
  and whether a fault address falls in one of the device's RMRRs or its group's
  reserved regions (a fault inside an RMRR means the identity map is missing);
* one verdict line.

Memory stays bounded however long the log: at most ``max_events`` events are kept
(the rest are counted), ``MAX_ADDRESSES`` addresses per group, ``MAX_BURSTS`` bursts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union, cast

from kdumptool.formats.dmar import Rmrr
from kdumptool.formats.klog import CONTEXT_KINDS, LogEvent, parse_log, wallclock_seconds
from kdumptool.model.record import JsonObj
from kdumptool.model.system import System

_T = TypeVar("_T")

BURST_GAP_S = 2.0
BURST_GAP_LINES = 50
MAX_ADDRESSES = 8
MAX_BURSTS = 1000
# Fault groups kept, one per (kind, device, reason): past it faults are counted, not grouped
# (262,144 distinct device/reason pairs took 490 MB before this limit).
MAX_FAULT_GROUPS = 4096

FAULT_KINDS = ("dma_fault", "ir_fault", "amd_vi_fault")
#: Events that tell the kdump / kexec story, shown in log order.
MARKER_KINDS = (
    "boot",
    "crashkernel_reserved",
    "crash_trigger",
    "panic",
    "kexec",
    "kdump_kernel",
    "iommu_enabled",
    "iommu_disabled",
    "sm_disallowed",
    "translation_preenabled",
    "tables_copied",
    "copy_failed",
    "vtd_ready",
    "translation_not_kdump",
    "ir_copied",
    "ir_copy_failed",
    "ir_not_kdump",
    "firmware_bug",
    "hw_malfunction",
    "amdvi_translation_preenabled",
    "amdvi_tables_copied",
    "amdvi_copy_failed",
    "amdvi_copy_refused",
    "amdvi_not_kdump",
    "amdvi_firmware",
    "amdvi_ir_disabled",
    "amdvi_snp",
    "amdvi_cmd_timeout",
    "amdvi_event_overflow",
)
_KDUMP_KINDS = frozenset(
    {"kdump_kernel", "translation_preenabled", "tables_copied", "copy_failed", "ir_copied", "ir_copy_failed",
     "amdvi_translation_preenabled", "amdvi_tables_copied", "amdvi_copy_failed", "amdvi_copy_refused"}
)


#: Lines that show the crashed (first) kernel had the VT-d hardware remapping: seen by a
#: kdump kernel (pre-enabled translation, an IR table copied), or the first kernel's own
#: lines earlier in the same log.
_FIRST_KERNEL_REMAPPED = ("translation_preenabled", "ir_copied", "ir_copy_failed", "vtd_ready", "iommu_enabled")


@dataclass
class FaultGroup:
    """Faults of one kind from one device with one reason."""

    kind: str
    bdf: Optional[str]
    reason_code: Optional[int]
    reason: Optional[str]
    count: int = 0
    first_line: int = 0
    last_line: int = 0
    first_timestamp: Optional[float] = None
    last_timestamp: Optional[float] = None
    reads: int = 0
    writes: int = 0
    addresses: List[int] = field(default_factory=list)
    fault_indexes: List[int] = field(default_factory=list)
    pasids: List[int] = field(default_factory=list)
    address_notes: List[str] = field(default_factory=list)
    #: The kernel's "Dump dmarN table entries for IOVA" blocks after this group's faults
    #: (CONFIG_DMAR_DEBUG, >= 5.17): the first two, each as its lines' messages.
    table_dumps: List[List[str]] = field(default_factory=list)

    def to_json(self) -> JsonObj:
        return {
            "kind": self.kind,
            "table_dumps": self.table_dumps,
            "bdf": self.bdf,
            "reason_code": None if self.reason_code is None else f"0x{self.reason_code:02x}",
            "reason": self.reason,
            "count": self.count,
            "first_line": self.first_line,
            "last_line": self.last_line,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "reads": self.reads,
            "writes": self.writes,
            "addresses": [f"0x{a:x}" for a in self.addresses],
            "fault_indexes": [f"0x{a:x}" for a in self.fault_indexes],
            "pasids": self.pasids,
            "address_notes": self.address_notes,
        }


@dataclass
class Burst:
    """Faults (and suppressed-message counts) close together."""

    first_line: int
    last_line: int
    first_timestamp: Optional[float]
    last_timestamp: Optional[float]
    count: int = 0
    suppressed: int = 0
    devices: List[str] = field(default_factory=list)
    first_wallclock: Optional[str] = None
    last_wallclock: Optional[str] = None
    last_wall_s: Optional[float] = field(default=None, repr=False)

    def to_json(self) -> JsonObj:
        return {
            "first_line": self.first_line,
            "last_line": self.last_line,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "first_wallclock": self.first_wallclock,
            "last_wallclock": self.last_wallclock,
            "count": self.count,
            "suppressed": self.suppressed,
            "devices": self.devices,
        }


@dataclass
class DeviceInfo:
    """What the system model knows about a device named in the log."""

    bdf: str
    known: bool
    modelled: bool = True  # False: no system model was given at all
    from_log: bool = False  # driver/group/identity maps filled from the log's own lines
    vendor_device: Optional[str] = None
    driver: Optional[str] = None
    iommu_group: Optional[int] = None
    drhd: Optional[int] = None
    unit: Optional[str] = None  # the covering unit's name (dmar0), from the model or the log
    rmrrs: List[Tuple[int, int]] = field(default_factory=list)
    reserved_regions: List[Tuple[int, int, str]] = field(default_factory=list)

    def label(self) -> str:
        bits = [self.bdf]
        if not self.known and not self.from_log:
            if self.modelled:
                bits.append("(not in the system model)")
            return " ".join(bits)
        if self.driver:
            bits.append(self.driver)
        elif self.vendor_device:
            bits.append(f"[{self.vendor_device}] no driver")
        if self.iommu_group is not None:
            bits.append(f"group {self.iommu_group}")
        if self.from_log:
            bits.append("(from the log)")
        return " ".join(bits)

    def to_json(self) -> JsonObj:
        return {
            "bdf": self.bdf,
            "known": self.known,
            "from_log": self.from_log,
            "vendor_device": self.vendor_device,
            "driver": self.driver,
            "iommu_group": self.iommu_group,
            "drhd": None if self.drhd is None else f"0x{self.drhd:x}",
            "unit": self.unit,
            "rmrrs": [[f"0x{a:x}", f"0x{b:x}"] for a, b in self.rmrrs],
            "reserved_regions": [[f"0x{a:x}", f"0x{b:x}", t] for a, b, t in self.reserved_regions],
        }


@dataclass
class LogReport:
    events: List[LogEvent]
    events_omitted: int
    counts: Dict[str, int]
    faults: List[FaultGroup]
    bursts: List[Burst]
    bursts_omitted: int
    markers: List[LogEvent]
    units: List[LogEvent]
    devices: Dict[str, DeviceInfo]
    verdict_level: str
    verdict: str
    in_kdump_kernel: bool
    suppressed_total: int
    warnings: List[str] = field(default_factory=list)
    boots: int = 0  # "Linux version" lines seen in the whole input
    faults_ungrouped: int = 0  # faults past MAX_FAULT_GROUPS groups: counted, not grouped
    last_boot_only: bool = False  # the summary covers only the last of them

    def summary_json(self) -> JsonObj:
        return {
            "verdict": self.verdict,
            "boots": self.boots,
            "last_boot_only": self.last_boot_only,
            "verdict_level": self.verdict_level,
            "in_kdump_kernel": self.in_kdump_kernel,
            "counts": dict(sorted(self.counts.items())),
            "suppressed_total": self.suppressed_total,
            "faults": [g.to_json() for g in self.faults],
            "bursts": [b.to_json() for b in self.bursts],
            "bursts_omitted": self.bursts_omitted,
            "faults_ungrouped": self.faults_ungrouped,
            "markers": [
                {"line": e.line, "kind": e.kind, "unit": e.unit, "timestamp": e.timestamp, "text": e.text}
                for e in self.markers
            ],
            "units": [
                {"unit": e.unit, "line": e.line, **{k: (f"0x{v:x}" if isinstance(v, int) else v)
                                                    for k, v in e.details.items()}}
                for e in self.units
            ],
            "devices": {k: v.to_json() for k, v in sorted(self.devices.items())},
            "events_omitted": self.events_omitted,
            "warnings": self.warnings,
        }

    def to_json(self) -> JsonObj:
        return {"events": [e.to_json() for e in self.events], "summary": self.summary_json()}


# --- the system model's view of a device ------------------------------------------------------


def _rmrr_table(system: System) -> Dict[int, int]:
    """RMRR base -> end address from the system's decoded DMAR table."""
    if system.dmar is None:
        return {}
    return {st.base_address: st.end_address for st in system.dmar.structures if isinstance(st, Rmrr)}


def _device_info(system: Optional[System], bdf: str) -> DeviceInfo:
    dev = system.devices.get(bdf) if system is not None else None
    if system is None or dev is None:
        return DeviceInfo(bdf, False)
    info = DeviceInfo(
        bdf,
        True,
        vendor_device=f"{dev.vendor_id:04x}:{dev.device_id:04x}",
        driver=dev.driver or None,
        iommu_group=dev.iommu_group,
        drhd=dev.drhd,
    )
    if info.drhd is not None:
        for u in system.units:
            if u.address == info.drhd and u.name:
                info.unit = u.name
                break
    # The model lists RMRRs by base address (model/system.py); the end comes from the DMAR
    # table (the base alone when the table no longer holds it).
    rmrr_ends = _rmrr_table(system)
    info.rmrrs.extend((base, rmrr_ends.get(base, base)) for base in dev.rmrrs)
    grp = system.groups.get(dev.iommu_group) if dev.iommu_group is not None else None
    if grp is not None:
        info.reserved_regions.extend((r.start, r.end, r.type) for r in grp.reserved_regions)
    return info


def check_fault_address(info: DeviceInfo, address: int) -> List[str]:
    """Where a fault address falls among the device's RMRRs and reserved regions."""
    notes = []
    for lo, hi in info.rmrrs:
        if lo <= address <= hi:
            notes.append(
                f"0x{address:x} is inside RMRR [0x{lo:x}-0x{hi:x}] of {info.bdf}: the "
                "firmware's identity map for this device is missing in the active tables"
            )
    for lo, hi, kind in info.reserved_regions:
        if lo <= address <= hi:
            notes.append(f"0x{address:x} is inside reserved region [0x{lo:x}-0x{hi:x}] {kind}".rstrip())
    return notes


# --- the analysis ------------------------------------------------------------------------------


def analyse_log(
    events: Iterable[Union[LogEvent, str]],
    system: Optional[System] = None,
    max_events: Optional[int] = None,
    last_boot_only: bool = False,
) -> LogReport:
    """Summarise events (or raw log lines) into a :class:`LogReport`.

    ``events`` may be LogEvents or strings (then :func:`parse_log` runs first), so
    ``analyse_log(open(f).read().splitlines())`` works. ``max_events`` caps the events
    kept in the report (all are counted and summarised). ``last_boot_only`` forgets
    everything before the last ``Linux version`` line (a syslog file holding several
    boots); ``report.boots`` counts the boots seen either way.
    """
    it = iter(events)
    first = next(it, None)
    stream: Iterable[LogEvent]
    if first is None:
        stream = ()
    elif isinstance(first, LogEvent):
        stream = cast(Iterator[LogEvent], _chain(first, it))  # LogEvents throughout, as documented
    else:
        stream = parse_log(cast(Iterator[str], _chain(first, it)))

    acc = _Acc(system, max_events)
    boots = 0
    for ev in stream:
        if ev.kind in CONTEXT_KINDS:
            continue  # triage's context (command line, x2apic...), not an IOMMU event
        if ev.kind == "boot":
            boots += 1
            if last_boot_only and boots > 1:
                acc = _Acc(system, max_events)
        acc.add(ev)
    report = acc.finish()
    report.boots = boots
    report.last_boot_only = last_boot_only
    return report


class _Acc:
    """The running summary of one stretch of log (all of it, or the last boot)."""

    def __init__(self, system: Optional[System], max_events: Optional[int]) -> None:
        self.system = system
        self.max_events = max_events
        self.kept: List[LogEvent] = []
        self.omitted = 0
        self.counts: Dict[str, int] = {}
        self.groups: Dict[Tuple[str, Optional[str], Optional[int]], FaultGroup] = {}
        self.bursts: List[Burst] = []
        self.bursts_omitted = 0
        self.faults_ungrouped = 0
        self.markers: List[LogEvent] = []
        self.units: List[LogEvent] = []
        self.devices: Dict[str, DeviceInfo] = {}
        self.suppressed_total = 0
        self.warnings: List[str] = []
        self.cur: Optional[Burst] = None
        self.last_group: Optional[FaultGroup] = None
        self.dump: Optional[List[str]] = None  # the table dump being collected
        self.log_rmrrs: List[Tuple[int, int, int]] = []
        self.last_marker_key: Optional[Tuple[str, str]] = None
        # What the log itself says about devices (used when the model does not know one).
        self.log_drivers: Dict[str, str] = {}
        self.log_driver_line: Dict[str, int] = {}
        self.log_groups: Dict[str, int] = {}
        self.idmaps: Dict[Tuple[int, int], List[str]] = {}

    def add(self, ev: LogEvent) -> None:
        self.counts[ev.kind] = self.counts.get(ev.kind, 0) + 1
        if self.max_events is None or len(self.kept) < self.max_events:
            self.kept.append(ev)
        else:
            self.omitted += 1
        if ev.warnings and len(self.warnings) < 100:
            self.warnings.extend(f"line {ev.line}: {w}" for w in ev.warnings)
        if ev.kind in MARKER_KINDS:
            key = (ev.kind, ev.text)
            if key != self.last_marker_key and len(self.markers) < 500:
                self.markers.append(ev)
            self.last_marker_key = key
        if ev.kind == "rmrr" and len(self.log_rmrrs) < 256:
            lo, hi = ev.details.get("base"), ev.details.get("end")
            if isinstance(lo, int) and isinstance(hi, int) and (ev.line, lo, hi) not in self.log_rmrrs:
                self.log_rmrrs.append((ev.line, lo, hi))
        if ev.bdf and ev.kind == "driver" and len(self.log_drivers) < 4096:
            self.log_drivers.setdefault(ev.bdf, str(ev.details.get("driver")))
            self.log_driver_line.setdefault(ev.bdf, ev.line)
        if ev.bdf and ev.kind == "iommu_group" and ev.value is not None and len(self.log_groups) < 4096:
            self.log_groups[ev.bdf] = ev.value
        if ev.bdf and ev.kind == "identity_map":
            lo, hi = ev.details.get("base"), ev.details.get("end")
            if isinstance(lo, int) and isinstance(hi, int):
                owners = self.idmaps.get((lo, hi))
                if owners is None and len(self.idmaps) < 1024:
                    owners = self.idmaps[(lo, hi)] = []
                if owners is not None and ev.bdf not in owners and len(owners) < 64:
                    owners.append(ev.bdf)
        if ev.kind == "unit":
            # One entry per unit and base (a log holding several boots repeats them).
            ident = (ev.unit, ev.details.get("reg_base_addr"))
            self.units = [u for u in self.units if (u.unit, u.details.get("reg_base_addr")) != ident]
            if len(self.units) < 256:
                self.units.append(ev)
        if ev.bdf and ev.bdf not in self.devices and (ev.kind in FAULT_KINDS or ev.kind == "aer"):
            if len(self.devices) < 4096:
                self.devices[ev.bdf] = (
                    _device_info(self.system, ev.bdf) if self.system is not None
                    else DeviceInfo(ev.bdf, False, modelled=False)
                )
        if ev.kind == "fault_dump":
            self.dump = None
            g = self.last_group
            if g is not None and len(g.table_dumps) < 2:
                self.dump = [ev.text]
                g.table_dumps.append(self.dump)
        elif ev.kind == "dump_entry":
            if self.dump is not None and len(self.dump) < 24:
                self.dump.append(ev.text)
        else:
            self.dump = None
        cur = self.cur
        if ev.kind == "suppressed" and cur is not None:
            # The ratelimiter reports what it dropped since the last printed fault: those
            # faults belong to the burst before this line, which lasted until now.
            n = ev.value or 0
            cur.suppressed += n
            self.suppressed_total += n
            cur.last_line = ev.line
            _touch(cur, ev)
            return
        if ev.kind not in FAULT_KINDS and ev.kind != "suppressed":
            return
        if cur is None or not _same_burst(cur, ev):
            self._close_burst()
            cur = self.cur = Burst(ev.line, ev.end_line or ev.line, None, None)
        cur.last_line = ev.end_line or ev.line
        _touch(cur, ev)
        if ev.kind == "suppressed":
            n = ev.value or 0
            cur.suppressed += n
            self.suppressed_total += n
            return
        cur.count += 1
        if ev.bdf and ev.bdf not in cur.devices and len(cur.devices) < 64:
            cur.devices.append(ev.bdf)
        if len(self.groups) >= MAX_FAULT_GROUPS and (ev.kind, ev.bdf, ev.reason_code) not in self.groups:
            self.faults_ungrouped += 1
            self.last_group = None
            return
        self.last_group = _add_fault(self.groups, ev, self.devices.get(ev.bdf) if ev.bdf else None)

    def _close_burst(self) -> None:
        if self.cur is not None:
            if len(self.bursts) < MAX_BURSTS:
                self.bursts.append(self.cur)
            else:
                self.bursts_omitted += 1
            self.cur = None

    def _fill_from_log(self, info: DeviceInfo) -> None:
        bdf = info.bdf
        drv, grp = self.log_drivers.get(bdf), self.log_groups.get(bdf)
        own = sorted(r for r, owners in self.idmaps.items() if bdf in owners)
        if drv is None and grp is None and not own:
            return
        info.from_log = True
        info.driver = info.driver or drv
        info.iommu_group = info.iommu_group if info.iommu_group is not None else grp
        info.rmrrs = info.rmrrs or own

    def _driverless(self, faults: List[FaultGroup]) -> List[str]:
        """DMA-faulting devices that no driver had claimed in this log before their first
        fault: in a kdump kernel, DMA the crashed kernel's driver left running."""
        out = []
        for g in faults:
            if g.kind != "dma_fault" or not g.bdf or g.bdf in out:
                continue
            # The log is this kernel's: a driver line before the first fault means a driver
            # had the device by then (the model may describe another kernel: --system-root).
            first = self.log_driver_line.get(g.bdf)
            if first is None or first > g.first_line:
                out.append(g.bdf)
        return out

    def finish(self) -> LogReport:
        self._close_burst()
        unit_names = {u.details.get("reg_base_addr"): u.unit for u in self.units}
        for dev in self.devices.values():
            if not dev.known:
                self._fill_from_log(dev)
            if dev.unit is None and dev.drhd is not None and unit_names.get(dev.drhd):
                dev.unit = unit_names[dev.drhd]
        faults = sorted(self.groups.values(), key=lambda g: (-g.count, g.first_line))
        for g in faults:
            info = self.devices.get(g.bdf) if g.bdf else None
            if info is not None and info.from_log:
                for a in g.addresses:
                    for note in check_fault_address(info, a):
                        if note not in g.address_notes:
                            g.address_notes.append(note.replace(" RMRR ", " identity map (RMRR) ", 1))
            for a in g.addresses:
                for (lo, hi), owners in sorted(self.idmaps.items()):
                    if lo <= a <= hi and g.bdf not in owners:
                        note = (f"0x{a:x} is inside the identity map [0x{lo:x}-0x{hi:x}] (an RMRR) the kernel set up "
                                f"for {', '.join(owners)} but not for {g.bdf}: is the device missing from the RMRR's scope?")
                        if note not in g.address_notes:
                            g.address_notes.append(note)
            if info is not None and info.known:
                continue  # the model's own RMRR list for the device was checked already
            for a in g.addresses:
                for ln, lo, hi in self.log_rmrrs:
                    if lo <= a <= hi:
                        note = (f"0x{a:x} is inside RMRR [0x{lo:x}-0x{hi:x}] announced at line {ln} "
                                "(its device scope is not in the log)")
                        if note not in g.address_notes:
                            g.address_notes.append(note)
        counts = self.counts
        in_kdump = any(counts.get(k) for k in _KDUMP_KINDS)
        level, verdict = _verdict(counts, faults, self.markers, self.devices, in_kdump, self.suppressed_total,
                                  driverless=self._driverless(faults) if in_kdump else [])
        return LogReport(
            events=self.kept,
            events_omitted=self.omitted,
            counts=counts,
            faults=faults,
            bursts=self.bursts,
            bursts_omitted=self.bursts_omitted,
            markers=self.markers,
            units=self.units,
            devices=self.devices,
            verdict_level=level,
            verdict=verdict,
            in_kdump_kernel=in_kdump,
            suppressed_total=self.suppressed_total,
            warnings=([
                f"fault groups truncated: {self.faults_ungrouped:,} faults of more than {MAX_FAULT_GROUPS} "
                "(device, reason) pairs are counted but not grouped (MAX_FAULT_GROUPS)"]
                if self.faults_ungrouped else []) + self.warnings,
            faults_ungrouped=self.faults_ungrouped,
        )


def _chain(first: _T, rest: Iterator[_T]) -> Iterator[_T]:
    yield first
    yield from rest


def _touch(b: Burst, ev: LogEvent) -> None:
    """Extend a burst's first/last time with an event's."""
    if ev.timestamp is not None:
        if b.first_timestamp is None:
            b.first_timestamp = ev.timestamp
        b.last_timestamp = ev.timestamp
    if ev.wallclock is not None:
        if b.first_wallclock is None:
            b.first_wallclock = ev.wallclock
        b.last_wallclock = ev.wallclock
        b.last_wall_s = wallclock_seconds(ev.wallclock)


def _same_burst(b: Burst, ev: LogEvent) -> bool:
    if ev.timestamp is not None and b.last_timestamp is not None:
        return 0 <= ev.timestamp - b.last_timestamp <= BURST_GAP_S
    if ev.wallclock is not None and b.last_wall_s is not None:
        w = wallclock_seconds(ev.wallclock)
        if w is not None:
            # Wall clocks print whole seconds: allow one more.
            return 0 <= w - b.last_wall_s <= BURST_GAP_S + 1
    return ev.line - b.last_line <= BURST_GAP_LINES


def _add_fault(
    groups: Dict[Tuple[str, Optional[str], Optional[int]], FaultGroup],
    ev: LogEvent,
    info: Optional[DeviceInfo],
) -> FaultGroup:
    key = (ev.kind, ev.bdf, ev.reason_code)
    g = groups.get(key)
    if g is None:
        g = groups[key] = FaultGroup(
            ev.kind, ev.bdf, ev.reason_code, ev.reason_table or ev.reason,
            first_line=ev.line, first_timestamp=ev.timestamp,
        )
    g.count += 1
    g.last_line = ev.line
    if ev.timestamp is not None:
        if g.first_timestamp is None:
            g.first_timestamp = ev.timestamp
        g.last_timestamp = ev.timestamp
    if ev.access == "read":
        g.reads += 1
    elif ev.access == "write":
        g.writes += 1
    if ev.address is not None and ev.address not in g.addresses and len(g.addresses) < MAX_ADDRESSES:
        g.addresses.append(ev.address)
        if info is not None and info.known:
            for note in check_fault_address(info, ev.address):
                if note not in g.address_notes:
                    g.address_notes.append(note)
    if ev.fault_index is not None and ev.fault_index not in g.fault_indexes and len(g.fault_indexes) < MAX_ADDRESSES:
        g.fault_indexes.append(ev.fault_index)
    if ev.pasid is not None and ev.pasid not in g.pasids and len(g.pasids) < MAX_ADDRESSES:
        g.pasids.append(ev.pasid)
    return g


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _verdict(
    counts: Dict[str, int],
    faults: List[FaultGroup],
    markers: List[LogEvent],
    devices: Dict[str, DeviceInfo],
    in_kdump: bool,
    suppressed: int,
    driverless: Sequence[str] = (),
) -> Tuple[str, str]:
    parts: List[str] = []
    level = "ok"
    units = sorted({m.unit for m in markers if m.kind == "copy_failed" and m.unit})
    if counts.get("copy_failed"):
        why = (" (scalable mode is disallowed in this kernel; the crashed kernel probably ran in scalable"
               " mode, whose tables a legacy-mode kernel cannot copy)") if counts.get("sm_disallowed") else ""
        parts.append(
            f"the kdump kernel failed to copy the crashed kernel's translation tables for {', '.join(units) or 'a unit'}{why}"
        )
        level = "warning"
    if counts.get("ir_copy_failed"):
        ir_units = sorted({m.unit for m in markers if m.kind == "ir_copy_failed" and m.unit})
        parts.append(f"the kdump kernel failed to copy the interrupt-remapping table for {', '.join(ir_units) or 'a unit'}")
        level = "warning"
    if counts.get("amdvi_copy_failed") or counts.get("amdvi_copy_refused"):
        whys = sorted({str(m.details.get("why")) for m in markers
                       if m.kind == "amdvi_copy_refused" and m.details.get("why")})
        parts.append("the AMD-Vi kdump kernel failed to copy the crashed kernel's device table"
                     + (f" ({'; '.join(whys)})" if whys else "")
                     + ": it starts with an empty table, DMA still in flight from the crashed "
                     "kernel's devices faults (IO_PAGE_FAULT) or is blocked")
        level = "warning"
    if counts.get("translation_not_kdump") or counts.get("ir_not_kdump") or counts.get("amdvi_not_kdump"):
        parts.append("a previous kernel left remapping enabled and this is not a kdump kernel (kexec reboot)")
        level = "warning"
    if in_kdump and counts.get("iommu_disabled") and not counts.get("tables_copied"):
        # intel_iommu=off in kdump: intel_iommu_init() switches translation off on every
        # unit (intel_disable_iommus), so DMA still in flight from the crashed kernel's
        # devices reaches memory untranslated. Not "OK", even with no fault printed.
        remapped = [k for k in _FIRST_KERNEL_REMAPPED if counts.get(k)]
        if remapped:
            parts.append("DMA remapping is off in this kdump kernel (intel_iommu=off) although the crashed "
                         f"kernel used the remapping hardware ({', '.join(remapped)} in this log): translation "
                         "was switched off, DMA still in flight reaches physical memory untranslated, and no "
                         "fault is reported for it")
        else:
            parts.append("DMA remapping is off in this kdump kernel (intel_iommu=off); whether the crashed "
                         "kernel had it on is unknown from this log: if it did, DMA still in flight now reaches "
                         "physical memory untranslated, and no fault is reported for it")
        level = "warning"
    for kind, word in (("dma_fault", "DMA remapping fault"), ("ir_fault", "interrupt-remapping fault"),
                       ("amd_vi_fault", "AMD-Vi event")):
        n = counts.get(kind, 0)
        if not n:
            continue
        level = "fault"
        groups = [g for g in faults if g.kind == kind]
        devs = sorted({g.bdf for g in groups if g.bdf})
        top = groups[0]
        who = devices[top.bdf].label() if top.bdf in devices else (top.bdf or "?")
        reason = f"0x{top.reason_code:02x} {top.reason}" if top.reason_code is not None else "reason not printed"
        parts.append(f"{_plural(n, word)} from {_plural(len(devs), 'device')} (most: {who}, {reason})")
        if kind == "dma_fault" and driverless:
            parts.append(f"no driver had claimed {', '.join(driverless[:4])}{' ...' if len(driverless) > 4 else ''} "
                         "in this kernel before it faulted: DMA left running by the crashed kernel's driver")
    if suppressed:
        parts.append(f"{suppressed} more fault messages suppressed by rate limiting")
    if counts.get("hw_malfunction"):
        parts.append("the kernel reported \"DMAR hardware is malfunctioning\"")
        level = "fault"
    if counts.get("qi_error"):
        parts.append(f"{_plural(counts['qi_error'], 'invalidation queue error line')} (IQE/ITE/ICE)")
        if level == "ok":
            level = "warning"
    if counts.get("amdvi_cmd_timeout"):
        parts.append(f"{_plural(counts['amdvi_cmd_timeout'], 'AMD-Vi command-buffer time-out')} (the IOMMU "
                     "stopped completing commands: invalidations, device-table flushes)")
        if level == "ok":
            level = "warning"
    if counts.get("amdvi_event_overflow"):
        parts.append(f"the AMD-Vi event log overflowed {_plural(counts['amdvi_event_overflow'], 'time')}: "
                     "events were lost, the faults listed are not all there were")
        if level == "ok":
            level = "warning"
    if counts.get("amdvi_firmware"):
        parts.append(f"{_plural(counts['amdvi_firmware'], 'AMD-Vi firmware bug line')} about the IVRS table")
        if level == "ok":
            level = "warning"
    if counts.get("firmware_bug"):
        parts.append(f"{_plural(counts['firmware_bug'], 'firmware bug warning')} about the DMAR table")
        if level == "ok":
            level = "warning"
    if counts.get("aer"):
        parts.append(f"{_plural(counts['aer'], 'AER error line')}")
        if level == "ok":
            level = "warning"
    if not parts:
        if counts.get("amdvi_tables_copied"):
            parts.append("no AMD-Vi events; the kdump kernel copied the crashed kernel's device table")
        elif any(counts.get(k) for k in ("amdvi_found", "amdvi_features", "amdvi_ir_enabled", "amdvi_snp")):
            parts.append("no AMD-Vi events")
        elif counts.get("tables_copied"):
            parts.append("no DMAR faults; the kdump kernel copied the crashed kernel's translation tables")
        elif counts.get("iommu_disabled"):
            parts.append("no DMAR faults; the IOMMU is disabled in this kernel")
        elif counts.get("unit") or counts.get("iommu_enabled"):
            parts.append("no DMAR faults")
        else:
            parts.append("no VT-d (DMAR) lines in this log")
    panics = [m for m in markers if m.kind == "panic"]
    if panics:
        why = str(panics[-1].details.get("why") or "").strip()
        parts.append(f"this kernel panicked{': ' + why if why else ''} (line {panics[-1].line})")
    ctx = "kdump kernel: " if in_kdump else ""
    return level, f"{level.upper()}: {ctx}" + "; ".join(parts)
