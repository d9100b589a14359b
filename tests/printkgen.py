"""The one builder of the kernel's lockless printk ring (kernel/printk/printk_ringbuffer.h,
>= 5.10) for tests: the ring struct, descriptors, infos and data blocks, packed the way the
kernel lays them out at the offsets of the VMCOREINFO the tests give. Used by the decoder
tests (tests/formats/test_printk.py, a sparse memory) and the hostile dumps
(tests/hostile/dumpgen.py, pages of a dump file)."""

from __future__ import annotations

import struct

DESC_SIZE, INFO_SIZE = 24, 88
RING_SIZE = 88
DESC_FINALIZED = 2  # desc_finalized, the state in bits 63:62 of state_var


def ring_struct(count_bits: int, descs: int, infos: int, head_id: int, tail_id: int,
                size_bits: int, data: int) -> bytes:
    """``struct printk_ringbuffer``: desc_ring {count_bits, descs, infos, head_id, tail_id}
    at 0, text_data_ring {size_bits, data} at 48."""
    rb = bytearray(RING_SIZE)
    struct.pack_into("<IxxxxQQQQ", rb, 0, count_bits, descs, infos, head_id, tail_id)
    struct.pack_into("<IxxxxQ", rb, 48, size_bits, data)
    return bytes(rb)


def desc(state: int, desc_id: int, begin: int, nxt: int) -> bytes:
    """``struct prb_desc``: state_var (state << 62 | id), text_blk_lpos {begin, next}."""
    return struct.pack("<QQQ", (state << 62) | desc_id, begin, nxt)


def info(seq: int, ts_nsec: int, text_len: int, level: int, caller_id: int,
         subsystem: bytes = b"", device: bytes = b"") -> bytes:
    """``struct printk_info``: seq, ts_nsec, text_len, facility 0, flags:5|level:3,
    caller_id, then dev_info {subsystem[16], device[48]} at 24."""
    out = bytearray(INFO_SIZE)
    struct.pack_into("<QQHBBI", out, 0, seq, ts_nsec, text_len, 0, level << 5, caller_id)
    out[24:24 + min(len(subsystem), 16)] = subsystem[:16]
    out[40:40 + min(len(device), 48)] = device[:48]
    return bytes(out)


def data_block(block_id: int, text: bytes) -> bytes:
    """A text data block: the id, then the text, padded to 8 bytes."""
    blk = struct.pack("<Q", block_id) + text
    return blk + bytes(-len(blk) % 8)
