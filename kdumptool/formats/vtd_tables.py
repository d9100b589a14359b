"""Intel VT-d DMA-remapping table entries, as the hardware reads them from memory.

Spec: Intel Virtualization Technology for Directed I/O, Architecture Specification,
rev. 4.1 (Order No. D51397), chapter 9 "Translation Structure Formats":
9.1 Root Entry, 9.2 Scalable-Mode Root Entry, 9.3 Context Entry, 9.4 Scalable-Mode
Context-Entry, 9.5 Scalable-Mode PASID Directory Entry, 9.6 Scalable-Mode PASID Table
Entry, 9.7 First-Stage Paging Entries, 9.8 Second-Stage Paging Entries
(rev. 3.x calls the last two "first-level" / "second-level"); 11.4.5 Root Table Address
Register (RTADDR_REG: TTM in bits 11:10).

Every field below was checked against the Linux accessors (drivers/iommu/intel/iommu.h,
iommu.c, pasid.h, pasid.c of 6.x): ``root_entry_lctp/uctp`` (``lo/hi & VTD_PAGE_MASK``,
present bit 0 of each), ``context_domain_id`` (``(hi >> 8) & 0xffff``),
``context_set_address_width`` (``hi & 7``), ``context_set_translation_type``
(``lo`` bits 3:2), ``context_pdts`` (``lo`` bits 11:9), ``context_set_sm_rid2pasid``
(``hi`` bits 19:0), ``get_pasid_dir_size`` (``1 << (PDTS + 7)``), ``pasid_set_domain_id``
(``val[1]`` bits 15:0), ``pasid_set_slptr`` (``val[0] & VTD_PAGE_MASK``),
``pasid_set_address_width`` (``val[0]`` bits 4:2), ``pasid_pte_get_pgtt`` (``val[0]``
bits 8:6), ``pasid_set_flptr`` (``val[2] & VTD_PAGE_MASK``), ``pasid_set_flpm``
(``val[2]`` bits 3:2), ``dma_pte_present`` (``val & 3``), ``DMA_PTE_LARGE_PAGE``
(bit 7), ``DMA_PTE_SNP`` (bit 11).

Two decoders per entry: a construct ``*Struct`` (the documented reference, one line per
field with its bits) and a ``decode_*`` function on integers, used by the page-table walk
and the root-table scan, which touch thousands of entries. ``tests/formats/
test_vtd_tables.py`` checks that both agree on arbitrary bytes.
"""

from __future__ import annotations

import re

from kdumptool.errors import DecodeError
from kdumptool.formats.frozen import dataclass  # dataclasses costs ~10 ms of start-up
from kdumptool.formats.lazyspec import lazy_specs

# typing is only read by type checkers here (annotations are strings): importing it
# costs start-up time of `vmcore scan` (bench/bench_ratios.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

VTD_PAGE_SIZE = 4096
VTD_PAGE_MASK = ~0xFFF & 0xFFFF_FFFF_FFFF_FFFF
# Addresses in table entries are HAW-1:12 with HAW <= 52 (CAP.MGAW is 6 bits, max 64,
# but every entry format reserves 63:52 or uses it for other fields).
ADDR_MASK = 0x000F_FFFF_FFFF_F000

ROOT_ENTRY_SIZE = 16
CONTEXT_ENTRY_SIZE = 16
SM_CONTEXT_ENTRY_SIZE = 32
PASID_DIR_ENTRY_SIZE = 8
PASID_ENTRY_SIZE = 64
PTE_SIZE = 8
PASID_PDE_SHIFT = 6  # pasid.h: a PASID table page holds 64 entries

# GSTS_REG bit 31: translation enable status (kernel DMA_GSTS_TES).
DMA_GSTS_TES = 1 << 31

# RTADDR_REG bits 11:10, TTM (translation table mode).
RTADDR_TTM_LEGACY = 0
RTADDR_TTM_SCALABLE = 1
RTADDR_TTM_ABORT_DMA = 3

# Legacy context entry TT (bits 3:2), names as the kernel's CONTEXT_TT_*.
CONTEXT_TT_NAMES = {0: "multi-level", 1: "dev-iotlb", 2: "pass-through", 3: "reserved"}
# Scalable-mode PASID entry PGTT (bits 8:6), as the kernel's PASID_ENTRY_PGTT_*.
PGTT_NAMES = {
    0: "reserved(0)",
    1: "first-level",
    2: "second-level",
    3: "nested",
    4: "pass-through",
    5: "reserved(5)",
    6: "reserved(6)",
    7: "reserved(7)",
}
# AW (context entry bits 66:64, PASID entry bits 4:2): adjusted guest address width.
AW_BITS = {0: 30, 1: 39, 2: 48, 3: 57, 4: 64}
AW_LEVELS = {0: 2, 1: 3, 2: 4, 3: 5, 4: 6}

