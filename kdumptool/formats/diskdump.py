"""makedumpfile's kdump-compressed dump format (``KDUMP   `` signature).

Reference: makedumpfile ``IMPLEMENTATION`` and ``diskdump_mod.h`` (facts only). File layout,
in blocks of ``block_size`` bytes (the page size of the crashed kernel)::

    block 0                     struct disk_dump_header
    block 1 .. sub_hdr_size     struct kdump_sub_header (x86-64 layout below), then the
                                VMCOREINFO text, the ELF notes and erase info it points at
    next bitmap_blocks blocks   1st bitmap (pfn is RAM) then 2nd bitmap (pfn is dumped),
                                each bitmap_blocks * block_size / 2 bytes, bit N of byte
                                N // 8 for pfn N (LSB first)
    then                        one struct page_desc per pfn set in the 2nd bitmap, in pfn
                                order, each pointing at the page's (compressed) data

``disk_dump_header.status`` flags: DUMP_DH_COMPRESSED_ZLIB 0x1, _LZO 0x2, _SNAPPY 0x4,
DUMP_DH_COMPRESSED_INCOMPLETE 0x8 (makedumpfile ran out of space: descriptors past the
written end are left zero), DUMP_DH_EXCLUDED_VMEMMAP 0x10, DUMP_DH_COMPRESSED_ZSTD 0x20.
``page_desc.flags`` uses the same compression bits; a page with none of them is stored
raw and its ``size`` equals ``block_size``.

The flattened format (``makedumpfile -F``, signature ``makedumpfile`` in a 4 KiB header,
then data in offset/size records) is ``formats/flat.py``'s: ``sources/vmcore.open_dump``
reads the kdump-compressed (or ELF) image it rebuilds; this header decoder refuses it.
"""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

from kdumptool.errors import DecodeError, DecompressorMissing, UnsupportedFormat
from kdumptool.formats.frozen import dataclass  # dataclasses costs ~10 ms of start-up
from kdumptool.formats.lazyspec import lazy_specs

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

KDUMP_SIGNATURE = b"KDUMP   "
FLAT_SIGNATURE = b"makedumpfile"        # MAKEDUMPFILE_SIGNATURE, flattened format
DISKDUMP_SIGNATURE = b"DISKDUMP"        # the older netdump/diskdump format

DUMP_DH_COMPRESSED_ZLIB = 0x1
DUMP_DH_COMPRESSED_LZO = 0x2
DUMP_DH_COMPRESSED_SNAPPY = 0x4
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
DUMP_DH_EXCLUDED_VMEMMAP = 0x10
DUMP_DH_COMPRESSED_ZSTD = 0x20

COMPRESSION_NAMES = {
    DUMP_DH_COMPRESSED_ZLIB: "zlib",
    DUMP_DH_COMPRESSED_LZO: "lzo",
    DUMP_DH_COMPRESSED_SNAPPY: "snappy",
    DUMP_DH_COMPRESSED_ZSTD: "zstd",
}
COMPRESSION_MASK = (DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO
                    | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD)

UTS_LEN = 65
DISK_DUMP_HEADER_SIZE = 464
KDUMP_SUB_HEADER_SIZE = 104
PAGE_DESC_SIZE = 24

