"""``kdumptool pci``: the PCI tree (like ``lspci -tv``) with bus-master state, driver,
IOMMU group and the VT-d unit of each device; ``-v`` adds the decoded config space.

JSON shape (``render_pci_json``)::

    {"source": str, "vtd": bool, "no_vtd_reason": str|null,
     "devices": [{"bdf", "vendor_id", "device_id", "class_code", "header_type", "command",
                  "status", "bus_master", "is_bridge", "is_host_bridge", "secondary_bus",
                  "subordinate_bus", "port_type", "driver", "iommu_group", "domain_type", "upstream",
                  "unit", "drhd", "rmrrs", "kdump_risk", "config_size",
                  "capabilities": [{"offset", "id", "name"}],
                  "ext_capabilities": [{"offset", "id", "version", "name"}],
                  "malformed": [{"offset", "reason"}], "warnings": [str]}],
     "warnings": [str]}

Integers are JSON numbers (not hex strings); ``drhd`` is the covering unit's register base.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from kdumptool.formats.pciconfig import (
    ACS_BITS,
    AER_COR_BITS,
    AER_UNCOR_BITS,
    COMMAND_BITS,
    STATUS_BITS,
    Capability,
    PciConfig,
    PcieCap,
    flag_words,
)
from kdumptool.formats.pcidetail import Msi, MsiX
from kdumptool.model.record import JsonObj
from kdumptool.model.system import PciDevice, System
from kdumptool.render.names import NUMERIC, Naming

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.tree import Tree

NUMERIC_NAMES = Naming(None, False)


def class_name(class_code: int) -> str:
    """The class as lspci names it without pci.ids (kept for callers; see render.names)."""
    n = NUMERIC_NAMES.class_name(class_code)
    return n or f"Class {class_code >> 8:04x}"


def no_vtd_reason(system: System) -> Optional[str]:
    """A plain sentence when the system has no VT-d unit, else None."""
    if system.units:
        return None
    if system.kind == "lspci":
        return "VT-d state unknown: an lspci dump holds PCI devices only"
    if not system.dmar_present and system.ivrs_present:
        return (
            "no VT-d unit: this is an AMD-Vi machine (ACPI IVRS table, no DMAR): `kdumptool ivrs` "
            "decodes its IOMMUs and reads their registers, `kdumptool triage` gives the AMD-Vi kdump "
            "verdict, `kdumptool vmcore iommu` walks a dump's AMD-Vi device table"
        )
    if not system.dmar_present:
        return (
            "no VT-d unit: this system has no ACPI DMAR table and no intel-iommu in sysfs, "
            "so no DMA is remapped by VT-d"
        )
    if system.dmar is None:
        return "no VT-d unit known: the DMAR table could not be read or decoded and sysfs shows no intel-iommu unit"
    return "no VT-d unit: the DMAR table lists no DRHD and sysfs shows no intel-iommu unit"


def unit_name(system: System, dev: PciDevice) -> Optional[str]:
    u = system.unit_for(dev.bdf)
    return u.name if u else None


def _line(system: System, d: PciDevice, naming: Naming = NUMERIC) -> str:
    title = naming.title(d.vendor_id, d.device_id, d.class_code)
    kind = f"  PCIe {d.port_type}" if d.port_type else ""
    # no COMMAND register read (config unreadable): unknown, not "off"
    bm = "BusMaster?" if d.config_size < 6 else ("BusMaster+" if d.bus_master else "BusMaster-")
    drv = d.driver or ("-" if d.driver_known else "? (unknown)")
    grp = f"group {d.iommu_group}" if d.iommu_group is not None else "no group"
    dtype = system.domain_type(d.bdf)
    if dtype:
        grp += f" ({dtype})"
    unit = unit_name(system, d) or ("-" if system.units else "")
    text = f"{d.short_bdf} {title}{kind}  {bm} driver={drv} {grp}"
    if unit:
        text += f" unit={unit}"
    if d.rmrrs:
        text += " rmrr=" + ",".join(f"{r:#x}" for r in d.rmrrs)
    if d.kdump_risk:
        text += "  RISK: bus master with no driver"
    return text


def render_pci_text(system: System, verbose: int = 0, only: Optional[str] = None,
                    naming: Naming = NUMERIC) -> str:
    out: List[str] = []
    if naming.note:
        out.append(f"Note: {naming.note}.")
    reason = no_vtd_reason(system)
    if reason:
        out.append(f"Note: {reason}.")
    if not system.devices:
        out.append("No PCI devices found.")
    if only is not None:
        for d in system.devices.values():
            if d.bdf == only or d.short_bdf == only:
                out.append(_line(system, d, naming))
                if verbose:
                    out.extend("\t" + x for x in render_config_lines(d, naming, verbose, system.resource_sizes(d.bdf)))
        return "\n".join(out) + "\n"
    roots: Dict[str, List[PciDevice]] = {}
    for d in system.children(None):
        roots.setdefault(d.bdf[:7], []).append(d)

    def walk(dev: PciDevice, prefix: str, last: bool) -> None:
        out.append(prefix + ("\\-" if last else "+-") + _line(system, dev, naming))
        if verbose:
            pad = prefix + ("  " if last else "| ") + "    "
            out.extend(pad + x for x in render_config_lines(dev, naming, verbose, system.resource_sizes(dev.bdf)))
        kids = system.children(dev.bdf)
        for i, k in enumerate(kids):
            walk(k, prefix + ("  " if last else "| "), i == len(kids) - 1)

    for rootbus, devs in sorted(roots.items()):
        out.append(f"[{rootbus}]")
        for i, d in enumerate(devs):
            walk(d, " ", i == len(devs) - 1)
    risky = [d.short_bdf for d in system.devices.values() if d.kdump_risk]
    if risky:
        out.append(f"Bus mastering with no driver bound: {', '.join(risky)}")
    for w in system.warnings:
        out.append(f"warning: {w}")
    return "\n".join(out) + "\n"


def render_config_lines(d: PciDevice, naming: Naming = NUMERIC, level: int = 1,
                        sizes: Optional[Dict[int, int]] = None) -> List[str]:
    """``-v`` (level 1) and ``-vv`` (level 2) lines, in lspci's words where lspci has them;
    ``sizes`` (start -> bytes, :meth:`System.resource_sizes`) adds lspci's ``[size=...]``
    to the memory BARs and the ROM; the device's sysfs ``resource`` lines to the I/O BARs."""
    c = d.config
    if c is None:
        return ["config space: not readable"] + list(d.warnings)
    lines: List[str] = []
    if c.subsystem_vendor_id is not None and c.subsystem_id is not None:
        sub = naming.subsystem_name(d.vendor_id, d.device_id, c.subsystem_vendor_id, c.subsystem_id)
        ids = f"{c.subsystem_vendor_id:04x}:{c.subsystem_id:04x}"
        lines.append(f"Subsystem: {sub} [{ids}]" if sub else f"Subsystem: {ids}")
    lines += [
        f"Control: {' '.join(flag_words(c.command, COMMAND_BITS))}",
        f"Status: {' '.join(flag_words(c.status, STATUS_BITS[:5]))} DEVSEL={c.devsel} "
        f"{' '.join(flag_words(c.status, STATUS_BITS[5:]))}",
        f"Header type {c.layout} ({'multi-function' if c.multifunction else 'single function'}), "
        f"class {c.class_code:06x}, rev {c.revision:02x}, {c.size} bytes readable",
    ]
    if c.is_bridge:
        lines.append(f"Bus: primary={c.primary_bus:02x}, secondary={c.secondary_bus:02x}, subordinate={c.subordinate_bus:02x}")
    lines.extend(bar_lines(c, sizes, d.io_port_sizes()))
    for cap in c.capabilities:
        extra = ""
        detail: List[str] = []
        if c.pcie is not None and cap.cap_id == 0x10:
            extra = f" (v{c.pcie.version}) {c.pcie.port_type_name}{' (Slot+)' if c.pcie.slot else ''}"
            if level >= 2:
                detail = pcie_lines(c.pcie)
        elif cap.cap_id == 0x05 and c.msi is not None and c.find(0x05) is cap:
            extra, detail = msi_lines(c.msi)
        elif cap.cap_id == 0x11 and c.msix is not None and c.find(0x11) is cap:
            extra, detail = msix_lines(c.msix)
        lines.append(f"Capabilities: [{cap.offset:02x}] {cap.name}{extra}")
        if level >= 2:
            lines.extend("\t" + x for x in detail)
    for cap in c.ext_capabilities:
        lines.append(f"Capabilities: [{cap.offset:03x} v{cap.version}] {cap.name}")
        lines.extend("\t" + x for x in _ext_detail(c, cap))
    for m in c.malformed:
        lines.append(f"Capabilities: [{m.offset:02x}] <{m.reason}>")
    lines.extend(d.warnings)
    return lines


