"""The VT-d marker lines of a kernel log (:class:`LogMarkers`), each quoted as
:class:`~kdumptool.model.evidence.Evidence` with its line number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

from kdumptool.model.evidence import Evidence

MARKERS: Tuple[Tuple[str, re.Pattern[str]], ...] = tuple(
    (k, re.compile(p))
    for k, p in (
        ("cmdline", r"Kernel command line: (?P<cmdline>.*)$"),
        # The kernel's banner: its release (which row of analysis/kernels.py applies).
        ("banner", r"^Linux version (?P<release>\S+) .*$"),
        ("param_on", r"DMAR: IOMMU enabled$"),
        ("param_off", r"DMAR: IOMMU disabled$"),
        ("optin_forced", r"DMAR: Intel-IOMMU force enabled due to platform opt in"),
        ("sm_disallowed", r"DMAR: Scalable mode is disallowed"),
        # 5.0-5.x print this when intel_iommu=sm_on is parsed (the crashed kernel's own word).
        ("sm_param_on", r"DMAR: Intel-IOMMU: scalable mode supported"),
        ("pre_enabled", r"DMAR: Translation already enabled - trying to copy translation structures"),
        ("copied", r"DMAR: Copied translation tables from previous kernel for (?P<unit>\S+)"),
        ("copy_failed", r"DMAR: Failed to copy translation tables from previous kernel for (?P<unit>\S+)"),
        ("not_kdump", r"DMAR: Translation was enabled for (?P<unit>\S+) but we are not in kdump mode"),
        ("vtd_up", r"DMAR: Intel\(R\) Virtualization Technology for Directed I/O"),
        ("ir_copied", r"DMAR-IR: Copied IR table for (?P<unit>\S+) from previous kernel"),
        ("ir_copy_failed", r"DMAR-IR: Failed to copy IR table for (?P<unit>\S+) from previous kernel"),
        ("ir_enabled", r"DMAR-IR: Enabled IRQ remapping in (?P<mode>x2apic|xapic) mode"),
        ("ir_disabled", r"DMAR-IR: (?:IRQ remapping was enabled on .* but we are not in kdump mode|Disabled IRQ remapping)"),
        ("x2apic", r"x2apic enabled|Switched APIC routing to (?:cluster|physical) x2apic"),
        ("suppressed", r"dmar_fault: (?P<n>\d+) callbacks suppressed"),
        ("probe", r"^(?P<drv>[A-Za-z0-9_-]+) (?P<bdf>[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])[: ]"),
    )
)


@dataclass(frozen=True)
class Marker:
    kind: str
    evidence: Evidence
    groups: Tuple[Tuple[str, str], ...] = ()

    def get(self, key: str) -> Optional[str]:
        return dict(self.groups).get(key)


@dataclass(frozen=True)
class LogMarkers:
    source: str
    markers: Tuple[Marker, ...] = ()
    lines: int = 0

    def all(self, kind: str) -> List[Marker]:
        return [m for m in self.markers if m.kind == kind]

    def first(self, kind: str) -> Optional[Marker]:
        for m in self.markers:
            if m.kind == kind:
                return m
        return None

    @property
    def empty(self) -> bool:
        return self.lines == 0


#: Device lines of the PCI core and port services are not a driver's probe.
_NOT_DRIVERS = frozenset(("pci", "pcieport", "pci_bus", "acpi", "ACPI", "PCI"))
_DMAR_KINDS = tuple((k, rx) for k, rx in MARKERS if k not in ("cmdline", "banner", "probe", "x2apic", "suppressed"))
_BY_KIND = dict(MARKERS)


def scan_log(lines: Iterable[str], source: str = "dmesg") -> LogMarkers:
    """Find the VT-d marker lines of a kernel log (line numbers are 1-based)."""
    return scan_log_text("\n".join(lines), source)


def _positions(data: bytes, needle: bytes) -> List[int]:
    out = []
    i = data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def _strip_ts(raw: str) -> str:
    s = raw.lstrip()
    if s.startswith("<"):
        s = s[s.find(">") + 1 :]
    if s.startswith("["):
        close = s.find("]")
        if close > 0:
            return s[close + 1 :].lstrip(" ")
    return s


_NOT_DRIVERS_B = frozenset(w.encode() for w in _NOT_DRIVERS)


def _fault_markers(raw: str, source: str, lineno: int) -> List[Marker]:
    """``fault`` markers for one log line holding ``Request device [``, decoded by
    :func:`kdumptool.formats.klog.parse_log` (groups: ``bdf`` as ``SSSS:BB:DD.F``,
    ``addr`` and ``index`` in hex, ``reason`` code in hex, ``why`` its text, ``kind``)."""
    from kdumptool.formats.klog import parse_log

    if "fault addr" not in raw and "fault index" not in raw:
        return []  # a device name quoted without its record (prose in a mail, a diff)
    out = []
    for ev in parse_log([raw]):
        if ev.kind not in ("dma_fault", "ir_fault") or not ev.bdf:
            continue
        groups = [("bdf", ev.bdf), ("kind", ev.kind)]
        if ev.access:
            groups.append(("access", ev.access))
        if ev.address is not None:
            groups.append(("addr", f"{ev.address:x}"))
        if ev.fault_index is not None:
            groups.append(("index", f"{ev.fault_index:x}"))
        if ev.reason_code is not None:
            groups.append(("reason", f"{ev.reason_code:02x}"))
        if ev.reason:
            groups.append(("why", ev.reason))
        out.append(Marker("fault", Evidence(source, raw.strip(), lineno), tuple(groups)))
    if not out:
        # A record cut short (its address wrapped away): the device is still known.
        m = _REQUEST_DEVICE.search(raw)
        if m:
            bdf = "0000:" + m.group(1).replace("0x", "")
            out.append(Marker("fault", Evidence(source, raw.strip(), lineno), (("bdf", bdf),)))
    return out


_REQUEST_DEVICE = re.compile(r"Request device \[\[?((?:0x)?[0-9a-f]{2}:(?:0x)?[0-9a-f]{2}\.[0-7])\]")


def scan_log_text(
    text: Union[str, bytes], source: str = "dmesg", probes: bool = True, segments: Iterable[int] = (0,)
) -> LogMarkers:
    """:func:`scan_log` over the whole log as one string or bytes (the fast path for big
    logs: candidate lines are found with ``find`` on literal keywords, line numbers by
    counting newlines, and only candidate lines are decoded). Driver probe lines
    (``e1000e 0000:00:02.0: ...``) are collected when ``probes``, for the PCI
    ``segments`` given."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    found: List[Marker] = []
    probed = set()
    cands: List[Tuple[int, str]] = []
    for kw in ("DMAR", "x2apic", "Kernel command line", "dmar_fault:", "Request device", "Linux version", "AMD-Vi"):
        cands.extend((p, kw) for p in _positions(data, kw.encode()))
    if probes:
        for seg in segments:
            cands.extend((p, "bdf") for p in _positions(data, f" {seg:04x}:".encode()))
    cands.sort()
    lineno = 1
    counted_to = 0
    line_end = -1
    for pos, kw in cands:
        if pos < line_end:
            continue  # a second keyword on a line already handled
        if kw == "bdf":
            # "[ts] e1000e 0000:00:02.0: ..." -- the word before the address is the driver.
            w0 = data.rfind(b" ", max(0, pos - 64), pos) + 1
            if data[w0:pos] in _NOT_DRIVERS_B or data.rfind(b"\n", w0, pos) >= 0:
                continue
        start = data.rfind(b"\n", 0, pos) + 1
        line_end = data.find(b"\n", pos)
        if line_end < 0:
            line_end = len(data)
        lineno += data.count(b"\n", counted_to, start)
        counted_to = start
        raw = data[start:line_end].decode("utf-8", "replace")
        if "Request device" in raw:
            # Fault records: the kernel-log parser knows every format the kernel has
            # printed (DMA and interrupt-remapping, hex or decimal reasons, PASID forms).
            found.extend(_fault_markers(raw, source, lineno))
            continue
        body = _strip_ts(raw)
        if kw == "AMD-Vi":
            from kdumptool.formats.klog import AMDVI_LOG_PATTERNS

            kinds: Tuple[Tuple[str, re.Pattern[str]], ...] = tuple(AMDVI_LOG_PATTERNS)
        elif kw == "DMAR":
            kinds = _DMAR_KINDS
        elif kw == "bdf":
            kinds = (("probe", _BY_KIND["probe"]),)
        else:
            k = {"x2apic": "x2apic", "dmar_fault:": "suppressed", "Linux version": "banner"}.get(kw, "cmdline")
            kinds = ((k, _BY_KIND[k]),)
        for kind, rx in kinds:
            m = rx.search(body)
            if m:
                if kind == "probe":
                    key = (m.group("drv"), m.group("bdf"))
                    if key[0] in _NOT_DRIVERS or key in probed:
                        break
                    probed.add(key)
                groups = tuple((k, v.replace("0x", "") if k == "bdf" else v)
                               for k, v in m.groupdict().items() if v is not None)
                found.append(Marker(kind, Evidence(source, raw.strip(), lineno), groups))
                break
    total = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return LogMarkers(source, tuple(found), total)

