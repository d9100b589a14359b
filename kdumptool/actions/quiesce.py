"""Quiesce driverless bus masters: plan (pure), then apply through :mod:`pciwrite`.

Why: in the kdump kernel most devices have no driver, yet they kept the Bus Master
Enable bit the crashed kernel set, and some keep DMAing into memory the crashed kernel
gave them (a NIC's receive ring, an NVMe completion queue). When the kdump kernel later
reboots, or shuts bridges down, such in-flight DMA faults under VT-d or corrupts memory.
Clearing ``PCI_COMMAND_MASTER`` stops a function from issuing new memory requests
(PCI Local Bus Specification 3.0, 6.2.2; for a bridge it also stops forwarding requests
from its secondary side, PCI-to-PCI Bridge Architecture Specification 1.2, 3.2.2.1).

Rules (each skip carries its reason):

- ``absent``: Vendor ID 0xffff;
- ``host bridge``: never touched (class 06/00: it is the CPU's side of the fabric);
- ``dump target``: the disk or NIC that kdump writes the vmcore to, and every bridge above
  it, unless the dump is finished;
- ``driver bound``: a driver owns the device and its DMA;
- ``keeps a path``: a bridge above a device that stays mastering (driver bound, dump
  target, or skipped for another reason) must keep forwarding its requests;
- ``not mastering``: Bus Master Enable already clear;
- ``config unreadable``: the snapshot or sysfs gave no config space, so COMMAND is unknown.

Order: deepest first (by the number of bridges above), so every device is stopped before
the bridge above it; ties by BDF, so the plan is stable.

Method: ``config`` (write COMMAND through sysfs config) unless the kernel is locked down or
``sysfs-enable`` is asked for; then the kernel's own ``enable`` attribute (``1`` then ``0``),
whose side effects the plan lists (:data:`~kdumptool.actions.pciwrite.SYSFS_ENABLE_SIDE_EFFECTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from kdumptool.actions.pciwrite import (
    ABSENT_ID,
    METHOD_CONFIG,
    METHOD_SYSFS_ENABLE,
    METHODS,
    PCI_COMMAND_MASTER,
    SYSFS_ENABLE_SIDE_EFFECTS,
    ChangeLog,
    DeviceIdentity,
    WriteResult,
    clear_bus_master_by,
)
from kdumptool.errors import ActionRefused, KdumptoolError, SourceMissing
from kdumptool.model.record import JsonObj
from kdumptool.model.system import PciDevice, System
from kdumptool.sources.root import Root

SKIP_ABSENT = "absent"
SKIP_HOST_BRIDGE = "host bridge"
SKIP_DUMP_TARGET = "dump target"
SKIP_DRIVER = "driver bound"
SKIP_KEEPS_PATH = "keeps a path"
SKIP_NOT_MASTERING = "not mastering"
SKIP_UNREADABLE = "config unreadable"

#: Bridge nesting beyond this is treated as a loop in the upstream data.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Step:
    """One device whose Bus Master Enable will be cleared."""

    bdf: str
    command: int
    new_command: int
    depth: int
    identity: DeviceIdentity
    reason: str

    def as_json(self) -> JsonObj:
        return {
            "bdf": self.bdf,
            "command": self.command,
            "new_command": self.new_command,
            "depth": self.depth,
            "vendor_id": self.identity.vendor_id,
            "device_id": self.identity.device_id,
            "header_type": self.identity.header_type,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Skip:
    bdf: str
    reason: str  # one of the SKIP_* codes
    detail: str

    def as_json(self) -> JsonObj:
        return {"bdf": self.bdf, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Plan:
    steps: Tuple[Step, ...]
    skips: Tuple[Skip, ...]
    dump_targets: Tuple[str, ...]
    dump_finished: bool
    warnings: Tuple[str, ...] = ()
    method: str = METHOD_CONFIG
    method_reason: str = "default"

    @property
    def side_effects(self) -> Tuple[str, ...]:
        """What the method does besides clearing Bus Master (none for ``config``)."""
        return SYSFS_ENABLE_SIDE_EFFECTS if self.method == METHOD_SYSFS_ENABLE else ()

    def as_json(self) -> JsonObj:
        return {
            "dump_targets": list(self.dump_targets),
            "dump_finished": self.dump_finished,
            "method": self.method,
            "method_reason": self.method_reason,
            "side_effects": list(self.side_effects),
            "steps": [s.as_json() for s in self.steps],
            "skips": [s.as_json() for s in self.skips],
            "warnings": list(self.warnings),
        }


@dataclass
class ApplyReport:
    applied: bool
    results: List[WriteResult] = field(default_factory=list)
    refused: List[Tuple[str, str]] = field(default_factory=list)  # (bdf, message)

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_json(self) -> JsonObj:
        return {
            "applied": self.applied,
            "results": [r.as_json() for r in self.results],
            "refused": [{"bdf": b, "error": m} for b, m in self.refused],
        }


def _identity(dev: PciDevice) -> DeviceIdentity:
    return DeviceIdentity(vendor_id=dev.vendor_id, device_id=dev.device_id, header_type=dev.header_type & 0x7F)


def plan_quiesce(
    system: System,
    dump_target_bdfs: Iterable[str] = (),
    dump_finished: bool = False,
    method: str = METHOD_CONFIG,
    method_reason: str = "default",
) -> Plan:
    """Which devices to stop, in which order, and why every other device is left alone.

    Only ``system.devices`` is used;
    ``dump_target_bdfs`` are the devices carrying the dump target (bridges above them are
    protected as well); ``method``/``method_reason`` come from
    :func:`kdumptool.actions.pciwrite.choose_method`. Pure: reads nothing, writes nothing.
    """
    if method not in METHODS:
        raise ActionRefused(f"unknown quiesce method {method!r}")
    devices = system.devices
    targets = tuple(sorted(set(dump_target_bdfs)))
    warnings: List[str] = []
    for t in targets:
        if t not in devices:
            warnings.append(f"dump target {t} is not among the PCI devices")

    # Devices that stay able to master; bridges above them must keep forwarding.
    first_pass: Dict[str, Tuple[str, str]] = {}  # bdf -> (skip code, detail)
    candidates: List[str] = []
    for bdf in sorted(devices):
        dev = devices[bdf]
        if dev.vendor_id == ABSENT_ID or dev.command == ABSENT_ID:
            first_pass[bdf] = (SKIP_ABSENT, "Vendor ID or COMMAND reads 0xffff")
        elif dev.config is None:
            first_pass[bdf] = (SKIP_UNREADABLE, "COMMAND not known; nothing is written blind")
        elif dev.is_host_bridge:
            first_pass[bdf] = (SKIP_HOST_BRIDGE, "never touched")
        elif bdf in targets and not dump_finished:
            first_pass[bdf] = (SKIP_DUMP_TARGET, "kdump writes the vmcore through it")
        elif dev.driver:
            first_pass[bdf] = (SKIP_DRIVER, f"driver {dev.driver}")
        else:
            candidates.append(bdf)

    # Bridges that must keep a path open: above a device with a driver (which may master
    # at any time) or, before the dump is finished, above a dump target.
    # Whatever the device's own skip reason: an absent-looking (0xffff) or unreadable
    # device with a driver bound may be in reset or a low-power state, not gone.
    protected: Dict[str, str] = {}
    for bdf in sorted(devices):
        if devices[bdf].driver or (bdf in targets and not dump_finished):
            for up in devices[bdf].upstream[:MAX_DEPTH]:
                protected.setdefault(up, bdf)

    steps: List[Step] = []
    skips: List[Skip] = []
    for bdf in sorted(devices):
        dev = devices[bdf]
        if bdf in first_pass:
            code, detail = first_pass[bdf]
            skips.append(Skip(bdf, code, detail))
            continue
        if bdf in protected:
            below = protected[bdf]
            why = "dump target" if below in targets and not dump_finished else "driver bound"
            skips.append(Skip(bdf, SKIP_KEEPS_PATH, f"bridge above {below} ({why})"))
            continue
        if not dev.bus_master:
            skips.append(Skip(bdf, SKIP_NOT_MASTERING, "Bus Master Enable already clear"))
            continue
        ups = dev.upstream
        if len(ups) > MAX_DEPTH:
            warnings.append(f"{bdf}: more than {MAX_DEPTH} bridges above it; upstream data looped?")
        depth = min(len(ups), MAX_DEPTH)
        what = "bridge" if dev.is_bridge else "device"
        reason = f"driverless {what} with Bus Master Enable set"
        if bdf in targets:
            reason += " (dump target, dump finished)"
        steps.append(Step(bdf, dev.command, dev.command & ~PCI_COMMAND_MASTER, depth, _identity(dev), reason))

    steps.sort(key=lambda s: (-s.depth, s.bdf))
    if method == METHOD_SYSFS_ENABLE:
        # pci_enable_device -> pci_enable_bridge sets Bus Master on every bridge above: name
        # each one whose bit is clear now (and that no step clears again).
        stepped = {s.bdf for s in steps}
        named = set()
        for st in steps:
            for up in devices[st.bdf].upstream[:MAX_DEPTH]:
                above = devices.get(up)
                if above is None or up in stepped or up in named or above.bus_master:
                    continue
                named.add(up)
                warnings.append(f"{up}: Bus Master Enable is clear and pci_enable_bridge will set it "
                                f"(enabling {st.bdf} below it); it stays set")
    return Plan(tuple(steps), tuple(skips), targets, dump_finished, tuple(warnings), method, method_reason)


def apply_quiesce(
    plan: Plan,
    root: Root,
    apply: bool = False,
    log: Optional[ChangeLog] = None,
) -> ApplyReport:
    """Carry out ``plan`` in order (dry run unless ``apply``).

    A device refused by the safety rules (absent now, another device at that address,
    COMMAND changed since the plan, read-back mismatch) is reported and the next device is
    still handled: stopping the others is worth more than stopping at the first surprise.
    A permission error (lockdown, not root) stops everything, since every write would fail.
    """
    log = log if log is not None else ChangeLog()
    report = ApplyReport(applied=apply)
    for step in plan.steps:
        try:
            result = clear_bus_master_by(
                plan.method, root, step.bdf, step.command, apply=apply, expected=step.identity, log=log
            )
        except (ActionRefused, SourceMissing) as err:
            report.refused.append((step.bdf, str(err)))
            log.write(f"refused: {err}")
            continue
        except KdumptoolError:
            raise
        report.results.append(result)
    return report


def describe_plan(plan: Plan, titles: Optional[Mapping[str, str]] = None) -> str:
    """Plain text of a plan: ordered steps, then every skip with its reason.

    ``titles`` maps a bdf to the device's name (render.names), printed after the step."""
    titles = titles or {}
    lines: List[str] = []
    tgt = ", ".join(plan.dump_targets) or "none found"
    fin = "finished" if plan.dump_finished else "not finished"
    lines.append(f"dump target devices: {tgt} (dump {fin})")
    if plan.method != METHOD_CONFIG or plan.method_reason != "default":
        # The default (config write, not locked down) keeps its output unchanged.
        lines.append(f"method: {plan.method} ({plan.method_reason})")
        for effect in plan.side_effects:
            lines.append(f"  side effect: {effect}")
    if plan.steps:
        lines.append("clear Bus Master Enable, in this order:")
        for i, s in enumerate(plan.steps, 1):
            lines.append(
                f"  {i}. {s.bdf} COMMAND 0x{s.command:04x} -> 0x{s.new_command:04x}"
                f"  depth {s.depth}  {s.reason}" + (f"  ({titles[s.bdf]})" if s.bdf in titles else "")
            )
    else:
        lines.append("nothing to clear")
    if plan.skips:
        lines.append("left alone:")
        for k in plan.skips:
            lines.append(f"  {k.bdf}  {k.reason}: {k.detail}")
    for w in plan.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def order_is_safe(steps: Sequence[Step], devices: Mapping[str, PciDevice]) -> bool:
    """Every device comes before each bridge above it (a check for tests and callers)."""
    pos = {s.bdf: i for i, s in enumerate(steps)}
    for s in steps:
        for up in devices[s.bdf].upstream:
            if up in pos and pos[up] < pos[s.bdf]:
                return False
    return True