def size_text(n: int) -> str:
    """lspci's ``[size=...]`` value: divided by 1024 while it divides, with K, M, G, T."""
    unit = ""
    for u in ("K", "M", "G", "T"):
        if n % 1024 or n == 0:
            break
        n //= 1024
        unit = u
    return f"{n}{unit}"


def bar_lines(c: PciConfig, sizes: Optional[Dict[int, int]] = None,
              io_sizes: Optional[Dict[int, int]] = None) -> List[str]:
    """``Region N: Memory at ... (64-bit, prefetchable)`` and the expansion ROM, as lspci
    prints them; ``[disabled]`` when COMMAND has that space off, as lspci says. Config space
    holds no sizes: ``sizes`` (from /proc/iomem, where the kernel's resource tree shows each
    BAR) adds ``[size=...]`` to the memory BARs and the ROM it names, ``io_sizes`` (first
    port -> ports, from sysfs ``resource``: :meth:`PciDevice.io_port_sizes`) to the I/O BARs."""
    sizes = sizes or {}
    io_sizes = io_sizes or {}
    out: List[str] = []
    for b in c.bars:
        size = ""
        if b.io:
            text = f"Region {b.index}: I/O ports at {b.address:04x}"
            off = not c.io_space
            if b.address in io_sizes:
                size = f" [size={size_text(io_sizes[b.address])}]"
        else:
            width = "64-bit" if b.is64 else ("low-1M" if b.below_1m else "32-bit")
            pf = "prefetchable" if b.prefetchable else "non-prefetchable"
            text = f"Region {b.index}: Memory at {b.address:08x} ({width}, {pf})"
            off = not c.memory_space
            if b.address in sizes:
                size = f" [size={size_text(sizes[b.address])}]"
        out.append(text + (" [disabled]" if off else "") + size)
    if c.rom is not None:
        state = " [disabled by cmd]" if not c.memory_space else ("" if c.rom.enabled else " [disabled]")
        size = f" [size={size_text(sizes[c.rom.address])}]" if c.rom.address in sizes else ""
        out.append(f"Expansion ROM at {c.rom.address:08x}{state}{size}")
    return out