def _construct_specs() -> Dict[str, Any]:
    """The construct specs: the documented layouts, built on first use (module
    ``__getattr__``). Importing construct costs about 40 ms, half of a `vmcore log`, so the
    decoders below use the same layouts through ``struct``; tests/formats/test_struct_specs.py
    checks that both agree."""
    from construct import Bytes, Const, Int32sl, Int32ul, Int64sl, Int64ul, Struct

    # struct disk_dump_header (diskdump_mod.h), x86-64: 8-byte longs, timeval 16 bytes.
    DiskDumpHeaderStruct = Struct(
        "signature" / Const(KDUMP_SIGNATURE),   # +0x000 "KDUMP   "
        "header_version" / Int32sl,             # +0x008 1..6 (sub header fields by version)
        "sysname" / Bytes(UTS_LEN),             # +0x00c struct new_utsname utsname
        "nodename" / Bytes(UTS_LEN),            # +0x04d
        "release" / Bytes(UTS_LEN),             # +0x08e
        "version" / Bytes(UTS_LEN),             # +0x0cf
        "machine" / Bytes(UTS_LEN),             # +0x110
        "domainname" / Bytes(UTS_LEN),          # +0x151
        "_pad" / Bytes(6),                      # +0x192 alignment of struct timeval
        "tv_sec" / Int64sl,                     # +0x198 timestamp.tv_sec
        "tv_usec" / Int64sl,                    # +0x1a0 timestamp.tv_usec
        "status" / Int32ul,                     # +0x1a8 DUMP_DH_* flags
        "block_size" / Int32sl,                 # +0x1ac bytes per block (= page size)
        "sub_hdr_size" / Int32sl,               # +0x1b0 sub header size in blocks
        "bitmap_blocks" / Int32ul,              # +0x1b4 both bitmaps, in blocks
        "max_mapnr" / Int32ul,                  # +0x1b8 32-bit, obsolete from version 6
        "total_ram_blocks" / Int32ul,           # +0x1bc
        "device_blocks" / Int32ul,              # +0x1c0
        "written_blocks" / Int32ul,             # +0x1c4
        "current_cpu" / Int32ul,                # +0x1c8
        "nr_cpus" / Int32sl,                    # +0x1cc
    )

    # struct kdump_sub_header (diskdump_mod.h), x86-64. Fields valid from the version noted.
    KdumpSubHeaderStruct = Struct(
        "phys_base" / Int64ul,                  # +0x00 v1
        "dump_level" / Int32sl,                 # +0x08 v1
        "split" / Int32sl,                      # +0x0c v2
        "start_pfn" / Int64ul,                  # +0x10 v2 (32-bit value, obsolete in v6)
        "end_pfn" / Int64ul,                    # +0x18 v2 (obsolete in v6)
        "offset_vmcoreinfo" / Int64sl,          # +0x20 v3 file offset (off_t)
        "size_vmcoreinfo" / Int64ul,            # +0x28 v3
        "offset_note" / Int64sl,                # +0x30 v4 file offset of the ELF notes
        "size_note" / Int64ul,                  # +0x38 v4
        "offset_eraseinfo" / Int64sl,           # +0x40 v5
        "size_eraseinfo" / Int64ul,             # +0x48 v5
        "start_pfn_64" / Int64ul,               # +0x50 v6
        "end_pfn_64" / Int64ul,                 # +0x58 v6
        "max_mapnr_64" / Int64ul,               # +0x60 v6
    )

    # typedef struct page_desc (diskdump_mod.h).
    PageDescStruct = Struct(
        "offset" / Int64sl,                     # +0x00 file offset of the page data (off_t)
        "size" / Int32ul,                       # +0x08 bytes stored
        "flags" / Int32ul,                      # +0x0c DUMP_DH_COMPRESSED_* of this page
        "page_flags" / Int64ul,                 # +0x10 struct page flags (informational)
    )
    return {"DiskDumpHeaderStruct": DiskDumpHeaderStruct, "KdumpSubHeaderStruct": KdumpSubHeaderStruct,
            "PageDescStruct": PageDescStruct}


__getattr__ = lazy_specs(__name__, _construct_specs)


# Hot path: the layouts above with struct (x86-64, little-endian).
DISK_DUMP_HEADER = struct.Struct("<8si65s65s65s65s65s65s6sqqIiiIIIIIIi")
_DISK_DUMP_HEADER_FIELDS = (
    "signature header_version sysname nodename release version machine domainname _pad tv_sec "
    "tv_usec status block_size sub_hdr_size bitmap_blocks max_mapnr total_ram_blocks "
    "device_blocks written_blocks current_cpu nr_cpus").split()
