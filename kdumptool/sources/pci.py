"""PCI devices from sysfs under a root (``sys/bus/pci/devices/*``), from pyudev on the live
host, or from an ``lspci -x/-xxx/-xxxx`` text dump.

Per device: raw ``config`` (4096 bytes for PCIe as root, 256 for conventional PCI, only
the first 64 for an unprivileged reader), the ``vendor``/``device``/``class`` attributes
(used when config is unreadable), the ``driver`` and ``iommu_group`` links, the parent PCI
device from the sysfs path, and ``physfn`` for SR-IOV VFs.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

from kdumptool.errors import DecodeError, PermissionDenied, SourceMissing
from kdumptool.formats.lspci_dump import parse_lspci_dump
from kdumptool.formats.pciconfig import PciConfig, parse_pci_config
from kdumptool.formats.pciresource import PciResource, parse_pci_resource
from kdumptool.model.system import RawDevice
from kdumptool.sources.root import Root

PCI_DEVICES = "/sys/bus/pci/devices"
_BDF = re.compile(r"^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _int_attr(text: Optional[str]) -> Optional[int]:
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def _parent_from_target(target: Optional[str], bdf: str) -> Optional[str]:
    """The PCI parent from a sysfs device path (``.../0000:00:04.0/0000:01:00.0``)."""
    if not target:
        return None
    parts = target.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-1] == bdf and _BDF.match(parts[-2]):
        return parts[-2]
    return None


def _decode_config(data: bytes, what: str, warnings: List[str]) -> Optional[PciConfig]:
    try:
        cfg = parse_pci_config(data, what)
    except DecodeError as err:
        warnings.append(str(err))
        return None
    if len(data) < 256:
        warnings.append(
            f"{what}: only {len(data)} bytes of config space readable (run as root for all of it)"
        )
    return cfg


def _read_resources(root: Root, path: str, warnings: List[str]) -> Tuple[PciResource, ...]:
    """The device's sysfs ``resource`` lines; () when the file is absent or unreadable (a
    snapshot taken before kdumptool collected it: no sizes of I/O BARs then, as before), a
    warning when it does not decode."""
    text = root.read_optional(path)
    if text is None:
        return ()
    try:
        return parse_pci_resource(text, str(root.p(path)))
    except DecodeError as err:
        warnings.append(str(err))
        return ()


def read_device(root: Root, bdf: str, warnings: Optional[List[str]] = None) -> RawDevice:
    """One device from ``sys/bus/pci/devices/<bdf>`` under ``root``."""
    base = f"{PCI_DEVICES}/{bdf}"
    w: List[str] = []
    config = None
    size = 0
    try:
        data = root.read_bytes(f"{base}/config")
        size = len(data)
        config = _decode_config(data, f"{bdf} config", w)
    except (SourceMissing, PermissionDenied) as err:
        w.append(str(err))
    group = root.link_name(f"{base}/iommu_group")
    physfn = root.link_name(f"{base}/physfn")
    dev = RawDevice(
        bdf=bdf,
        config=config,
        config_size=size,
        vendor_id=_int_attr(root.read_optional(f"{base}/vendor")),
        device_id=_int_attr(root.read_optional(f"{base}/device")),
        class_code=_int_attr(root.read_optional(f"{base}/class")),
        driver=root.link_name(f"{base}/driver"),
        iommu_group=int(group) if group and group.isdigit() else None,
        parent=_parent_from_target(root.readlink(base), bdf),
        physfn=physfn if physfn and _BDF.match(physfn) else None,
        resources=_read_resources(root, f"{base}/resource", w),
        warnings=tuple(w),
    )
    if warnings is not None:
        warnings.extend(w)
    return dev


def iter_bdfs(root: Root) -> List[str]:
    return [b for b in root.listdir(PCI_DEVICES) if _BDF.match(b)]


def read_pci_devices(root: Root, warnings: Optional[List[str]] = None) -> Dict[str, RawDevice]:
    """Every PCI device below ``root`` from plain sysfs files."""
    if not root.exists(PCI_DEVICES) and warnings is not None:
        warnings.append(f"{root.p(PCI_DEVICES)}: not present, no PCI devices")
    return {b: read_device(root, b, warnings) for b in iter_bdfs(root)}


def read_pci_devices_udev(warnings: Optional[List[str]] = None) -> Dict[str, RawDevice]:
    """Every PCI device of the live host, enumerated with pyudev (driver binding from
    udev); config space and links are still read from the device's sysfs directory."""
    try:
        import pyudev
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise SourceMissing(f"pyudev is not importable: {exc}") from None
    try:
        context = pyudev.Context()
        udev_devices = list(context.list_devices(subsystem="pci"))
    except Exception as exc:  # pyudev raises plain OSError/ImportError from libudev
        raise SourceMissing(f"udev enumeration failed: {exc}") from None
    live = Root("/")
    out: Dict[str, RawDevice] = {}
    for ud in udev_devices:
        bdf = ud.sys_name
        if not _BDF.match(bdf):
            continue
        w: List[str] = []
        config = None
        size = 0
        try:
            data = live.read_bytes(os.path.join(ud.sys_path, "config"))
            size = len(data)
            config = _decode_config(data, f"{bdf} config", w)
        except (SourceMissing, PermissionDenied) as err:
            w.append(str(err))
        parent = ud.find_parent("pci")
        grp = live.link_name(os.path.join(ud.sys_path, "iommu_group"))
        physfn = live.link_name(os.path.join(ud.sys_path, "physfn"))
        attrs = ud.attributes

        def attr(name: str, attrs: object = attrs) -> Optional[int]:
            try:
                raw = attrs.get(name)  # type: ignore[attr-defined]
            except (KeyError, OSError, UnicodeDecodeError):
                return None
            return _int_attr(raw.decode("ascii", "replace").strip()) if raw else None

        out[bdf] = RawDevice(
            bdf=bdf,
            config=config,
            config_size=size,
            vendor_id=attr("vendor"),
            device_id=attr("device"),
            class_code=attr("class"),
            driver=ud.driver,
            iommu_group=int(grp) if grp and grp.isdigit() else None,
            parent=parent.sys_name if parent is not None else None,
            physfn=physfn if physfn and _BDF.match(physfn) else None,
            resources=_read_resources(live, os.path.join(ud.sys_path, "resource"), w),
            warnings=tuple(w),
        )
        if warnings is not None:
            warnings.extend(w)
    return dict(sorted(out.items()))