def msi_lines(m: Msi) -> Tuple[str, List[str]]:
    pm = lambda v: "+" if v else "-"  # noqa: E731
    head = f": Enable{pm(m.enabled)} Count={m.count_enabled}/{m.count_capable} Maskable{pm(m.maskable)} 64bit{pm(m.is64)}"
    sub = []
    if m.address is not None and m.data is not None:
        a = f"{m.address:016x}" if m.is64 else f"{m.address:08x}"
        sub.append(f"Address: {a}  Data: {m.data:04x}")
    return head, sub


def msix_lines(m: MsiX) -> Tuple[str, List[str]]:
    pm = lambda v: "+" if v else "-"  # noqa: E731
    head = f": Enable{pm(m.enabled)} Count={m.table_size} Masked{pm(m.masked)}"
    sub = []
    if m.table_bar is not None:
        sub.append(f"Vector table: BAR={m.table_bar} offset={m.table_offset:08x}")
    if m.pba_bar is not None:
        sub.append(f"PBA: BAR={m.pba_bar} offset={m.pba_offset:08x}")
    return head, sub


#: PCIe Endpoint, Legacy Endpoint, Root Complex Integrated Endpoint (the functions with FLR).
PCIE_ENDPOINT_TYPES = (0x0, 0x1, 0x9)