KDUMP_SUB_HEADER = struct.Struct("<QiiQQqQqQqQQQQ")
_KDUMP_SUB_HEADER_FIELDS = (
    "phys_base dump_level split start_pfn end_pfn offset_vmcoreinfo size_vmcoreinfo offset_note "
    "size_note offset_eraseinfo size_eraseinfo start_pfn_64 end_pfn_64 max_mapnr_64").split()


# Hot path: the same layout with struct (tests/formats/test_diskdump.py cross-checks).
PAGE_DESC = struct.Struct("<qIIQ")


@dataclass(frozen=True)
class DiskDumpHeader:
    header_version: int
    sysname: str
    nodename: str
    release: str
    version: str
    machine: str
    domainname: str
    timestamp: int
    status: int
    block_size: int
    sub_hdr_size: int
    bitmap_blocks: int
    max_mapnr: int
    total_ram_blocks: int
    device_blocks: int
    written_blocks: int
    current_cpu: int
    nr_cpus: int

    @property
    def incomplete(self) -> bool:
        return bool(self.status & DUMP_DH_COMPRESSED_INCOMPLETE)

    @property
    def compression(self) -> Tuple[str, ...]:
        return compression_names(self.status)


@dataclass(frozen=True)
class KdumpSubHeader:
    phys_base: int
    dump_level: int
    split: Optional[int] = None
    start_pfn: Optional[int] = None
    end_pfn: Optional[int] = None
    offset_vmcoreinfo: Optional[int] = None
    size_vmcoreinfo: Optional[int] = None
    offset_note: Optional[int] = None
    size_note: Optional[int] = None
    offset_eraseinfo: Optional[int] = None
    size_eraseinfo: Optional[int] = None
    max_mapnr: Optional[int] = None


@dataclass(frozen=True)
class PageDesc:
    offset: int
    size: int
    flags: int
    page_flags: int


def compression_names(flags: int) -> Tuple[str, ...]:
    return tuple(name for bit, name in sorted(COMPRESSION_NAMES.items()) if flags & bit)


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("ascii", "replace")


def check_signature(data: bytes, what: str) -> None:
    """Refuse the flattened and the old diskdump formats with a clear message."""
    if data[:len(FLAT_SIGNATURE)] == FLAT_SIGNATURE:
        raise UnsupportedFormat(
            f"{what}: makedumpfile flattened format (written with -F to a pipe), not a "
            f"kdump-compressed header: open it with open_dump, which reads the image it rebuilds")
    if data[:8] == DISKDUMP_SIGNATURE:
        raise UnsupportedFormat(f"{what}: old diskdump/netdump format (DISKDUMP), not read")


def parse_disk_dump_header(data: bytes, what: str = "kdump") -> DiskDumpHeader:
    """Decode disk_dump_header from the first bytes of the file and check its sizes."""
    check_signature(data, what)
    if data[:8] != KDUMP_SIGNATURE:
        raise DecodeError(what, 0, "no KDUMP signature")
    if len(data) < DISK_DUMP_HEADER_SIZE:
        raise DecodeError(what, len(data), f"truncated disk_dump_header ({len(data)} of "
                          f"{DISK_DUMP_HEADER_SIZE} bytes)")
    h = SimpleNamespace(**dict(zip(_DISK_DUMP_HEADER_FIELDS, DISK_DUMP_HEADER.unpack_from(data))))
    bs = h.block_size
    if bs < 512 or bs > 1 << 20 or bs & (bs - 1):
        raise DecodeError(what, 0x1AC, f"block_size {bs} is not a power of two in 512..1M")
    if not 1 <= h.header_version <= 100:
        raise DecodeError(what, 0x8, f"header_version {h.header_version} is not plausible")
    if h.sub_hdr_size < 0:
        raise DecodeError(what, 0x1B0, f"sub_hdr_size {h.sub_hdr_size} is negative")
    if h.bitmap_blocks == 0 or h.bitmap_blocks % 2:
        raise DecodeError(what, 0x1B4, f"bitmap_blocks {h.bitmap_blocks} is not a positive "
                          f"even number (two bitmaps of equal size)")
    return DiskDumpHeader(
        h.header_version, _cstr(h.sysname), _cstr(h.nodename), _cstr(h.release),
        _cstr(h.version), _cstr(h.machine), _cstr(h.domainname), h.tv_sec, h.status, bs,
        h.sub_hdr_size, h.bitmap_blocks, h.max_mapnr, h.total_ram_blocks, h.device_blocks,
        h.written_blocks, h.current_cpu, h.nr_cpus,
    )


