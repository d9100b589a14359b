"""The system picture every command shares: PCI devices with their upstream bridges,
bus-master state, driver, IOMMU group, the DRHD unit that translates for them and the RMRRs
that name them; IOMMU groups; IOMMU units with their VT-d registers; kdump state.

Records of the model layer (:mod:`kdumptool.model`): built by
:func:`kdumptool.sources.system.read_system` from a live host or a snapshot (the same code
path) through :func:`build_system` here, which links decoded records (pure: no I/O), so
analysis never reads files. DRHD coverage follows the kernel's ``dmar_find_matched_drhd_unit()`` /
``device_to_iommu()`` (drivers/iommu/intel/dmar.c, iommu.c): a device belongs to the first
DRHD of its segment whose device scope names it, or names a bridge whose secondary to
subordinate bus range holds the device's bus; failing that, to the segment's
``INCLUDE_PCI_ALL`` unit. SR-IOV VFs and devices behind bridges inherit as in the kernel.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from kdumptool.formats.dmar import DeviceScope, Dmar, Drhd, Rmrr
from kdumptool.formats.frozen import dataclass, field  # records made without dataclasses: start-up
from kdumptool.formats.pciconfig import PORT_TYPES, PciConfig
from kdumptool.formats.pciresource import PciResource
from kdumptool.formats.vtd_regs import VtdRegisters

#: PCI class 0x0600: host bridge.
PCI_CLASS_BRIDGE_HOST = 0x0600
PCI_CLASS_BRIDGE_PCI = 0x0604


@dataclass(frozen=True)
class ReservedRegion:
    """A line of ``/sys/kernel/iommu_groups/N/reserved_regions``."""

    start: int
    end: int  # inclusive, as the kernel prints it
    type: str  # direct, direct-relaxable, reserved, msi


@dataclass(frozen=True)
class IommuGroup:
    number: int
    type: Optional[str]  # DMA, DMA-FQ, identity, blocked, unmanaged (sysfs ``type``)
    devices: Tuple[str, ...]
    reserved_regions: Tuple[ReservedRegion, ...] = ()


@dataclass(frozen=True)
class IommuUnit:
    """One VT-d remapping unit (a DRHD), from sysfs, the DMAR table and /dev/mem."""

    name: str  # dmar0 (sysfs) or drhd@0xfed90000 when only the table knows it
    address: int  # register base address
    segment: int = 0
    include_pci_all: Optional[bool] = None
    version: Optional[str] = None  # sysfs ``version`` (1:0)
    cap: Optional[int] = None  # sysfs or register CAP
    ecap: Optional[int] = None
    registers: Optional[VtdRegisters] = None
    read_error: Optional[str] = None  # why the registers could not be read
    devices: Tuple[str, ...] = ()  # bdfs this unit covers (computed from the DMAR table)
    sysfs_devices: Tuple[str, ...] = ()  # bdfs under sysfs class/iommu/<name>/devices


@dataclass(frozen=True)
class PciDevice:
    bdf: str  # SSSS:BB:DD.F
    vendor_id: int
    device_id: int
    class_code: int  # 24 bits
    revision: int
    header_type: int  # layout (0 normal, 1 bridge, 2 cardbus), without the multi-function bit
    command: int
    status: int
    bus_master: bool
    is_bridge: bool
    is_host_bridge: bool
    secondary_bus: Optional[int]
    subordinate_bus: Optional[int]
    port_type: Optional[str]  # lspci's words (Root Port, Endpoint...), None for plain PCI
    port_type_id: Optional[int]
    driver: Optional[str]
    iommu_group: Optional[int]
    upstream: Tuple[str, ...]  # bridge bdfs, nearest first
    drhd: Optional[int]  # register base address of the covering unit
    rmrrs: Tuple[int, ...]  # base addresses of the RMRRs whose scope names this device
    kdump_risk: bool  # bus mastering with no driver bound
    config: Optional[PciConfig] = None
    config_size: int = 0
    physfn: Optional[str] = None  # an SR-IOV VF's PF
    warnings: Tuple[str, ...] = ()
    driver_known: bool = True  # False: driver state unknown (shown as such, raises no risk)
    #: sysfs ``resource``: the kernel's BARs (0-5), ROM (6)... with their sizes; () when not read
    resources: Tuple[PciResource, ...] = ()

    def io_port_sizes(self) -> Dict[int, int]:
        """First port -> ports of each I/O BAR, from sysfs ``resource`` (lspci's ``[size=...]``
        of ``I/O ports at``); empty when that file was not read."""
        return {r.start: r.size for r in self.resources[:6] if r.io and r.size}

    @property
    def segment(self) -> int:
        return int(self.bdf[0:4], 16)

    @property
    def bus(self) -> int:
        return int(self.bdf[5:7], 16)

    @property
    def devfn(self) -> Tuple[int, int]:
        return int(self.bdf[8:10], 16), int(self.bdf[11])

    @property
    def short_bdf(self) -> str:
        return self.bdf[5:] if self.bdf.startswith("0000:") else self.bdf


@dataclass(frozen=True)
class IomemRange:
    start: int
    end: int  # inclusive
    name: str
    depth: int


@dataclass(frozen=True)
class System:
    source: str  # "live" or the snapshot path
    devices: Mapping[str, PciDevice]
    groups: Mapping[int, IommuGroup]
    units: Tuple[IommuUnit, ...]
    dmar: Optional[Dmar]
    cmdline: Optional[str]
    in_kdump_kernel: bool
    kexec_crash_loaded: Optional[bool]
    kexec_crash_size: Optional[int]
    iomem: Tuple[IomemRange, ...]
    kdump_config: Mapping[str, str] = field(default_factory=dict)  # path -> text
    warnings: Tuple[str, ...] = ()
    dmar_present: bool = False  # the ACPI DMAR table exists (decoded or not)
    kind: str = "sysfs"  # "sysfs" (live host or snapshot) or "lspci" (a text dump: PCI only)
    ivrs_present: bool = False  # an ACPI IVRS table: an AMD-Vi machine (kdumptool ivrs)
    #: the active kernel lockdown mode from /sys/kernel/security/lockdown (``none``,
    #: ``integrity``, ``confidentiality``), None when that file was absent or unreadable
    lockdown: Optional[str] = None

    @property
    def has_vtd(self) -> bool:
        return bool(self.units)

    def resource_sizes(self, bdf: str) -> Dict[int, int]:
        """Start address -> size of the memory ranges /proc/iomem names after the device
        (its memory BARs and expansion ROM, as the kernel assigned them: where lspci's
        ``[size=...]`` comes from, through sysfs ``resource``). Empty when /proc/iomem was
        not read or hides addresses (an unprivileged reader sees zeros)."""
        if not self.iomem or all(r.start == 0 and r.end == 0 for r in self.iomem):
            return {}
        return {r.start: r.end - r.start + 1 for r in self.iomem if r.name == bdf and r.end >= r.start}

    def domain_type(self, bdf: str) -> Optional[str]:
        """The IOMMU group's default domain type of ``bdf`` (DMA, DMA-FQ, identity...)."""
        dev = self.devices.get(bdf)
        if dev is None or dev.iommu_group is None:
            return None
        g = self.groups.get(dev.iommu_group)
        return g.type if g else None

    def unit_for(self, bdf: str) -> Optional[IommuUnit]:
        dev = self.devices.get(bdf)
        if dev is None or dev.drhd is None:
            return None
        return next((u for u in self.units if u.address == dev.drhd), None)

    def children(self, bdf: Optional[str]) -> List[PciDevice]:
        """Devices whose nearest upstream bridge is ``bdf`` (None: the root buses)."""
        out = []
        for d in self.devices.values():
            parent = d.upstream[0] if d.upstream else None
            if parent == bdf:
                out.append(d)
        return sorted(out, key=lambda d: d.bdf)


