"""AMD-Vi translation structures: the 256-bit device table entry (DTE) and the v1 (host)
page-table entry.

Spec: AMD I/O Virtualization Technology (IOMMU) Specification #48882 rev 3.08, 2.2.2
"Device Table Entry Format" and 2.2.3 "I/O Page Tables for Host Translations". Bit
positions are Linux's ``drivers/iommu/amd/amd_iommu_types.h`` (``DTE_FLAG_V`` 0,
``DTE_FLAG_TV`` 1, ``DTE_MODE_MASK`` 11:9, ``DTE_HOST_TRP`` 51:12, ``DTE_FLAG_PPR`` 52,
``DTE_FLAG_GIOV`` 54, ``DTE_FLAG_GV`` 55, ``DTE_GLX`` 57:56, ``DTE_GCR3_14_12`` 60:58,
``DTE_FLAG_IR`` 61, ``DTE_FLAG_IW`` 62; ``DTE_DOMID_MASK`` 15:0 of qword 1,
``DTE_GCR3_30_15`` 31:16, ``DTE_FLAG_IOTLB`` 32, ``DEV_ENTRY_NO_PAGE_FAULT`` bit 98 = SA,
``DEV_ENTRY_EX`` 103, ``DEV_ENTRY_SYSMGT1/2`` 104/105, ``DTE_GCR3_51_31`` 63:43;
``DEV_ENTRY_IRQ_TBL_EN`` 128, ``DTE_INTTABLEN_MASK`` 132:129, ``DTE_IRQ_PHYS_ADDR_MASK``
179:134, ``DEV_ENTRY_INIT_PASS`` 184, ``EINT_PASS`` 185, ``NMI_PASS`` 186,
``DTE_IRQ_REMAP_INTCTL_MASK`` 189:188, ``LINT0_PASS`` 190, ``LINT1_PASS`` 191) and the
page-table macros of ``io_pgtable.c``/``amd_iommu_types.h`` (``IOMMU_PTE_PR`` 0,
``PM_PTE_LEVEL`` 11:9, ``PM_ADDR_MASK`` 51:12, ``IOMMU_PTE_FC`` 60, ``IOMMU_PTE_IR`` 61,
``IOMMU_PTE_IW`` 62, ``PAGE_MODE_7_LEVEL``: a large page whose size is encoded by the
first zero address bit, ``PM_PTE_PAGE_SIZE``).

The construct specs are the documented reference; the walker decodes with integer
arithmetic (``dte_from_qwords``) and a test cross-checks the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from construct import BitsInteger, BitStruct, ByteSwapped, Flag, Padding

from kdumptool.errors import DecodeError

DTE_SIZE = 32
PAGE_SIZE = 4096
PM_ADDR_MASK = 0x000F_FFFF_FFFF_F000
PAGE_MODE_NONE = 0
PAGE_MODE_7_LEVEL = 7

# DTE qword 0, from bit 63 down (BitStruct is MSB-first; ByteSwapped makes it LE).
DteQ0Struct = ByteSwapped(BitStruct(
    Padding(1),                       # 63      reserved
    "iw" / Flag,                      # 62      IW: DMA writes allowed
    "ir" / Flag,                      # 61      IR: DMA reads allowed
    "gcr3_14_12" / BitsInteger(3),    # 60:58   GCR3 table root pointer [14:12]
    "glx" / BitsInteger(2),           # 57:56   guest levels translated
    "gv" / Flag,                      # 55      guest translation valid
    "giov" / Flag,                    # 54      guest I/O protection valid
    "gprp" / Flag,                    # 53      guest PPR response with PASID
    "ppr" / Flag,                     # 52      peripheral page request enable
    "pt_root" / BitsInteger(40),      # 51:12   page table root pointer >> 12
    "mode" / BitsInteger(3),          # 11:9    paging mode: 0 none, 1-6 levels, 7 reserved
    "had" / BitsInteger(2),           # 8:7     host access/dirty
    "reserved0" / BitsInteger(5),     # 6:2     reserved, 0
    "tv" / Flag,                      # 1       translation information valid
    "v" / Flag,                       # 0       DTE valid
))

# DTE qword 1 (bits 127:64).
DteQ1Struct = ByteSwapped(BitStruct(
    "gcr3_51_31" / BitsInteger(21),   # 127:107 GCR3 [51:31]
    "reserved1" / BitsInteger(1),     # 106     (SATS/reserved)
    "sysmgt" / BitsInteger(2),        # 105:104 system management message handling
    "ex" / Flag,                      # 103     exclusion range applies
    "sd" / Flag,                      # 102     snoop disable
    "cache" / Flag,                   # 101     IOTLB cache hint
    "ioctl" / BitsInteger(2),         # 100:99  port I/O control
    "sa" / Flag,                      # 98      suppress all I/O page faults
    "se" / Flag,                      # 97      suppress I/O page faults
    "iotlb" / Flag,                   # 96      I: device IOTLB (ATS) allowed
    "gcr3_30_15" / BitsInteger(16),   # 95:80   GCR3 [30:15]
    "domain_id" / BitsInteger(16),    # 79:64   domain ID
))

# DTE qword 2 (bits 191:128): interrupt remapping.
DteQ2Struct = ByteSwapped(BitStruct(
    "lint1_pass" / Flag,              # 191
    "lint0_pass" / Flag,              # 190
    "int_ctl" / BitsInteger(2),       # 189:188 0 abort, 1 pass untranslated, 2 remap
    "reserved2b" / BitsInteger(1),    # 187
    "nmi_pass" / Flag,                # 186
    "eint_pass" / Flag,               # 185
    "init_pass" / Flag,               # 184
    "reserved2a" / BitsInteger(4),    # 183:180
    "int_table_root" / BitsInteger(46),  # 179:134 interrupt remapping table >> 6
    "ig" / Flag,                      # 133     ignore unmapped interrupts
    "int_tab_len" / BitsInteger(4),   # 132:129 2^n entries
    "iv" / Flag,                      # 128     interrupt map valid
))

INT_CTL_NAMES = ("abort", "pass", "remap", "reserved")


@dataclass(frozen=True)
class Dte:
    """One device table entry, decoded."""

    q: Tuple[int, int, int, int]
    v: bool
    tv: bool
    had: int
    mode: int
    pt_root: int  # physical address (bits 51:12)
    ppr: bool
    giov: bool
    gv: bool
    glx: int
    ir: bool
    iw: bool
    domain_id: int
    iotlb: bool
    se: bool
    sa: bool
    ex: bool
    sysmgt: int
    iv: bool
    int_tab_len: int
    int_table_root: int  # physical address (bits 51:6)
    int_ctl: int
    init_pass: bool
    eint_pass: bool
    nmi_pass: bool
    lint0_pass: bool
    lint1_pass: bool
    reserved_bits: int  # q0 6:2 and 63, q2 55:52 and 59: non-zero is a bad entry

    @property
    def gcr3(self) -> int:
        """GCR3 table root pointer (guest translation, v2 page tables)."""
        q0, q1 = self.q[0], self.q[1]
        return (((q0 >> 58) & 0x7) << 12) | (((q1 >> 16) & 0xFFFF) << 15) | (((q1 >> 43) & 0x1FFFFF) << 31)

    @property
    def blank(self) -> bool:
        return not any(self.q)

    @property
    def translation(self) -> str:
        """What the IOMMU does with a DMA request from this device (spec 2.2.2; QEMU's
        amdvi_page_walk: no translation takes IR/IW from the DTE).

        ``untranslated`` V=0: not checked at all; ``blocked``: V=1, no translation and
        neither IR nor IW; ``pass-through``: V=1, no translation (TV=0 or Mode 0) with
        IR or IW; ``translated``: TV=1 and Mode 1-6; ``invalid``: Mode 7."""
        if not self.v:
            return "untranslated"
        if self.tv and self.mode == PAGE_MODE_7_LEVEL:
            return "invalid"
        if not self.tv or self.mode == PAGE_MODE_NONE:
            return "pass-through" if (self.ir or self.iw) else "blocked"
        return "translated"


def dte_from_qwords(q0: int, q1: int, q2: int, q3: int) -> Dte:
    return Dte(
        q=(q0, q1, q2, q3),
        v=bool(q0 & 1), tv=bool(q0 >> 1 & 1), had=(q0 >> 7) & 3, mode=(q0 >> 9) & 7,
        pt_root=q0 & PM_ADDR_MASK, ppr=bool(q0 >> 52 & 1), giov=bool(q0 >> 54 & 1),
        gv=bool(q0 >> 55 & 1), glx=(q0 >> 56) & 3, ir=bool(q0 >> 61 & 1), iw=bool(q0 >> 62 & 1),
        domain_id=q1 & 0xFFFF, iotlb=bool(q1 >> 32 & 1), se=bool(q1 >> 33 & 1),
        sa=bool(q1 >> 34 & 1), ex=bool(q1 >> 39 & 1), sysmgt=(q1 >> 40) & 3,
        iv=bool(q2 & 1), int_tab_len=(q2 >> 1) & 0xF, int_table_root=q2 & 0x000F_FFFF_FFFF_FFC0,
        int_ctl=(q2 >> 60) & 3, init_pass=bool(q2 >> 56 & 1), eint_pass=bool(q2 >> 57 & 1),
        nmi_pass=bool(q2 >> 58 & 1), lint0_pass=bool(q2 >> 62 & 1), lint1_pass=bool(q2 >> 63 & 1),
        reserved_bits=(q0 & 0x7C) | (q0 & (1 << 63)) | (q2 & (0xF << 52)) | (q2 & (1 << 59)),
    )


def decode_dte(data: bytes, offset: int = 0) -> Dte:
    if offset < 0 or offset + DTE_SIZE > len(data):
        raise DecodeError("device table entry", offset, f"needs {DTE_SIZE} bytes, "
                          f"{max(0, len(data) - offset)} left")
    qs = [int.from_bytes(data[offset + 8 * i : offset + 8 * i + 8], "little") for i in range(4)]
    return dte_from_qwords(*qs)


# --- v1 page-table entry ----------------------------------------------------------------

@dataclass(frozen=True)
class Pte:
    value: int

    @property
    def present(self) -> bool:
        return bool(self.value & 1)

    @property
    def next_level(self) -> int:
        """PM_PTE_LEVEL: 0 a leaf of this level's page size, 1-6 the level of the next
        table (skipping levels allowed), 7 a leaf whose size the address encodes."""
        return (self.value >> 9) & 7

    @property
    def address(self) -> int:
        return self.value & PM_ADDR_MASK

    @property
    def ir(self) -> bool:
        return bool(self.value >> 61 & 1)

    @property
    def iw(self) -> bool:
        return bool(self.value >> 62 & 1)

    @property
    def fc(self) -> bool:
        return bool(self.value >> 60 & 1)


def level_page_size(level: int) -> int:
    """Bytes one entry of a level-``level`` table maps (PTE_LEVEL_PAGE_SIZE)."""
    return 1 << (12 + 9 * (level - 1))


def mode7_page_size(value: int) -> Optional[int]:
    """PM_PTE_PAGE_SIZE: the page size of a NextLevel=7 entry, from the first zero
    address bit at or above bit 12 (bit n zero -> 2^(n+1) bytes). None when the
    address bits are all ones (no size encodes)."""
    x = (value | 0xFFF) & PM_ADDR_MASK | 0xFFF
    n = 12
    while n < 52 and x >> n & 1:
        n += 1
    if n >= 52:
        return None
    return 1 << (n + 1)