def parse_sub_header(data: bytes, header_version: int, offset: int = 0,
                     what: str = "kdump") -> KdumpSubHeader:
    """Decode kdump_sub_header, keeping only the fields its header_version defines."""
    need = {1: 12, 2: 32, 3: 48, 4: 64, 5: 80}.get(header_version, KDUMP_SUB_HEADER_SIZE)
    if len(data) < need:
        raise DecodeError(what, offset + len(data), f"truncated kdump_sub_header (version "
                          f"{header_version} needs {need} bytes, have {len(data)})")
    raw = bytes(data[:KDUMP_SUB_HEADER_SIZE]).ljust(KDUMP_SUB_HEADER_SIZE, b"\0")
    s = SimpleNamespace(**dict(zip(_KDUMP_SUB_HEADER_FIELDS, KDUMP_SUB_HEADER.unpack(raw))))
    # phys_base is an unsigned long in the header but the kernel's value is signed.
    phys_base = s.phys_base - (1 << 64) if s.phys_base >= 1 << 63 else s.phys_base
    kw: Dict[str, Optional[int]] = {}
    if header_version >= 2:
        kw.update(split=s.split, start_pfn=s.start_pfn, end_pfn=s.end_pfn)
    if header_version >= 3:
        kw.update(offset_vmcoreinfo=s.offset_vmcoreinfo, size_vmcoreinfo=s.size_vmcoreinfo)
    if header_version >= 4:
        kw.update(offset_note=s.offset_note, size_note=s.size_note)
    if header_version >= 5:
        kw.update(offset_eraseinfo=s.offset_eraseinfo, size_eraseinfo=s.size_eraseinfo)
    if header_version >= 6:
        kw.update(start_pfn=s.start_pfn_64, end_pfn=s.end_pfn_64, max_mapnr=s.max_mapnr_64)
    return KdumpSubHeader(phys_base, s.dump_level, **kw)


def parse_page_desc(data: bytes, offset: int = 0) -> PageDesc:
    return PageDesc(*PAGE_DESC.unpack_from(data, offset))


def _decompress_lzo(data: bytes, size: int) -> bytes:
    # A compiled LZO module when this interpreter has one (lzokay is a base dependency
    # where a wheel exists), else the pure-Python decoder (formats/lzo.py): same bytes.
    try:
        import lzokay  # type: ignore[import-not-found]
    except ImportError:
        from kdumptool.formats import lzo

        return lzo.decompress(data, size)
    return bytes(lzokay.decompress(data, size))


def _decompress_snappy(data: bytes, size: int) -> bytes:
    # makedumpfile uses snappy's raw format (snappy_compress), not the framed one.
    try:
        import cramjam  # type: ignore[import-not-found]
    except ImportError:
        from kdumptool.formats import snappy

        return snappy.decompress(data, size)
    return bytes(cramjam.snappy.decompress_raw(data))


def _decompress_zstd(data: bytes, size: int) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        # A stream reader stops at size + 1 bytes whatever the frame declares
        # (decompress(max_output_size=) trusts a declared content size).
        import io

        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            return bytes(reader.read(size + 1))
    try:
        import cramjam  # type: ignore[import-not-found]
    except ImportError:
        raise DecompressorMissing("zstd-compressed pages need the zstandard or cramjam "
                                  "package (kdumptool's dependencies): pip install "
                                  "zstandard") from None
    out = bytearray(size)      # decompress_into fails rather than write past the buffer
    n = cramjam.zstd.decompress_into(data, out)
    return bytes(out[:n])


def _varint(data: bytes, limit: int = 5) -> Optional[int]:
    """A little-endian base-128 varint at the start of ``data`` (snappy's length
    preamble), or None when it does not end within ``limit`` bytes."""
    value = 0
    for i, b in enumerate(data[:limit]):
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value
    return None