# Second-stage PTE bits (kernel: DMA_PTE_READ/WRITE/LARGE_PAGE/SNP; DMA_FL_PTE_XD).
DMA_PTE_READ = 1 << 0
DMA_PTE_WRITE = 1 << 1
DMA_PTE_LARGE_PAGE = 1 << 7
DMA_PTE_SNP = 1 << 11
DMA_FL_PTE_PRESENT = 1 << 0
DMA_FL_PTE_RW = 1 << 1
DMA_FL_PTE_XD = 1 << 63

# Reserved-bit masks (must be zero) used by validation and the scan.
ROOT_LO_RSVD = 0xFFE  # 11:1
ROOT_HI_RSVD = 0xFFFF_FFFF_FFFF_FFFF  # 127:64, legacy only
SM_ROOT_RSVD = 0xFFE  # 11:1 and 75:65
CONTEXT_LO_RSVD = 0xFF0  # 11:4
CONTEXT_HI_RSVD = (0xFFFF_FFFF_FF << 24) | (1 << 7)  # 127:88 and 71
SM_CONTEXT_LO_RSVD = 0x1E0  # 8:5
SM_CONTEXT_HI_RSVD = 0xFFFF_FFFF_FFE0_0000  # 127:85
PASID_DIR_RSVD = 0xFFC  # 11:2


# --- construct specs (reference) -------------------------------------------------------