@dataclass(frozen=True)
class RawDevice:
    """What a source knows about one device before the model links them."""

    bdf: str
    config: Optional[PciConfig]
    config_size: int
    vendor_id: Optional[int] = None  # sysfs attributes, used when config is unreadable
    device_id: Optional[int] = None
    class_code: Optional[int] = None
    driver: Optional[str] = None
    iommu_group: Optional[int] = None
    parent: Optional[str] = None  # the sysfs parent device when it is a PCI device
    physfn: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    driver_known: bool = True  # False: the source cannot tell (an lspci -x dump without -k text)
    resources: Tuple[PciResource, ...] = ()  # sysfs ``resource``


def _bus_of(bdf: str) -> Tuple[int, int]:
    return int(bdf[0:4], 16), int(bdf[5:7], 16)


def find_upstream(raw: Mapping[str, RawDevice]) -> Dict[str, Tuple[str, ...]]:
    """Each device's bridge chain, nearest first. The sysfs parent is used when known;
    otherwise the bridge whose secondary bus is the device's bus (as lspci -t does)."""
    by_secondary: Dict[Tuple[int, int], str] = {}
    for r in raw.values():
        if r.config is not None and r.config.is_bridge and r.config.secondary_bus:
            by_secondary.setdefault((int(r.bdf[0:4], 16), r.config.secondary_bus), r.bdf)
    out: Dict[str, Tuple[str, ...]] = {}
    for bdf, r in raw.items():
        chain: List[str] = []
        cur = r
        seen = {bdf}
        while True:
            parent = cur.parent if cur.parent in raw else by_secondary.get(_bus_of(cur.bdf))
            if parent is None or parent in seen:
                break
            chain.append(parent)
            seen.add(parent)
            cur = raw[parent]
        out[bdf] = tuple(chain)
    return out