def pcie_lines(e: PcieCap) -> List[str]:
    """DevCap/DevCtl/DevSta as lspci -vv words them (the fields that matter for DMA:
    FLReset capability, error reporting, Transactions Pending)."""
    from kdumptool.formats.pcidetail import (
        DEVCTL_ERR_BITS,
        DEVCTL_FEATURE_BITS,
        DEVSTA_BITS,
        PCI_EXP_DEVCAP_EXT_TAG,
        PCI_EXP_DEVCAP_FLR,
        PCI_EXP_DEVCAP_RBER,
        PCI_EXP_DEVCTL_BCR_FLR,
    )

    pm = lambda v: "+" if v else "-"  # noqa: E731
    out: List[str] = []
    endpoint = e.port_type in PCIE_ENDPOINT_TYPES
    if e.devcap is not None:
        cap = e.devcap
        out.append(f"DevCap:\tMaxPayload {128 << (cap & 7)} bytes, PhantFunc {(cap >> 3) & 3}")
        words = f"ExtTag{pm(cap & PCI_EXP_DEVCAP_EXT_TAG)} RBE{pm(cap & PCI_EXP_DEVCAP_RBER)}"
        if endpoint:  # FLR is a function's capability; lspci shows it for endpoints only
            words += f" FLReset{pm(cap & PCI_EXP_DEVCAP_FLR)}"
        out.append("\t" + words)
    if e.devctl is not None:
        ctl = e.devctl
        out.append(f"DevCtl:\t{' '.join(flag_words(ctl, DEVCTL_ERR_BITS))}")
        words = " ".join(flag_words(ctl, DEVCTL_FEATURE_BITS))
        # lspci adds the FLR-initiate bit for functions that can do FLR (endpoints)
        if endpoint and e.devcap is not None and e.devcap & PCI_EXP_DEVCAP_FLR:
            words += f" FLReset{pm(ctl & PCI_EXP_DEVCTL_BCR_FLR)}"
        out.append(f"\t{words}")
        out.append(f"\tMaxPayload {128 << ((ctl >> 5) & 7)} bytes, MaxReadReq {128 << ((ctl >> 12) & 7)} bytes")
    if e.devsta is not None:
        out.append(f"DevSta:\t{' '.join(flag_words(e.devsta, DEVSTA_BITS))}")
    return out


def _ext_detail(c: PciConfig, cap: Capability) -> List[str]:
    """Decoded lines for the first AER/ACS/ATS/PASID/PRI/SR-IOV capability."""
    first = c.find(cap.cap_id, extended=True)
    if first is None or first.offset != cap.offset:
        return []
    cid = cap.cap_id
    if cid == 0x0001 and c.aer is not None:
        return [
            f"UESta: {' '.join(flag_words(c.aer.uncor_status, AER_UNCOR_BITS))}",
            f"UEMsk: {' '.join(flag_words(c.aer.uncor_mask, AER_UNCOR_BITS))}",
            f"CESta: {' '.join(flag_words(c.aer.cor_status, AER_COR_BITS))}",
        ]
    if cid == 0x000D and c.acs is not None:
        return [
            f"ACSCap: {' '.join(flag_words(c.acs.cap, ACS_BITS))}",
            f"ACSCtl: {' '.join(flag_words(c.acs.ctrl, ACS_BITS))}",
        ]
    if cid == 0x000F and c.ats is not None:
        return [f"ATSCtl: Enable{'+' if c.ats.enabled else '-'}, STU={c.ats.stu}, InvQD={c.ats.invalidate_queue_depth}"]
    if cid == 0x001B and c.pasid is not None:
        p = c.pasid
        return [f"PASIDCtl: Enable{'+' if p.enabled else '-'}, MaxWidth={p.max_width}, Exec{'+' if p.exec_perm else '-'} Priv{'+' if p.priv_mode else '-'}"]
    if cid == 0x0013 and c.pri is not None:
        return [f"PRICtl: Enable{'+' if c.pri.enabled else '-'}, Stopped{'+' if c.pri.stopped else '-'}, MaxReq={c.pri.max_requests}"]
    if cid == 0x0010 and c.sriov is not None:
        v = c.sriov
        return [f"IOVCtl: VF Enable{'+' if v.vf_enabled else '-'}, NumVFs={v.num_vfs}/{v.total_vfs}, VF device {v.vf_device_id:04x}"]
    return []