def _construct_specs() -> Dict[str, Any]:
    """The construct specs, built on first use (module ``__getattr__``): importing
    construct costs ~40 ms, most of a ``vmcore scan`` start-up, and only the reference
    decoders below (the cross-check tests) use them."""
    from construct import BitsInteger, BitStruct, ByteSwapped, Flag

    # 9.1 Root Entry (legacy, RTADDR.TTM=00). 128 bits, little-endian. BitStruct reads
    # MSB first; ByteSwapped makes the whole entry little-endian.
    RootEntryStruct = ByteSwapped(
        BitStruct(
            "reserved_hi" / BitsInteger(64),  # 127:64 reserved (0)
            "ctp" / BitsInteger(52),  # 63:12  context-table pointer >> 12
            "reserved_lo" / BitsInteger(11),  # 11:1   reserved (0)
            "present" / Flag,  # 0      P
        )
    )

    # 9.2 Scalable-Mode Root Entry (RTADDR.TTM=01). 128 bits.
    ScalableRootEntryStruct = ByteSwapped(
        BitStruct(
            "uctp" / BitsInteger(52),  # 127:76 upper context-table pointer >> 12 (devfn 128-255)
            "reserved_hi" / BitsInteger(11),  # 75:65  reserved (0)
            "up" / Flag,  # 64     upper present
            "lctp" / BitsInteger(52),  # 63:12  lower context-table pointer >> 12 (devfn 0-127)
            "reserved_lo" / BitsInteger(11),  # 11:1   reserved (0)
            "lp" / Flag,  # 0      lower present
        )
    )

    # 9.3 Context Entry (legacy). 128 bits.
    ContextEntryStruct = ByteSwapped(
        BitStruct(
            "reserved_hi" / BitsInteger(40),  # 127:88 reserved (0)
            "did" / BitsInteger(16),  # 87:72  domain identifier
            "reserved_71" / BitsInteger(1),  # 71     reserved (0)
            "ign" / BitsInteger(4),  # 70:67  ignored
            "aw" / BitsInteger(3),  # 66:64  address width (AGAW)
            "slptptr" / BitsInteger(52),  # 63:12  second-stage page-table pointer >> 12
            "reserved_lo" / BitsInteger(8),  # 11:4   reserved (0)
            "tt" / BitsInteger(2),  # 3:2    translation type
            "fpd" / Flag,  # 1      fault processing disable
            "present" / Flag,  # 0      P
        )
    )

    # 9.4 Scalable-Mode Context-Entry. 256 bits.
    ScalableContextEntryStruct = ByteSwapped(
        BitStruct(
            "reserved_top" / BitsInteger(128),  # 255:128 reserved (0)
            "reserved_hi" / BitsInteger(43),  # 127:85 reserved (0)
            "rid_priv" / Flag,  # 84     RID_PRIV
            "rid_pasid" / BitsInteger(20),  # 83:64  RID_PASID
            "pasid_dir_ptr" / BitsInteger(52),  # 63:12  PASID directory pointer >> 12
            "pdts" / BitsInteger(3),  # 11:9   PASID directory size: 2^(PDTS+7) entries
            "reserved_lo" / BitsInteger(4),  # 8:5    reserved (0)
            "pre" / Flag,  # 4      page request enable
            "paside" / Flag,  # 3      PASID enable
            "dte" / Flag,  # 2      device-TLB enable
            "fpd" / Flag,  # 1      fault processing disable
            "present" / Flag,  # 0      P
        )
    )

    # 9.5 Scalable-Mode PASID Directory Entry. 64 bits.
    PasidDirEntryStruct = ByteSwapped(
        BitStruct(
            "smptblptr" / BitsInteger(52),  # 63:12  scalable-mode PASID table pointer >> 12
            "reserved" / BitsInteger(10),  # 11:2   reserved (0)
            "fpd" / Flag,  # 1      fault processing disable
            "present" / Flag,  # 0      P
        )
    )

    # 9.6 Scalable-Mode PASID Table Entry. 512 bits; the fields decoded here live in the low
    # 192 bits (val[0..2] in the kernel); 511:192 are kept raw.
    PasidEntryStruct = ByteSwapped(
        BitStruct(
            "upper" / BitsInteger(320),  # 511:192 (val[3..7])
            "flptptr" / BitsInteger(52),  # 191:140 first-stage page-table pointer >> 12 (val[2] 63:12)
            "val2_mid" / BitsInteger(8),  # 139:132 (val[2] 11:4: WPE, EAFE, ...)
            "flpm" / BitsInteger(2),  # 131:130 first-stage paging mode (0: 4-level, 1: 5-level)
            "val2_bit1" / BitsInteger(1),  # 129
            "sre" / Flag,  # 128    supervisor request enable
            "val1_hi" / BitsInteger(39),  # 127:89 (val[1] 63:25: PCD, PWT, EMT, CD, PAT...)
            "pgsnp" / Flag,  # 88     page snoop
            "pwsnp" / Flag,  # 87     page-walk snoop
            "val1_mid" / BitsInteger(7),  # 86:80
            "did" / BitsInteger(16),  # 79:64  domain identifier
            "slptptr" / BitsInteger(52),  # 63:12  second-stage page-table pointer >> 12
            "val0_rsvd" / BitsInteger(2),  # 11:10
            "ssade" / Flag,  # 9      second-stage A/D enable
            "pgtt" / BitsInteger(3),  # 8:6    PASID granular translation type
            "ssee" / Flag,  # 5      second-stage execute enable
            "aw" / BitsInteger(3),  # 4:2    address width
            "fpd" / Flag,  # 1      fault processing disable
            "present" / Flag,  # 0      P
        )
    )

    # 9.8 Second-Stage Paging Entry (PML5E..PTE share this layout; PS only above level 1).
    SlPteStruct = ByteSwapped(
        BitStruct(
            "ign_63" / BitsInteger(1),  # 63     ignored
            "tm" / Flag,  # 62     transient mapping (older revisions)
            "ign_hi" / BitsInteger(10),  # 61:52  ignored
            "addr" / BitsInteger(40),  # 51:12  address >> 12 (next table or page frame)
            "snp" / Flag,  # 11     snoop
            "ign_lo" / BitsInteger(3),  # 10:8   ignored
            "ps" / Flag,  # 7      page size (superpage) at levels 2 and 3
            "ipat" / Flag,  # 6      ignore PAT
            "emt" / BitsInteger(3),  # 5:3    extended memory type
            "x" / Flag,  # 2      execute (reserved without ECAP.SLEE)
            "w" / Flag,  # 1      write
            "r" / Flag,  # 0      read
        )
    )
    return {k: v for k, v in locals().items() if k.endswith("Struct") and k[0].isupper()}


__getattr__ = lazy_specs(__name__, _construct_specs)


# --- decoded records ---------------------------------------------------------------------


@dataclass(frozen=True)
class RootEntry:
    """One legacy root entry (bus). ``ctp`` is the context-table physical address."""

    present: bool
    ctp: int
    reserved: int  # reserved bits that are set (0 on a well-formed entry)


