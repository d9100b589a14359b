"""cpio "newc" archives as the kernel unpacks an initramfs: several archives one after
the other (an uncompressed early-microcode archive first, then the main one), each
optionally compressed (gzip, xz, zstd, lz4 legacy, bzip2), with zero padding between.

References: the kernel's ``Documentation/driver-api/early-userspace/buffer-format.rst``
(newc header: magic ``070701``/``070702`` + 13 eight-digit hex fields, 110 bytes; name
and data each padded to 4 bytes; ``TRAILER!!!`` ends an archive) and ``init/initramfs.c``
(zero bytes between archives are skipped; the next archive may be compressed).

Only names and modes are kept (the file contents are skipped), so a 100 MB image costs
what its decompression costs.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from typing import Callable, Dict, List, Optional, Tuple

from kdumptool.errors import DecodeError, UnsupportedFormat
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

NEWC_MAGIC = b"070701"
NEWC_CRC_MAGIC = b"070702"
HEADER_LEN = 110
TRAILER = "TRAILER!!!"

#: Compressed-stream magics, as the kernel's ``decompress_method()`` table lists them.
COMPRESSION_MAGICS: Tuple[Tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x1f\x9e", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
)

S_IFMT = 0o170000
S_IFREG = 0o100000
S_IFDIR = 0o040000
S_IFLNK = 0o120000

#: A decompressor takes the compressed tail of the image and returns (decompressed
#: bytes, the unused rest after the end of this compressed stream).
Decompressor = Callable[[bytes], Tuple[bytes, bytes]]


@dataclass(frozen=True)
class CpioEntry:
    name: str
    mode: int
    size: int
    segment: int  # which archive of the image (0 = first)

    @property
    def is_file(self) -> bool:
        return (self.mode & S_IFMT) == S_IFREG

    @property
    def is_dir(self) -> bool:
        return (self.mode & S_IFMT) == S_IFDIR

    @property
    def is_symlink(self) -> bool:
        return (self.mode & S_IFMT) == S_IFLNK


@dataclass(frozen=True)
class CpioSegment:
    offset: int  # offset in the image (of the compressed stream, for compressed ones)
    compression: str  # none, gzip, xz, zstd, lz4, ...
    entries: int


@dataclass(frozen=True)
class CpioImage:
    entries: Tuple[CpioEntry, ...]
    segments: Tuple[CpioSegment, ...]
    warnings: Tuple[str, ...]

    def names(self) -> List[str]:
        return [e.name for e in self.entries]


def compression_of(data: bytes) -> Optional[str]:
    for magic, name in COMPRESSION_MAGICS:
        if data.startswith(magic):
            return name
    return None


def _gunzip(data: bytes) -> Tuple[bytes, bytes]:
    d = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, auto-detected
    out = d.decompress(data)
    if not d.eof:
        raise ValueError("gzip stream ends early")
    return out, d.unused_data


def _unxz(data: bytes) -> Tuple[bytes, bytes]:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_AUTO)
    out = d.decompress(data)
    if not d.eof:
        raise ValueError("xz/lzma stream ends early")
    return out, d.unused_data


def _bunzip2(data: bytes) -> Tuple[bytes, bytes]:
    d = bz2.BZ2Decompressor()
    out = d.decompress(data)
    if not d.eof:
        raise ValueError("bzip2 stream ends early")
    return out, d.unused_data


def _unzstd(data: bytes) -> Tuple[bytes, bytes]:
    import zstandard  # optional dependency; the source falls back to the zstd binary

    d = zstandard.ZstdDecompressor().decompressobj()
    out = d.decompress(data)
    if not d.eof:
        raise ValueError("zstd stream ends early")
    return out, d.unused_data


LZ4_LEGACY_MAGIC = 0x184C2102


def lz4_block_decompress(src: bytes, max_out: int = 8 << 20) -> bytes:
    """Decode one LZ4 block (the LZ4 block format: sequences of literal run + match)."""
    out = bytearray()
    i = 0
    n = len(src)
    while i < n:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if i >= n:
                    raise ValueError("lz4: truncated literal length")
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        if i + lit > n:
            raise ValueError("lz4: literals past the end of the block")
        out += src[i : i + lit]
        i += lit
        if i >= n:
            break  # the last sequence has literals only
        if i + 2 > n:
            raise ValueError("lz4: truncated match offset")
        off = src[i] | (src[i + 1] << 8)
        i += 2
        if off == 0 or off > len(out):
            raise ValueError("lz4: match offset outside the output")
        mlen = token & 15
        if mlen == 15:
            while True:
                if i >= n:
                    raise ValueError("lz4: truncated match length")
                b = src[i]
                i += 1
                mlen += b
                if b != 255:
                    break
        mlen += 4
        if len(out) + mlen > max_out:
            raise ValueError("lz4: block decompresses past its limit")
        start = len(out) - off
        if off >= mlen:
            out += out[start : start + mlen]
        else:
            for k in range(mlen):
                out.append(out[start + k])
    return bytes(out)


def _unlz4(data: bytes) -> Tuple[bytes, bytes]:
    """The lz4 "legacy" frame the kernel's initramfs code reads (``lz4 -l``):
    magic, then blocks of ``u32 LE compressed size`` + data; ends at the end of input, a
    zero size, or a new magic (the next concatenated stream)."""
    if len(data) < 4 or struct.unpack_from("<I", data)[0] != LZ4_LEGACY_MAGIC:
        raise ValueError("not an lz4 legacy stream")
    i = 4
    out = bytearray()
    block: Callable[[bytes], bytes] = lz4_block_decompress
    try:
        import cramjam

        def _cramjam_block(b: bytes) -> bytes:
            return bytes(cramjam.lz4.decompress_block(b, output_len=8 << 20))

        block = _cramjam_block
    except ImportError:  # pragma: no cover - cramjam is a declared test dependency
        pass
    while i + 4 <= len(data):
        size = struct.unpack_from("<I", data, i)[0]
        if size == LZ4_LEGACY_MAGIC or size == 0:
            break
        if i + 4 + size > len(data):
            raise ValueError("lz4 block past the end")
        try:
            out += block(data[i + 4 : i + 4 + size])
        except Exception as exc:  # cramjam raises its own error type
            raise ValueError(f"lz4 block does not decode: {exc}") from None
        i += 4 + size
    return bytes(out), data[i:]


DECOMPRESSORS: Dict[str, Decompressor] = {
    "gzip": _gunzip,
    "xz": _unxz,
    "lzma": _unxz,
    "bzip2": _bunzip2,
    "zstd": _unzstd,
    "lz4": _unlz4,
}


def _clean(name: str) -> str:
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name or "."


def _parse_newc(
    data: bytes, pos: int, segment: int, what: str, entries: List[CpioEntry]
) -> Tuple[int, bool]:
    """Read one newc archive starting at ``pos``; returns (position after it, whether a
    trailer ended it). Raises DecodeError for a bad header."""
    n = len(data)
    while True:
        if pos + HEADER_LEN > n:
            raise DecodeError(what, pos, "cpio header runs past the end")
        magic = data[pos : pos + 6]
        if magic not in (NEWC_MAGIC, NEWC_CRC_MAGIC):
            raise DecodeError(what, pos, f"bad cpio magic {magic!r} (want 070701)")
        try:
            fields = [int(data[pos + 6 + 8 * k : pos + 14 + 8 * k], 16) for k in range(13)]
        except ValueError:
            raise DecodeError(what, pos, "cpio header field is not hex") from None
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = pos + HEADER_LEN
        if namesize == 0 or name_start + namesize > n:
            raise DecodeError(what, pos, f"cpio name size {namesize} runs past the end")
        name = data[name_start : name_start + namesize - 1].decode("utf-8", "replace")
        data_start = (name_start + namesize + 3) & ~3
        end = (data_start + filesize + 3) & ~3
        if data_start + filesize > n:
            raise DecodeError(what, pos, f"cpio member {name!r} size {filesize} runs past the end")
        if name == TRAILER:
            return min(end, n), True
        entries.append(CpioEntry(_clean(name), mode, filesize, segment))
        pos = end


def parse_cpio(
    data: bytes,
    what: str = "initramfs",
    decompressors: Optional[Dict[str, Decompressor]] = None,
    max_segments: int = 64,
) -> CpioImage:
    """Decode an initramfs image: every concatenated (compressed) newc archive.

    The first archive must be a newc archive or a compressed stream: anything else raises
    :class:`DecodeError`. Trouble after a good first archive (a truncated second stream,
    an unsupported compression) ends the walk with a warning and what was read so far.
    """
    decs = dict(DECOMPRESSORS)
    if decompressors:
        decs.update(decompressors)
    entries: List[CpioEntry] = []
    segments: List[CpioSegment] = []
    warnings: List[str] = []
    buf = data
    pos = 0
    seg = 0
    base = 0  # offset of buf within the original image (for compressed tails: unknown)
    while seg < max_segments:
        # The kernel skips zero padding between archives (4-byte aligned).
        while pos < len(buf) and buf[pos] == 0:
            pos += 1
        if pos >= len(buf):
            break
        head = buf[pos : pos + 8]
        comp = compression_of(head)
        try:
            if head.startswith((NEWC_MAGIC, NEWC_CRC_MAGIC)):
                before = len(entries)
                pos, _ = _parse_newc(buf, pos, seg, what, entries)
                segments.append(CpioSegment(base + pos, "none", len(entries) - before))
                seg += 1
                continue
            if comp is None:
                raise DecodeError(what, base + pos, f"neither a cpio archive nor a known compression (starts {head[:6].hex()})")
            dec = decs.get(comp)
            if dec is None:
                raise UnsupportedFormat(f"{what}: offset 0x{base + pos:x}: {comp} compression is not supported here")
            try:
                plain, rest = dec(bytes(buf[pos:]))
            except ImportError:
                raise UnsupportedFormat(f"{what}: {comp} compression needs a module that is not installed") from None
            except (ValueError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                raise DecodeError(what, base + pos, f"{comp} stream does not decompress: {exc}") from None
            except Exception as exc:  # zstandard.ZstdError and friends
                raise DecodeError(what, base + pos, f"{comp} stream does not decompress: {exc}") from None
            # Inside the decompressed stream: one or more archives, padded.
            inner_pos = 0
            while inner_pos < len(plain):
                while inner_pos < len(plain) and plain[inner_pos] == 0:
                    inner_pos += 1
                if inner_pos >= len(plain):
                    break
                before = len(entries)
                inner_pos, _ = _parse_newc(plain, inner_pos, seg, f"{what} ({comp} stream)", entries)
                segments.append(CpioSegment(base + pos, comp, len(entries) - before))
                seg += 1
            consumed = len(buf) - pos - len(rest)
            base += pos + consumed
            buf = rest
            pos = 0
        except (DecodeError, UnsupportedFormat) as exc:
            if not segments:
                raise
            warnings.append(str(exc))
            break
    if not segments:
        raise DecodeError(what, 0, "empty image: no cpio archive")
    return CpioImage(tuple(entries), tuple(segments), tuple(warnings))


MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz", ".ko.bz2")


def module_name(path: str) -> Optional[str]:
    """``usr/lib/modules/6.1.0/kernel/.../e1000e.ko.xz`` -> ``e1000e`` (dashes become
    underscores, as modprobe and /sys/module name them); None for other files."""
    base = path.rsplit("/", 1)[-1]
    for suf in MODULE_SUFFIXES:
        if base.endswith(suf):
            return base[: -len(suf)].replace("-", "_")
    return None


def modules_of(names: List[str]) -> List[str]:
    """Module names found in an archive listing (sorted, unique)."""
    return sorted({m for m in (module_name(n) for n in names) if m})
