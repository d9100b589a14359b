"""makedumpfile's flattened format (``makedumpfile -F``): the stream it writes to a pipe.

Reference: makedumpfile ``IMPLEMENTATION`` ("The flattened format") and ``makedumpfile.h``
(``struct makedumpfile_header``, ``struct makedumpfile_data_header``), facts only.

A kdump-compressed or ELF dump needs random access to be written, so for a pipe (an ssh
or raw-device dump target) makedumpfile writes each block of the seekable file it would
have written as a record of its file offset and size followed by the bytes::

    +0x0000  struct makedumpfile_header, zero-padded to MAX_SIZE_MDF_HEADER (4096) bytes
               +0x00 signature[16]  "makedumpfile" NUL-padded
               +0x10 type           int64, big-endian, TYPE_FLAT_HEADER = 1
               +0x18 version        int64, big-endian, VERSION_FLAT_HEADER = 1
    +0x1000  struct makedumpfile_data_header, then buf_size bytes of the seekable file
               +0x00 offset         int64, big-endian: where the bytes go
               +0x08 buf_size       int64, big-endian
             ... one per block, in the order makedumpfile wrote them ...
             an end record: offset = buf_size = END_FLAG_FLAT_HEADER (-1)

``makedumpfile -R`` rebuilds the seekable file by writing each block at its offset, in
stream order (so a later block overwrites an earlier one at the same offset; bytes no
block covers stay zero, as in the file makedumpfile would have written). It stops at the
first record that is not ``offset >= 0 and buf_size > 0`` and fails unless that record is
the end record. It checks the signature and the type, not the version. Blocks need not
come in offset order: makedumpfile writes the page descriptors and the page data of a
kdump-compressed dump as two interleaved runs, and the sub-header after the data behind it.

This module decodes the two records; ``sources/flat.py`` walks a file of them.
"""

from __future__ import annotations

import struct

from kdumptool.errors import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Tuple

FLAT_SIGNATURE = b"makedumpfile"        # MAKEDUMPFILE_SIGNATURE
SIG_LEN_MDF = 16                        # roundup(strlen(signature), 8)
MAX_SIZE_MDF_HEADER = 4096              # the flat header's size in the stream
TYPE_FLAT_HEADER = 1
VERSION_FLAT_HEADER = 1
END_FLAG_FLAT_HEADER = -1
DATA_HEADER_SIZE = 16                   # sizeof(struct makedumpfile_data_header)

# Bounds of our own (makedumpfile has none): no dump is bigger than 2**48 bytes (256 TiB,
# the x86-64 physical address space of 4-level paging plus headers), so an offset or size
# past it is damage, not data.
MAX_IMAGE_SIZE = 1 << 48

FLAT_HEADER = struct.Struct(">16sqq")
DATA_HEADER = struct.Struct(">qq")


def is_flat(data: bytes) -> bool:
    """The first bytes of a file are a flattened stream's signature."""
    return data[:SIG_LEN_MDF] == FLAT_SIGNATURE + b"\0" * (SIG_LEN_MDF - len(FLAT_SIGNATURE))


def parse_flat_header(data: bytes, what: str = "flattened dump") -> int:
    """Check ``struct makedumpfile_header`` (the first 4096 bytes); return its version."""
    if not is_flat(data):
        raise DecodeError(what, 0, "no makedumpfile flattened-format signature")
    if len(data) < MAX_SIZE_MDF_HEADER:
        raise DecodeError(what, len(data), f"flat header cut short ({len(data)} of "
                          f"{MAX_SIZE_MDF_HEADER} bytes)")
    _, ftype, version = FLAT_HEADER.unpack_from(data)
    if ftype != TYPE_FLAT_HEADER:
        raise DecodeError(what, 0x10, f"flat header type {ftype}, not TYPE_FLAT_HEADER (1)")
    return int(version)


def parse_data_header(data: bytes, pos: int, what: str = "flattened dump") -> Tuple[int, int]:
    """``(offset, buf_size)`` of the ``struct makedumpfile_data_header`` at stream ``pos``
    (``data`` holds its 16 bytes). The end record comes back as ``(-1, -1)``; any other
    record that is not a data block (negative offset, size not positive, or past
    MAX_IMAGE_SIZE) raises DecodeError naming ``pos``."""
    if len(data) < DATA_HEADER_SIZE:
        raise DecodeError(what, pos, f"block header cut short ({len(data)} of "
                          f"{DATA_HEADER_SIZE} bytes)")
    offset, size = DATA_HEADER.unpack_from(data)
    if offset == END_FLAG_FLAT_HEADER and size == END_FLAG_FLAT_HEADER:
        return offset, size
    if offset < 0 or size <= 0:
        raise DecodeError(what, pos, f"block header (offset {offset}, size {size}) is neither "
                          f"a data block nor the end marker")
    if offset + size > MAX_IMAGE_SIZE:
        raise DecodeError(what, pos, f"block at image offset 0x{offset:x} of {size} bytes "
                          f"ends past 2**48 bytes: not a dump")
    return offset, size
