"""Generators of hostile dumps: a small, valid crashed-kernel memory (a lockless printk
ring in the kernel image) written as an ELF core or a kdump-compressed file by
``tests/dumpwriter.py``, then damaged in one named way by the tests.

Layout (phys_base 0, so kernel-image virtual address = 0xffffffff80000000 + physical):
``SYMBOL(prb)`` at phys 0x1000 points at the ring struct at 0x2000; descriptors at 0x3000,
infos at 0x4000, a 4 KiB text data ring at 0x8000. Record ids start at ``FIRST_ID``.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Optional, Sequence, Tuple

from tests import printkgen as pk
from tests.dumpwriter import DumpSpec, write_elf, write_kdump

KMAP = 0xFFFFFFFF80000000
PRB_P, RB_P, DESCS_P, INFOS_P, DATA_P = 0x1000, 0x2000, 0x3000, 0x4000, 0x8000
COUNT_BITS, SIZE_BITS = 4, 12
DESC_SIZE, INFO_SIZE = pk.DESC_SIZE, pk.INFO_SIZE
FIRST_ID = 16      # ids start at 2^count_bits, as a booted kernel's ring does

VMCOREINFO = f"""OSRELEASE=6.1.0-hostile
PAGESIZE=4096
SYMBOL(prb)={KMAP + PRB_P:x}
NUMBER(phys_base)=0
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)={DESC_SIZE}
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)={INFO_SIZE}
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
OFFSET(atomic_long_t.counter)=0
"""


def ring_pages(texts: Sequence[bytes], text_len: Optional[Sequence[int]] = None,
               block_ids: Optional[Sequence[int]] = None,
               lpos: Optional[Sequence[Tuple[int, int]]] = None,
               state_ids: Optional[Sequence[int]] = None) -> Dict[int, bytes]:
    """Pages (pfn -> bytes) of a ring holding ``texts`` as finalized records, ids
    FIRST_ID.. . The optional lists override, per record, the info's text_len, the id
    written at the head of its data block, its (begin, next) and its descriptor's id."""
    n = len(texts)
    assert n <= 1 << COUNT_BITS
    mem = {p: bytearray(4096) for p in (PRB_P, RB_P, DESCS_P, INFOS_P, DATA_P)}
    struct.pack_into("<Q", mem[PRB_P], 0, KMAP + RB_P)
    head = FIRST_ID + max(n - 1, 0)
    mem[RB_P][:pk.RING_SIZE] = pk.ring_struct(COUNT_BITS, KMAP + DESCS_P, KMAP + INFOS_P, head, FIRST_ID,
                                              SIZE_BITS, KMAP + DATA_P)
    pos = 0
    for k, text in enumerate(texts):
        rid = FIRST_ID + k
        i = rid & ((1 << COUNT_BITS) - 1)
        blk = pk.data_block(rid if block_ids is None else block_ids[k], text)
        begin, nxt = (pos, pos + len(blk)) if lpos is None else lpos[k]
        if lpos is None:
            mem[DATA_P][pos:pos + len(blk)] = blk
            pos += len(blk)
        sid = rid if state_ids is None else state_ids[k]
        mem[DESCS_P][i * DESC_SIZE:(i + 1) * DESC_SIZE] = pk.desc(pk.DESC_FINALIZED, sid, begin, nxt)
        tl = len(text) if text_len is None else text_len[k]
        mem[INFOS_P][i * INFO_SIZE:(i + 1) * INFO_SIZE] = pk.info(k, 1000 * k, tl, 6, 1)
    return {p >> 12: bytes(b) for p, b in mem.items()}


def write_dump(pages: Dict[int, bytes], vmcoreinfo: str = VMCOREINFO, kind: str = "kdump",
               compression: str = "zlib") -> bytes:
    spec = DumpSpec(pages=dict(pages), vmcoreinfo=vmcoreinfo.encode())
    return write_kdump(spec, compression) if kind == "kdump" else write_elf(spec)


def texts(n: int) -> List[bytes]:
    return [f"hostile record {i}".encode() for i in range(n)]
