"""The printk buffers: the real lockless ring of the lab kernel, synthetic rings for the
wrap cases and the 3.5-5.9 printk_log buffer."""

from __future__ import annotations

import re
import struct
from typing import Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError, NotMapped, UnsupportedFormat
from kdumptool.formats.printk import decode_printk
from kdumptool.formats.vmcoreinfo import parse_vmcoreinfo
from kdumptool.sources.vmcore import open_dump
from tests import printkgen as pk
from tests.conftest import FIXTURES

RUNS = ("legacy_on", "sm_mismatch_vmcore")


def _makedumpfile_lines(run: str):
    """makedumpfile prints continuation lines of a record indented, not re-stamped."""
    out, stamp = [], ""
    for line in (FIXTURES / "vmcore" / f"{run}.makedumpfile_dmesg.txt").read_text().splitlines():
        m = re.match(r"^(\[[ \d]+\.\d+\] )", line)
        if m:
            stamp = m.group(1)
            out.append(line)
        else:
            out.append(stamp + line[15:])
    return out


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("ext", ["kdump", "elf"])
def test_real_ring_against_live_dmesg_and_makedumpfile(run, ext):
    with open_dump(str(FIXTURES / "vmcore" / f"{run}.trim.{ext}")) as dump:
        log = decode_printk(dump.vmcoreinfo, dump.read_virt)
    assert log.kind == "lockless" and log.warnings == ()
    lines = log.dmesg_lines()
    live = (FIXTURES / "vmcore" / f"{run}.live_dmesg.txt").read_text().splitlines()
    have = set(lines)
    assert len(live) > 500
    assert [ln for ln in live if ln not in have] == []
    assert lines == _makedumpfile_lines(run)
    # The crash itself is after the live capture.
    assert any("Kernel panic - not syncing: sysrq triggered crash" in ln for ln in lines[-40:])
    first = log.records[0]
    assert first.text.startswith("Linux version 6.1.0-56-amd64") and first.level == 5
    # The panic comes from the "sh" task whose pid the kernel printed ("PID: 104/105").
    panic = next(r for r in log.records if r.text.startswith("Kernel panic"))
    pid = next(r for r in log.records if r.text.startswith("CPU: ")).text.split()[3]
    assert panic.caller == f"T{pid}"


@pytest.mark.corpus
@pytest.mark.parametrize("run", RUNS)
def test_full_dump_ring_equals_trimmed(shared, run):
    full = shared / "lab-captures" / "kdump" / run / "vmcore.d31.zlib.kdump"
    with open_dump(str(full)) as dump:
        a = decode_printk(dump.vmcoreinfo, dump.read_virt)
    with open_dump(str(FIXTURES / "vmcore" / f"{run}.trim.kdump")) as dump:
        b = decode_printk(dump.vmcoreinfo, dump.read_virt)
    assert a.records == b.records


# -- synthetic memory ---------------------------------------------------------------------

class Mem:
    def __init__(self) -> None:
        self.regions: Dict[int, bytearray] = {}

    def put(self, addr: int, data: bytes) -> None:
        self.regions[addr] = bytearray(data)

    def read(self, addr: int, size: int) -> bytes:
        for base, buf in self.regions.items():
            if base <= addr and addr + size <= base + len(buf):
                return bytes(buf[addr - base:addr - base + size])
        raise NotMapped(addr, "not in the dump")


LOCKLESS_VMCOREINFO = """SYMBOL(prb)=ffffffff81000000
SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(printk_ringbuffer.fail)=80
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(printk_info.dev_info)=24
OFFSET(dev_printk_info.subsystem)=0
LENGTH(printk_info_subsystem)=16
OFFSET(dev_printk_info.device)=16
LENGTH(printk_info_device)=48
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
OFFSET(prb_data_ring.head_lpos)=16
OFFSET(prb_data_ring.tail_lpos)=24
OFFSET(atomic_long_t.counter)=0
"""

PRB, RB, DESCS, INFOS, DATA = (0xFFFFFFFF81000000, 0xFFFFFFFF81001000, 0xFFFF888000010000,
                               0xFFFF888000020000, 0xFFFF888000030000)


def _lockless(mem: Mem, blocks, head_id: int, tail_id: int) -> None:
    """blocks: {desc index: (state, id, begin, next, seq, ts, text_len, level)}; a 4-entry
    desc ring and a 64-byte data ring (size_bits 6)."""
    mem.put(PRB, struct.pack("<Q", RB))
    mem.put(RB, pk.ring_struct(2, DESCS, INFOS, head_id, tail_id, 6, DATA))
    descs, infos = bytearray(4 * pk.DESC_SIZE), bytearray(4 * pk.INFO_SIZE)
    for i, (state, did, begin, nxt, seq, ts, tlen, level) in blocks.items():
        descs[i * pk.DESC_SIZE:(i + 1) * pk.DESC_SIZE] = pk.desc(state, did, begin, nxt)
        infos[i * pk.INFO_SIZE:(i + 1) * pk.INFO_SIZE] = pk.info(seq, ts, tlen, level, 0x80000001, b"pci\0",
                                                                 b"+pci:0000:00:02.0\0"[:14])
    mem.put(DESCS, bytes(descs))
    mem.put(INFOS, bytes(infos))