def read_lspci_dump(text: str, name: str = "lspci dump") -> Tuple[Dict[str, RawDevice], List[str]]:
    """Devices of an ``lspci -x``-style dump, with the warnings met on the way."""
    warnings: List[str] = []
    out: Dict[str, RawDevice] = {}
    for d in parse_lspci_dump(text, name):
        w = [f"{name}: line {d.line}: {x}" for x in d.warnings]
        config = _decode_config(d.data, f"{name}: {d.bdf}", w) if d.data else None
        if d.bdf in out:
            w.append(f"{name}: line {d.line}: {d.bdf} appears again; first kept")
            warnings.extend(w)
            continue
        driver = None
        # lspci -v/-k print "Kernel driver in use" for every device with a driver: with
        # that text, no line means no driver; a bare hex dump leaves drivers unknown.
        told = any(x.strip().startswith(("Control:", "Kernel driver in use:", "Kernel modules:")) for x in d.text)
        for line in d.text:
            s = line.strip()
            if s.startswith("Kernel driver in use:"):
                driver = s.split(":", 1)[1].strip() or None
        out[d.bdf] = RawDevice(bdf=d.bdf, config=config, config_size=len(d.data), driver=driver,
                               warnings=tuple(w), driver_known=told)
        warnings.extend(w)
    return out, warnings


def read_lspci_text(text: str, name: str = "lspci text") -> Tuple[Dict[str, RawDevice], List[str]]:
    """Devices of ``lspci -nnvv``/``-nnk`` text without hex bytes (a sos report's
    sos_commands/pci/lspci_-nnvv): the header facts the text states, rebuilt into config
    bytes (formats.lspci_text), each device warned that nothing else is known."""
    from kdumptool.formats.lspci_text import parse_lspci_text, rebuild_config

    devs, told = parse_lspci_text(text, name)
    out: Dict[str, RawDevice] = {}
    warnings: List[str] = []
    for d in devs:
        w = [f"{name}: line {d.line}: {d.bdf}: from lspci text: header, Control/Status and PCIe port type only"]
        if d.command is None:
            w.append(f"{name}: line {d.line}: {d.bdf}: no Control: line (lspci without -v): Bus Master state unknown")
        if d.bdf in out:
            warnings.append(f"{name}: line {d.line}: {d.bdf} appears again; first kept")
            continue
        data = rebuild_config(d)
        config = _decode_config(data, f"{name}: {d.bdf}", w) if d.command is not None else None
        out[d.bdf] = RawDevice(
            bdf=d.bdf, config=config, config_size=len(data) if config is not None else 0,
            vendor_id=d.vendor_id, device_id=d.device_id, class_code=d.class_code,
            driver=d.driver, iommu_group=d.iommu_group, warnings=tuple(w), driver_known=told,
        )
    if not told:
        warnings.append(f"{name}: no -v/-k output: driver state unknown for every device")
    return out, warnings