def _resolve_scope(
    scope: DeviceScope, segment: int, raw: Mapping[str, RawDevice]
) -> Tuple[Optional[str], Optional[Tuple[int, int]]]:
    """A DMAR device scope -> (bdf, (secondary, subordinate) when it is a bridge).

    Follows the path as the kernel's dmar_find_pci_dev / dmar_pci_device_scope does: each
    (device, function) hop but the last must be a bridge, whose secondary bus is the next
    hop's bus.
    """
    bus = scope.start_bus
    path = tuple(scope.path)
    if not path:
        return None, None
    bdf = None
    for i, (dev, fn) in enumerate(path):
        bdf = f"{segment:04x}:{bus:02x}:{dev:02x}.{fn}"
        r = raw.get(bdf)
        if r is None:
            return None, None
        if i < len(path) - 1:
            if r.config is None or not r.config.is_bridge or r.config.secondary_bus is None:
                return None, None
            bus = r.config.secondary_bus
    assert bdf is not None
    r = raw[bdf]
    rng = None
    if r.config is not None and r.config.is_bridge and r.config.secondary_bus is not None:
        rng = (r.config.secondary_bus, r.config.subordinate_bus or r.config.secondary_bus)
    return bdf, rng


def _pci_scopes(scopes: Sequence[DeviceScope]) -> List[DeviceScope]:
    return [s for s in scopes if s.type in ("PCI_ENDPOINT", "PCI_BRIDGE")]


def _scope_matches(
    bdf: str, upstream: Tuple[str, ...], scopes: Sequence[DeviceScope], segment: int, raw: Mapping[str, RawDevice]
) -> bool:
    seg, bus = _bus_of(bdf)
    if seg != segment:
        return False
    for scope in _pci_scopes(scopes):
        target, rng = _resolve_scope(scope, segment, raw)
        if target is None:
            continue
        if target == bdf or target in upstream:
            return True
        if rng is not None and scope.type == "PCI_BRIDGE" and rng[0] <= bus <= rng[1]:
            return True
    return False


def find_drhd(
    bdf: str, upstream: Tuple[str, ...], dmar: Optional[Dmar], raw: Mapping[str, RawDevice]
) -> Optional[int]:
    """Register base address of the DRHD translating for ``bdf`` (None: no unit)."""
    if dmar is None:
        return None
    seg, _ = _bus_of(bdf)
    drhds = [s for s in dmar.structures if isinstance(s, Drhd)]
    for d in drhds:
        if not d.include_pci_all and _scope_matches(bdf, upstream, d.device_scopes, d.segment, raw):
            return int(d.register_base_address)
    for d in drhds:
        if d.include_pci_all and d.segment == seg:
            return int(d.register_base_address)
    return None


def find_rmrrs(bdf: str, upstream: Tuple[str, ...], dmar: Optional[Dmar], raw: Mapping[str, RawDevice]) -> Tuple[int, ...]:
    if dmar is None:
        return ()
    out = []
    for s in dmar.structures:
        if not isinstance(s, Rmrr):
            continue
        if _scope_matches(bdf, upstream, s.device_scopes, s.segment, raw):
            out.append(int(s.base_address))
    return tuple(out)


