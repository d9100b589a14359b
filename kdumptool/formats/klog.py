"""Kernel log lines about Intel VT-d (DMAR), interrupt remapping and kdump, as events.

Two layers:

* :func:`normalise_line` strips what the carriers of a kernel log add around the
  message: mail quoting (``> `` / ``> > >`` / ``>>``), ``/dev/kmsg`` records
  (``6,339,5140900,-;msg``), syslog and journal prefixes (``Aug 23 19:13:02 host kernel:``,
  ``2014-04-25T09:37:53.595431+01:00 host kernel:``, a bare ``kernel:``), ``dmesg -x``
  facility/level (``kern  :info  :``), the raw level ``<6>``, the timestamp in each
  ``dmesg`` style (``[   12.345678]``, ``dmesg -T`` ``[Fri May 22 09:34:59 2026]``,
  ``dmesg -H`` ``[May22 09:34]`` / ``[  +0,000004]``, a lost ``[`` as in ``    8.490171]``)
  and the printk caller id (``[    T1]``).
* :func:`parse_log` turns the messages into :class:`LogEvent` records, streaming and in
  bounded memory (at most a few lines are held back, to join records that a mailer or
  the kernel's own two-line format split).

The fault record formats (see ``drivers/iommu/intel/dmar.c``, ``dmar_fault_do_one``):

* <= 4.0, two lines, decimal reason:
  ``DMAR:[DMA Read] Request device [00:02.0] fault addr 1a45aa9000`` then
  ``DMAR:[fault reason 12] non-zero reserved fields in PTE``; interrupt remapping as
  ``INTR-REMAP: Request device [[f0:1f.0] fault index 0`` then
  ``INTR-REMAP:[fault reason 37] ...`` (the doubled ``[`` is the kernel's).
* 4.1 .. 5.2, one line, decimal reason: ``DMAR: [DMA Read] Request device [00:02.0]
  fault addr 8900a000 [fault reason 05] PTE Write access is not set``.
* 5.3 .. 5.13, with ``PASID %x`` (``ffffffff`` = none), decimal reason.
* >= 5.14: ``[DMA Read NO_PASID]`` / ``[DMA Write PASID 0x1]``, ``0x`` address and hex
  ``0x`` reason (Linux commit 719a19335692 ("iommu/vt-d: Tweak the description of a DMA
  fault")), which also printed ``[0x00:0x02.0]`` in the brackets until the patch
  "iommu/vt-d: Drop "0x" prefix from PCI bus & device addresses" (linux-iommu, Sep 2021).
  A proposed interim form printed ``[fault reason 25h]`` and ``w/o PASID``.

So a reason with ``0x`` (or an ``h`` suffix) is hex and one without is decimal; the printed
text is then checked against the kernel's tables (:data:`DMA_REMAP_FAULT_REASONS`,
:data:`IRQ_REMAP_FAULT_REASONS`, :data:`DMA_REMAP_SM_FAULT_REASONS`, from ``dmar.c``) and
the other base is taken, with a warning, when only it agrees. The address, fault index
and PASID are always hex (``%llx``/``%x``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from kdumptool.formats.frozen import dataclass, field  # records made without dataclasses: start-up

# --- fault reason tables (drivers/iommu/intel/dmar.c) -----------------------------------

#: ``dma_remap_fault_reasons[]``: legacy-mode DMA remapping faults 0x00-0x0D.
DMA_REMAP_FAULT_REASONS: Tuple[str, ...] = (
    "Software",
    "Present bit in root entry is clear",
    "Present bit in context entry is clear",
    "Invalid context entry",
    "Access beyond MGAW",
    "PTE Write access is not set",
    "PTE Read access is not set",
    "Next page table ptr is invalid",
    "Root table address invalid",
    "Context table ptr is invalid",
    "non-zero reserved fields in RTP",
    "non-zero reserved fields in CTP",
    "non-zero reserved fields in PTE",
    "PCE for translation request specifies blocking",
)

#: ``irq_remap_fault_reasons[]``: interrupt-remapping faults 0x20-0x26.
IRQ_REMAP_FAULT_REASONS: Tuple[str, ...] = (
    "Detected reserved fields in the decoded interrupt-remapped request",
    "Interrupt index exceeded the interrupt-remapping table size",
    "Present field in the IRTE entry is clear",
    "Error accessing interrupt-remapping table pointed by IRTA_REG",
    "Detected reserved fields in the IRTE entry",
    "Blocked a compatibility format interrupt request",
    "Blocked an interrupt request due to source-id verification failure",
)

_U = "Unknown"
#: ``dma_remap_sm_fault_reasons[]``: scalable-mode faults 0x30-0x90 (gaps are "Unknown").
DMA_REMAP_SM_FAULT_REASONS: Tuple[str, ...] = (
    "SM: Invalid Root Table Address",
    "SM: TTM 0 for request with PASID",
    "SM: TTM 0 for page group request",
    _U, _U, _U, _U, _U,  # 0x33-0x37
    "SM: Error attempting to access Root Entry",
    "SM: Present bit in Root Entry is clear",
    "SM: Non-zero reserved field set in Root Entry",
    _U, _U, _U, _U, _U,  # 0x3B-0x3F
    "SM: Error attempting to access Context Entry",
    "SM: Present bit in Context Entry is clear",
    "SM: Non-zero reserved field set in the Context Entry",
    "SM: Invalid Context Entry",
    "SM: DTE field in Context Entry is clear",
    "SM: PASID Enable field in Context Entry is clear",
    "SM: PASID is larger than the max in Context Entry",
    "SM: PRE field in Context-Entry is clear",
    "SM: RID_PASID field error in Context-Entry",
    _U, _U, _U, _U, _U, _U, _U,  # 0x49-0x4F
    "SM: Error attempting to access the PASID Directory Entry",
    "SM: Present bit in Directory Entry is clear",
    "SM: Non-zero reserved field set in PASID Directory Entry",
    _U, _U, _U, _U, _U,  # 0x53-0x57
    "SM: Error attempting to access PASID Table Entry",
    "SM: Present bit in PASID Table Entry is clear",
    "SM: Non-zero reserved field set in PASID Table Entry",
    "SM: Invalid Scalable-Mode PASID Table Entry",
    "SM: ERE field is clear in PASID Table Entry",
    "SM: SRE field is clear in PASID Table Entry",
    _U, _U,  # 0x5E-0x5F
    _U, _U, _U, _U, _U, _U, _U, _U,  # 0x60-0x67
    _U, _U, _U, _U, _U, _U, _U, _U,  # 0x68-0x6F
    "SM: Error attempting to access first-level paging entry",
    "SM: Present bit in first-level paging entry is clear",
    "SM: Non-zero reserved field set in first-level paging entry",
    "SM: Error attempting to access FL-PML4 entry",
    "SM: First-level entry address beyond MGAW in Nested translation",
    "SM: Read permission error in FL-PML4 entry in Nested translation",
    "SM: Read permission error in first-level paging entry in Nested translation",
    "SM: Write permission error in first-level paging entry in Nested translation",
    "SM: Error attempting to access second-level paging entry",
    "SM: Read/Write permission error in second-level paging entry",
    "SM: Non-zero reserved field set in second-level paging entry",
    "SM: Invalid second-level page table pointer",
    "SM: A/D bit update needed in second-level entry when set up in no snoop",
    _U, _U, _U,  # 0x7D-0x7F
    "SM: Address in first-level translation is not canonical",
    "SM: U/S set 0 for first-level translation with user privilege",
    "SM: No execute permission for request with PASID and ER=1",
    "SM: Address beyond the DMA hardware max",
    "SM: Second-level entry address beyond the max",
    "SM: No write permission for Write/AtomicOp request",
    "SM: No read permission for Read/AtomicOp request",
    "SM: Invalid address-interrupt address",
    _U, _U, _U, _U, _U, _U, _U, _U,  # 0x88-0x8F
    "SM: A/D bit update needed in first-level entry when set up in no snoop",
)


def fault_reason_text(code: int) -> Tuple[str, str]:
    """``(type, text)`` for a fault reason code, as ``dmar_get_fault_reason()`` does.

    ``type`` is ``"ir"`` (interrupt remapping, 0x20-0x26), ``"dma"`` (0x00-0x0D and the
    scalable-mode 0x30-0x90) or ``"unknown"``.
    """
    if 0x20 <= code < 0x20 + len(IRQ_REMAP_FAULT_REASONS):
        return "ir", IRQ_REMAP_FAULT_REASONS[code - 0x20]
    if 0x30 <= code < 0x30 + len(DMA_REMAP_SM_FAULT_REASONS):
        return "dma", DMA_REMAP_SM_FAULT_REASONS[code - 0x30]
    if 0 <= code < len(DMA_REMAP_FAULT_REASONS):
        return "dma", DMA_REMAP_FAULT_REASONS[code]
    return "unknown", _U


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One input line with the carrier's decoration removed.

    ``text`` is the kernel message; ``timestamp`` seconds since boot (``[ 12.345]``,
    a kmsg record's microseconds); ``wallclock`` the time as printed by ``dmesg -T``,
    ``-H`` or syslog; ``delta`` the ``dmesg -H``/``--reltime`` ``[+0,000004]`` offset;
    ``prefixed`` says the line began a record (it had a timestamp, a syslog prefix or a
    kmsg header), which tells a wrapped continuation from a new message.
    """

    number: int
    text: str
    timestamp: Optional[float] = None
    wallclock: Optional[str] = None
    delta: Optional[float] = None
    prefixed: bool = False
    quote: int = 0
    meta: bool = False  # a /dev/kmsg dictionary line (" SUBSYSTEM=pci")


