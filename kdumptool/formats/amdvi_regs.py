"""AMD-Vi IOMMU MMIO registers, decoded field by field.

Reference: AMD I/O Virtualization Technology (IOMMU) Specification #48882 rev 3.08,
section 3.4 "IOMMU MMIO Registers": Device Table Base (MMIO 0000h), Command Buffer Base
(0008h), Event Log Base (0010h), Control (0018h), Exclusion Base/Limit (0020h/0028h),
Extended Feature (0030h), PPR Log Base (0038h), Extended Feature 2 (01A0h), Command
Buffer Head/Tail (2000h/2008h), Event Log Head/Tail (2010h/2018h), Status (2020h), PPR
Log Head/Tail (2030h/2038h). Offsets and bit names follow Linux
``drivers/iommu/amd/amd_iommu_types.h`` (``MMIO_*_OFFSET``, ``CONTROL_*``,
``MMIO_STATUS_*_MASK``, ``FEATURE_*``) so that a grep of the kernel finds them.

Input is a mapping of register name (the kernel's ``MMIO_<name>_OFFSET`` without prefix
and suffix, e.g. ``DEV_TABLE``, ``CONTROL``, ``EVT_HEAD``) to its integer value, as read
through /dev/mem or kept in a snapshot's ``_kdumptool/amdvi_registers.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from kdumptool.errors import DecodeError

#: name -> (MMIO offset, width in bits), as the kernel reads them (readq / readl).
REGISTERS: Dict[str, Tuple[int, int]] = {
    "DEV_TABLE": (0x0000, 64),
    "CMD_BUF": (0x0008, 64),
    "EVT_BUF": (0x0010, 64),
    "CONTROL": (0x0018, 64),
    "EXCL_BASE": (0x0020, 64),
    "EXCL_LIMIT": (0x0028, 64),
    "EXT_FEATURES": (0x0030, 64),
    "PPR_LOG": (0x0038, 64),
    "GA_LOG_BASE": (0x00E0, 64),
    "GA_LOG_TAIL": (0x00E8, 64),
    "EXT_FEATURES2": (0x01A0, 64),
    "CMD_HEAD": (0x2000, 32),
    "CMD_TAIL": (0x2008, 32),
    "EVT_HEAD": (0x2010, 32),
    "EVT_TAIL": (0x2018, 32),
    "STATUS": (0x2020, 32),
    "PPR_HEAD": (0x2030, 32),
    "PPR_TAIL": (0x2038, 32),
}
#: The registers every decode needs; the others are optional (older snapshots).
REQUIRED = ("DEV_TABLE", "CONTROL")

# Control register bits (CONTROL_* in amd_iommu_types.h): bit, kernel name, spec name.
CONTROL_BITS: Tuple[Tuple[int, str, str], ...] = (
    (0, "IOMMU_EN", "IommuEn"),
    (1, "HT_TUN_EN", "HtTunEn"),
    (2, "EVT_LOG_EN", "EventLogEn"),
    (3, "EVT_INT_EN", "EventIntEn"),
    (4, "COMWAIT_EN", "ComWaitIntEn"),
    (8, "PASSPW_EN", "PassPW"),
    (9, "RESPASSPW_EN", "ResPassPW"),
    (10, "COHERENT_EN", "Coherent"),
    (11, "ISOC_EN", "Isoc"),
    (12, "CMDBUF_EN", "CmdBufEn"),
    (13, "PPRLOG_EN", "PPRLogEn"),
    (14, "PPRINT_EN", "PprIntEn"),
    (15, "PPR_EN", "PPREn"),
    (16, "GT_EN", "GTEn"),
    (17, "GA_EN", "GAEn"),
    (25, "GAM_EN", "GAMEn"),
    (28, "GALOG_EN", "GALogEn"),
    (29, "GAINT_EN", "GAIntEn"),
    (45, "EPH_EN", "EPHEn"),
    (50, "XT_EN", "XTEn"),
    (51, "INTCAPXT_EN", "IntCapXTEn"),
    (58, "GCR3TRPMODE", "GCR3TRPMode"),
    (59, "IRTCACHEDIS", "IRTCacheDis"),
    (61, "SNPAVIC_EN", "SNPAVICEn"),
)
CONTROL_IOMMU_EN = 0
CONTROL_INV_TIMEOUT = 5
#: CTRL_INV_TO_* values of the 3-bit InvTimeOut field.
INV_TIMEOUTS = ("none", "1 ms", "10 ms", "100 ms", "1 s", "10 s", "100 s", "reserved")

# Status register bits (MMIO_STATUS_*_MASK; bit 4 CmdBufRun from the spec).
STATUS_BITS: Tuple[Tuple[int, str], ...] = (
    (0, "EventOverflow"),
    (1, "EventLogInt"),
    (2, "ComWaitInt"),
    (3, "EventLogRun"),
    (4, "CmdBufRun"),
    (5, "PprOverflow"),
    (6, "PprInt"),
    (7, "PprLogRun"),
    (8, "GALogRun"),
    (9, "GALOverflow"),
    (10, "GAInt"),
)

# Extended Feature Register single bits (FEATURE_*). The first ten are the names Linux
# prints in "AMD-Vi: Extended features (...): PreF PPR ..." (print_iommu_info).
EFR_BITS: Tuple[Tuple[int, str], ...] = (
    (0, "PreF"), (1, "PPR"), (2, "X2APIC"), (3, "NX"), (4, "GT"), (6, "IA"), (7, "GA"),
    (8, "HE"), (9, "PC"), (21, "GA_vAPIC"), (48, "GIOSup"), (49, "HASup"), (50, "EPHSup"),
    (52, "HDSup"), (63, "SNP"),
)
#: Linux print_iommu_info()'s feat_str[] for EFR bits 0-9.
KERNEL_FEAT_STR = ("PreF", "PPR", "X2APIC", "NX", "GT", "[5]", "IA", "GA", "HE", "PC")
FEATURE_SNP = 1 << 63
FEATURE_GT = 1 << 4


def _bits(x: int, hi: int, lo: int) -> int:
    return (x >> lo) & ((1 << (hi - lo + 1)) - 1)


def _base(x: int) -> int:
    """Bits 51:12 of a base register: a 4 KiB aligned physical address."""
    return x & 0x000F_FFFF_FFFF_F000


@dataclass(frozen=True)
class Efr:
    """Extended Feature Register (MMIO 0030h)."""

    value: int

    @property
    def names(self) -> List[str]:
        return [n for b, n in EFR_BITS if self.value >> b & 1]

    @property
    def hats(self) -> int:
        """Host Address Translation Size, bits 11:10: the v1 page table may have
        4 + HATS levels (3: v1 tables not supported, Linux FEATURE_HATS)."""
        return _bits(self.value, 11, 10)

    @property
    def gats(self) -> int:
        return _bits(self.value, 13, 12)

    @property
    def glx(self) -> int:
        return _bits(self.value, 15, 14)

    @property
    def pasmax(self) -> int:
        return _bits(self.value, 36, 32)

    @property
    def snp(self) -> bool:
        return bool(self.value & FEATURE_SNP)

    def kernel_text(self, efr2: int = 0) -> str:
        """What Linux prints (print_iommu_info):
        ``Extended features (0x..., 0x...): PreF PPR ...``."""
        names = [n for i, n in enumerate(KERNEL_FEAT_STR) if self.value >> i & 1]
        if self.value & (1 << 21):
            names.append("GA_vAPIC")
        if self.snp:
            names.append("SNP")
        return f"Extended features ({self.value:#x}, {efr2:#x}):" + "".join(f" {n}" for n in names)


@dataclass(frozen=True)
class LogBase:
    """A Command Buffer / Event Log / PPR Log base register: address and length."""

    value: int

    @property
    def base(self) -> int:
        return _base(self.value)

    @property
    def length_code(self) -> int:
        """ComLen/EventLen/PPRLen, bits 59:56: 2^n entries (8 or more; Linux 9 = 512)."""
        return _bits(self.value, 59, 56)

    @property
    def entries(self) -> int:
        return 1 << self.length_code if self.length_code >= 8 else 0

    @property
    def size(self) -> int:
        return 16 * self.entries


@dataclass(frozen=True)
class AmdViRegisters:
    """One IOMMU's registers. ``raw`` keeps every register that was read."""

    raw: Dict[str, int]

    def get(self, name: str) -> Optional[int]:
        return self.raw.get(name)

    # Device Table Base (MMIO 0000h): 51:12 base, 8:0 size in 4 KiB pages minus 1.
    @property
    def dev_table_base(self) -> int:
        return _base(self.raw["DEV_TABLE"])

    @property
    def dev_table_size(self) -> int:
        """Bytes: (Size + 1) 4 KiB pages (Linux __copy_device_table)."""
        return (_bits(self.raw["DEV_TABLE"], 8, 0) + 1) << 12

    @property
    def dev_table_entries(self) -> int:
        return self.dev_table_size // 32

    @property
    def control(self) -> int:
        return self.raw["CONTROL"]

    def control_on(self, bit: int) -> bool:
        return bool(self.control >> bit & 1)

    @property
    def control_names(self) -> List[str]:
        return [spec for b, _k, spec in CONTROL_BITS if self.control >> b & 1]

    @property
    def iommu_en(self) -> bool:
        return self.control_on(0)

    @property
    def ht_tun_en(self) -> bool:
        return self.control_on(1)

    @property
    def event_log_en(self) -> bool:
        return self.control_on(2)

    @property
    def cmd_buf_en(self) -> bool:
        return self.control_on(12)

    @property
    def inv_timeout(self) -> str:
        return INV_TIMEOUTS[_bits(self.control, 7, 5)]

    @property
    def status(self) -> Optional[int]:
        return self.raw.get("STATUS")

    @property
    def status_names(self) -> List[str]:
        s = self.status
        return [] if s is None else [n for b, n in STATUS_BITS if s >> b & 1]

    @property
    def efr(self) -> Optional[Efr]:
        v = self.raw.get("EXT_FEATURES")
        return None if v is None else Efr(v)

    def log(self, name: str) -> Optional[LogBase]:
        v = self.raw.get(name)
        return None if v is None else LogBase(v)

    def ring(self, base: str, head: str, tail: str) -> Optional[Tuple[int, int, int]]:
        """(head index, tail index, entries pending) of a 16-byte-entry ring; None
        when a register is missing. Head/tail hold a byte offset in bits 18:4."""
        lb, h, t = self.log(base), self.raw.get(head), self.raw.get(tail)
        if lb is None or h is None or t is None or not lb.entries:
            return None
        hi, ti = _bits(h, 18, 4) % lb.entries, _bits(t, 18, 4) % lb.entries
        return hi, ti, (ti - hi) % lb.entries

    @property
    def exclusion(self) -> Optional[Tuple[bool, bool, int, int]]:
        """(ExEn, Allow, base, limit) of the exclusion range registers."""
        b, lim = self.raw.get("EXCL_BASE"), self.raw.get("EXCL_LIMIT")
        if b is None or lim is None:
            return None
        return bool(b & 1), bool(b & 2), _base(b), _base(lim) | 0xFFF


