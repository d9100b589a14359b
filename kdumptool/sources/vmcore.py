"""Physical (and x86-64 kernel virtual) memory of a crashed kernel, from a dump file.

``open_dump(path)`` picks the reader by magic: an ELF64 core (``/proc/vmcore`` itself, a
copy of it, ``makedumpfile -E``) or makedumpfile's kdump-compressed format. Both give a
``Dump`` with random access by physical address:

- only the pages asked for are read (``os.pread``) and decompressed; decompressed pages sit
  in a small LRU cache (``cache_pages``, 256 by default = 1 MiB with 4 KiB pages). The
  kdump-compressed bitmaps stay in the file: a prefix count of dumped pages every 64
  bytes of the 2nd bitmap (8 bytes per 2 MiB of RAM) is built by streaming it once, so
  finding a page's descriptor is one lookup plus a popcount of at most 64 bytes of a
  4 KiB bitmap block (16-block LRU); descriptors are read 256 at a time into a 16-block
  LRU (96 KiB). Nothing else scales with the dump.
- a page that is not there raises ``NotMapped(paddr, why)`` with ``why`` one of
  ``filtered`` (excluded by makedumpfile's dump level, or in an ELF segment's
  ``p_memsz`` past ``p_filesz``), ``not in the dump`` (no segment / not RAM / outside a
  split file's pfn range), ``past the truncated end`` (the file stops before the page's
  data, or an incomplete dump left its descriptor empty) or, for a flattened stream
  (``sources/flat.py``), ``not in the flattened stream`` (its descriptor or data lies in a
  hole no block covers). Never zeros.

Kernel virtual addresses (for the printk buffers) are translated the x86-64 way:
``__START_KERNEL_map`` addresses (``SYMBOL()`` values) by ``vaddr - 0xffffffff80000000 +
phys_base`` with ``phys_base`` from ``NUMBER(phys_base)``, else the kdump sub-header's
``phys_base``, else derived from an ELF kernel-text PT_LOAD (``p_paddr - (p_vaddr -
0xffffffff80000000)``, what /proc/vmcore's kernel-text segment encodes);
anything else (the direct map at ``page_offset_base``, which KASLR moves and VMCOREINFO
does not record, vmalloc) by walking the kernel page tables from ``SYMBOL(init_top_pgt)``
(4 or 5 levels by ``NUMBER(pgtable_l5_enabled)``, 1 GiB / 2 MiB pages, ``NUMBER(sme_mask)``
stripped from entries).
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import stat
from array import array
from collections import OrderedDict

from kdumptool.errors import (
    DecodeError,
    DecompressorMissing,
    KdumptoolError,
    NotMapped,
    SourceMissing,
    UnsupportedFormat,
)
from kdumptool.formats import diskdump as dd
from kdumptool.formats import elf
from kdumptool.formats import flat as ff
from kdumptool.formats.frozen import dataclass  # dataclasses costs ~10 ms of start-up
from kdumptool.formats.vmcoreinfo import START_KERNEL_MAP, VmcoreInfo, parse_vmcoreinfo

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterator, List, Optional, Sequence, Tuple

    from kdumptool.model.dump import DumpInfo
    from kdumptool.sources.flat import FlatImage

FILTERED = "filtered"
NOT_IN_DUMP = "not in the dump"
TRUNCATED = "past the truncated end"
HOLE = "not in the flattened stream (no block holds its bytes)"

_PTE_ADDR_MASK = 0x000FFFFFFFFFF000
_PTE_PRESENT = 0x1
_PTE_PSE = 0x80


@dataclass(frozen=True)
class Segment:
    """One ELF PT_LOAD: physical [start, start + filesz) at file ``offset``; up to memsz."""

    start: int
    filesz: int
    memsz: int
    offset: int
    index: int


class Dump:
    """Common part of the two readers. Use as a context manager or call ``close()``."""

    kind = "dump"

    def __init__(self, path: str, fd: int, cache_pages: int = 256,
                 flat: Optional[FlatImage] = None) -> None:
        self.path = path
        self._fd = fd
        # A flattened stream (makedumpfile -F) is read as the file makedumpfile -R would
        # rebuild from it: "the file" below is that image.
        self.flat = flat
        self._read_at = flat.pread if flat is not None else functools.partial(os.pread, fd)
        # lseek, not fstat: a block device (kdump-utils' raw target) has st_size 0.
        self.file_size = flat.size if flat is not None else os.lseek(fd, 0, os.SEEK_END)
        self.page_size = 4096
        self.vmcoreinfo: VmcoreInfo = parse_vmcoreinfo("")
        self.notes: List[elf.Note] = []
        self.prstatus: List[elf.PrStatus] = []
        self.warnings: List[str] = []
        self.truncated = False    # the file ends before data its headers point at
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_pages = max(1, cache_pages)
        self._xlate: Dict[int, int] = {}
        self.stats = {"pages_read": 0, "bytes_read": 0, "cache_hits": 0}

    # -- file access ---------------------------------------------------------------
    def _pread(self, size: int, offset: int) -> bytes:
        data = self._read_at(size, offset)
        self.stats["bytes_read"] += len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._cache.clear()

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- to be provided by the readers ----------------------------------------------
    def _read_page(self, pfn: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_dumped(self, paddr: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_dumped_ranges(self) -> Iterator[Tuple[int, int]]:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def iter_pages(self, ranges: Sequence[Tuple[int, int]]) -> Optional[StoredPages]:
        """Every dumped page of ``ranges`` as stored in the file, for a scan of the whole
        dump (:class:`StoredPages`); None when this reader has no such layout (an ELF
        core: read() it, which already reads one segment's run in one pread)."""
        return None

    # -- physical reads ---------------------------------------------------------------
    def _page(self, pfn: int) -> bytes:
        page = self._cache.get(pfn)
        if page is not None:
            self._cache.move_to_end(pfn)
            self.stats["cache_hits"] += 1
            return page
        page = self._read_page(pfn)
        self.stats["pages_read"] += 1
        self._cache[pfn] = page
        if len(self._cache) > self._cache_pages:
            self._cache.popitem(last=False)
        return page

    def read(self, paddr: int, size: int) -> bytes:
        """``size`` bytes at physical ``paddr``; NotMapped names the first missing page."""
        if paddr < 0 or size < 0:
            raise NotMapped(paddr, NOT_IN_DUMP)
        ps = self.page_size
        out = []
        addr, end = paddr, paddr + size
        while addr < end:
            pfn, off = divmod(addr, ps)
            n = min(ps - off, end - addr)
            try:
                page = self._page(pfn)
            except NotMapped as err:
                raise NotMapped(addr, err.why) from None
            out.append(page[off:off + n])
            addr += n
        return b"".join(out)

    def read_u64(self, paddr: int) -> int:
        return int.from_bytes(self.read(paddr, 8), "little")

    # -- x86-64 kernel virtual addresses ----------------------------------------------
    @property
    def phys_base(self) -> Optional[int]:
        return self.vmcoreinfo.phys_base

    def virt_to_phys(self, vaddr: int) -> int:
        """Translate an x86-64 kernel virtual address (see the module docstring)."""
        vaddr &= (1 << 64) - 1
        if vaddr >= START_KERNEL_MAP:
            base = self.phys_base
            if base is None:
                raise KdumptoolError(f"{self.path}: no phys_base (NUMBER(phys_base) missing "
                                     f"from VMCOREINFO): cannot translate 0x{vaddr:x}")
            return vaddr - START_KERNEL_MAP + base
        vpage = vaddr >> 12
        hit = self._xlate.get(vpage)
        if hit is not None:
            return hit | (vaddr & 0xFFF)
        paddr = self._walk_kernel_pgt(vaddr)
        if len(self._xlate) > 4096:
            self._xlate.clear()
        self._xlate[vpage] = paddr & ~0xFFF
        return paddr

    def _walk_kernel_pgt(self, vaddr: int) -> int:
        vi = self.vmcoreinfo
        top = vi.symbol("init_top_pgt")
        if top is None:
            top = vi.symbol("init_level4_pgt")   # name before Linux 4.13
        if top is None:
            raise KdumptoolError(f"{self.path}: VMCOREINFO has no SYMBOL(init_top_pgt): "
                                 f"cannot translate 0x{vaddr:x}")
        mask = _PTE_ADDR_MASK & ~(vi.number("sme_mask") or 0)
        table = self.virt_to_phys(top)
        levels = 5 if vi.number("pgtable_l5_enabled") else 4
        for level in range(levels, 0, -1):
            shift = 12 + 9 * (level - 1)
            idx = (vaddr >> shift) & 0x1FF
            entry = self.read_u64(table + idx * 8)
            if not entry & _PTE_PRESENT:
                raise NotMapped(vaddr, f"virtual address not mapped (level {level} entry "
                                       f"0x{entry:x} not present)")
            if level in (2, 3) and entry & _PTE_PSE:
                page_mask = (1 << shift) - 1
                return (entry & mask & ~page_mask) | (vaddr & page_mask)
            table = entry & mask
        return table | (vaddr & 0xFFF)

    def read_virt(self, vaddr: int, size: int) -> bytes:
        """Read kernel virtual memory, page by page through ``virt_to_phys``."""
        out = []
        addr, end = vaddr, vaddr + size
        while addr < end:
            n = min(4096 - (addr & 0xFFF), end - addr)
            out.append(self.read(self.virt_to_phys(addr), n))
            addr += n
        return b"".join(out)


# --------------------------------------------------------------------------------------
class ElfDump(Dump):
    kind = "elf"

    def __init__(self, path: str, fd: int, cache_pages: int = 256,
                 flat: Optional[FlatImage] = None) -> None:
        super().__init__(path, fd, cache_pages, flat)
        head = self._pread(elf.EHDR_SIZE, 0)
        self.header = elf.parse_elf_header(head, path)
        phnum = self.header.e_phnum
        if phnum == elf.PN_XNUM:
            phnum = elf.phnum_from_section0(self._pread(elf.SHDR_SIZE, self.header.e_shoff), path)
        if self.header.e_phoff + phnum * elf.PHDR_SIZE > self.file_size:
            raise DecodeError(path, self.header.e_phoff,
                              f"{phnum} program headers at 0x{self.header.e_phoff:x} run past the "
                              f"end of the file (0x{self.file_size:x})")
        if phnum > elf.MAX_PHNUM:
            raise DecodeError(path, self.header.e_phoff, f"{phnum} program headers: more than "
                              f"the {elf.MAX_PHNUM} any dump has (MAX_PHNUM)")
        table = self._pread(phnum * elf.PHDR_SIZE, self.header.e_phoff)
        self.phdrs = elf.parse_program_headers(table, phnum, self.header.e_phoff, path)
        index, warnings = elf.check_load_segments(self.phdrs, self.file_size, path)
        self.warnings += warnings
        self.truncated = any(p.p_type == elf.PT_LOAD and p.p_filesz
                             and p.p_offset + p.p_filesz > self.file_size for p in self.phdrs)
        # Physical index (the kernel-text alias of /proc/vmcore is left out, see elf.py).
        self.segments = [Segment(p.p_paddr, p.p_filesz, p.p_memsz, p.p_offset, p.index)
                         for p in index]
        self._starts = [s.start for s in self.segments]
        if self.segments:
            self.page_size = 4096
        notes_read = 0
        for p in self.phdrs:
            if p.p_type != elf.PT_NOTE:
                continue
            if p.p_offset + p.p_filesz > self.file_size:
                self.warnings.append(f"{path}: PT_NOTE {p.index} runs past the end of the file")
                continue
            notes_read += p.p_filesz
            if notes_read > elf.MAX_NOTES_SIZE:
                self.warnings.append(f"{path}: PT_NOTE {p.index} ({p.p_filesz} bytes) takes the "
                                     f"notes past MAX_NOTES_SIZE ({elf.MAX_NOTES_SIZE} bytes): "
                                     f"not read")
                continue
            notes, warns = elf.parse_notes(self._pread(p.p_filesz, p.p_offset), f"{path}: PT_NOTE")
            self.notes += notes
            self.warnings += warns
        _load_notes(self)

    @property
    def phys_base(self) -> Optional[int]:
        base = self.vmcoreinfo.phys_base
        if base is not None:
            return base
        for p in self.phdrs:
            if p.p_type == elf.PT_LOAD and p.p_vaddr >= START_KERNEL_MAP:
                return p.p_paddr - (p.p_vaddr - START_KERNEL_MAP)
        return None

    def _segment(self, paddr: int) -> Optional[Segment]:
        i = bisect.bisect_right(self._starts, paddr) - 1
        if i >= 0:
            s = self.segments[i]
            if paddr < s.start + s.memsz:
                return s
        return None

    def _where(self, paddr: int) -> Tuple[Optional[int], str]:
        """(file offset, '') or (None, why)."""
        s = self._segment(paddr)
        if s is None:
            return None, NOT_IN_DUMP
        rel = paddr - s.start
        if rel >= s.filesz:
            return None, FILTERED
        off = s.offset + rel
        if off >= self.file_size:
            return None, TRUNCATED
        return off, ""

    def read(self, paddr: int, size: int) -> bytes:
        """As Dump.read; a run inside one segment's file-backed bytes is one pread (a scan
        reads 1 MiB at a time: one system call, not 256, and no page cache churn)."""
        s = self._segment(paddr) if size > self.page_size and paddr >= 0 else None
        if s is not None and paddr + size <= s.start + s.filesz:
            off = s.offset + paddr - s.start
            if off + size <= self.file_size and (self.flat is None or self.flat.covered(off, size)):
                data = self._pread(size, off)
                if len(data) == size:
                    return data
        return super().read(paddr, size)

    def _read_page(self, pfn: int) -> bytes:
        # Pages need not be segment-aligned: assemble byte runs, each from its segment.
        ps = self.page_size
        base = pfn * ps
        parts = []
        addr = base
        while addr < base + ps:
            s = self._segment(addr)
            off, why = self._where(addr)
            if off is None or s is None:
                raise NotMapped(addr, why)
            n = min(base + ps, s.start + s.filesz) - addr
            if self.flat is not None and not self.flat.covered(off, n):
                raise NotMapped(addr, HOLE)
            data = self._pread(n, off)
            if len(data) < n:
                raise NotMapped(addr + len(data), TRUNCATED)
            parts.append(data)
            addr += n
        return b"".join(parts)

    def is_dumped(self, paddr: int) -> bool:
        off = self._where(paddr)[0]
        return off is not None and (self.flat is None or self.flat.covered(off, 1))

    def iter_dumped_ranges(self) -> Iterator[Tuple[int, int]]:
        """The segments' file-backed bytes (p_filesz) as physical [start, end), merged.
        As for a kdump-compressed dump, bytes past a truncated end are included (the
        headers say they were dumped; use is_dumped/read to tell): a table there is
        unreadable, not outside memory, and a scan counts those pages as unreadable."""
        cur: Optional[List[int]] = None
        for s in self.segments:
            if not s.filesz:
                continue
            start, end = s.start, s.start + s.filesz
            if cur is not None and start == cur[1]:
                cur[1] = end
                continue
            if cur is not None:
                yield cur[0], cur[1]
            cur = [start, end]
        if cur is not None:
            yield cur[0], cur[1]

    def describe(self) -> dict:
        return {
            "format": "elf",
            "incomplete": self.truncated,
            "truncated": self.truncated,
            "kernel_text_aliases": [
                {"index": p.index, "vaddr": p.p_vaddr, "paddr": p.p_paddr, "memsz": p.p_memsz}
                for p in self.phdrs
                if p.p_type == elf.PT_LOAD and p.p_memsz
                and p.p_vaddr >= elf.KERNEL_TEXT_VADDR],
            "segments": [
                {"index": s.index, "paddr": s.start, "filesz": s.filesz, "memsz": s.memsz,
                 "offset": s.offset} for s in self.segments],
        }


# --------------------------------------------------------------------------------------
_CHUNK = 64    # bytes of bitmap per prefix-count entry (512 pages): 8 bytes per 2 MiB of RAM
_DESC_BLOCK = 256    # page descriptors read at once (6 KiB), kept in a small LRU


_BM_BLOCK = 4096     # bitmap bytes read at once (32,768 pages), kept in a small LRU
_BM_STREAM = 1 << 20  # bitmap bytes per read when streaming over a whole bitmap


def _popcount(b: bytes) -> int:
    return bin(int.from_bytes(b, "little")).count("1")


_TOKENS = re.compile(rb"(\x00+)|(\xff+)|([^\x00\xff]+)")


def _bit_runs(data: bytes, base: int) -> Iterator[Tuple[int, int]]:
    """Runs [start, end) of set bits in ``data`` (bit N of byte N // 8), offset by
    ``base``. Runs of 0x00 and 0xff bytes are skipped by a regex; other bytes go 64 bits
    at a time, O(runs) per word."""
    start = -1
    for m in _TOKENS.finditer(data):
        a, b = m.span()
        if m.lastindex == 1:
            if start >= 0:
                yield start, base + a * 8
                start = -1
            continue
        if m.lastindex == 2:
            if start < 0:
                start = base + a * 8
            continue
        for wi in range(a, b, 8):
            chunk = data[wi:min(wi + 8, b)]
            word = int.from_bytes(chunk, "little")
            nbits = len(chunk) * 8
            pos = base + wi * 8
            bit = 0
            while bit < nbits:
                if start < 0:
                    if not word:
                        break
                    tz = (word & -word).bit_length() - 1
                    start = pos + bit + tz
                    word >>= tz
                    bit += tz
                ones = (word ^ (word + 1)).bit_length() - 1
                if bit + ones >= nbits:
                    break             # the run goes on past this word
                yield start, pos + bit + ones
                start = -1
                word >>= ones
                bit += ones
    if start >= 0:
        yield start, base + len(data) * 8


class StoredPages:
    """The pages of a kdump-compressed dump in pfn order, as stored: iterating gives
    ``(paddr, flags, data)`` with ``data`` compressed as ``flags & COMPRESSION_MASK``
    says (raw when 0), so that a scan decides per page whether to decompress it (and how
    much). Descriptors are read 65,536 at a time and page data in 8 MiB sequential windows.
    ``pages`` counts the pages visited, ``unreadable`` those whose descriptor is missing
    (a truncated file) or points outside the file."""

    _DESCS = 65536
    _WINDOW = 8 << 20

    def __init__(self, dump: KdumpDump, ranges: Sequence[Tuple[int, int]], total: int) -> None:
        self.pages = 0
        self.unreadable = 0
        self._dump = dump
        self._ranges = ranges
        self._total = total

    def __iter__(self) -> Iterator[Tuple[int, int, bytes]]:
        dump, total = self._dump, self._total
        pread, desc_offset, file_size, ps = dump._pread, dump.desc_offset, dump.file_size, dump.page_size
        unpack = dd.PAGE_DESC.iter_unpack
        size_of = dd.PAGE_DESC_SIZE
        buf = b""
        buf_start = 0
        pfn_iter = (p for s_, e_ in self._ranges for p in range(s_ // ps, e_ // ps))
        covered = dump.flat.covered if dump.flat is not None else None
        for base in range(0, total, self._DESCS):
            want_n = min(self._DESCS, total - base)
            raw = pread(size_of * want_n, desc_offset + base * size_of)
            short = want_n - len(raw) // size_of  # descriptors past a truncated end
            if short > 0:
                self.pages += short
                self.unreadable += short
            for k, ((off, size, flags, _), pfn) in enumerate(zip(unpack(raw[: len(raw) // size_of * size_of]),
                                                                 pfn_iter)):
                self.pages += 1
                if off < 0 or size > 2 * ps or off + size > file_size or covered is not None and not (
                        covered(off, size) and covered(desc_offset + (base + k) * size_of, size_of)):
                    self.unreadable += 1
                    continue
                if off < buf_start or off + size > buf_start + len(buf):
                    if off >= buf_start + len(buf) or off >= buf_start:
                        buf_start = off
                        buf = pread(max(self._WINDOW, size), off)
                        data = buf[:size]
                    else:  # a shared (zero) page stored earlier in the file
                        data = pread(size, off)
                else:
                    data = buf[off - buf_start : off - buf_start + size]
                yield pfn * ps, flags, data


class KdumpDump(Dump):
    kind = "kdump-compressed"

    def __init__(self, path: str, fd: int, cache_pages: int = 256,
                 flat: Optional[FlatImage] = None) -> None:
        super().__init__(path, fd, cache_pages, flat)
        head = self._pread(dd.DISK_DUMP_HEADER_SIZE, 0)
        self.header = dd.parse_disk_dump_header(head, path)
        h = self.header
        missing = dd.missing_decompressor(h.status)
        if missing:
            raise DecompressorMissing(f"{path}: cannot read this dump: {missing}")
        bs = h.block_size
        self.page_size = bs
        sub_off = bs
        sub = self._pread(dd.KDUMP_SUB_HEADER_SIZE, sub_off)
        self.sub = dd.parse_sub_header(sub, h.header_version, sub_off, path)
        self.max_mapnr = self.sub.max_mapnr if self.sub.max_mapnr else h.max_mapnr
        if h.incomplete:
            self.warnings.append(f"{path}: the dump is marked incomplete (makedumpfile ran out "
                                 f"of space): pages past the written end are unreadable")
        # Bitmaps.
        self.bitmap_offset = (1 + h.sub_hdr_size) * bs
        bm_len = h.bitmap_blocks * bs
        if self.bitmap_offset + bm_len > self.file_size:
            raise DecodeError(path, self.bitmap_offset,
                              f"bitmaps (0x{bm_len:x} bytes) run past the end of the file "
                              f"(0x{self.file_size:x})")
        half = bm_len // 2
        if self.max_mapnr > half * 8:
            self.warnings.append(f"{path}: max_mapnr {self.max_mapnr} exceeds the bitmap's "
                                 f"{half * 8} bits; pfns past it are not in the dump")
            self.max_mapnr = half * 8
        # The bitmaps stay in the file: a prefix count of dumped pages every 64 bytes of
        # the 2nd bitmap is built by streaming it once; lookups read 4 KiB blocks (LRU).
        self._bitmap_len = half
        self._bm_cache: OrderedDict[Tuple[int, int], bytes] = OrderedDict()
        self._prefix = array("Q", [0])
        total = 0
        for pos in range(0, half, _BM_STREAM):
            data = self._pread(min(_BM_STREAM, half - pos), self.bitmap_offset + half + pos)
            for i in range(0, len(data), _CHUNK):
                total += _popcount(data[i:i + _CHUNK])
                self._prefix.append(total)
        self._desc_cache: OrderedDict[int, bytes] = OrderedDict()
        self.split_range: Optional[Tuple[int, int]] = None
        if self.sub.split:
            sp = self.sub.start_pfn or 0
            ep = self.sub.end_pfn or self.max_mapnr
            self.split_range = (sp, ep)
        self._rank_base = self._rank(self.split_range[0]) if self.split_range else 0
        self.desc_offset = (1 + h.sub_hdr_size + h.bitmap_blocks) * bs
        self.dumped_pages = (self._rank(self.split_range[1]) if self.split_range else total) \
            - self._rank_base
        desc_end = self.desc_offset + self.dumped_pages * dd.PAGE_DESC_SIZE
        self.truncated = False
        if desc_end > self.file_size:
            self.truncated = True
            self.warnings.append(
                f"{path}: page descriptors end at 0x{desc_end:x}, past the end of the file "
                f"(0x{self.file_size:x}): the dump is truncated")
        elif self.dumped_pages:
            # Data is written in descriptor order: the last pages' data is the last thing
            # in a whole file (the last 256 descriptors: some may point back at one shared
            # zero page). A file cut inside the page data ends before it.
            n = min(self.dumped_pages, _DESC_BLOCK)
            tail = self._pread(n * dd.PAGE_DESC_SIZE, desc_end - n * dd.PAGE_DESC_SIZE)
            data_end = max(o + sz for o, sz, _, _ in dd.PAGE_DESC.iter_unpack(tail))
            if data_end > self.file_size:
                self.truncated = True
                self.warnings.append(
                    f"{path}: the last pages' data ends at 0x{data_end:x}, past the end of the "
                    f"file (0x{self.file_size:x}): the dump is truncated")
        # VMCOREINFO and notes stored by makedumpfile.
        if self.sub.offset_note and self.sub.size_note:
            notes_data = self._meta(self.sub.offset_note, self.sub.size_note, "ELF notes")
            if notes_data is not None:
                notes, warns = elf.parse_notes(notes_data, f"{path}: notes")
                self.notes += notes
                self.warnings += warns
        vmcoreinfo_bytes = None
        if self.sub.offset_vmcoreinfo and self.sub.size_vmcoreinfo:
            vmcoreinfo_bytes = self._meta(self.sub.offset_vmcoreinfo, self.sub.size_vmcoreinfo,
                                          "VMCOREINFO")
        _load_notes(self, vmcoreinfo_bytes)

    def _meta(self, offset: int, size: int, name: str) -> Optional[bytes]:
        if size > elf.MAX_NOTES_SIZE:
            self.warnings.append(f"{self.path}: {name} at 0x{offset:x} is {size} bytes, more "
                                 f"than MAX_NOTES_SIZE ({elf.MAX_NOTES_SIZE}): not read")
            return None
        if offset < 0 or offset + size > self.file_size:
            self.warnings.append(f"{self.path}: {name} at 0x{offset:x} (+0x{size:x}) lies past "
                                 f"the end of the file")
            return None
        return self._pread(size, offset)

    @property
    def phys_base(self) -> Optional[int]:
        base = self.vmcoreinfo.phys_base
        return base if base is not None else self.sub.phys_base

    def _bm_block(self, which: int, block_no: int) -> bytes:
        """4 KiB block ``block_no`` of bitmap 1 (RAM) or 2 (dumped)."""
        key = (which, block_no)
        block = self._bm_cache.get(key)
        if block is None:
            off = self.bitmap_offset + (which - 1) * self._bitmap_len + block_no * _BM_BLOCK
            block = self._pread(min(_BM_BLOCK, self._bitmap_len - block_no * _BM_BLOCK), off)
            self._bm_cache[key] = block
            if len(self._bm_cache) > 16:
                self._bm_cache.popitem(last=False)
        else:
            self._bm_cache.move_to_end(key)
        return block

    def _bit(self, which: int, pfn: int) -> bool:
        i = pfn >> 3
        if i >= self._bitmap_len:
            return False
        block = self._bm_block(which, i // _BM_BLOCK)
        return bool(block[i % _BM_BLOCK] >> (pfn & 7) & 1)

    def _rank(self, pfn: int) -> int:
        """Number of dumped pfns below ``pfn`` (2nd bitmap)."""
        byte = pfn >> 3
        c = byte // _CHUNK
        if c >= len(self._prefix) - 1:
            return self._prefix[-1]
        n = self._prefix[c]
        rem = pfn & 7
        if byte > c * _CHUNK or rem:
            block = self._bm_block(2, byte // _BM_BLOCK)
            lo = c * _CHUNK % _BM_BLOCK          # chunks never straddle blocks
            hi = byte % _BM_BLOCK
            n += _popcount(block[lo:hi])
            if rem:
                n += bin(block[hi] & ((1 << rem) - 1)).count("1")
        return n

    def iter_ram_ranges(self) -> Iterator[Tuple[int, int]]:
        """Physical [start, end) runs that were RAM (1st bitmap: dumped or filtered)."""
        return self._iter_bitmap_runs(1)

    def _iter_bitmap_runs(self, which: int) -> Iterator[Tuple[int, int]]:
        ps = self.page_size
        limit = self.max_mapnr
        cur: Optional[List[int]] = None
        base_off = self.bitmap_offset + (which - 1) * self._bitmap_len
        for pos in range(0, self._bitmap_len, _BM_STREAM):
            if pos * 8 >= limit:
                break
            data = self._pread(min(_BM_STREAM, self._bitmap_len - pos), base_off + pos)
            for s, e in _bit_runs(data, pos * 8):
                e = min(e, limit)
                if s >= e:
                    continue
                if cur is not None and cur[1] == s:
                    cur[1] = e
                    continue
                if cur is not None:
                    yield cur[0] * ps, cur[1] * ps
                cur = [s, e]
        if cur is not None:
            yield cur[0] * ps, cur[1] * ps

    def _why_absent(self, pfn: int) -> Optional[str]:
        if pfn >= self.max_mapnr:
            return NOT_IN_DUMP
        if self.split_range and not self.split_range[0] <= pfn < self.split_range[1]:
            return NOT_IN_DUMP
        if not self._bit(2, pfn):
            return FILTERED if self._bit(1, pfn) else NOT_IN_DUMP
        return None

    def page_desc(self, pfn: int) -> dd.PageDesc:
        """The descriptor of a dumped pfn (NotMapped when the pfn has none)."""
        why = self._why_absent(pfn)
        if why:
            raise NotMapped(pfn * self.page_size, why)
        idx = self._rank(pfn) - self._rank_base
        if self.flat is not None and not self.flat.covered(self.desc_offset + idx * dd.PAGE_DESC_SIZE,
                                                           dd.PAGE_DESC_SIZE):
            raise NotMapped(pfn * self.page_size, HOLE)
        block_no, i = divmod(idx, _DESC_BLOCK)
        block = self._desc_cache.get(block_no)
        if block is None:
            off = self.desc_offset + block_no * _DESC_BLOCK * dd.PAGE_DESC_SIZE
            block = self._pread(_DESC_BLOCK * dd.PAGE_DESC_SIZE, off)
            self._desc_cache[block_no] = block
            if len(self._desc_cache) > 16:
                self._desc_cache.popitem(last=False)
        else:
            self._desc_cache.move_to_end(block_no)
        if (i + 1) * dd.PAGE_DESC_SIZE > len(block):
            raise NotMapped(pfn * self.page_size, TRUNCATED)
        pd = dd.parse_page_desc(block, i * dd.PAGE_DESC_SIZE)
        if pd.offset == 0 and pd.size == 0:
            # makedumpfile leaves unwritten descriptors zero in an incomplete dump.
            raise NotMapped(pfn * self.page_size, TRUNCATED)
        return pd

    def _read_page(self, pfn: int) -> bytes:
        pd = self.page_desc(pfn)
        paddr = pfn * self.page_size
        if pd.offset < 0 or pd.size > 2 * self.page_size + 1024:
            raise DecodeError(self.path, self.desc_offset, f"page descriptor of pfn 0x{pfn:x} is "
                              f"corrupt (offset 0x{pd.offset:x}, size {pd.size})")
        if pd.offset + pd.size > self.file_size:
            raise NotMapped(paddr, TRUNCATED)
        if self.flat is not None and not self.flat.covered(pd.offset, pd.size):
            raise NotMapped(paddr, HOLE)
        data = self._pread(pd.size, pd.offset)
        return dd.decompress_page(data, pd.flags, self.page_size,
                                  f"{self.path}: pfn 0x{pfn:x}", pd.offset)

    def is_dumped(self, paddr: int) -> bool:
        if paddr < 0:
            return False
        pfn = paddr // self.page_size
        if self._why_absent(pfn):
            return False
        try:
            pd = self.page_desc(pfn)
        except NotMapped:
            return False
        return pd.offset + pd.size <= self.file_size and (
            self.flat is None or self.flat.covered(pd.offset, pd.size))

    def iter_dumped_ranges(self) -> Iterator[Tuple[int, int]]:
        """Runs of set bits of the 2nd bitmap, as physical [start, end), streamed from
        the file. Pages whose data lies past a truncated end are included (use
        is_dumped/read to tell)."""
        lo, hi = self.split_range or (0, self.max_mapnr)
        ps = self.page_size
        for s, e in self._iter_bitmap_runs(2):
            s, e = max(s, lo * ps), min(e, hi * ps)
            if s < e:
                yield s, e

    @property
    def compressed(self) -> bool:
        """The dump was written with a compression (a raw page in it did not shrink)."""
        return bool(self.header.compression)

    def iter_pages(self, ranges: Sequence[Tuple[int, int]]) -> Optional[StoredPages]:
        """The stored pages of ``ranges``, which must be this dump's dumped runs in order
        (:meth:`iter_dumped_ranges`): the i-th descriptor is the i-th page of ``ranges``.
        None (read page by page instead) for a split dump, a page size other than 4 KiB, or
        ``ranges`` whose pages do not line up with the descriptors (checked on three)."""
        if self.page_size != 4096 or self.split_range:
            return None
        ps = self.page_size
        starts: List[int] = []
        total = 0
        for s_, e_ in ranges:
            starts.append(total)
            total += e_ // ps - s_ // ps
        if total:
            def pfn_at(i: int) -> int:
                k = bisect.bisect_right(starts, i) - 1
                return ranges[k][0] // ps + i - starts[k]

            try:
                for i in (0, total // 2, total - 1):
                    want = self.page_desc(pfn_at(i))
                    raw = self._pread(dd.PAGE_DESC_SIZE, self.desc_offset + i * dd.PAGE_DESC_SIZE)
                    if len(raw) < dd.PAGE_DESC_SIZE:
                        return None
                    got = dd.parse_page_desc(raw)
                    if (want.offset, want.size, want.flags) != (got.offset, got.size, got.flags):
                        return None
            except KdumptoolError:  # NotMapped, or a descriptor past the end of the file
                return None
        return StoredPages(self, ranges, total)

    def describe(self) -> dict:
        h, s = self.header, self.sub
        return {
            "format": "kdump-compressed",
            "header_version": h.header_version,
            "utsname": {"sysname": h.sysname, "nodename": h.nodename, "release": h.release,
                        "version": h.version, "machine": h.machine},
            "timestamp": h.timestamp,
            "status": h.status,
            "compression": list(h.compression),
            # makedumpfile's flag, or a file cut short: either way pages are missing
            "incomplete": h.incomplete or self.truncated,
            "truncated": self.truncated,
            "block_size": h.block_size,
            "nr_cpus": h.nr_cpus,
            "dump_level": s.dump_level,
            "phys_base": s.phys_base,
            "split": bool(s.split),
            "max_mapnr": self.max_mapnr,
            "dumped_pages": self.dumped_pages,
        }


def _load_notes(dump: Dump, vmcoreinfo_bytes: Optional[bytes] = None) -> None:
    """VMCOREINFO (the sub-header copy first, else the note) and the PRSTATUS notes."""
    if vmcoreinfo_bytes is None:
        vmcoreinfo_bytes = elf.find_vmcoreinfo(dump.notes)
    if vmcoreinfo_bytes is None:
        dump.warnings.append(f"{dump.path}: no VMCOREINFO (kernel log and virtual addresses "
                             f"are unavailable)")
    else:
        try:
            dump.vmcoreinfo = parse_vmcoreinfo(vmcoreinfo_bytes)
        except DecodeError as err:
            dump.warnings.append(str(err.with_source(dump.path)))
        dump.warnings += [f"{dump.path}: VMCOREINFO {w}" for w in dump.vmcoreinfo.warnings]
        if dump.vmcoreinfo.page_size and dump.kind == "elf":
            dump.page_size = dump.vmcoreinfo.page_size
    dump.prstatus, warns = elf.prstatus_notes(dump.notes)
    dump.warnings += warns


def read_dump_info(dump: Dump) -> DumpInfo:
    """What ``vmcore info`` shows of an open dump: headers, dumped ranges, CPU notes,
    VMCOREINFO and the reader's warnings."""
    from kdumptool.model.dump import DumpInfo

    layout = dump.describe()
    size = dump.file_size
    if dump.flat is not None:   # the file is the stream; the layout is its image's
        layout["flattened"] = dump.flat.describe()
        size = dump.flat.stream_size
    return DumpInfo(dump.path, size, dump.page_size, layout, tuple(dump.iter_dumped_ranges()),
                    tuple(dump.prstatus), tuple(dump.notes), dump.vmcoreinfo, tuple(dump.warnings))


def open_dump(path: str, cache_pages: int = 256) -> Dump:
    """Open an ELF64 core or a kdump-compressed dump, chosen by its first bytes."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        hint = " (this is not a kdump kernel: give a saved dump file)" if path == "/proc/vmcore" else ""
        raise SourceMissing(f"{path}: no such file{hint}") from None
    except PermissionError:
        from kdumptool.errors import PermissionDenied

        raise PermissionDenied(f"{path}: permission denied") from None
    except OSError as err:
        raise SourceMissing(f"{path}: {err.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise SourceMissing(f"{path}: is a directory, not a dump file")
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise UnsupportedFormat(f"{path}: a pipe or character device, not a file: a dump is read at "
                                    f"random offsets (save the stream to a file first)")
        magic = os.pread(fd, 16, 0)
        if not magic:
            raise DecodeError(path, 0, "empty file")
        if ff.is_flat(magic):
            return _open_flat(path, fd, cache_pages)
        if magic[:4] == elf.ELFMAG:
            return ElfDump(path, fd, cache_pages)
        if magic[:8] == dd.KDUMP_SIGNATURE:
            return KdumpDump(path, fd, cache_pages)
        dd.check_signature(magic, path)
        raise UnsupportedFormat(f"{path}: not an ELF core nor a kdump-compressed dump "
                                f"(magic {magic[:8]!r})")
    except BaseException:
        os.close(fd)
        raise


def _open_flat(path: str, fd: int, cache_pages: int) -> Dump:
    """A makedumpfile -F stream: index it (sources/flat.py), then read the image it
    rebuilds with the reader its first bytes call for. Errors in the image name it."""
    from kdumptool.sources.flat import FlatImage

    image = FlatImage(path, fd)
    where = f"{path}: the image the flattened stream rebuilds"
    magic = image.pread(16, 0)
    if not image.size:
        raise DecodeError(path, ff.MAX_SIZE_MDF_HEADER, "flattened stream with no data blocks"
                          + (f" ({image.warnings[0]})" if image.warnings else ""))
    try:
        if magic[:4] == elf.ELFMAG:
            dump: Dump = ElfDump(path, fd, cache_pages, image)
        elif magic[:8] == dd.KDUMP_SIGNATURE:
            dump = KdumpDump(path, fd, cache_pages, image)
        else:
            raise UnsupportedFormat(f"{where} is not an ELF core nor a kdump-compressed dump "
                                    f"(magic {magic[:8]!r})")
    except DecodeError as err:
        if err.what != path:
            raise
        raise DecodeError(where, err.offset, err.reason, err.unit) from None
    dump.warnings[:0] = image.warnings
    dump.truncated = dump.truncated or image.truncated
    return dump
