"""Build small dumps in code: ELF64 cores and makedumpfile kdump-compressed files.

Like drgn's ``tests/elfwriter.py``: the layouts follow the format documents (makedumpfile
``IMPLEMENTATION``, the ELF gABI) independently of the readers' code, so a reader bug is
not mirrored here. Used by the tests (edge cases, every compression, malformed files) and
by ``tools/trim_vmcore.py`` (cutting a real dump down to a fixture).

``DumpSpec`` is the memory: ``pages`` (pfn -> page bytes) are dumped, ``filtered`` pfns
are RAM that the dump level excluded; everything else is not RAM.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

NT_PRSTATUS = 1
KDUMP_SIGNATURE = b"KDUMP   "
COMPRESSION_FLAGS = {"none": 0, "zlib": 0x1, "lzo": 0x2, "snappy": 0x4, "zstd": 0x20}
INCOMPLETE = 0x8


@dataclass
class DumpSpec:
    pages: Dict[int, bytes]
    filtered: Set[int] = field(default_factory=set)
    vmcoreinfo: bytes = b""
    prstatus: Sequence[Tuple[int, Dict[str, int]]] = ()   # (pid, {reg: value})
    page_size: int = 4096
    max_mapnr: Optional[int] = None
    phys_base: int = 0
    release: str = "6.1.0-test"
    timestamp: int = 0
    nr_cpus: int = 1

    def mapnr(self) -> int:
        if self.max_mapnr is not None:
            return self.max_mapnr
        top = max(list(self.pages) + list(self.filtered) + [0])
        return top + 1


X86_64_REGS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
    "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
    "gs_base", "ds", "es", "fs", "gs",
)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    """One ELF note: Elf64_Nhdr (3 x u32), name with NUL padded to 4, desc padded to 4."""
    n = name + b"\0"
    return struct.pack("<III", len(n), len(desc), ntype) + _pad4(n) + _pad4(desc)


def prstatus_desc(pid: int, regs: Dict[str, int]) -> bytes:
    """x86-64 struct elf_prstatus, 336 bytes: pr_pid at +32, pr_reg at +112."""
    d = bytearray(336)
    struct.pack_into("<I", d, 32, pid)
    struct.pack_into("<27Q", d, 112, *(regs.get(r, 0) for r in X86_64_REGS))
    return bytes(d)


def build_notes(spec: DumpSpec, trailing_zeros: int = 0) -> Tuple[bytes, int]:
    """The PT_NOTE contents; returns (blob, offset of the VMCOREINFO desc in it or -1)."""
    blob = b"".join(note(b"CORE", NT_PRSTATUS, prstatus_desc(pid, regs))
                    for pid, regs in spec.prstatus)
    vmci_off = -1
    if spec.vmcoreinfo:
        vmci_off = len(blob) + 12 + len(_pad4(b"VMCOREINFO\0"))
        blob += note(b"VMCOREINFO", 0, spec.vmcoreinfo)
    return blob + b"\0" * trailing_zeros, vmci_off


MODULES = {"lzo": "lzokay", "snappy": "cramjam", "zstd": "zstandard"}


def need(method: str) -> None:
    """Skip the calling test when the compression library of ``method`` is missing."""
    import pytest

    if method in MODULES:
        pytest.importorskip(MODULES[method])


def compress(page: bytes, method: str) -> bytes:
    if method == "zlib":
        return zlib.compress(page)
    if method == "lzo":
        import lzokay

        return bytes(lzokay.compress(page))
    if method == "snappy":
        import cramjam

        return bytes(cramjam.snappy.compress_raw(page))
    if method == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(page)
    if method == "none":
        return page
    raise ValueError(method)


def _blocks(n: int, bs: int) -> int:
    return (n + bs - 1) // bs


def write_kdump(spec: DumpSpec, compression: str = "zlib", header_version: int = 6,
                incomplete_after: Optional[int] = None, share_zero_page: bool = True,
                split: Optional[Tuple[int, int]] = None) -> bytes:
    """A kdump-compressed file (see kdumptool/formats/diskdump.py for the layout).

    ``incomplete_after=N`` writes only the first N pages' data and descriptors, leaves the
    rest of the descriptors zero and sets DUMP_DH_COMPRESSED_INCOMPLETE, as makedumpfile
    does when it runs out of space.
    """
    bs = spec.page_size
    mapnr = spec.mapnr()
    notes, vmci_in_notes = build_notes(spec)
    sub_size = 104
    if header_version == 3:      # VMCOREINFO but no notes: the text follows the sub header
        notes, vmci_in_notes = spec.vmcoreinfo, 0
    sub_hdr_blocks = _blocks(sub_size + len(notes), bs) if header_version >= 3 else 1
    bitmap_half_blocks = max(1, _blocks(_blocks(mapnr, 8), bs))
    bitmap_blocks = 2 * bitmap_half_blocks
    bm1 = bytearray(bitmap_half_blocks * bs)
    bm2 = bytearray(bitmap_half_blocks * bs)
    for pfn in set(spec.pages) | set(spec.filtered):
        bm1[pfn >> 3] |= 1 << (pfn & 7)
    for pfn in spec.pages:
        bm2[pfn >> 3] |= 1 << (pfn & 7)
    status = COMPRESSION_FLAGS[compression] | (INCOMPLETE if incomplete_after is not None else 0)

    hdr = bytearray(bs)
    hdr[0:8] = KDUMP_SIGNATURE
    struct.pack_into("<i", hdr, 8, header_version)
    for i, s in enumerate((b"Linux", b"testhost", spec.release.encode(), b"#1 SMP", b"x86_64",
                           b"(none)")):
        hdr[12 + 65 * i:12 + 65 * i + len(s)] = s
    struct.pack_into("<qqIiiIIIIIIi", hdr, 408, spec.timestamp, 0, status, bs, sub_hdr_blocks,
                     bitmap_blocks, min(mapnr, 0xFFFFFFFF), len(spec.pages), 0, 0, 0,
                     spec.nr_cpus)

    sub = bytearray(sub_hdr_blocks * bs)
    note_off = bs + sub_size
    sp, ep = split or (0, 0)
    struct.pack_into("<QiiQQ", sub, 0, spec.phys_base & (2 ** 64 - 1), 31, int(bool(split)),
                     sp, ep)
    if header_version >= 3 and vmci_in_notes >= 0:
        struct.pack_into("<qQ", sub, 32, note_off + vmci_in_notes, len(spec.vmcoreinfo))
    if header_version >= 3:
        sub[sub_size:sub_size + len(notes)] = notes
    if header_version >= 4:
        struct.pack_into("<qQ", sub, 48, note_off, len(notes))
    if header_version >= 6:
        struct.pack_into("<QQQ", sub, 80, sp, ep, mapnr)

    desc_off = (1 + sub_hdr_blocks + bitmap_blocks) * bs
    pfns = sorted(p for p in spec.pages if split is None or sp <= p < ep)
    data_off = desc_off + len(pfns) * 24
    descs = bytearray(len(pfns) * 24)
    data = bytearray()
    zero_at: Optional[Tuple[int, int, int]] = None
    for i, pfn in enumerate(pfns):
        if incomplete_after is not None and i >= incomplete_after:
            break
        page = spec.pages[pfn]
        assert len(page) == bs
        if share_zero_page and not any(page) and zero_at is not None:
            struct.pack_into("<qIIQ", descs, i * 24, zero_at[0], zero_at[1], zero_at[2], 0)
            continue
        flags = COMPRESSION_FLAGS[compression]
        c = compress(page, compression)
        if len(c) >= bs:
            c, flags = page, 0      # makedumpfile stores incompressible pages raw
        struct.pack_into("<qIIQ", descs, i * 24, data_off + len(data), len(c), flags, 0)
        if not any(page) and zero_at is None:
            zero_at = (data_off + len(data), len(c), flags)
        data += c
    return bytes(hdr) + bytes(sub) + bytes(bm1) + bytes(bm2) + bytes(descs) + bytes(data)


def _runs(pfns: Iterable[int]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    for p in sorted(pfns):
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


def write_elf(spec: DumpSpec, overlap: bool = False, note_trailing_zeros: int = 0,
              filtered_in_memsz: bool = True,
              kernel_text: Optional[Tuple[int, int, int]] = None) -> bytes:
    """An ELF64 ET_CORE with one PT_NOTE and PT_LOADs. Filtered pages that end a run of
    RAM are described by p_memsz past p_filesz (as makedumpfile -E does); a filtered
    page followed by dumped ones starts a new segment. ``filtered_in_memsz=False`` leaves
    filtered pages out of every segment (makedumpfile 1.7.2 mis-reads a segment that
    starts where the previous one's p_memsz ends when that exceeds its p_filesz).
    ``kernel_text=(vaddr, paddr, size)`` adds, first, the kernel-text PT_LOAD that
    /proc/vmcore carries (the same physical memory again, its own copy in the file;
    pages not in ``spec.pages`` are zeros there)."""
    ps = spec.page_size
    notes, _ = build_notes(spec, note_trailing_zeros)
    segs: List[Tuple[int, int, int]] = []      # (start pfn, file pages, mem pages)
    for start, end in _runs(set(spec.pages) | set(spec.filtered)):
        p = start
        while p < end:
            s = p
            while p < end and p in spec.pages:
                p += 1
            f = p
            while p < end and p not in spec.pages:
                p += 1
            segs.append((s, f - s, (p if filtered_in_memsz else f) - s))
    if overlap and segs:
        s0 = segs[0]
        segs.append((s0[0], s0[1], s0[2]))
    text: List[Tuple[int, int, int]] = []
    if kernel_text is not None:
        text.append(kernel_text)
    phnum = 1 + len(segs) + len(text)
    off = 64 + 56 * phnum
    ph = [struct.pack("<IIQQQQQQ", 4, 0, off, 0, 0, len(notes), len(notes), 4)]
    body = bytearray(notes)
    off += len(notes)
    off += -off % ps
    body += b"\0" * (-(64 + 56 * phnum + len(body)) % ps)
    for vaddr, paddr, size in text:
        ph.append(struct.pack("<IIQQQQQQ", 1, 7, off, vaddr, paddr, size, size, ps))
        for p in range(paddr // ps, (paddr + size) // ps):
            body += spec.pages.get(p, bytes(ps))
        off += size
    for s, fpages, mpages in segs:
        ph.append(struct.pack("<IIQQQQQQ", 1, 7, off, 0xFFFF888000000000 + s * ps, s * ps,
                              fpages * ps, mpages * ps, ps))
        for p in range(s, s + fpages):
            body += spec.pages[p]
        off += fpages * ps
    ehdr = bytearray(64)
    ehdr[0:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0)
    return bytes(ehdr) + b"".join(ph) + bytes(body)