def decode_amdvi_registers(values: Mapping[str, Any], name: str = "registers") -> AmdViRegisters:
    """Check and wrap a register mapping. Raises DecodeError when a required register
    is missing or a value is not an integer of its width."""
    if not isinstance(values, Mapping):
        raise DecodeError(name, None, "registers are not a mapping")
    raw: Dict[str, int] = {}
    for key, val in values.items():
        if key not in REGISTERS:
            continue
        width = REGISTERS[key][1]
        if not isinstance(val, int) or isinstance(val, bool) or not 0 <= val < 1 << width:
            raise DecodeError(name, None, f"{key}: {val!r} is not a {width}-bit value")
        raw[key] = val
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise DecodeError(name, None, f"missing register(s): {', '.join(missing)}")
    return AmdViRegisters(raw)


def registers_from_page(page0: bytes, page2: Optional[bytes] = None) -> Dict[str, int]:
    """Register values from raw MMIO bytes: ``page0`` from the base (offsets below
    1000h), ``page2`` from base + 2000h (head/tail/status). Little-endian."""
    out: Dict[str, int] = {}
    for key, (off, width) in REGISTERS.items():
        src, rel = (page0, off) if off < 0x1000 else (page2, off - 0x2000)
        n = width // 8
        if src is None or rel + n > len(src):
            continue
        out[key] = int.from_bytes(src[rel : rel + n], "little")
    return out
