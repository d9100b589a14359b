"""Named lab scenarios: what the live and the kdump kernel are told, what is dumped.

Built-in scenarios are listed in :data:`BUILTIN`. More can be dropped in as JSON files
(keys as the fields of :class:`Scenario`) under ``lab/scenarios.d/`` or under any
top-level folder's ``lab-scenarios/`` (``dracut/lab-scenarios/dracut_on.json``), so a
stream that does not own ``lab/`` can add a scenario, with its own kdump initrd builder,
without editing this file. See docs/lab.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .ingredients import LAB, REPO

#: Both kernels: no_timer_check, because on a loaded host TCG is so slow that the kernel's
#: IO-APIC timer check fails ("timer doesn't work through Interrupt-remapped IO-APIC",
#: a panic at 0.04 s, seen here under load 10); panic=10 so any other early panic ends
#: the run (QEMU has -no-reboot) instead of waiting for the timeout. A panic after
#: kexec -p still boots the capture kernel first (crash_kexec runs before the timeout).
GUEST_APPEND = "console=ttyS0 no_timer_check panic=10"
BASE_KDUMP_APPEND = f"{GUEST_APPEND} irqpoll nr_cpus=1 reset_devices iomem=relaxed"
LIVE_DRIVERS = ["e1000e", "nvme", "virtio_blk", "e1000"]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    #: QEMU's intel-iommu x-scalable-mode (the hardware offers scalable mode).
    scalable: bool = False
    #: Which IOMMU QEMU emulates: "intel" (intel-iommu, the DMAR table) or "amd"
    #: (amd-iommu, the IVRS table; live_iommu/kdump_iommu then mean amd_iommu=, where
    #: "on" is the default and writes nothing: amd_iommu=on is not an option of Linux).
    vendor: str = "intel"
    #: intel_iommu= for the live kernel and for the kdump kernel.
    live_iommu: str = "on"
    kdump_iommu: str = "on"
    #: Drivers modprobe'd in the kdump kernel after the first capture (none by default,
    #: as a real kdump initramfs has only what it needs).
    kdump_drivers: List[str] = field(default_factory=list)
    #: Dumps of /proc/vmcore written by the kdump kernel (see dump() in guest/lib.sh):
    #: elf (raw copy), elfd31 (makedumpfile -E -d 31), zlib, lzo, zstd, snappy (-d 31).
    #: Every built-in scenario keeps a raw copy: the tests read it with their own few
    #: lines of ELF code, an oracle for kdumptool's readers of the compressed dumps.
    dumps: List[str] = field(default_factory=lambda: ["zlib"])
    memory_mb: int = 512
    crashkernel: str = "192M"
    #: Executable (path relative to the repo) that writes the kdump kernel's initrd;
    #: None: the lab's own initramfs. Called as ``BUILDER OUTPUT`` (see docs/lab.md).
    kdump_initrd_builder: Optional[str] = None
    #: Extra words for the kdump kernel's command line.
    kdump_append_extra: str = ""
    #: Extra words for the live kernel's command line (``iommu=pt``).
    live_append_extra: str = ""
    #: Wall-clock limit for the whole QEMU run.
    timeout_s: int = 900
    #: Left out of the default selection (``lab/run`` without names, ``pytest -m lab``,
    #: so lab/ci-tier.sh) until it has passed here: run it by name (``lab/run NAME``,
    #: ``LAB_SCENARIOS=NAME`` or ``LAB_KERNELS=6.1=NAME``).
    opt_in: bool = False
    source: str = "builtin"

    def iommu_option(self, value: str) -> str:
        """The kernel option that turns this vendor's IOMMU on or off (with a trailing
        space), or nothing (AMD-Vi is on by default; Linux has no amd_iommu=on)."""
        if self.vendor == "amd":
            return "" if value == "on" else f"amd_iommu={value} "
        return f"intel_iommu={value} "

    def live_append(self) -> str:
        extra = f" {self.live_append_extra}" if self.live_append_extra else ""
        return (f"{GUEST_APPEND} {self.iommu_option(self.live_iommu)}crashkernel={self.crashkernel} "
                f"iomem=relaxed lab.mode=live lab.run={self.name}{extra}")

    def kdump_append(self) -> str:
        extra = f" {self.kdump_append_extra}" if self.kdump_append_extra else ""
        return (f"{BASE_KDUMP_APPEND} {self.iommu_option(self.kdump_iommu)}"
                f"lab.mode=kdump lab.run={self.name}{extra}")

    def to_json(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


BUILTIN = [
    Scenario("legacy_on", "legacy mode; kdump kernel intel_iommu=on (copies the old tables); "
             "dumps in every format makedumpfile has, plus one raw ELF copy",
             dumps=["zlib", "lzo", "zstd", "snappy", "elfd31", "elf"]),
    Scenario("legacy_off", "legacy mode; kdump kernel intel_iommu=off (translation left off, "
             "RTADDR still the old root table)", kdump_iommu="off", dumps=["zlib", "elf"]),
    Scenario("legacy_drv", "legacy mode; kdump kernel intel_iommu=on, then e1000e and nvme "
             "drivers loaded in the kdump kernel", kdump_drivers=["e1000e", "nvme"],
             dumps=["lzo", "elf"]),
    Scenario("sm_on", "scalable mode in both kernels (intel_iommu=on,sm_on)", scalable=True,
             live_iommu="on,sm_on", kdump_iommu="on,sm_on", dumps=["zlib", "elf"]),
    Scenario("sm_mismatch", "scalable-mode live kernel, kdump kernel intel_iommu=on,sm_off: "
             "table copy fails, the e1000e faults", scalable=True, live_iommu="on,sm_on",
             kdump_iommu="on,sm_off", dumps=["zlib", "elfd31", "elf"]),
    Scenario("passthrough", "legacy mode, intel_iommu=on iommu=pt in both kernels: "
             "identity (pass-through) context entries, no page tables to copy or to check",
             live_append_extra="iommu=pt", kdump_append_extra="iommu=pt", dumps=["zlib", "elf"]),
    Scenario("first_kernel_off", "intel_iommu=off in the live kernel, on in the kdump "
             "kernel: nothing to copy, translation starts fresh under in-flight DMA",
             live_iommu="off", dumps=["zlib", "elf"]),
    # legacy_on with the kdump kernel locked down (docs/lockdown.md): /dev/mem and
    # config-space writes refused, so quiesce clears Bus Master through sysfs enable.
    Scenario("lockdown_kdump", "legacy_on with the kdump kernel locked down "
             "(lockdown=integrity): no /dev/mem, no config-space writes; quiesce --apply "
             "goes through the kernel's sysfs enable", kdump_append_extra="lockdown=integrity",
             dumps=["zlib"]),
    Scenario("amd_on", "QEMU amd-iommu (AMD-Vi, IVRS), on in both kernels: the kdump "
             "kernel finds translation enabled and copies the old device table",
             vendor="amd", dumps=["zlib", "elf"]),
    # Observed (docs/amd.md): the kdump kernel never gets its /init's first line out and
    # writes nothing: the IOMMU it never touched keeps remapping interrupts through the
    # crashed kernel's tables. So a short timeout: the run ends without a dump.
    Scenario("amd_off", "QEMU amd-iommu, AMD-Vi on in the live kernel, amd_iommu=off on the "
             "kdump kernel: it never touches the IOMMU, which keeps translating through the "
             "crashed kernel's device table", vendor="amd", kdump_iommu="off",
             dumps=["zlib", "elf"], opt_in=True, timeout_s=420),
]


def run_key(name: str, series: str) -> str:
    """The name of one (scenario, kernel) run: ``sm_on`` on the default kernel,
    ``sm_on@5.10`` on another (also its folder under lab/out/)."""
    from .ingredients import DEFAULT_KERNEL

    return name if series == DEFAULT_KERNEL else f"{name}@{series}"


def split_key(key: str) -> Tuple[str, str]:
    """``sm_on@5.10`` -> (``sm_on``, ``5.10``); ``sm_on`` -> (``sm_on``, the default kernel)."""
    from .ingredients import DEFAULT_KERNEL

    name, _, series = key.partition("@")
    return name, series or DEFAULT_KERNEL


def _from_json(path: Path) -> Scenario:
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(Scenario)}
    unknown = set(data) - names
    if unknown:
        raise SystemExit(f"lab: {path}: unknown scenario keys {sorted(unknown)}")
    data["source"] = str(path.relative_to(REPO))
    return Scenario(**data)


def all_scenarios() -> Dict[str, Scenario]:
    out = {s.name: s for s in BUILTIN}
    files = sorted(LAB.glob("scenarios.d/*.json")) + sorted(REPO.glob("*/lab-scenarios/*.json"))
    for f in files:
        sc = _from_json(f)
        if sc.name in out:
            raise SystemExit(f"lab: {f}: scenario {sc.name} already defined ({out[sc.name].source})")
        out[sc.name] = sc
    return out
