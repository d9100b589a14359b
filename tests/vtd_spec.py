"""An independent decode of VT-d root and context tables (spec rev 4.1, 9.1-9.4), a few
lines written from the spec, used only to cross-check ``kdumptool vmcore iommu`` (lab
tier on the raw /proc/vmcore copy, default tier on the makedumpfile -E fixture); and an
ELF64 PT_LOAD reader of the same size, independent of kdumptool's."""

from __future__ import annotations

import struct
from typing import Any, Dict, Optional


def spec_contexts(read: Any, rtaddr: int) -> Dict[str, Optional[int]]:
    """bdf -> DID (legacy) or None (scalable) for every present context entry."""
    root = read(rtaddr & ~0xFFF, 4096)
    scalable = (rtaddr >> 10) & 3 == 1
    out: Dict[str, Optional[int]] = {}
    for bus in range(256):
        lo = int.from_bytes(root[bus * 16:bus * 16 + 8], "little")
        hi = int.from_bytes(root[bus * 16 + 8:bus * 16 + 16], "little")
        halves = [(lo, 0), (hi, 128)] if scalable else [(lo, 0)]
        for entry, devfn0 in halves:
            if not entry & 1:
                continue
            table = read(entry & ~0xFFF, 4096)
            n, size = (128, 32) if scalable else (256, 16)
            for i in range(n):
                ce = table[i * size:(i + 1) * size]
                clo = int.from_bytes(ce[0:8], "little")
                chi = int.from_bytes(ce[8:16], "little")
                if clo & 1:
                    devfn = devfn0 + i
                    bdf = f"0000:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}"
                    out[bdf] = None if scalable else (chi >> 8) & 0xFFFF
    return out


def elf_phys_read(path: str, paddr: int, size: int) -> bytes:
    """``size`` bytes at physical ``paddr`` from an ELF64 core's RAM PT_LOADs (the gABI
    program header, read here with struct; kernel-text PT_LOADs, p_vaddr in
    __START_KERNEL_map, are skipped: they alias RAM)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        assert eh[:4] == b"\x7fELF" and eh[4] == 2, f"{path} is not ELF64"
        phoff = struct.unpack_from("<Q", eh, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, _fl, off, vaddr, pa, filesz, _memsz, _al = struct.unpack_from("<IIQQQQQQ", ph, i * phentsize)
            if p_type == 1 and vaddr < 0xFFFFFFFF80000000 and pa <= paddr and paddr + size <= pa + filesz:
                f.seek(off + paddr - pa)
                return f.read(size)
    raise AssertionError(f"{path}: {paddr:#x} is in no PT_LOAD's file bytes")


def elf_phys_offset(path: str, paddr: int) -> int:
    """The file offset of physical ``paddr`` in an ELF64 core's RAM PT_LOADs (as above)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        phoff = struct.unpack_from("<Q", eh, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, _fl, off, vaddr, pa, filesz, _memsz, _al = struct.unpack_from("<IIQQQQQQ", ph, i * phentsize)
        if p_type == 1 and vaddr < 0xFFFFFFFF80000000 and pa <= paddr < pa + filesz:
            return int(off + paddr - pa)
    raise AssertionError(f"{path}: {paddr:#x} is in no PT_LOAD's file bytes")