@dataclass(frozen=True)
class LogEvent:
    """One thing the kernel said about the IOMMU, interrupt remapping, kdump or AER.

    ``line``/``end_line`` are 1-based input lines (a two-line or wrapped record spans
    several). ``bdf`` is ``SSSS:BB:DD.F``: the kernel prints no segment in fault lines,
    so it is 0000 there (``segment_assumed`` in ``details``). ``reason`` is the text as
    printed; ``reason_table`` the kernel table's text for ``reason_code``.
    """

    line: int
    kind: str
    text: str
    end_line: int = 0
    timestamp: Optional[float] = None
    wallclock: Optional[str] = None
    bdf: Optional[str] = None
    access: Optional[str] = None
    address: Optional[int] = None
    fault_index: Optional[int] = None
    reason_code: Optional[int] = None
    reason: Optional[str] = None
    reason_table: Optional[str] = None
    pasid: Optional[int] = None
    unit: Optional[str] = None
    value: Optional[int] = None
    details: Dict[str, Any] = field(default_factory=dict, compare=False)
    warnings: Tuple[str, ...] = ()

    def to_json(self) -> Dict[str, Any]:
        """The JSON shape of the contract (addresses as ``0x`` hex strings)."""
        out: Dict[str, Any] = {
            "line": self.line,
            "kind": self.kind,
            "bdf": self.bdf,
            "access": self.access,
            "address": None if self.address is None else f"0x{self.address:x}",
            "reason_code": None if self.reason_code is None else f"0x{self.reason_code:02x}",
            "reason": self.reason,
            "pasid": self.pasid,
            "timestamp": self.timestamp,
        }
        if self.end_line != self.line:
            out["end_line"] = self.end_line
        for key in ("wallclock", "fault_index", "reason_table", "unit", "value"):
            val = getattr(self, key)
            if val is not None:
                out[key] = f"0x{val:x}" if key == "fault_index" else val
        if self.details:
            out["details"] = {
                k: (f"0x{v:x}" if isinstance(v, int) and not isinstance(v, bool) and k in _HEX_DETAILS else v)
                for k, v in self.details.items()
            }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        out["text"] = self.text
        return out


_HEX_DETAILS = frozenset(
    {"efr", "efr2", "domain", "reg_base_addr", "cap", "ecap", "base", "end", "hi", "lo", "value", "iova", "status", "sid", "qw0",
     "qw1", "reason"}
)

# --- line normaliser ------------------------------------------------------------------------

_QUOTE_RE = re.compile(r"[ \t]*((?:>[ \t]?)+)")
_KMSG_RE = re.compile(r"(\d{1,3}),(\d+),(\d+),([^;,]*)(?:,[^;]*)?;")
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_SYSLOG_RE = re.compile(
    r"(?:(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"|(?P<bsd>(?i:" + _MONTHS + r")[a-z]*\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\.\d+)?))"
    r"(?:\s+(?P<host>[^\s:\[\]]+))??\s+kernel(?:\[\d+\])?:\s?"
)
# dmesg --time-format=iso without a syslog host: "2026-05-22T09:34:59,123456+02:00 msg"
_ISO_ONLY_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d+[+-]\d\d:\d\d)\s")
_BARE_KERNEL_RE = re.compile(r"kernel:\s")
_FACILITY_RE = re.compile(
    r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local\d)\s*:"
    r"\s*(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:\s?"
)
_LEVEL_RE = re.compile(r"<(\d{1,3})>")
_TS_RE = re.compile(r"\[\s*(\d{1,10})[.,](\d{1,9})\]\s?")
_DELTA_RE = re.compile(r"\[\s*(?:<\s*)?\+\s*(\d{1,10})[.,](\d{1,9})\s*(?:>\s*)?\]\s?")
_CTIME_RE = re.compile(
    r"\[((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\s?"
)
_HUMAN_RE = re.compile(r"\[(\w{3,4} ?\d{1,2} \d\d:\d\d(?::\d\d)?)\]\s?")
_LOST_BRACKET_RE = re.compile(r"\s*(\d{1,10})\.(\d{6})\]\s?")
_CALLER_RE = re.compile(r"\[\s*[TC]\d{1,7}\]\s?")
_MONO_HOST_RE = re.compile(r"(?:[^\s:\[\]]+\s+)?kernel:\s")


def _seconds(whole: str, frac: str) -> float:
    return int(whole) + int(frac) / (10 ** len(frac))


_MONTH_NUM = {m: i + 1 for i, m in enumerate(_MONTHS.split("|"))}
_WALL_CTIME_RE = re.compile(r"(?:\w{3} )?(\w{3})\s+(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.\d+)?(?: (\d{4}))?$")
_WALL_ISO_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?$")


