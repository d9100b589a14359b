"""The VT-d marker lines of a kernel log (:class:`LogMarkers`), each quoted as
:class:`~kdumptool.model.evidence.Evidence` with its line number."""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Tuple, Union

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.formats.klog import (
    AMDVI_DMA_EVENTS,
    AMDVI_LOG_PATTERNS,
    NOT_DRIVERS,
    LogEvent,
    device_line,
    message_match,
    normalise_line,
    parse_log,
)
from kdumptool.model.evidence import Evidence

#: Scenario marker kind of each kernel-log event kind (formats/klog.py's pattern table is
#: the one reading of a line: `kdumptool log` and triage see the same kind on the same
#: line; these are triage's names for them). AMD-Vi kinds keep their names.
MARKER_OF_EVENT: Dict[str, str] = {
    "cmdline": "cmdline",
    "kdump_kernel": "cmdline",
    "boot": "banner",  # the kernel's release: which row of model/kernel_table.py applies
    "iommu_enabled": "param_on",
    "iommu_disabled": "param_off",
    "optin_forced": "optin_forced",
    "sm_disallowed": "sm_disallowed",
    "sm_param_on": "sm_param_on",  # 5.0-5.x: intel_iommu=sm_on parsed (the crashed kernel's own word)
    "translation_preenabled": "pre_enabled",
    "tables_copied": "copied",
    "copy_failed": "copy_failed",
    "translation_not_kdump": "not_kdump",
    "vtd_ready": "vtd_up",
    "ir_copied": "ir_copied",
    "ir_copy_failed": "ir_copy_failed",
    "ir_mode": "ir_enabled",
    "ir_not_kdump": "ir_disabled",
    "ir_disabled": "ir_disabled",
    "x2apic": "x2apic",
    "suppressed": "suppressed",
}
MARKER_OF_EVENT.update({k: k for k, _ in AMDVI_LOG_PATTERNS})
#: The literal words that put a line in front of the pattern table (scan_log_text reads
#: only lines holding one): every marker pattern needs one of them.
CANDIDATE_WORDS = ("DMAR", "dmar", "Intel-IOMMU", "x2apic", "Kernel command line", "callbacks suppressed",
                   "Request device", "Linux version", "AMD-Vi")


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


_NOT_DRIVERS_B = frozenset(w.encode() for w in NOT_DRIVERS)


def _fault_marker(ev: LogEvent, bdf: str, raw: str, source: str, lineno: int) -> Marker:
    """One ``fault`` marker of a decoded VT-d (DMA or interrupt-remapping) or AMD-Vi fault
    event. Groups: ``bdf``, ``kind``, ``access``, ``addr`` and ``index`` in hex, ``reason``
    (a VT-d fault reason code in hex: an AMD-Vi event's code names its type, not a reason,
    and is left out), ``why`` its text."""
    groups = [("bdf", bdf), ("kind", ev.kind)]
    if ev.access:
        groups.append(("access", ev.access))
    if ev.address is not None:
        groups.append(("addr", f"{ev.address:x}"))
    if ev.fault_index is not None:
        groups.append(("index", f"{ev.fault_index:x}"))
    if ev.reason_code is not None and ev.kind != "amd_vi_fault":
        groups.append(("reason", f"{ev.reason_code:02x}"))
    if ev.reason:
        groups.append(("why", ev.reason))
    return Marker("fault", Evidence(source, raw.strip(), lineno), tuple(groups))


def _fault_markers(raw: str, source: str, lineno: int) -> List[Marker]:
    """``fault`` markers for one log line holding ``Request device [``, decoded by
    :func:`kdumptool.formats.klog.parse_log` (groups: ``bdf`` as ``SSSS:BB:DD.F``,
    ``addr`` and ``index`` in hex, ``reason`` code in hex, ``why`` its text, ``kind``)."""
    if "fault addr" not in raw and "fault index" not in raw:
        return []  # a device name quoted without its record (prose in a mail, a diff)
    out = []
    for ev in parse_log([raw]):
        if ev.kind not in ("dma_fault", "ir_fault") or not ev.bdf:
            continue
        out.append(_fault_marker(ev, ev.bdf, raw, source, lineno))
    if not out:
        # A record cut short (its address wrapped away): the device is still known.
        m = _REQUEST_DEVICE.search(raw)
        if m:
            bdf = "0000:" + m.group(1).replace("0x", "")
            out.append(Marker("fault", Evidence(source, raw.strip(), lineno), (("bdf", bdf),)))
    return out


def _amdvi_fault_markers(raw: str, source: str, lineno: int) -> List[Marker]:
    """``fault`` markers (kind ``amd_vi_fault``, group ``event``) for an AMD-Vi event line
    a device's DMA raised (klog.AMDVI_DMA_EVENTS: IO_PAGE_FAULT, ILLEGAL_DEV_TABLE_ENTRY,
    INVALID_DEVICE_REQUEST) that names its device (the one-line forms of 5.x and later,
    and 4.x's ``device=``); interrupt-request faults (flag I) are not DMA and are left out."""
    out = []
    for ev in parse_log([raw]):
        flags = ev.details.get("flags")
        if ev.kind == "amdvi_unattached" and ev.bdf:
            # 6.x's second line of a fault of a device with no domain yet: the line naming it
            out.append(Marker("fault", Evidence(source, raw.strip(), lineno), (
                ("bdf", ev.bdf), ("kind", "amd_vi_fault"), ("why", "IO_PAGE_FAULT (device not attached to a domain yet)"))))
            continue
        if ev.kind != "amd_vi_fault" or not ev.bdf or (isinstance(flags, int) and flags & 0x008):
            continue
        event = str(ev.details.get("event"))
        if event not in AMDVI_DMA_EVENTS:
            continue
        m = _fault_marker(ev, ev.bdf, raw, source, lineno)
        out.append(Marker(m.kind, m.evidence, m.groups + (("event", event),)))
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
    for kw in CANDIDATE_WORDS:
        cands.extend((p, kw) for p in _positions(data, kw.encode()))
    segs = frozenset(segments)
    if probes:
        for seg in segs:
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
            lo = max(0, pos - 64)
            w0 = max(data.rfind(b" ", lo, pos), data.rfind(b"\n", lo, pos)) + 1
            if data[w0:pos] in _NOT_DRIVERS_B:
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
        if ("AMD-Vi: Event logged" in raw and any(e in raw for e in AMDVI_DMA_EVENTS)) or (
                " device=" in raw and " domain=" in raw and "AMD-Vi:" in raw and "Event logged" not in raw):
            found.extend(_amdvi_fault_markers(raw, source, lineno))  # and the line's other markers
        ln = normalise_line(raw, lineno)
        ev = Evidence(source, raw.strip(), lineno)
        if probes:
            dev = device_line(ln)
            if dev is not None and dev not in probed and int(dev[1][:4], 16) in segs:
                probed.add(dev)
                found.append(Marker("probe", ev, (("drv", dev[0]), ("bdf", dev[1]))))
        hit = message_match(ln)
        kind = MARKER_OF_EVENT.get(hit[0]) if hit is not None else None
        if kind is not None and hit is not None and hit[1] is not None:
            groups = tuple((k, v.replace("0x", "") if k == "bdf" else v)
                           for k, v in hit[1].groupdict().items() if v is not None)
            found.append(Marker(kind, ev, groups))
    total = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return LogMarkers(source, tuple(found), total)