ZSTD_MAGIC = 0xFD2FB528


def zstd_content_size(data: bytes) -> Optional[int]:
    """The Frame_Content_Size a zstd frame header declares (RFC 8878 section 3.1.1.1),
    or None when the frame does not declare one (or is not a zstd frame)."""
    if len(data) < 5 or int.from_bytes(data[:4], "little") != ZSTD_MAGIC:
        return None
    fhd = data[4]
    fcs_flag, single = fhd >> 6, fhd >> 5 & 1
    did_size = (0, 1, 2, 4)[fhd & 3]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if not fcs_size:
        return None
    at = 5 + (0 if single else 1) + did_size
    if len(data) < at + fcs_size:
        return None
    value = int.from_bytes(data[at:at + fcs_size], "little")
    return value + 256 if fcs_size == 2 else value


def check_declared_size(data: bytes, comp: int, page_size: int) -> Optional[str]:
    """Why the size a compressed page declares in its own header is not ``page_size``, or
    None. Checked BEFORE decompressing: a decompressor trusts that size to allocate its
    output (a snappy preamble of 4 GiB aborts the process; a zstd frame declaring 300 MB
    inflates to it)."""
    if comp == DUMP_DH_COMPRESSED_SNAPPY:
        declared = _varint(data)
        if declared is None:
            return "snappy length preamble is not a varint"
    elif comp == DUMP_DH_COMPRESSED_ZSTD:
        declared = zstd_content_size(data)
    else:
        return None
    if declared is not None and declared != page_size:
        return f"declares {declared} bytes, expected {page_size}"
    return None


def missing_decompressor(flags: int) -> Optional[str]:
    """Why pages with these compression flags cannot be decompressed by this interpreter
    (a sentence naming the package to install), or None when they can. LZO and snappy
    always can (pure-Python fallbacks); zstd needs zstandard or cramjam."""
    if flags & DUMP_DH_COMPRESSED_ZSTD:
        if not any(_importable(m) for m in ("zstandard", "cramjam")):
            return ("its pages are zstd-compressed and this Python has neither the "
                    "zstandard nor the cramjam module: pip install zstandard")
    return None


def _importable(module: str) -> bool:
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def decompress_page(data: bytes, flags: int, page_size: int, what: str = "page",
                    offset: Optional[int] = None) -> bytes:
    """Return the ``page_size`` bytes of one dumped page from its stored bytes.

    Any decompressor failure, or a result of the wrong size, is a DecodeError naming the
    page; a missing optional decompressor is UnsupportedFormat naming the package.
    """
    comp = flags & COMPRESSION_MASK
    if comp == 0:
        if len(data) != page_size:
            raise DecodeError(what, offset, f"raw page is {len(data)} bytes, expected {page_size}")
        return bytes(data)
    if comp & (comp - 1):
        raise DecodeError(what, offset, f"page flags 0x{flags:x} name several compressions")
    name = COMPRESSION_NAMES[comp]
    why = check_declared_size(data, comp, page_size)
    if why:
        raise DecodeError(what, offset, f"corrupt {name} page: {why}")
    try:
        if comp == DUMP_DH_COMPRESSED_ZLIB:
            d = zlib.decompressobj()
            out = d.decompress(data, page_size)
            if not d.eof:
                raise ValueError("zlib stream incomplete")
        elif comp == DUMP_DH_COMPRESSED_LZO:
            out = _decompress_lzo(data, page_size)
        elif comp == DUMP_DH_COMPRESSED_SNAPPY:
            out = _decompress_snappy(data, page_size)
        else:
            out = _decompress_zstd(data, page_size)
    except UnsupportedFormat:
        raise
    except Exception as err:  # each library raises its own error type
        raise DecodeError(what, offset, f"corrupt {name} page: {err}") from None
    if len(out) != page_size:
        raise DecodeError(what, offset,
                          f"{name} page decompresses to {len(out)} bytes, expected {page_size}")
    return out