def wallclock_seconds(wall: Optional[str]) -> Optional[float]:
    """Seconds (on an arbitrary but consistent scale) for a printed wall-clock time, to
    measure gaps: ``dmesg -T`` ctime, syslog ``Aug 23 19:13:02`` (no year: 2000 is
    assumed, fine for gaps within a log) and ISO 8601 with its offset. None otherwise."""
    if not wall:
        return None
    import datetime as _dt

    m = _WALL_ISO_RE.match(wall)
    try:
        if m:
            frac = m.group(7) or "0"
            t = _dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                             int(m.group(5)), int(m.group(6)))
            secs = (t - _dt.datetime(1970, 1, 1)).total_seconds() + int(frac) / 10 ** len(frac)
            off = m.group(8)
            if off and off != "Z":
                sign = -1 if off[0] == "-" else 1
                digits = off[1:].replace(":", "")
                secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
            return secs
        m = _WALL_CTIME_RE.match(wall)
        if m:
            month = _MONTH_NUM.get(m.group(1).lower()[:3])
            if month is None:
                return None
            t = _dt.datetime(int(m.group(6) or 2000), month, int(m.group(2)), int(m.group(3)),
                             int(m.group(4)), int(m.group(5)))
            return (t - _dt.datetime(1970, 1, 1)).total_seconds()
    except ValueError:
        return None
    return None


def normalise_line(raw: str, number: int = 0) -> LogLine:
    """Strip quoting, record headers, syslog prefixes, levels and timestamps from a line."""
    s = raw.rstrip("\r\n")
    quote = 0
    pos = 0
    m = _QUOTE_RE.match(s)
    if m:
        quote = m.group(1).count(">")
        pos = m.end()
    # Leading indentation (mail bodies, dmesg continuation) is not part of the record.
    while pos < len(s) and s[pos] in " \t":
        pos += 1
    timestamp: Optional[float] = None
    wallclock: Optional[str] = None
    delta: Optional[float] = None
    prefixed = False
    meta = False
    m = _KMSG_RE.match(s, pos)
    if m:
        timestamp = int(m.group(3)) / 1e6
        prefixed = True
        pos = m.end()
        if "\\x0a" in s:
            # /dev/kmsg escapes a multi-line record's newlines (the <= 4.0 fault format).
            s = s[:pos] + s[pos:].replace("\\x0a", " ")
    else:
        m = _SYSLOG_RE.match(s, pos)
        if m:
            wallclock = m.group("iso") or m.group("bsd")
            prefixed = True
            pos = m.end()
        else:
            m = _ISO_ONLY_RE.match(s, pos)
            if m:
                wallclock = m.group(1)
                prefixed = True
                pos = m.end()
            else:
                m = _BARE_KERNEL_RE.match(s, pos)
                if m:
                    prefixed = True
                    pos = m.end()
        while pos < len(s) and s[pos] == " ":
            pos += 1
        m = _FACILITY_RE.match(s, pos)
        if m:
            prefixed = True
            pos = m.end()
        m = _LEVEL_RE.match(s, pos)
        if m:
            prefixed = True
            pos = m.end()
        if pos < len(s) and s[pos] == "[":
            m = _TS_RE.match(s, pos)
            if m:
                timestamp = _seconds(m.group(1), m.group(2))
                prefixed = True
                pos = m.end()
            else:
                m = _DELTA_RE.match(s, pos)
                if m:
                    delta = _seconds(m.group(1), m.group(2))
                    prefixed = True
                    pos = m.end()
                else:
                    m = _CTIME_RE.match(s, pos) or _HUMAN_RE.match(s, pos)
                    if m:
                        wallclock = m.group(1)
                        prefixed = True
                        pos = m.end()
        elif pos < len(s) and s[pos].isdigit():
            m = _LOST_BRACKET_RE.match(s, pos)
            if m:
                timestamp = _seconds(m.group(1), m.group(2))
                prefixed = True
                pos = m.end()
        if timestamp is not None:
            # journalctl -o short-monotonic: "[    8.490171] host kernel: msg"
            m = _MONO_HOST_RE.match(s, pos)
            if m:
                pos = m.end()
        m = _CALLER_RE.match(s, pos)
        if m:
            pos = m.end()
    text = s[pos:].strip()
    if not prefixed and raw[:1] == " " and "=" in text and text.split("=", 1)[0].isupper():
        meta = True  # /dev/kmsg dictionary continuation: " SUBSYSTEM=pci"
    return LogLine(number, text, timestamp, wallclock, delta, prefixed, quote, meta)


# --- message patterns -----------------------------------------------------------------------

_HEX = r"(?:0[xX])?[0-9a-fA-F]+"
_FAULT_RE = re.compile(
    # No leading "(DMAR:)*": searched, it would make a line of repeated "DMAR: " quadratic.
    r"(?:\[(?P<access>DMA\s+(?:Read|Write))"
    r"(?:\s+(?P<nopasid>NO_PASID|w/o\s+PASID)|\s+PASID\s+(?P<pasid1>" + _HEX + r"))?\]"
    r"|(?P<ir>\[INTR-REMAP\]|INTR-REMAP\s*:))"
    r"\s*Request\s+device\s+\[\[?\s*(?P<bus>(?:0[xX])?[0-9a-fA-F]{1,2})\s*:\s*"
    r"(?P<dev>(?:0[xX])?[0-9a-fA-F]{1,2})\s*\.\s*(?P<fn>[0-7])\]"
    r"(?:\s*PASID\s+(?P<pasid2>" + _HEX + r"))?"
    r"(?:\s*fault\s+(?:addr\s+(?P<addr>" + _HEX + r")|index\s+(?P<index>" + _HEX + r"))"
    r"(?:\s*(?:(?:DMAR|dmar|INTR-REMAP)\s*:\s*)*\[\s*fault\s+reason\s+(?P<reason>" + _HEX
    + r"h?)\s*\]\s*(?P<text>.*?))?)?\s*$"
)
# Something that starts a fault record: enough to hold the line back for a continuation.
_FAULT_HEAD_RE = re.compile(
    r"(?:DMAR|dmar)\s*:\s*(?:DMAR\s*:\s*)?(?:\[DMA\s+(?:Read|Write)[^\]]*\]|\[INTR-REMAP\]|INTR-REMAP\s*:)"
    r"|INTR-REMAP:\s*Request\s+device"
)
# The second line of the <= 4.0 two-line format, which carries its own record prefix.
_SECOND_LINE_RE = re.compile(r"(?:(?:DMAR|dmar|INTR-REMAP)\s*:\s*)+\[\s*fault\s+reason\s")

_KEYWORDS_RE = re.compile(
    r"DMAR|dmar|INTR-REMAP|AER|PCIe Bus Error|IOMMU|iommu|Firmware Bug|elfcorehdr|crashkernel"
    r"|Kernel panic|Trigger a crash|Starting new kernel|table entries|entry|pte level|not present"
    r"|Request device|\[DMA|Linux version|Invalidation|QI |AMD-Vi|Kernel command line|x2apic"
)

