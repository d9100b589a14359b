"""VT-d remapping hardware registers, decoded field by field.

Reference: Intel Virtualization Technology for Directed I/O Architecture Specification,
rev. 4.1 (March 2023), chapter 11 "Translation Structure Formats" -> 11.4 "Register
Descriptions": VER_REG 11.4.1, CAP_REG 11.4.2, ECAP_REG 11.4.3, GCMD_REG 11.4.4,
GSTS_REG 11.4.5, RTADDR_REG 11.4.6, FSTS_REG 11.4.9.1, FECTL_REG 11.4.9.2, FRCD_REG
11.4.14, IQH/IQT/IQA 11.4.10, IRTA_REG 11.4.11. Register offsets and bit names follow the
kernel's ``include/linux/intel-iommu.h`` / ``drivers/iommu/intel/iommu.h`` (``DMAR_*_REG``,
``DMA_GSTS_*``, ``cap_*()``, ``ecap_*()``), so a grep of the kernel finds them.

Input is a mapping of register name (``DMAR_<name>_REG`` without prefix and suffix) to
its integer value, as read through /dev/mem or kept in a snapshot's
``_kdumptool/vtd_registers.json``; ``FRCD`` is a list of ``[lo, hi]`` 64-bit halves.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from kdumptool.errors import DecodeError
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

#: Register offsets (DMAR_*_REG) and widths in bits, as the kernel reads them.
REGISTERS: Dict[str, Tuple[int, int]] = {
    "VER": (0x00, 32),
    "CAP": (0x08, 64),
    "ECAP": (0x10, 64),
    "GCMD": (0x18, 32),
    "GSTS": (0x1C, 32),
    "RTADDR": (0x20, 64),
    "CCMD": (0x28, 64),
    "FSTS": (0x34, 32),
    "FECTL": (0x38, 32),
    "FEDATA": (0x3C, 32),
    "FEADDR": (0x40, 32),
    "FEUADDR": (0x44, 32),
    "AFLOG": (0x58, 64),
    "PMEN": (0x64, 32),
    "PLMBASE": (0x68, 32),
    "PLMLIMIT": (0x6C, 32),
    "PHMBASE": (0x70, 64),
    "PHMLIMIT": (0x78, 64),
    "IQH": (0x80, 64),
    "IQT": (0x88, 64),
    "IQA": (0x90, 64),
    "ICS": (0x9C, 32),
    "IECTL": (0xA0, 32),
    "IRTA": (0xB8, 64),
    "PQH": (0xC0, 64),
    "PQT": (0xC8, 64),
    "PQA": (0xD0, 64),
    "PRS": (0xDC, 32),
}

# GSTS / GCMD bits (DMA_GSTS_*, DMA_GCMD_*): same positions in both registers.
GSTS_BITS: Tuple[Tuple[int, str, str], ...] = (
    (31, "TES", "translation enable"),
    (30, "RTPS", "root table pointer set"),
    (29, "FLS", "fault log set"),
    (28, "AFLS", "advanced fault logging"),
    (27, "WBFS", "write buffer flush pending"),
    (26, "QIES", "queued invalidation enabled"),
    (25, "IRES", "interrupt remapping enabled"),
    (24, "IRTPS", "interrupt remapping table pointer set"),
    (23, "CFIS", "compatibility format interrupts"),
)

# FSTS bits (DMA_FSTS_*)
FSTS_BITS: Tuple[Tuple[int, str, str], ...] = (
    (0, "PFO", "primary fault overflow"),
    (1, "PPF", "primary pending fault"),
    (2, "AFO", "advanced fault overflow"),
    (3, "APF", "advanced pending fault"),
    (4, "IQE", "invalidation queue error"),
    (5, "ICE", "invalidation completion error"),
    (6, "ITE", "invalidation time-out error"),
    (7, "PRO", "page request overflow"),
)

# ECAP single-bit fields (ecap_*()), bit -> (kernel name, meaning).
ECAP_BITS: Tuple[Tuple[int, str, str], ...] = (
    (0, "C", "page-walk coherency"),
    (1, "QI", "queued invalidation"),
    (2, "DT", "device-TLB"),
    (3, "IR", "interrupt remapping"),
    (4, "EIM", "extended interrupt mode (x2APIC)"),
    (6, "PT", "pass through"),
    (7, "SC", "snoop control"),
    (25, "MTS", "memory type"),
    (26, "NEST", "nested translation"),
    (29, "PRS", "page requests"),
    (30, "ERS", "execute requests"),
    (31, "SRS", "supervisor requests"),
    (33, "NWFS", "no write flag"),
    (34, "EAFS", "extended accessed flag"),
    (40, "PASID", "process address space ID"),
    (41, "DIT", "device-TLB invalidation throttling"),
    (42, "PDS", "page-request drain"),
    (43, "SMTS", "scalable mode translation"),
    (44, "VCS", "virtual command"),
    (45, "SLADS", "second-level accessed/dirty"),
    (46, "SLTS", "second-level translation"),
    (47, "FLTS", "first-level translation"),
    (48, "SMPWC", "scalable-mode page-walk coherency"),
    (49, "RPS", "RID-PASID"),
)

# CAP single-bit fields (cap_*()).
CAP_BITS: Tuple[Tuple[int, str, str], ...] = (
    (3, "AFL", "advanced fault logging"),
    (4, "RWBF", "required write-buffer flushing"),
    (5, "PLMR", "protected low-memory region"),
    (6, "PHMR", "protected high-memory region"),
    (7, "CM", "caching mode"),
    (22, "ZLR", "zero length read"),
    (39, "PSI", "page selective invalidation"),
    (54, "DWD", "write draining"),
    (55, "DRD", "read draining"),
    (56, "FL1GP", "first-level 1-GByte pages"),
    (59, "PI", "posted interrupts"),
    (60, "FL5LP", "first-level 5-level paging"),
    (62, "ESIRTPS", "enhanced set interrupt remap table pointer support"),
    (63, "ESRTPS", "enhanced set root table pointer support"),
)

RTADDR_TTM_SHIFT = 10  # RTADDR_REG bits 11:10, translation table mode (01b scalable)
FRCD_F = 1 << 63  # fault bit in the high qword (DMA_FRCD_F: bit 127 of the record)


def _bits(x: int, hi: int, lo: int) -> int:
    return (x >> lo) & ((1 << (hi - lo + 1)) - 1)


@dataclass(frozen=True)
class Cap:
    raw: int

    @property
    def nd(self) -> int:  # cap_ndoms: number of domains, 2:0
        return _bits(self.raw, 2, 0)

    @property
    def domains(self) -> int:
        return 1 << (4 + 2 * self.nd)

    @property
    def sagaw(self) -> int:  # 12:8 supported adjusted guest address widths
        return _bits(self.raw, 12, 8)

    @property
    def sagaw_levels(self) -> Tuple[int, ...]:
        """Page-table levels supported (bit 1: 3-level/39-bit, 2: 4-level, 3: 5-level)."""
        return tuple(lv for bit, lv in ((1, 3), (2, 4), (3, 5)) if self.sagaw & (1 << bit))

    @property
    def mgaw(self) -> int:  # 21:16 maximum guest address width, minus one
        return _bits(self.raw, 21, 16) + 1

    @property
    def fro(self) -> int:  # 33:24 fault-recording register offset, in 16-byte units
        return _bits(self.raw, 33, 24) * 16

    @property
    def sllps(self) -> int:  # 37:34 second-level large page support
        return _bits(self.raw, 37, 34)

    @property
    def mamv(self) -> int:  # 53:48
        return _bits(self.raw, 53, 48)

    @property
    def nfr(self) -> int:  # 47:40 number of fault-recording registers, minus one
        return _bits(self.raw, 47, 40) + 1

    def flag(self, name: str) -> bool:
        return any(self.raw >> b & 1 for b, n, _ in CAP_BITS if n == name)


@dataclass(frozen=True)
class Ecap:
    raw: int

    @property
    def iro(self) -> int:  # 17:8 IOTLB register offset, in 16-byte units
        return _bits(self.raw, 17, 8) * 16

    @property
    def mhmv(self) -> int:  # 23:20
        return _bits(self.raw, 23, 20)

    @property
    def pss(self) -> int:  # 39:35 PASID size supported
        return _bits(self.raw, 39, 35)

    def flag(self, name: str) -> bool:
        return any(self.raw >> b & 1 for b, n, _ in ECAP_BITS if n == name)

    @property
    def smts(self) -> bool:
        return bool(self.raw >> 43 & 1)

    @property
    def ir(self) -> bool:
        return bool(self.raw >> 3 & 1)

    @property
    def qi(self) -> bool:
        return bool(self.raw >> 1 & 1)

    @property
    def pt(self) -> bool:
        return bool(self.raw >> 6 & 1)


@dataclass(frozen=True)
class FaultRecord:
    """One fault-recording register (128 bits, VT-d 11.4.14)."""

    index: int
    lo: int
    hi: int

    @property
    def fault(self) -> bool:  # F, bit 127
        return bool(self.hi & FRCD_F)

    @property
    def fault_info(self) -> int:  # 63:12 faulting page address
        return self.lo & ~0xFFF & ((1 << 64) - 1)

    @property
    def source_id(self) -> int:  # 79:64
        return self.hi & 0xFFFF

    @property
    def source_bdf(self) -> str:
        sid = self.source_id
        return f"{sid >> 8:02x}:{(sid >> 3) & 0x1F:02x}.{sid & 7}"

    @property
    def reason(self) -> int:  # 103:96 fault reason
        return (self.hi >> 32) & 0xFF

    @property
    def pasid(self) -> Optional[int]:  # PV 123:104, valid only when PP (bit 95) is set
        return ((self.hi >> 40) & 0xFFFFF) if (self.hi >> 31) & 1 else None

    @property
    def type_write(self) -> bool:  # T1 bit 126: 0 write, 1 read (as dmar_fault_do_one)
        return not ((self.hi >> 62) & 1)


@dataclass(frozen=True)
class VtdRegisters:
    """Decoded registers of one unit; absent registers are None."""

    values: Mapping[str, int]
    frcd: Tuple[FaultRecord, ...]

    def get(self, name: str) -> Optional[int]:
        return self.values.get(name)

    @property
    def version(self) -> Optional[Tuple[int, int]]:
        v = self.get("VER")
        return None if v is None else (_bits(v, 7, 4), _bits(v, 3, 0))

    @property
    def cap(self) -> Optional[Cap]:
        v = self.get("CAP")
        return None if v is None else Cap(v)

    @property
    def ecap(self) -> Optional[Ecap]:
        v = self.get("ECAP")
        return None if v is None else Ecap(v)

    def gsts_flag(self, name: str) -> Optional[bool]:
        v = self.get("GSTS")
        if v is None:
            return None
        bit = next(b for b, n, _ in GSTS_BITS if n == name)
        return bool(v >> bit & 1)

    @property
    def translation_enabled(self) -> Optional[bool]:
        return self.gsts_flag("TES")

    @property
    def ir_enabled(self) -> Optional[bool]:
        return self.gsts_flag("IRES")

    @property
    def qi_enabled(self) -> Optional[bool]:
        return self.gsts_flag("QIES")

    @property
    def root_table(self) -> Optional[int]:
        """RTADDR bits 63:12, the root (or scalable-mode root) table address."""
        v = self.get("RTADDR")
        return None if v is None else v & ~0xFFF & ((1 << 64) - 1)

    @property
    def rtaddr_ttm(self) -> Optional[int]:
        v = self.get("RTADDR")
        return None if v is None else _bits(v, 11, 10)

    @property
    def scalable_mode(self) -> Optional[bool]:
        """RTADDR.TTM == 01b (bit 10): the root table is a scalable-mode root table."""
        ttm = self.rtaddr_ttm
        return None if ttm is None else ttm == 1

    @property
    def mode(self) -> Optional[str]:
        ttm = self.rtaddr_ttm
        return None if ttm is None else {0: "legacy", 1: "scalable", 3: "abort-dma"}.get(ttm, "reserved")

    @property
    def irta_address(self) -> Optional[int]:
        v = self.get("IRTA")
        return None if v is None else v & ~0xFFF & ((1 << 64) - 1)

    @property
    def irta_entries(self) -> Optional[int]:
        v = self.get("IRTA")
        return None if v is None else 1 << (_bits(v, 3, 0) + 1)

    @property
    def irta_eime(self) -> Optional[bool]:
        v = self.get("IRTA")
        return None if v is None else bool(v >> 11 & 1)

    @property
    def iq_address(self) -> Optional[int]:
        v = self.get("IQA")
        return None if v is None else v & ~0xFFF & ((1 << 64) - 1)

    @property
    def iq_head(self) -> Optional[int]:
        v = self.get("IQH")
        return None if v is None else _bits(v, 18, 4)

    @property
    def iq_tail(self) -> Optional[int]:
        v = self.get("IQT")
        return None if v is None else _bits(v, 18, 4)

    @property
    def pending_faults(self) -> Tuple[FaultRecord, ...]:
        return tuple(f for f in self.frcd if f.fault)

    def fsts_flags(self) -> List[str]:
        v = self.get("FSTS")
        return [] if v is None else [n for b, n, _ in FSTS_BITS if v >> b & 1]

    @property
    def fault_record_index(self) -> Optional[int]:  # FSTS 15:8
        v = self.get("FSTS")
        return None if v is None else _bits(v, 15, 8)

    @property
    def pmr_enabled(self) -> Optional[bool]:
        """PMEN_REG.EPM (bit 31): protected memory regions enabled (DMA_PMEN_EPM)."""
        v = self.get("PMEN")
        return None if v is None else bool(v >> 31 & 1)

    @property
    def fault_interrupt_masked(self) -> Optional[bool]:  # FECTL.IM bit 31
        v = self.get("FECTL")
        return None if v is None else bool(v >> 31 & 1)


def gsts_words(value: int) -> List[str]:
    return [f"{n}{'+' if value >> b & 1 else '-'}" for b, n, _ in GSTS_BITS]


def decode_vtd_registers(values: Mapping[str, Any], name: str = "registers") -> VtdRegisters:
    """Check and decode a register mapping. Unknown names are kept; a value that is not a
    non-negative integer of its width raises :class:`DecodeError`."""
    out: Dict[str, int] = {}
    for key, val in values.items():
        if key == "FRCD":
            continue
        if val is None:
            continue
        if not isinstance(val, int) or isinstance(val, bool) or val < 0:
            raise DecodeError(name, None, f"register {key} is {val!r}, not an unsigned integer")
        width = REGISTERS.get(key, (0, 64))[1]
        if val >> width:
            raise DecodeError(name, None, f"register {key} = {val:#x} is wider than {width} bits")
        out[str(key)] = val
    frcd: List[FaultRecord] = []
    raw_frcd = values.get("FRCD") or []
    if not isinstance(raw_frcd, (list, tuple)):
        raise DecodeError(name, None, "FRCD is not a list of [lo, hi] pairs")
    for i, pair in enumerate(raw_frcd):
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 64 for x in pair)
        ):
            raise DecodeError(name, None, f"FRCD[{i}] is {pair!r}, not a [lo, hi] pair of 64-bit integers")
        frcd.append(FaultRecord(i, pair[0], pair[1]))
    return VtdRegisters(values=out, frcd=tuple(frcd))


def parse_devmem_dump(text: str, name: str = "drhd_regs.txt") -> List[Tuple[str, int, Dict[str, Any]]]:
    """The lab's ``drhd_regs.txt`` (``# dmar0 base=0x...``, ``NAME off=0x.. w=.. 0x...``,
    ``FRCDn off=.. lo=0x.. hi=0x..``) -> [(unit name, base, register mapping)]."""
    units: List[Tuple[str, int, Dict[str, Any]]] = []
    cur: Optional[Dict[str, Any]] = None
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#" and len(parts) >= 3 and parts[2].startswith("base="):
            try:
                base = int(parts[2][5:], 16)
            except ValueError:
                raise DecodeError(name, lineno, f"bad base {parts[2]!r}", unit="line") from None
            cur = {"FRCD": []}
            units.append((parts[1], base, cur))
            continue
        if cur is None or line.startswith("#") or not parts[0][:1].isalpha() or parts[0] == "sysfs":
            continue
        try:
            if parts[0].startswith("FRCD") and len(parts) >= 4:
                lo = int(parts[2].split("=", 1)[1], 16)
                hi = int(parts[3].split("=", 1)[1], 16)
                cur["FRCD"].append([lo, hi])
            elif len(parts) >= 4 and parts[1].startswith("off=") and parts[2].startswith("w="):
                cur[parts[0]] = int(parts[3], 16)
        except (ValueError, IndexError):
            raise DecodeError(name, lineno, f"cannot read register line {line!r}", unit="line") from None
    if not units:
        raise DecodeError(name, None, "no '# dmarN base=0x...' unit header")
    return units
