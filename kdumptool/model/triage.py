"""What triage is given: the records sources read (system model, kernel log markers, kdump
configuration and initramfs, capacity figures, what a crashed kernel left behind) and the
crashed kernel's VT-d tables as analysis decodes them. Pure records: no I/O here."""

from __future__ import annotations

from typing import FrozenSet, Iterator, Mapping, Optional, Protocol, Tuple

from kdumptool.formats.frozen import dataclass, field  # records made without dataclasses: start-up
from kdumptool.formats.kdumpconf import KdumpSettings
from kdumptool.model.evidence import Evidence
from kdumptool.model.kernel import KernelDefaults
from kdumptool.model.log import LogMarkers
from kdumptool.model.system import System


class DumpMemory(Protocol):
    """The physical memory of a crashed kernel (an open vmcore, :mod:`kdumptool.sources.vmcore`)."""

    def read(self, paddr: int, size: int) -> bytes: ...

    def iter_dumped_ranges(self) -> Iterator[Tuple[int, int]]: ...


@dataclass(frozen=True)
class KdumpInitrd:
    """The kdump initramfs and the kernel modules it carries."""

    path: str  # path on the mirrored system
    release: str
    modules: Tuple[str, ...]
    method: str  # lsinitrd | lsinitramfs | cpio
    warnings: Tuple[str, ...] = ()
    #: kdumptool's dracut module is in the image (usr/bin/kdumptool and its kdump hooks)
    has_kdumptool: bool = False


@dataclass(frozen=True)
class KdumptoolIntegration:
    """kdumptool's own kdump integration on a system (what ``install-integration`` wrote),
    read from the files: paths are relative to the root read."""

    #: kdump-utils | kdump-tools | suse-kdump | dracut, or None: no kdump stack found
    stack: Optional[str]
    stack_files: Tuple[str, ...] = ()  # the files that show the stack
    installed: Tuple[str, ...] = ()  # kdumptool's files for that stack that are there
    missing: Tuple[str, ...] = ()  # ... and those that are not
    #: the kdumptool command kdumptool-boot-record.service runs, and whether it is an
    #: executable file on the root (None: no unit, cannot tell)
    command: Optional[str] = None
    command_ok: Optional[bool] = None
    #: dracut stacks: the kdump initramfs compared, the inputs changed after it was built,
    #: and the command that rebuilds it
    initrd_path: Optional[str] = None
    newer_than_initrd: Tuple[str, ...] = ()
    rebuild: Optional[str] = None


@dataclass(frozen=True)
class Capacity:
    mem_total: Optional[int] = None  # bytes of RAM (psutil / meminfo)
    mem_used: Optional[int] = None  # bytes in use (what dump level 31 roughly keeps)
    crash_size: Optional[int] = None  # /sys/kernel/kexec_crash_size
    crash_loaded: Optional[bool] = None  # /sys/kernel/kexec_crash_loaded
    target_path: Optional[str] = None
    target_free: Optional[int] = None  # bytes free at the dump target
    target_error: Optional[str] = None


@dataclass(frozen=True)
class TableDevice:
    """One requester ID in the crashed kernel's VT-d tables (decoded from the vmcore)."""

    bdf: str
    present: bool
    translation_type: str
    domain_id: Optional[int]
    mapped_4k: int
    mapped_large: int
    #: identity (pass-through) translation: it reaches all of memory
    passthrough: bool = False
    #: the physical ranges its page tables map, merged: (start, end, rights: 1 read, 2 write)
    extents: Tuple[Tuple[int, int, int], ...] = ()
    #: tables it has that were not decoded (AMD-Vi GV: the GCR3 guest tables): its reach
    #: through them is unknown, the counts above leave them out
    not_walked: bool = False


@dataclass(frozen=True)
class FaultLookup:
    """A faulting IOVA of the kdump kernel's log, translated with the crashed kernel's tables."""

    bdf: str
    iova: int
    phys: Optional[int]
    read: bool
    write: bool
    reason: Optional[str]

    def text(self) -> str:
        if self.phys is None:
            return f"IOVA 0x{self.iova:x} of {self.bdf[5:]} is not mapped in the crashed kernel's tables ({self.reason})"
        rw = ("R" if self.read else "") + ("W" if self.write else "")
        return (f"IOVA 0x{self.iova:x} of {self.bdf[5:]} maps to phys 0x{self.phys:x} ({rw}) in the crashed kernel's "
                f"tables: DMA the device set up before the crash")