_SIMPLE: List[Tuple[str, re.Pattern[str]]] = [
    ("fault_status", re.compile(r"DRHD:\s*handling\s+fault\s+status\s+reg\s+(?P<value>[0-9a-fA-F]+)")),
    # "dmar_fault: 5 callbacks suppressed"; AMD-Vi's ratelimit in amd_iommu_report_page_fault().
    ("suppressed", re.compile(
        r"(?:dmar_fault|amd_iommu_report_page_fault|iommu_print_event):\s*(?P<value>\d+)\s+callbacks\s+suppressed")),
    ("fault_dump", re.compile(r"Dump\s+(?P<unit>\S+)\s+table\s+entries\s+for\s+IOVA\s+(?P<iova>" + _HEX + r")")),
    ("translation_preenabled", re.compile(r"Translation already enabled - trying to copy translation structures")),
    ("tables_copied", re.compile(r"Copied translation tables from previous kernel for (?P<unit>\S+)")),
    ("copy_failed", re.compile(r"Failed to copy translation tables from previous kernel for (?P<unit>\S+)")),
    ("translation_not_kdump", re.compile(r"Translation was enabled for (?P<unit>\S+) but we are not in kdump mode")),
    ("ir_copied", re.compile(r"Copied IR table for (?P<unit>\S+) from previous kernel")),
    ("ir_copy_failed", re.compile(r"Failed to copy IR table for (?P<unit>\S+) from previous kernel")),
    ("ir_not_kdump", re.compile(r"IRQ remapping was enabled on (?P<unit>\S+) but we are not in kdump mode")),
    ("sm_disallowed", re.compile(r"Scalable mode is disallowed")),
    # Context for triage's scenario (CONTEXT_KINDS: parsed, not listed by `log`): the
    # platform opt-in forcing the IOMMU on, and 5.0-5.x's word that intel_iommu=sm_on was
    # parsed.
    ("optin_forced", re.compile(r"DMAR: Intel-IOMMU force enabled due to platform opt in")),
    ("sm_param_on", re.compile(r"DMAR: Intel-IOMMU: scalable mode supported")),
    ("ir_disabled", re.compile(r"DMAR-IR: Disabled IRQ remapping")),
    # "DMAR: IOMMU disabled" (>= 4.x pr_fmt), "Intel-IOMMU: disabled" (2.6/3.x printk).
    ("iommu_disabled", re.compile(r"(?:(?:DMAR|dmar)\s*:\s*IOMMU|Intel-IOMMU:) disabled$")),
    # The last line of intel_iommu_init(): this kernel's remapping is now on.
    ("vtd_ready", re.compile(r"(?:DMAR|dmar)\s*:\s*Intel\(R\) Virtualization Technology for Directed I/O$")),
    ("iommu_enabled", re.compile(r"(?:(?:DMAR|dmar)\s*:\s*IOMMU|Intel-IOMMU:) enabled$")),
    # Only about the IOMMU: _simple_event checks the line also names DMAR/RMRR/DRHD/IOMMU/VT-d
    # (a ".*" on both sides here would be quadratic on long lines).
    ("firmware_bug", re.compile(r"\[Firmware (?:Bug|Warn)\]")),
    ("unit", re.compile(
        r"(?P<unit>dmar\d+)\s*:\s*reg_base_addr\s+(?P<reg_base_addr>[0-9a-fA-F]+)\s+ver\s+(?P<ver>\d+:\d+)"
        r"\s+cap\s+(?P<cap>[0-9a-fA-F]+)\s+ecap\s+(?P<ecap>[0-9a-fA-F]+)")),
    ("ir_mode", re.compile(r"DMAR-IR:\s*Enabled IRQ remapping in (?P<mode>x2apic|xapic) mode")),
    ("rmrr", re.compile(r"RMRR base:\s*(?P<base>" + _HEX + r")\s+end:\s*(?P<end>" + _HEX + r")")),
    ("drhd", re.compile(r"DRHD base:\s*(?P<base>" + _HEX + r")\s+flags:\s*(?P<flags>" + _HEX + r")")),
    ("qi_error", re.compile(
        r"VT-d detected Invalidation (?P<error>Queue|Time-out|Completion) Error:\s*"
        r"(?:Reason\s+(?P<reason>[0-9a-fA-F]+)|SID\s+(?P<sid>[0-9a-fA-F]+))")),
    ("qi_error", re.compile(r"Invalidation (?P<error>Queue|Time-out|Completion) Error \((?P<code>IQE|ITE|ICE)\) cleared")),
    ("qi_error", re.compile(
        r"QI (?P<which>HEAD|PRIOR):\s*(?P<desc>\S+)\s+qw0\s*=\s*(?P<qw0>" + _HEX + r"),\s*qw1\s*=\s*(?P<qw1>" + _HEX + r")")),
    ("hw_malfunction", re.compile(r"DMAR hardware is malfunctioning")),
    ("iommu_group", re.compile(r"^\S+ (?P<bdf>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): Adding to iommu group (?P<group>\d+)")),
    ("identity_map", re.compile(
        r"(?P<bdf>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]):? (?:DMAR: )?Setting identity map "
        r"(?:for device \S+ )?\[(?P<base>" + _HEX + r") - (?P<end>" + _HEX + r")\]")),
    # AMD IOMMU (AMD-Vi, drivers/iommu/amd/init.c; pr_fmt "AMD-Vi: "). The event-log lines
    # ("Event logged [...]") are decoded by _amdvi_event; these are the init/kdump lines.
    ("amdvi_translation_preenabled", re.compile(
        r"AMD-Vi: Translation is already enabled - trying to copy translation structures")),
    ("amdvi_tables_copied", re.compile(r"AMD-Vi: Copied DEV table from previous kernel")),
    ("amdvi_copy_failed", re.compile(r"AMD-Vi: Failed to copy DEV table from previous kernel")),
    ("amdvi_copy_refused", re.compile(
        r"AMD-Vi: (?P<why>The device table size of IOMMU:\s*\d+ is not expected!"
        r"|The address of old device table is above 4G, not trustworthy!"
        r"|Wrong old irq remapping flag: \S+|Failed to reserve domain ID \S+"
        r"|Failed to allocate memory for copying old device table!)")),
    ("amdvi_not_kdump", re.compile(
        r"AMD-Vi: Translation was enabled for IOMMU:\s*(?P<unit>\d+) but we are not in kdump mode")),
    # "AMD-Vi: Extended features (0x29d3, 0x0): PreF PPR GT IA GA HE" (>= 5.x; older kernels
    # print "AMD-Vi: Extended features: PreF PPR ..." without the values).
    ("amdvi_features", re.compile(
        r"AMD-Vi: Extended features(?: \((?P<efr>0x[0-9a-fA-F]+)(?:,\s*(?P<efr2>0x[0-9a-fA-F]+))?\))?:"
        r"(?P<names>[ \w\[\]]*)$")),
    ("amdvi_ir_enabled", re.compile(r"AMD-Vi: Interrupt remapping enabled")),
    ("amdvi_ir_disabled", re.compile(r"AMD-Vi: Disabling interrupt remapping")),
    # FW_BUG inside pr_err("%s: ...", fw_bug) prints "[Firmware Bug]: : IOAPIC[4] not in IVRS table".
    ("amdvi_firmware", re.compile(
        r"AMD-Vi: (?:\[Firmware (?:Bug|Warn)\]:\s*(?::\s*)?)?(?P<what>No southbridge IOAPIC found"
        r"|IOAPIC\[\d+\] not in IVRS table|IVRS invalid checksum|Invalid IVHD device type \S+"
        r"|Invalid HID\.|Invalid UID length\.|Found inconsistent EFR/EFR2\b.*|EFR mismatch\b.*"
        r"|Unsupported IVHD type \S+|IVRS table error: .*)")),
    ("amdvi_snp", re.compile(r"AMD-Vi: (?P<what>IOMMU SNP support enabled\.|SNP: .*)")),
    # "AMD-Vi: Found IOMMU at 0000:00:00.2 cap 0x40" (<= 5.x), "pci 0000:00:00.2: AMD-Vi: Found
    # IOMMU cap 0x40" (dev_printk, >= 5.x).
    ("amdvi_found", re.compile(
        r"(?:(?P<bdf>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): )?AMD-Vi: Found IOMMU"
        r"(?: at (?P<device>[0-9a-fA-F:.]+))? cap (?P<cap>0x[0-9a-fA-F]+)")),
    ("amdvi_dte", re.compile(r"AMD-Vi: DTE\[(?P<index>\d)\]: (?P<value>[0-9a-fA-F]{16})")),
    # The IOMMU's Control register printed after an ILLEGAL_DEV_TABLE_ENTRY (6.x
    # dump_dte_entry's caller: "iommu ivhd3: AMD-Vi: Control Reg : 0xc22000142148d").
    ("amdvi_control_reg", re.compile(r"AMD-Vi: Control Reg : (?P<value>0x[0-9a-fA-F]+)")),
    # The command buffer stopped: wait_on_sem()'s pr_alert (an invalidation never completed:
    # the AMD-Vi counterpart of VT-d's ITE) and __iommu_queue_command_sync()'s pr_err.
    ("amdvi_cmd_timeout", re.compile(r"AMD-Vi: (?P<what>Completion-Wait loop timed out|Command buffer timeout)")),
    # amd_iommu_int_thread(): events were lost ("AMD-Vi: IOMMU event log overflow", before
    # 5.x with the prefix in the format, after it through pr_fmt).
    ("amdvi_event_overflow", re.compile(r"AMD-Vi: IOMMU event log overflow")),
    # 6.x amd_iommu_report_page_fault(): a DMA fault of a device with no domain yet prints
    # "Event logged [Device not attached to domain properly]" then this line (two
    # pr_err_ratelimited calls); parse_log joins the two, this reads the second alone.
    ("amdvi_unattached", re.compile(
        r"AMD-Vi:\s+device=(?P<bdf>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) domain=(?P<domain>0x[0-9a-fA-F]+)")),
    ("boot", re.compile(r"^Linux version (?P<version>\S+)")),
    # The command line's text is the group "cmdline" (for triage; not in `log`'s details).
    ("kdump_kernel", re.compile(r"^Kernel command line: ?(?P<cmdline>(?=.*\belfcorehdr=(?P<elfcorehdr>\S+)).*)")),
    ("cmdline", re.compile(r"^Kernel command line: ?(?P<cmdline>.*)")),
    ("x2apic", re.compile(r"x2apic enabled|Switched APIC routing to (?:cluster|physical) x2apic")),
    ("crashkernel_reserved", re.compile(r"Reserving (?P<size>\d+MB) of (?:low )?memory at (?P<at>\S+) for crashkernel")),
    # 6.9 and later (kernel/crash_reserve.c): "crashkernel reserved: 0x... - 0x... (256 MB)", end exclusive
    ("crashkernel_reserved", re.compile(r"crashkernel reserved: (?P<start>0x[0-9a-fA-F]+) - (?P<end>0x[0-9a-fA-F]+)")),
    ("panic", re.compile(r"^Kernel panic - not syncing:\s*(?P<why>.*)")),  # not the "---[ end ..." trailer
    ("crash_trigger", re.compile(r"sysrq: Trigger a crash")),
    ("kexec", re.compile(r"kexec_core: Starting new kernel")),
    ("dump_entry", re.compile(
        r"(?P<entry>scalable mode root entry|root entry|context entry|pasid dir entry|pasid table entry\[\d+\]"
        r"|pte level)\s*:\s*(?:(?P<level>\d+),\s*pte value:\s*)?"
        r"(?:hi\s+(?P<hi>" + _HEX + r"),\s*low?\s+(?P<lo>" + _HEX + r")|(?P<value>" + _HEX + r"))\s*$")),
    ("dump_entry", re.compile(
        r"(?P<entry>(?:root|context|pasid directory|pasid|legacy mode page|scalable mode page|page) "
        r"table(?: entry)? is not present|pasid directory entry is not present|PTE not present at level \d+"
        r"|page table not present at level -?\d+)")),
]
_FW_IOMMU_RE = re.compile(r"DMAR|dmar|RMRR|DRHD|IOMMU|VT-d")
#: Kinds of the table that are context for triage's scenario (model/log.py), not IOMMU
#: events: analysis/log.py neither counts nor lists them.
CONTEXT_KINDS = frozenset({"cmdline", "x2apic", "optin_forced", "sm_param_on", "amdvi_control_reg"})
#: Groups a pattern captures for triage only (not copied into an event's details).
_CONTEXT_GROUPS = frozenset({"cmdline"})
#: The AMD-Vi init/kdump patterns (model/log.py's scenario markers keep their names).
AMDVI_LOG_PATTERNS: List[Tuple[str, re.Pattern[str]]] = [p for p in _SIMPLE if p[0].startswith("amdvi_")]
_AMD_FIRST = [p for p in _SIMPLE if p[0].startswith("amdvi_")] + [
    p for p in _SIMPLE if not p[0].startswith("amdvi_")]