@dataclass(frozen=True)
class ScalableRootEntry:
    lp: bool
    lctp: int
    up: bool
    uctp: int
    reserved: int


@dataclass(frozen=True)
class ContextEntry:
    present: bool
    fpd: bool
    tt: int
    slptptr: int
    aw: int
    did: int
    reserved: int

    @property
    def translation_type(self) -> str:
        return CONTEXT_TT_NAMES[self.tt]


@dataclass(frozen=True)
class ScalableContextEntry:
    present: bool
    fpd: bool
    dte: bool
    paside: bool
    pre: bool
    pdts: int
    pasid_dir_ptr: int
    rid_pasid: int
    rid_priv: bool
    reserved: int

    @property
    def pasid_dir_entries(self) -> int:
        return 1 << (self.pdts + 7)


@dataclass(frozen=True)
class PasidDirEntry:
    present: bool
    fpd: bool
    smptblptr: int
    reserved: int


@dataclass(frozen=True)
class PasidEntry:
    present: bool
    fpd: bool
    aw: int
    ssee: bool
    pgtt: int
    ssade: bool
    slptptr: int
    did: int
    pwsnp: bool
    pgsnp: bool
    sre: bool
    flpm: int
    flptptr: int

    @property
    def translation_type(self) -> str:
        return PGTT_NAMES[self.pgtt]


@dataclass(frozen=True)
class SlPte:
    r: bool
    w: bool
    ps: bool
    snp: bool
    addr: int


# --- fast decoders (ints) ----------------------------------------------------------------


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset < 0 or offset + size > len(data):
        raise DecodeError(what, offset, f"needs {size} bytes, {max(0, len(data) - offset)} left")


def _qwords(data: bytes, offset: int, n: int, what: str) -> list[int]:
    _need(data, offset, 8 * n, what)
    return [int.from_bytes(data[offset + 8 * i : offset + 8 * i + 8], "little") for i in range(n)]


def root_entry_from_qwords(lo: int, hi: int) -> RootEntry:
    return RootEntry(bool(lo & 1), lo & VTD_PAGE_MASK, (lo & ROOT_LO_RSVD) | hi)


def decode_root_entry(data: bytes, offset: int = 0) -> RootEntry:
    lo, hi = _qwords(data, offset, 2, "root entry")
    return root_entry_from_qwords(lo, hi)


def sm_root_entry_from_qwords(lo: int, hi: int) -> ScalableRootEntry:
    return ScalableRootEntry(
        bool(lo & 1), lo & VTD_PAGE_MASK, bool(hi & 1), hi & VTD_PAGE_MASK, (lo | hi) & SM_ROOT_RSVD
    )


def decode_sm_root_entry(data: bytes, offset: int = 0) -> ScalableRootEntry:
    lo, hi = _qwords(data, offset, 2, "scalable-mode root entry")
    return sm_root_entry_from_qwords(lo, hi)


def context_entry_from_qwords(lo: int, hi: int) -> ContextEntry:
    return ContextEntry(
        present=bool(lo & 1),
        fpd=bool(lo & 2),
        tt=(lo >> 2) & 3,
        slptptr=lo & VTD_PAGE_MASK,
        aw=hi & 7,
        did=(hi >> 8) & 0xFFFF,
        reserved=(lo & CONTEXT_LO_RSVD) | (hi & CONTEXT_HI_RSVD),
    )


def decode_context_entry(data: bytes, offset: int = 0) -> ContextEntry:
    lo, hi = _qwords(data, offset, 2, "context entry")
    return context_entry_from_qwords(lo, hi)


def sm_context_entry_from_qwords(q0: int, q1: int, q2: int, q3: int) -> ScalableContextEntry:
    return ScalableContextEntry(
        present=bool(q0 & 1),
        fpd=bool(q0 & 2),
        dte=bool(q0 & 4),
        paside=bool(q0 & 8),
        pre=bool(q0 & 16),
        pdts=(q0 >> 9) & 7,
        pasid_dir_ptr=q0 & VTD_PAGE_MASK,
        rid_pasid=q1 & 0xFFFFF,
        rid_priv=bool(q1 & (1 << 20)),
        reserved=(q0 & SM_CONTEXT_LO_RSVD) | (q1 & SM_CONTEXT_HI_RSVD) | q2 | q3,
    )