@dataclass(frozen=True)
class CrashedTables:
    root_address: int
    mode: str  # legacy | scalable
    found_by: str  # how the root table address was obtained
    devices: Tuple[TableDevice, ...]
    problems: Tuple[str, ...] = ()
    fault_lookups: Tuple[FaultLookup, ...] = ()
    #: table pages that could not be read or decompressed ("what at 0x..: why"): the
    #: devices and mappings above are then a partial result
    unreadable: Tuple[str, ...] = ()

    def device(self, bdf: str) -> Optional[TableDevice]:
        return next((d for d in self.devices if d.bdf == bdf), None)


@dataclass(frozen=True)
class RecordedRtaddr:
    """RTADDR values a ``kdumptool record`` file kept (unit name -> register value)."""

    values: Mapping[str, int]
    where: str  # the record file (and boot record) they came from


@dataclass(frozen=True)
class CrashedKernel:
    """Offline triage: what the crashed kernel's own records say (its log out of the
    vmcore or a saved snapshot, the VT-d tables decoded from the vmcore).

    Sources fill in the raw records (``memory``: the open vmcore, ``first_system``: a
    saved first-kernel snapshot, ``recorded``: RTADDR kept by ``kdumptool record``);
    analysis (:mod:`kdumptool.analysis.crashed`) decodes ``tables`` from them."""

    source: str
    log: Optional[LogMarkers] = None
    cmdline: Optional[str] = None
    drivers: Mapping[str, str] = field(default_factory=dict)  # bdf -> driver in the first kernel
    tables: Optional[CrashedTables] = None
    vmcore: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    #: those of ``warnings`` that say evidence that was there could not be read (the vmcore,
    #: its log, a table page): triage makes them warnings, the rest notes
    unread: Tuple[str, ...] = ()
    #: those of ``warnings`` that do not matter when the crashed kernel had translation off
    #: (its root table was not sought)
    moot_if_off: Tuple[str, ...] = ()
    memory: Optional[DumpMemory] = field(default=None, compare=False, repr=False)
    first_system: Optional[System] = field(default=None, compare=False, repr=False)
    recorded: Optional[RecordedRtaddr] = None
    release: Optional[str] = None  # VMCOREINFO OSRELEASE
    banner: Optional[str] = None  # its "Linux version ..." log line
    #: Scan the whole dump for the root table when no register names it (off inside the
    #: kdump kernel, where /proc/vmcore is read implicitly and memory may be large).
    scan_tables: bool = True


@dataclass(frozen=True)
class AmdViRegisterReading:
    """One AMD-Vi IOMMU's MMIO registers as read for triage (live /dev/mem or a snapshot's
    amdvi_registers.json): raw values by the kernel's register names, or why not."""

    name: str  # ivhd0, ...
    address: int  # MMIO base (the IVHD's)
    where: str  # "/dev/mem" or the snapshot file
    values: Optional[Mapping[str, int]] = None
    read_error: Optional[str] = None


@dataclass(frozen=True)
class TriageInput:
    system: System
    log: LogMarkers
    kdump_settings: Optional[KdumpSettings] = None
    kdump_initrd: Optional[KdumpInitrd] = None
    initrd_error: Optional[str] = None
    defaults: KernelDefaults = KernelDefaults()
    capacity: Capacity = Capacity()
    device_modules: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    builtin_modules: Optional[FrozenSet[str]] = None
    crashed: Optional[CrashedKernel] = None
    quiesce_conf: Optional[Evidence] = None  # quiesce=1 in /etc/kdumptool/kdumptool.conf
    integration: Optional[KdumptoolIntegration] = None  # install-integration's files
    amd_iommu: Optional[Evidence] = None  # an ACPI IVRS table: AMD-Vi, not VT-d
    amdvi_registers: Tuple[AmdViRegisterReading, ...] = ()  # each IOMMU's registers (AMD-Vi)
    early_log: Optional[LogMarkers] = None
    release: Optional[str] = None  # this system's kernel release (osrelease / uname.txt / collect.json)
    banner: Optional[str] = None  # /proc/version, else the log's "Linux version" line