_AER_RE = re.compile(
    r"^(?:(?P<driver>[\w.-]+)\s+)?(?P<dev>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s*:\s*"
    r"(?P<rest>(?:AER:|PCIe Bus Error).*)$"
)
# "error received: 0000:03:00.0" (<= 5.x), "error message received from 0000:00:1c.0" (>= 6.x),
# "error received: id=0300" (old: a requester id).
_AER_SRC_RE = re.compile(
    r"received(?::|\s+from)\s*(?:id=)?(?P<src>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]|[0-9a-fA-F]{4}\b)"
)
_AER_ERROR_RE = re.compile(r"[Ee]rror|severity=|Uncorrect|Corrected")
_AER_SEV_RE = re.compile(r"severity=(?P<sev>[A-Za-z ()-]+?),\s*type=(?P<type>[^,]+)")
_INT_DETAILS = frozenset({"efr", "efr2", "reg_base_addr", "cap", "ecap", "base", "end", "hi", "lo", "value", "iova", "flags",
                          "level", "sid", "qw0", "qw1", "reason", "domain"})

_MAX_HELD = 4  # lines a wrapped fault may span
_MAX_LINE = 8192  # characters of one input line that are looked at


def _hexint(tok: str) -> int:
    return int(tok, 16)


def _bdf(bus: str, dev: str, fn: str) -> str:
    return f"0000:{_hexint(bus):02x}:{_hexint(dev):02x}.{int(fn)}"


def _resolve_reason(tok: str, printed: Optional[str], ir: bool) -> Tuple[int, List[str]]:
    """The reason code, choosing the base by format and checking the printed text."""
    warnings: List[str] = []
    t = tok.lower()
    if t.startswith("0x"):
        return int(t, 16), warnings
    if t.endswith("h"):
        return int(t[:-1], 16), warnings
    dec = int(t, 10) if t.isdigit() else None
    alt = int(t, 16)
    first = dec if dec is not None else alt
    if printed and dec is not None and dec != alt:
        norm = " ".join(printed.split())
        ok_dec = _text_agrees(fault_reason_text(dec)[1], norm)
        ok_hex = _text_agrees(fault_reason_text(alt)[1], norm)
        if ok_hex and not ok_dec:
            warnings.append(f"fault reason {tok} read as hex 0x{alt:02x}: only that matches the printed text")
            return alt, warnings
    if dec is None:
        warnings.append(f"fault reason {tok} is not decimal; read as hex")
    return first, warnings


def _text_agrees(table: str, printed: str) -> bool:
    if not printed:
        return False
    table, printed = table.lower(), printed.lower()
    return table == printed or table.startswith(printed) or printed.startswith(table)