def test_lockless_wrapped_block_dataless_and_stale_descriptors():
    mem = Mem()
    data = bytearray(64)
    # id 5: block [88, 112) = wrap 1, index 24..48: id then "alpha..." (30 bytes max 16)
    struct.pack_into("<Q", data, 24, 5)
    data[32:48] = b"alpha-alpha-alph"
    # id 7: begin 112 (wrap 1, index 48), next 152 (wrap 2, index 24): wraps, data at 0.
    struct.pack_into("<Q", data, 0, 7)
    data[8:22] = b"wrapping-text!"
    mem.put(DATA, bytes(data))
    _lockless(mem, {
        0: (3, 4, 0, 0, 3, 0, 0, 6),                # id 4: reusable -> skipped
        1: (2, 5, 88, 112, 4, 1_500_000, 16, 6),    # finalized
        2: (1, 6, 3, 3, 5, 2_000_000_000, 0, 4),    # committed, data-less: empty line
        3: (2, 7, 112, 152, 6, 3_000_001_000, 14, 3),
    }, head_id=7, tail_id=5)
    vi = parse_vmcoreinfo(LOCKLESS_VMCOREINFO)
    log = decode_printk(vi, mem.read)
    assert [(r.seq, r.text, r.level) for r in log.records] == [
        (4, "alpha-alpha-alph", 6), (5, "", 4), (6, "wrapping-text!", 3)]
    assert log.records[0].subsystem == "pci" and log.records[0].caller_id == 0x80000001
    assert log.records[0].caller == "C1"
    assert log.dmesg_lines()[-1] == "[    3.000001] wrapping-text!"
    assert log.dmesg_lines()[0] == "[    0.001500] alpha-alpha-alph"


def test_lockless_id_mismatch_and_unreadable_data():
    mem = Mem()
    _lockless(mem, {
        1: (2, 9, 88, 112, 4, 0, 16, 6),     # holds id 9, not 5: overwritten, skipped
        2: (2, 6, 136, 152, 5, 0, 8, 6),     # its data ring is not in memory
    }, head_id=6, tail_id=5)
    vi = parse_vmcoreinfo(LOCKLESS_VMCOREINFO)
    log = decode_printk(vi, mem.read)
    assert log.records == ()
    assert any("text data ring" in w and "unreadable" in w for w in log.warnings)
    assert any("1 record(s) skipped" in w for w in log.warnings)


def test_lockless_unreadable_prb_is_clear_error():
    vi = parse_vmcoreinfo(LOCKLESS_VMCOREINFO)
    with pytest.raises(DecodeError, match="cannot read prb at 0xffffffff81000000"):
        decode_printk(vi, Mem().read)


PRINTK_LOG_VMCOREINFO = """SYMBOL(log_buf)=ffffffff82000000
SYMBOL(log_buf_len)=ffffffff82000008
SYMBOL(log_first_idx)=ffffffff82000010
SYMBOL(log_next_idx)=ffffffff82000018
SIZE(printk_log)=16
OFFSET(printk_log.ts_nsec)=0
OFFSET(printk_log.len)=8
OFFSET(printk_log.text_len)=10
"""
LOGBUF = 0xFFFF888000040000


def _rec(text: bytes, ts: int, level: int) -> bytes:
    n = 16 + len(text)
    n += -n % 8
    hdr = struct.pack("<QHHHBB", ts, n, len(text), 0, 0, level << 5)
    return (hdr + text).ljust(n, b"\0")


def _printk_log(first: int, nxt: int, buf: bytes, vmcoreinfo: str = PRINTK_LOG_VMCOREINFO):
    mem = Mem()
    mem.put(0xFFFFFFFF82000000, struct.pack("<QIxxxxIxxxxI", LOGBUF, len(buf), first, nxt))
    mem.put(LOGBUF, buf)
    return decode_printk(parse_vmcoreinfo(vmcoreinfo), mem.read)


def test_printk_log_with_wrap_marker():
    buf = bytearray(128)
    buf[80:104] = _rec(b"first", 1_000, 6)           # 24 bytes
    # 104: zero header = wrap marker (the next record did not fit)
    buf[0:32] = _rec(b"second-msg", 2_000_000, 3)    # 32 bytes
    buf[32:56] = _rec(b"third", 3_000_000_000, 7)
    log = _printk_log(80, 56, bytes(buf))
    assert log.kind == "printk_log" and log.warnings == ()
    assert [(r.text, r.level, r.ts_nsec) for r in log.records] == [
        ("first", 6, 1_000), ("second-msg", 3, 2_000_000), ("third", 7, 3_000_000_000)]
    assert log.dmesg_lines()[2] == "[    3.000000] third"