def device_json(system: System, d: PciDevice, naming: Naming = NUMERIC) -> JsonObj:
    c = d.config
    sv = c.subsystem_vendor_id if c is not None else None
    sd = c.subsystem_id if c is not None else None
    return {
        "bdf": d.bdf,
        "vendor_id": d.vendor_id,
        "device_id": d.device_id,
        "class_code": d.class_code,
        **naming.json(d.vendor_id, d.device_id, d.class_code),
        "subsystem_vendor_id": sv,
        "subsystem_id": sd,
        "subsystem_name": naming.subsystem_name(d.vendor_id, d.device_id, sv, sd),
        "header_type": d.header_type,
        "command": d.command,
        "status": d.status,
        "bus_master": d.bus_master,
        "is_bridge": d.is_bridge,
        "is_host_bridge": d.is_host_bridge,
        "secondary_bus": d.secondary_bus,
        "subordinate_bus": d.subordinate_bus,
        "port_type": d.port_type,
        "driver": d.driver,
        "driver_known": d.driver_known,
        "iommu_group": d.iommu_group,
        "domain_type": system.domain_type(d.bdf),
        "upstream": list(d.upstream),
        "unit": unit_name(system, d),
        "drhd": d.drhd,
        "rmrrs": list(d.rmrrs),
        "kdump_risk": d.kdump_risk,
        "config_size": d.config_size,
        "capabilities": [{"offset": x.offset, "id": x.cap_id, "name": x.name} for x in (c.capabilities if c else ())],
        "ext_capabilities": [
            {"offset": x.offset, "id": x.cap_id, "version": x.version, "name": x.name}
            for x in (c.ext_capabilities if c else ())
        ],
        "malformed": [{"offset": m.offset, "reason": m.reason} for m in (c.malformed if c else ())],
        "warnings": list(d.warnings),
    }


def render_pci_json(system: System, only: Optional[str] = None, naming: Naming = NUMERIC) -> JsonObj:
    devs = [d for d in system.devices.values() if only is None or only in (d.bdf, d.short_bdf)]
    return {
        "source": system.source,
        "vtd": system.has_vtd,
        "no_vtd_reason": no_vtd_reason(system),
        "devices": [device_json(system, d, naming) for d in devs],
        "warnings": list(system.warnings),
    }


def render_pci_rich(system: System, verbose: int = 0, only: Optional[str] = None,
                    naming: Naming = NUMERIC) -> RenderableType:
    """A rich Tree of the same lines (risky devices in red, bus masters in bold)."""
    from rich.console import Group
    from rich.text import Text
    from rich.tree import Tree

    parts: List[RenderableType] = []
    reason = no_vtd_reason(system)
    if reason:
        parts.append(Text(f"Note: {reason}.", style="yellow"))
    if naming.note:
        parts.append(Text(f"Note: {naming.note}.", style="yellow"))

    def label(d: PciDevice) -> Text:
        style = "bold red" if d.kdump_risk else ("bold" if d.bus_master else "")
        return Text(_line(system, d, naming), style=style)

    def add(node: Tree, d: PciDevice) -> None:
        child = node.add(label(d))
        if verbose:
            for x in render_config_lines(d, naming, verbose, system.resource_sizes(d.bdf)):
                child.add(Text(x, style="dim"))
        for k in system.children(d.bdf):
            add(child, k)

    if only is not None:
        for d in system.devices.values():
            if only in (d.bdf, d.short_bdf):
                t = Tree(label(d))
                for x in render_config_lines(d, naming, verbose, system.resource_sizes(d.bdf)) if verbose else []:
                    t.add(Text(x, style="dim"))
                parts.append(t)
    else:
        roots: Dict[str, List[PciDevice]] = {}
        for d in system.children(None):
            roots.setdefault(d.bdf[:7], []).append(d)
        for rootbus, devs in sorted(roots.items()):
            tree = Tree(f"[{rootbus}]", guide_style="dim")
            for d in devs:
                add(tree, d)
            parts.append(tree)
        risky = [d.short_bdf for d in system.devices.values() if d.kdump_risk]
        if risky:
            parts.append(Text(f"Bus mastering with no driver bound: {', '.join(risky)}", style="red"))
    for w in system.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    return Group(*parts)