def _fault_event(first: LogLine, last: LogLine, joined: str, m: re.Match[str]) -> LogEvent:
    ir = m.group("ir") is not None
    warnings: List[str] = []
    bdf = _bdf(m.group("bus"), m.group("dev"), m.group("fn"))
    access = None
    if m.group("access"):
        access = "read" if m.group("access").split()[-1] == "Read" else "write"
    pasid: Optional[int] = None
    ptok = m.group("pasid1") or m.group("pasid2")
    if ptok is not None:
        pv = _hexint(ptok)
        pasid = None if pv == 0xFFFFFFFF else pv
    address = _hexint(m.group("addr")) if m.group("addr") else None
    index = _hexint(m.group("index")) if m.group("index") else None
    code: Optional[int] = None
    reason: Optional[str] = None
    table: Optional[str] = None
    if m.group("reason") is not None:
        reason = " ".join((m.group("text") or "").split()) or None
        code, w = _resolve_reason(m.group("reason"), reason, ir)
        warnings += w
        table = fault_reason_text(code)[1]
        if reason and not _text_agrees(table, reason):
            warnings.append(f"printed reason {reason!r} differs from the kernel table's {table!r}")
    else:
        warnings.append("fault record cut short: no fault reason")
    if m.group("addr") is None and m.group("index") is None:
        warnings.append("fault record cut short: no fault address or index")
    details: Dict[str, Any] = {"segment_assumed": True}
    return LogEvent(
        line=first.number, kind="ir_fault" if ir else "dma_fault", text=joined,
        end_line=last.number, timestamp=first.timestamp, wallclock=first.wallclock,
        bdf=bdf, access=access, address=address, fault_index=index, reason_code=code,
        reason=reason, reason_table=table, pasid=pasid, details=details,
        warnings=tuple(warnings),
    )


# AMD-Vi event log (drivers/iommu/amd/iommu.c, iommu_print_event()):
#   "AMD-Vi: Event logged [IO_PAGE_FAULT device=03:00.0 domain=0x000f address=0x.. flags=0x0010]"
#   (<= 4.x), "<drv> 0000:06:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0010
#   address=0xbb0e3400 flags=0x0020]" (dev_err, >= 5.x), "device=0000:06:00.0" with the
#   segment (>= 6.0), "pasid=0x..." (>= 5.12), and the other events:
#   INVALID_DEVICE_REQUEST, ILLEGAL_DEV_TABLE_ENTRY, DEV_TAB_HARDWARE_ERROR,
#   PAGE_TAB_HARDWARE_ERROR, ILLEGAL_COMMAND_ERROR, COMMAND_HARDWARE_ERROR,
#   IOTLB_INV_TIMEOUT, INVALID_PPR_REQUEST, RMP_PAGE_FAULT, RMP_HW_ERROR, UNKNOWN.
_AMDVI_EVENT_RE = re.compile(
    r"(?:(?P<bdf>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): )?AMD-Vi: Event logged "
    r"\[\s*(?P<event>Device not attached to domain properly|[A-Z_0-9]+\b)(?P<rest>[^\]]{0,400})")
#: Events a device's own DMA request raises (EVENT_TYPE_IO_FAULT, _ILL_DEV, _INV_DEV_REQ):
#: triage ties them to the device like a DMAR fault (model/log.py fault markers).
AMDVI_DMA_EVENTS = ("IO_PAGE_FAULT", "ILLEGAL_DEV_TABLE_ENTRY", "INVALID_DEVICE_REQUEST")
#: 6.x's IO_PAGE_FAULT of a device the driver had not attached to a domain (no address printed)
AMDVI_UNATTACHED = "Device not attached to domain properly"
_AMDVI_CONT_RE = re.compile(r"[A-Z][A-Z_0-9]+ ")
_AMDVI_UNATTACHED_TAIL_RE = re.compile(r"device=[0-9a-fA-F:.]+ domain=0x[0-9a-fA-F]+")
_AMDVI_FIELD_RE = re.compile(r"(?P<k>[a-z_\[\]0-9]+)=(?P<v>0[xX][0-9a-fA-F]+|[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,2}){1,2}\.[0-7])")
#: EVENT_TYPE_* (amd_iommu_types.h) of each printed event name.
AMDVI_EVENT_CODES: Dict[str, int] = {
    "ILLEGAL_DEV_TABLE_ENTRY": 0x1, "IO_PAGE_FAULT": 0x2, "DEV_TAB_HARDWARE_ERROR": 0x3,
    "PAGE_TAB_HARDWARE_ERROR": 0x4, "ILLEGAL_COMMAND_ERROR": 0x5, "COMMAND_HARDWARE_ERROR": 0x6,
    "IOTLB_INV_TIMEOUT": 0x7, "INVALID_DEVICE_REQUEST": 0x8, "INVALID_PPR_REQUEST": 0x9,
    "RMP_PAGE_FAULT": 0xD, "RMP_HW_ERROR": 0xE,
}
# IO_PAGE_FAULT flags (AMD IOMMU spec, "IO_PAGE_FAULT Event"): GN NX US I PR RW PE RZ TR.
AMDVI_FAULT_FLAGS: Tuple[Tuple[int, str], ...] = (
    (0x001, "GN"), (0x002, "NX"), (0x004, "US"), (0x008, "I"), (0x010, "PR"), (0x020, "RW"),
    (0x040, "PE"), (0x080, "RZ"), (0x100, "TR"),
)


def _amdvi_event(ln: LogLine, alone: bool = True) -> Optional[LogEvent]:
    """The event of one AMD-Vi "Event logged [...]" line. ``alone`` False: None for the
    head of the two-line unattached-device fault whose device= line is not joined yet
    (parse_log holds it for :func:`_join_wrapped`)."""
    m = _AMDVI_EVENT_RE.search(ln.text)
    if not m:
        return None
    event = m.group("event")
    rest = m.group("rest")
    unattached = event == AMDVI_UNATTACHED
    if unattached:
        tail = _AMDVI_UNATTACHED_TAIL_RE.search(ln.text, m.end())
        if tail is None and not alone:
            return None
        rest = tail.group(0) if tail is not None else ""
        event = "IO_PAGE_FAULT"
    fields = {f.group("k"): f.group("v") for f in _AMDVI_FIELD_RE.finditer(rest)}
    details: Dict[str, Any] = {"event": event}
    if unattached:
        details["not_attached"] = True
    warnings: List[str] = []
    bdf = m.group("bdf").lower() if m.group("bdf") else None
    dev = fields.get("device")
    if bdf is None and dev is not None and not dev.lower().startswith("0x"):
        parts = dev.lower().split(":")
        bdf = dev.lower() if len(parts) == 3 else f"0000:{dev.lower()}"
        if len(parts) == 2:
            details["segment_assumed"] = True
    address = None
    for key in ("domain", "pasid", "flags", "vmg_tag", "gpa", "flags_rmp"):
        if key in fields and fields[key].lower().startswith("0x"):
            details[key] = int(fields[key], 16)
    if "address" in fields and fields["address"].lower().startswith("0x"):
        address = int(fields["address"], 16)
    elif "gpa" in details:
        address = details["gpa"]
    access = None
    reason = event
    if unattached:
        reason = "IO_PAGE_FAULT (device not attached to a domain yet)"
    flags = details.get("flags")
    if isinstance(flags, int) and event == "IO_PAGE_FAULT":
        names = [n for bit, n in AMDVI_FAULT_FLAGS if flags & bit]
        details["flag_names"] = names
        access = "write" if flags & 0x020 else "read"
        if flags & 0x080:
            why = "reserved bit set in a table entry"
        elif flags & 0x010 and flags & 0x040:
            why = "permission violation"
        elif flags & 0x010:
            why = "translation present"
        else:
            why = "page not present"
        if flags & 0x008:
            why = "interrupt request: " + why
        reason = f"IO_PAGE_FAULT ({why})"
    if event not in AMDVI_EVENT_CODES and event != "UNKNOWN":
        warnings.append(f"AMD-Vi event {event!r} is not one the kernel prints")
    return LogEvent(ln.number, "amd_vi_fault", ln.text, ln.number, ln.timestamp, ln.wallclock,
                    bdf=bdf, access=access, address=address,
                    reason_code=AMDVI_EVENT_CODES.get(event), reason=reason,
                    reason_table=event if event in AMDVI_EVENT_CODES else None,
                    pasid=details.get("pasid"), details=details, warnings=tuple(warnings))