def test_printk_log_old_struct_name_and_bad_record():
    old = PRINTK_LOG_VMCOREINFO.replace("printk_log", "log")
    buf = bytearray(128)
    buf[0:24] = _rec(b"hello", 5, 6)
    buf[24:40] = struct.pack("<QHHHBB", 0, 200, 5, 0, 0, 0)   # len past the buffer
    log = _printk_log(0, 64, bytes(buf), old)
    assert [r.text for r in log.records] == ["hello"]
    assert "bad record at index 24" in log.warnings[0]


def test_printk_log_implausible_indices():
    with pytest.raises(DecodeError, match="implausible log_buf_len"):
        _printk_log(500, 0, bytes(128))


def test_no_printk_buffer():
    with pytest.raises(UnsupportedFormat, match="no printk buffer"):
        decode_printk(parse_vmcoreinfo("OSRELEASE=6.1\n"), Mem().read)
    with pytest.raises(UnsupportedFormat, match="before 3.5"):
        decode_printk(parse_vmcoreinfo("SYMBOL(log_buf)=ffffffff81000000\n"), Mem().read)
    with pytest.raises(UnsupportedFormat, match=r"OFFSET\(prb_desc.state_var\)"):
        decode_printk(parse_vmcoreinfo(LOCKLESS_VMCOREINFO.replace(
            "OFFSET(prb_desc.state_var)=0\n", "")), Mem().read)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=64, max_size=256), st.integers(0, 255), st.integers(0, 255))
def test_fuzz_printk_log(buf, first, nxt):
    try:
        log = _printk_log(first, nxt, buf)
        assert len(log.records) <= len(buf) // 16 + 1
    except KdumptoolError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=4 * 24 + 4 * 88 + 64, max_size=4 * 24 + 4 * 88 + 64),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_fuzz_lockless(blob, head, tail):
    mem = Mem()
    _lockless(mem, {}, head_id=head, tail_id=tail)
    mem.put(DESCS, blob[:96])
    mem.put(INFOS, blob[96:96 + 352])
    mem.put(DATA, blob[448:])
    try:
        log = decode_printk(parse_vmcoreinfo(LOCKLESS_VMCOREINFO), mem.read)
        assert len(log.records) <= 4
    except KdumptoolError:
        pass


_REAL: dict = {}


def _real_ring():
    """The trimmed lab dump's pages and translation, read once."""
    if not _REAL:
        dump = open_dump(str(FIXTURES / "vmcore" / "legacy_on.trim.kdump"))
        touched: Dict[int, bytes] = {}
        orig = dump.read

        def rec(paddr: int, size: int) -> bytes:
            for pfn in range(paddr >> 12, (paddr + max(size, 1) - 1 >> 12) + 1):
                touched.setdefault(pfn, orig(pfn << 12, 4096))
            return orig(paddr, size)

        dump.read = rec  # type: ignore[method-assign]
        decode_printk(dump.vmcoreinfo, dump.read_virt)
        dump.read = orig  # type: ignore[method-assign]
        _REAL.update(dump=dump, pages=touched)
    return _REAL


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 4095), st.integers(0, 255)),
                min_size=1, max_size=40))
def test_fuzz_real_ring_with_damaged_pages(edits):
    """Random bytes changed in the real ring's pages (descriptors, infos, text, the
    page tables on the way): the decoder gives records and warnings, or our error."""
    real = _real_ring()
    dump, pages = real["dump"], real["pages"]
    pfns = sorted(pages)
    damaged = {p: bytearray(b) for p, b in pages.items()}
    for which, off, val in edits:
        damaged[pfns[which % len(pfns)]][off] = val

    def read_phys(paddr: int, size: int) -> bytes:
        out = b""
        while size > 0:
            page = damaged.get(paddr >> 12)
            if page is None:
                raise NotMapped(paddr, "filtered")
            n = min(size, 4096 - (paddr & 0xFFF))
            out += bytes(page[paddr & 0xFFF:(paddr & 0xFFF) + n])
            paddr, size = paddr + n, size - n
        return out

    def read_virt(vaddr: int, size: int) -> bytes:
        out = b""
        while size > 0:
            n = min(size, 4096 - (vaddr & 0xFFF))
            pa = dump.virt_to_phys(vaddr)     # translation from the undamaged dump
            out += read_phys(pa, n)
            vaddr, size = vaddr + n, size - n
        return out

    try:
        log = decode_printk(dump.vmcoreinfo, read_virt)
        assert len(log.records) <= 1 << 17
    except KdumptoolError:
        pass