def decode_sm_context_entry(data: bytes, offset: int = 0) -> ScalableContextEntry:
    return sm_context_entry_from_qwords(*_qwords(data, offset, 4, "scalable-mode context entry"))


def pasid_dir_entry_from_qword(v: int) -> PasidDirEntry:
    return PasidDirEntry(bool(v & 1), bool(v & 2), v & VTD_PAGE_MASK, v & PASID_DIR_RSVD)


def decode_pasid_dir_entry(data: bytes, offset: int = 0) -> PasidDirEntry:
    return pasid_dir_entry_from_qword(_qwords(data, offset, 1, "PASID directory entry")[0])


def pasid_entry_from_qwords(q0: int, q1: int, q2: int) -> PasidEntry:
    return PasidEntry(
        present=bool(q0 & 1),
        fpd=bool(q0 & 2),
        aw=(q0 >> 2) & 7,
        ssee=bool(q0 & (1 << 5)),
        pgtt=(q0 >> 6) & 7,
        ssade=bool(q0 & (1 << 9)),
        slptptr=q0 & VTD_PAGE_MASK,
        did=q1 & 0xFFFF,
        pwsnp=bool(q1 & (1 << 23)),
        pgsnp=bool(q1 & (1 << 24)),
        sre=bool(q2 & 1),
        flpm=(q2 >> 2) & 3,
        flptptr=q2 & VTD_PAGE_MASK,
    )


def decode_pasid_entry(data: bytes, offset: int = 0) -> PasidEntry:
    return pasid_entry_from_qwords(*_qwords(data, offset, 8, "PASID table entry")[:3])


def sl_pte_from_qword(v: int) -> SlPte:
    return SlPte(bool(v & 1), bool(v & 2), bool(v & DMA_PTE_LARGE_PAGE), bool(v & DMA_PTE_SNP), v & ADDR_MASK)


def decode_sl_pte(data: bytes, offset: int = 0) -> SlPte:
    return sl_pte_from_qword(_qwords(data, offset, 1, "second-stage PTE")[0])


# --- construct-based reference decoders (used by the cross-check test) --------------------


def parse_root_entry(data: bytes) -> RootEntry:
    c = _construct_parse("RootEntryStruct", data, ROOT_ENTRY_SIZE, "root entry")
    return RootEntry(c.present, c.ctp << 12, (c.reserved_lo << 1) | c.reserved_hi)


def parse_sm_root_entry(data: bytes) -> ScalableRootEntry:
    c = _construct_parse("ScalableRootEntryStruct", data, ROOT_ENTRY_SIZE, "scalable-mode root entry")
    return ScalableRootEntry(c.lp, c.lctp << 12, c.up, c.uctp << 12, (c.reserved_lo | c.reserved_hi) << 1)


def parse_context_entry(data: bytes) -> ContextEntry:
    c = _construct_parse("ContextEntryStruct", data, CONTEXT_ENTRY_SIZE, "context entry")
    reserved = (c.reserved_lo << 4) | (c.reserved_71 << 7) | (c.reserved_hi << 24)
    return ContextEntry(c.present, c.fpd, c.tt, c.slptptr << 12, c.aw, c.did, reserved)


def parse_sm_context_entry(data: bytes) -> ScalableContextEntry:
    c = _construct_parse("ScalableContextEntryStruct", data, SM_CONTEXT_ENTRY_SIZE, "scalable-mode context entry")
    # Reserved bits are reported per qword OR-ed together, like the fast decoder.
    q2q3 = c.reserved_top
    reserved = (c.reserved_lo << 5) | (c.reserved_hi << 21) | (q2q3 & 0xFFFF_FFFF_FFFF_FFFF) | (q2q3 >> 64)
    return ScalableContextEntry(
        c.present, c.fpd, c.dte, c.paside, c.pre, c.pdts, c.pasid_dir_ptr << 12, c.rid_pasid, c.rid_priv, reserved
    )


def parse_pasid_dir_entry(data: bytes) -> PasidDirEntry:
    c = _construct_parse("PasidDirEntryStruct", data, PASID_DIR_ENTRY_SIZE, "PASID directory entry")
    return PasidDirEntry(c.present, c.fpd, c.smptblptr << 12, c.reserved << 2)


def parse_pasid_entry(data: bytes) -> PasidEntry:
    c = _construct_parse("PasidEntryStruct", data, PASID_ENTRY_SIZE, "PASID table entry")
    return PasidEntry(
        c.present, c.fpd, c.aw, c.ssee, c.pgtt, c.ssade, c.slptptr << 12, c.did, c.pwsnp, c.pgsnp, c.sre,
        c.flpm, c.flptptr << 12,
    )