def message_match(ln: LogLine) -> Optional[Tuple[str, Optional[re.Match[str]]]]:
    """The kind of one normalised message by the pattern table, and the match of its
    pattern: the one reading of a line, used by :func:`parse_log` (``kdumptool log``) and by
    triage's scenario markers (:func:`kdumptool.model.log.scan_log_text`) alike. AER lines
    and AMD-Vi event lines give ``("aer", match)`` / ``("amd_vi_event", None)``: their own
    decoders read them. None when the line is none of these."""
    text = ln.text
    if not _KEYWORDS_RE.search(text):
        return None
    if "AMD-Vi: Event logged" in text and _amdvi_event(ln) is not None:
        return "amd_vi_event", None
    m2 = _aer_match(text)
    if m2 is not None:
        return "aer", m2
    return _table_match(text)


def _aer_match(text: str) -> Optional[re.Match[str]]:
    m = _AER_RE.match(text)
    return m if m and _AER_ERROR_RE.search(m.group("rest")) else None


def _table_match(text: str) -> Optional[Tuple[str, re.Match[str]]]:
    """The first pattern of the table that matches (AMD's own lines first for an AMD-Vi
    line: VT-d's "Translation was enabled for ..." would take them)."""
    for kind, rx in _AMD_FIRST if "AMD-Vi" in text else _SIMPLE:
        m = rx.search(text)
        if not m:
            continue
        if kind == "firmware_bug" and not _FW_IOMMU_RE.search(text):
            continue
        return kind, m
    return None


def device_line(ln: LogLine) -> Optional[Tuple[str, str]]:
    """(driver, ``SSSS:BB:DD.F``) when a driver speaks for a PCI device in this line
    (``e1000e 0000:00:02.0: ...``); None for the bus's own lines (``pci``, ``acpi``)."""
    m = _DEVLINE_RE.match(ln.text)
    if m is None or m.group(1) in NOT_DRIVERS:
        return None
    return m.group(1), m.group(2).lower()


def _simple_event(ln: LogLine) -> Optional[LogEvent]:
    text = ln.text
    if not _KEYWORDS_RE.search(text):
        return None
    if "AMD-Vi: Event logged" in text:
        if AMDVI_UNATTACHED in text and _amdvi_event(ln, alone=False) is None:
            return None  # held: its device= line follows
        ev = _amdvi_event(ln)
        if ev is not None:
            return ev
    m2 = _aer_match(text)
    if m2 is not None:
        rest = m2.group("rest")
        bdf = m2.group("dev").lower()
        details: Dict[str, Any] = {"reporter": bdf}
        if m2.group("driver"):
            details["driver"] = m2.group("driver")
        src = _AER_SRC_RE.search(rest)
        if src and ":" in src.group("src"):
            bdf = src.group("src").lower()
        elif src:
            sid = int(src.group("src"), 16)
            bdf = f"{bdf[:4]}:{sid >> 8:02x}:{(sid >> 3) & 0x1F:02x}.{sid & 7}"
        sev = _AER_SEV_RE.search(rest)
        if sev:
            details["severity"] = sev.group("sev").strip()
            details["type"] = sev.group("type").strip()
        return LogEvent(ln.number, "aer", text, ln.number, ln.timestamp, ln.wallclock, bdf=bdf,
                        details=details)
    hit = _table_match(text)
    if hit is not None:
        kind, m = hit
        d: Dict[str, Any] = {}
        unit = None
        value = None
        address = None
        for k, v in m.groupdict().items():
            if v is None or k in _CONTEXT_GROUPS:
                continue
            if k == "unit":
                unit = v
            elif k == "value" and kind in ("fault_status", "suppressed"):
                value = int(v, 16 if kind == "fault_status" else 10)
            elif k == "iova":
                address = _hexint(v)
            elif k in _INT_DETAILS:
                d[k] = int(v, 10) if k == "level" else _hexint(v)
            elif k == "group":
                value = int(v)
            elif k == "bdf":
                d[k] = v.lower()
            else:
                d[k] = v
        if kind == "unit":
            unit = m.group("unit")
        sid_bdf: Optional[str] = d.pop("bdf", None)
        dev_tok = d.pop("device", None)
        if sid_bdf is None and isinstance(dev_tok, str):
            parts_ = dev_tok.lower().split(":")
            sid_bdf = dev_tok.lower() if len(parts_) == 3 else "0000:" + dev_tok.lower() if len(parts_) == 2 else None
        sid_val: Any = d.get("sid")
        if isinstance(sid_val, int) and sid_val not in (0, 0xFFFF) and sid_val <= 0xFFFF:
            # A source id is bus:devfn; 0 means "not recorded", ffff the all-ones of a dead device.
            sid_bdf = f"0000:{sid_val >> 8:02x}:{(sid_val >> 3) & 0x1F:02x}.{sid_val & 7}"
        return LogEvent(ln.number, kind, text, ln.number, ln.timestamp, ln.wallclock, bdf=sid_bdf,
                        address=address, unit=unit, value=value, details=d)
    return None


class _Pending:
    __slots__ = ("lines", "joined", "match")

    def __init__(self, ln: LogLine) -> None:
        self.lines = [ln]
        self.joined = ln.text
        self.match: Optional[re.Match[str]] = None


def parse_log(lines: Iterable[str]) -> Iterator[LogEvent]:
    """Events from kernel log lines (any carrier: see :func:`normalise_line`).

    Streaming: at most ``_MAX_HELD`` lines are held back, so a log of any length runs in
    constant memory. Never raises on odd input: a fault record cut short still gives an
    event, with what was read and a warning. Lines may be str or bytes (decoded as UTF-8
    with replacement); a string holding several lines is split.
    """
    pending: Optional[_Pending] = None
    held: Optional[LogLine] = None  # a keyword line that said nothing yet: maybe wrapped
    drivers_seen: Set[Tuple[str, str]] = set()
    number = 0
    for raw in lines:
        number += 1
        if not isinstance(raw, str):
            raw = bytes(raw).decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
        body = raw.rstrip("\r\n")
        parts = body.split("\n") if "\n" in body else [body]
        for part in parts:
            if len(part) > _MAX_LINE:
                part = part[:_MAX_LINE]  # printk lines are < 1 KiB: bound the regex work
            ln_dev: Optional[LogLine] = None
            if _DEVLINE_HINT_RE.search(part) and len(drivers_seen) < _MAX_DRIVERS:
                ln_dev = normalise_line(part, number)
                dev = _driver_event(ln_dev, drivers_seen)
                if dev is not None:
                    yield dev
            if pending is None and held is None and not _KEYWORDS_RE.search(part):
                continue  # fast path: nothing we know starts here (the message is a substring)
            ln = ln_dev if ln_dev is not None else normalise_line(part, number)
            if ln.meta:
                continue
            if held is not None:
                ev = _join_wrapped(held, ln)
                if ev is None and AMDVI_UNATTACHED in held.text:
                    lone = _amdvi_event(held)  # its device= line never came (rate limited)
                    if lone is not None:
                        yield lone
                held = None
                if ev is not None:
                    yield ev
                    continue
            if pending is not None:
                status, out = _continue(pending, ln)
                yield from out
                if status == _WAIT:
                    continue
                pending = None
                if status == _DONE:
                    continue
            pending, out = _start(ln)
            yield from out
            if pending is None and not out and ln.text and _KEYWORDS_RE.search(ln.text):
                held = ln
    if held is not None and AMDVI_UNATTACHED in held.text:
        lone = _amdvi_event(held)
        if lone is not None:
            yield lone
    if pending is not None:
        yield from _flush(pending)