def build_system(
    *,
    source: str,
    raw_devices: Mapping[str, RawDevice],
    groups: Mapping[int, IommuGroup],
    units: Sequence[IommuUnit],
    dmar: Optional[Dmar],
    cmdline: Optional[str],
    in_kdump_kernel: bool,
    kexec_crash_loaded: Optional[bool],
    kexec_crash_size: Optional[int],
    iomem: Sequence[IomemRange],
    kdump_config: Optional[Mapping[str, str]] = None,
    warnings: Sequence[str] = (),
    dmar_present: Optional[bool] = None,
    kind: str = "sysfs",
    ivrs_present: bool = False,
    lockdown: Optional[str] = None,
) -> System:
    """Link decoded records into a :class:`System` (pure: no I/O)."""
    upstream = find_upstream(raw_devices)
    group_of: Dict[str, int] = {}
    for g in groups.values():
        for b in g.devices:
            group_of[b] = g.number
    sysfs_unit: Dict[str, int] = {}
    for u in units:
        for b in u.sysfs_devices:
            sysfs_unit.setdefault(b, u.address)
    warnings = list(warnings)
    devices: Dict[str, PciDevice] = {}
    for bdf in sorted(raw_devices):
        r = raw_devices[bdf]
        c = r.config
        ups = upstream[bdf]
        ptid = c.port_type if c is not None else None
        drhd = find_drhd(r.physfn or bdf, upstream.get(r.physfn or bdf, ups), dmar, raw_devices)
        if dmar is None:
            drhd = sysfs_unit.get(bdf)  # the kernel's own answer when the table is unknown
        elif bdf in sysfs_unit and sysfs_unit[bdf] != drhd:
            warnings.append(
                f"{bdf}: the DMAR table gives unit {drhd if drhd is None else hex(drhd)}, "
                f"sysfs puts it under {sysfs_unit[bdf]:#x}"
            )
        command = c.command if c is not None else 0
        bus_master = bool(c is not None and c.bus_master)
        dev_warnings = list(r.warnings)
        if c is not None and c.vendor_id == 0xFFFF:
            # All ones: the device does not answer config reads (surprise-removed, in a
            # reset, or behind a link that is down). Its command bits mean nothing.
            bus_master = False
            dev_warnings.append(f"{bdf}: config space reads all ones (device not responding)")
        class_code = c.class_code if c is not None else (r.class_code or 0)
        is_bridge = bool(c.is_bridge) if c is not None else (class_code >> 8) == PCI_CLASS_BRIDGE_PCI
        devices[bdf] = PciDevice(
            bdf=bdf,
            vendor_id=c.vendor_id if c is not None else (r.vendor_id or 0),
            device_id=c.device_id if c is not None else (r.device_id or 0),
            class_code=class_code,
            revision=c.revision if c is not None else 0,
            header_type=c.layout if c is not None else 0,
            command=command,
            status=c.status if c is not None else 0,
            bus_master=bus_master,
            is_bridge=is_bridge,
            is_host_bridge=(class_code >> 8) == PCI_CLASS_BRIDGE_HOST,
            secondary_bus=c.secondary_bus if c is not None else None,
            subordinate_bus=c.subordinate_bus if c is not None else None,
            port_type=PORT_TYPES.get(ptid, ("", f"Unknown type {ptid}"))[1] if ptid is not None else None,
            port_type_id=ptid,
            driver=r.driver,
            iommu_group=r.iommu_group if r.iommu_group is not None else group_of.get(bdf),
            upstream=ups,
            drhd=drhd,
            rmrrs=find_rmrrs(bdf, ups, dmar, raw_devices),
            # A bridge forwards its children's DMA but does not initiate it on its own;
            # with no driver bound, a bus-mastering endpoint keeps DMA going into kdump.
            # Unknown driver state (an lspci dump without -k/-v text) is not "no driver".
            kdump_risk=bus_master and r.driver_known and not r.driver and not is_bridge,
            config=c,
            config_size=r.config_size,
            physfn=r.physfn,
            warnings=tuple(dev_warnings),
            driver_known=r.driver_known,
            resources=r.resources,
        )
    linked_units = []
    for u in units:
        covered = tuple(b for b, d in devices.items() if d.drhd == u.address)
        linked_units.append(
            IommuUnit(
                name=u.name,
                address=u.address,
                segment=u.segment,
                include_pci_all=u.include_pci_all,
                version=u.version,
                cap=u.cap,
                ecap=u.ecap,
                registers=u.registers,
                read_error=u.read_error,
                devices=covered,
                sysfs_devices=u.sysfs_devices,
            )
        )
    return System(
        source=source,
        devices=devices,
        groups=dict(sorted(groups.items())),
        units=tuple(linked_units),
        dmar=dmar,
        cmdline=cmdline,
        in_kdump_kernel=in_kdump_kernel,
        kexec_crash_loaded=kexec_crash_loaded,
        kexec_crash_size=kexec_crash_size,
        iomem=tuple(iomem),
        kdump_config=dict(kdump_config or {}),
        warnings=tuple(warnings),
        dmar_present=dmar is not None if dmar_present is None else dmar_present,
        kind=kind,
        ivrs_present=ivrs_present,
        lockdown=lockdown,
    )