def parse_sl_pte(data: bytes) -> SlPte:
    c = _construct_parse("SlPteStruct", data, PTE_SIZE, "second-stage PTE")
    return SlPte(c.r, c.w, c.ps, c.snp, c.addr << 12)


def _construct_parse(spec: str, data: bytes, size: int, what: str) -> Any:
    if len(data) < size:
        raise DecodeError(what, 0, f"needs {size} bytes, got {len(data)}")
    return __getattr__(spec).parse(bytes(data[:size]))


# --- RTADDR and where it was saved -------------------------------------------------------


@dataclass(frozen=True)
class RtAddr:
    """RTADDR_REG decoded: the root table's address and the translation-table mode."""

    raw: int
    address: int
    ttm: int

    @property
    def mode(self) -> Optional[str]:
        return {RTADDR_TTM_LEGACY: "legacy", RTADDR_TTM_SCALABLE: "scalable"}.get(self.ttm)


def decode_rtaddr(value: int) -> RtAddr:
    if value < 0 or value > 0xFFFF_FFFF_FFFF_FFFF:
        raise DecodeError("RTADDR", None, f"0x{value:x} is not a 64-bit register value")
    return RtAddr(value, value & ADDR_MASK, (value >> 10) & 3)


def old_table_in_rtaddr(gsts: int) -> bool:
    """In a kdump kernel, does RTADDR still name the crashed kernel's root table?

    Only while translation is off (GSTS.TES clear, e.g. ``intel_iommu=off``): the kdump
    kernel never programmed the unit, so RTADDR keeps the old value. With TES set, the kdump
    kernel has installed its own (copied) table, which lives in the crashkernel region."""
    return not gsts & DMA_GSTS_TES


@dataclass(frozen=True)
class SavedUnit:
    name: str
    base: Optional[int]
    rtaddr: Optional[int]
    gsts: Optional[int]


def parse_vtd_registers_json(obj: Any, what: str = "vtd_registers.json") -> list[SavedUnit]:
    """Units from the snapshot record ``_kdumptool/vtd_registers.json`` (INTERFACES.md)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("units"), list):
        raise DecodeError(what, None, "expected an object with a 'units' list")
    out = []
    for i, unit in enumerate(obj["units"]):
        if not isinstance(unit, dict):
            raise DecodeError(what, None, f"units[{i}] is not an object")
        regs = unit.get("registers") or {}
        if not isinstance(regs, dict):
            raise DecodeError(what, None, f"units[{i}].registers is not an object")
        rt = regs.get("RTADDR")
        gsts = regs.get("GSTS")
        base = unit.get("address")
        out.append(
            SavedUnit(
                str(unit.get("name", f"dmar{i}")),
                base if isinstance(base, int) else None,
                rt if isinstance(rt, int) and not isinstance(rt, bool) else None,
                gsts if isinstance(gsts, int) and not isinstance(gsts, bool) else None,
            )
        )
    return out


_DRHD_HEAD = re.compile(r"^#\s*(\S+)\s+base=0x([0-9a-fA-F]+)")
_DRHD_REG = re.compile(r"^(RTADDR|GSTS)\s+off=0x[0-9a-fA-F]+\s+w=\d+\s+0x([0-9a-fA-F]+)\s*$")


def parse_drhd_regs_text(text: str, what: str = "drhd_regs.txt") -> list[SavedUnit]:
    """Units from a ``devmem`` register listing (``# dmar0 base=0x...`` then ``RTADDR off=...``)."""
    units: list[SavedUnit] = []
    name, base, rt, gsts = None, None, None, None
    for line in text.splitlines():
        m = _DRHD_HEAD.match(line)
        if m:
            if name is not None:
                units.append(SavedUnit(name, base, rt, gsts))
            name, base, rt, gsts = m.group(1), int(m.group(2), 16), None, None
            continue
        m = _DRHD_REG.match(line)
        if m and name is not None:
            if m.group(1) == "RTADDR":
                rt = int(m.group(2), 16)
            else:
                gsts = int(m.group(2), 16)
    if name is not None:
        units.append(SavedUnit(name, base, rt, gsts))
    if not units:
        raise DecodeError(what, None, "no '# dmarN base=0x...' unit header found")
    return units