# "e1000e 0000:00:02.0: ..." -- dev_printk() prints the bound driver's name, or the bus
# name ("pci") when no driver is bound; netdev_printk() adds the interface:
# "e1000 0000:03:01.0 eth1: ...". A cheap hint first: the regex below is slower.
_DEVLINE_HINT_RE = re.compile(r":[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7][: ]")
_DEVLINE_RE = re.compile(r"([\w.-]+) ([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])(?: [\w.-]+)?: ")
#: Bus and firmware names dev_printk() prints for a device no driver speaks for.
NOT_DRIVERS = frozenset({"pci", "PCI", "pci_bus", "acpi", "ACPI"})
_MAX_DRIVERS = 4096


def _driver_event(ln: LogLine, seen: Set[Tuple[str, str]]) -> Optional[LogEvent]:
    """A ``driver`` event the first time a driver speaks for a PCI device."""
    number = ln.number
    key = device_line(ln)
    if key is None or key in seen:
        return None
    seen.add(key)
    return LogEvent(number, "driver", ln.text, number, ln.timestamp, ln.wallclock, bdf=key[1],
                    details={"driver": key[0]})


def _join_wrapped(held: LogLine, ln: LogLine) -> Optional[LogEvent]:
    """A one-line message that a mailer wrapped: ``DMAR: DRHD: handling fault`` +
    ``status reg 2``. Joined only when the next line is a bare continuation, says
    nothing on its own, and the two together match (so the match spans the break).

    AMD-Vi's event line of 2.6-4.x kernels came out of two printk calls ("AMD-Vi: Event
    logged [" then "IO_PAGE_FAULT device=..."), which some kernels printed as two records,
    each with its timestamp: that continuation is joined even though it is prefixed."""
    if held.text.rstrip().endswith(AMDVI_UNATTACHED + "]"):
        m = _AMDVI_UNATTACHED_TAIL_RE.search(ln.text) if "AMD-Vi:" in ln.text else None
        if m is None:
            return None
        joined = LogLine(held.number, held.text.rstrip() + " " + m.group(0), held.timestamp,
                         held.wallclock, held.delta, held.prefixed, held.quote)
        ev = _amdvi_event(joined)
        return None if ev is None else replace(ev, end_line=ln.number)
    amd_split = (held.text.rstrip().endswith("AMD-Vi: Event logged [")
                 and _AMDVI_CONT_RE.match(ln.text) is not None)
    if amd_split:
        joined = LogLine(held.number, held.text.rstrip() + ln.text, held.timestamp,
                         held.wallclock, held.delta, held.prefixed, held.quote)
        ev = _amdvi_event(joined)
        return None if ev is None else replace(ev, end_line=ln.number)
    if ln.prefixed or not ln.text or _simple_event(ln) is not None:
        return None
    if "Request device" in ln.text or _FAULT_HEAD_RE.search(ln.text):
        return None
    joined = LogLine(held.number, held.text + " " + ln.text, held.timestamp, held.wallclock,
                     held.delta, held.prefixed, held.quote)
    ev = _simple_event(joined)
    if ev is None:
        return None
    return LogEvent(
        line=ev.line, kind=ev.kind, text=ev.text, end_line=ln.number, timestamp=ev.timestamp,
        wallclock=ev.wallclock, bdf=ev.bdf, address=ev.address, unit=ev.unit, value=ev.value,
        details=ev.details, warnings=ev.warnings,
    )


_WAIT, _DONE, _AGAIN = "wait", "done", "again"


def _start(ln: LogLine) -> Tuple[Optional[_Pending], List[LogEvent]]:
    text = ln.text
    if "Request device" in text or "INTR-REMAP" in text or "[DMA" in text:
        head = _FAULT_HEAD_RE.search(text)
        m = _FAULT_RE.search(text)
        if head is not None or m is not None:
            p = _Pending(ln)
            if m is not None and m.group("reason") is not None:
                p.match = m
                if _reason_complete(m):
                    return None, [_fault_event(ln, ln, text, m)]
            return p, []
    ev = _simple_event(ln)
    return None, [ev] if ev is not None else []


def _table_for(m: re.Match[str]) -> Tuple[str, str]:
    printed = " ".join((m.group("text") or "").split())
    code, _ = _resolve_reason(m.group("reason"), printed, m.group("ir") is not None)
    return printed, fault_reason_text(code)[1]


def _reason_complete(m: re.Match[str]) -> bool:
    """False when the printed text is a strict prefix of the table text (a wrapped line)."""
    printed, table = _table_for(m)
    printed, table = printed.lower(), table.lower()
    return not (printed != table and table.startswith(printed))


def _continue(p: _Pending, ln: LogLine) -> Tuple[str, List[LogEvent]]:
    """Offer the next line to a held-back fault record.

    ``_WAIT``: consumed, the record waits for more; ``_DONE``: consumed and emitted;
    ``_AGAIN``: not consumed (the record was emitted as it stood), handle the line anew.
    """
    text = ln.text
    bare = not ln.prefixed and text != ""
    if p.match is not None:
        # A complete record whose reason text may go on in this line (mail wrapping).
        if bare:
            printed, table = _table_for(p.match)
            cand = " ".join((printed + " " + text).split())
            table, cand = table.lower(), cand.lower()
            if table == cand or (table.startswith(cand + " ") and len(p.lines) < _MAX_HELD):
                p.lines.append(ln)
                p.joined = p.joined + " " + text
                m = _FAULT_RE.search(p.joined)
                if m is not None:
                    p.match = m
                if table != cand:
                    return _WAIT, []
                return _DONE, _flush(p)
        return _AGAIN, _flush(p)
    second = _SECOND_LINE_RE.match(text) is not None
    if text and not second and _FAULT_HEAD_RE.search(text):
        return _AGAIN, _flush(p)  # the next record starts here: this one was cut short
    if text and (bare or second) and len(p.lines) < _MAX_HELD:
        joined = p.joined + " " + text
        m = _FAULT_RE.search(joined)
        if m is not None and (
            m.group("reason") is not None
            or m.group("addr") is not None
            or m.group("index") is not None
            or _FAULT_RE.search(p.joined) is None
        ):
            p.lines.append(ln)
            p.joined = joined
            if m.group("reason") is not None:
                p.match = m
                if _reason_complete(m):
                    return _DONE, _flush(p)
            return _WAIT, []
    return _AGAIN, _flush(p)


def _flush(p: _Pending) -> List[LogEvent]:
    m = p.match or _FAULT_RE.search(p.joined)
    if m is None:
        return []
    return [_fault_event(p.lines[0], p.lines[-1], " ".join(p.joined.split()), m)]
