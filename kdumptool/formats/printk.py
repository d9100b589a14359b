"""The crashed kernel's log buffer, located and laid out with VMCOREINFO only (no vmlinux).

Two layouts, tried in this order (by the symbols VMCOREINFO exports, not by version):

1. The lockless ring buffer of Linux 5.10+ (``kernel/printk/printk_ringbuffer.{c,h}``,
   Linux commit 896fbe20b4e2 ("printk: use the lockless ringbuffer")), exported by
   ``SYMBOL(prb)`` and the ``printk_ringbuffer``, ``prb_desc_ring``, ``prb_desc``,
   ``prb_data_blk_lpos``, ``printk_info``, ``prb_data_ring`` OFFSET/SIZE entries. ``prb``
   points at the ring; descriptors from ``tail_id`` to ``head_id`` (ids wrap at
   ``DESC_ID_MASK``; index = id & (2^count_bits - 1)) whose ``state_var`` holds the same id
   and state committed (1) or finalized (2) are records. Their text block
   ``[begin, next)`` in the data ring starts with the owning id (an unsigned long); when the
   block wraps (``DATA_WRAPS(begin) + 1 == DATA_WRAPS(next)``) it sits at index 0. Blocks
   with bit 0 set in both lpos values are data-less (``FAILED_LPOS``/``EMPTY_LINE_LPOS``):
   an empty line.
2. The structured ``printk_log`` buffer of Linux 3.5-5.9 (Linux commit 7ff9554bb578
   ("printk: convert byte-buffer to variable-length record buffer")), exported by
   ``SYMBOL(log_buf)``, ``SYMBOL(log_buf_len)``, ``SYMBOL(log_first_idx)``,
   ``SYMBOL(log_next_idx)`` and ``SIZE/OFFSET(printk_log.*)`` (``log.*`` before Linux
   3.11). Records start at ``log_first_idx``; a record with ``len == 0`` sends the walk
   back to index 0; text follows the ``SIZE(printk_log)``-byte header.

Level and facility are not exported by VMCOREINFO. Both layouts put ``u8 facility`` and
``u8 flags:5, level:3`` (GCC on x86: first bit-field in the low bits) right after the
16-bit ``text_len`` (lockless: offset text_len + 2 and + 3) or after ``text_len`` and
``dict_len`` (printk_log: + 4 and + 5); they are decoded from there only when the
exported offsets leave room for them, and are ``None`` otherwise.

The decoder is pure: it reads memory through a ``read(vaddr, size) -> bytes`` callable
(the dump's kernel-virtual reader) and turns missing pages (``KdumptoolError``) into
warnings and skipped records. Addresses: ``SYMBOL()`` values are ``__START_KERNEL_map``
addresses; the pointers read from them (``prb``, ``descs``, ``infos``, ``data``,
``log_buf``) point into the kernel image (static buffers) or, with ``log_buf_len=``, into
the direct map: the reader handles both.
"""

from __future__ import annotations

from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
from kdumptool.formats.frozen import dataclass  # dataclasses costs ~10 ms of start-up
from kdumptool.formats.vmcoreinfo import VmcoreInfo

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

    Reader = Callable[[int, int], bytes]


DESC_SV_BITS = 64
DESC_FLAGS_SHIFT = DESC_SV_BITS - 2
DESC_ID_MASK = (1 << DESC_FLAGS_SHIFT) - 1
DESC_COMMITTED = 1
DESC_FINALIZED = 2
MAX_RING_BYTES = 64 << 20      # larger than any real log_buf_len (max 2^25 = 32 MiB)
# Largest struct a VMCOREINFO SIZE() may give for the record structs (prb_desc is 24 bytes,
# printk_info 88 with dev_info, printk_log 16): a bigger value is damage, not a kernel.
MAX_STRUCT_SIZE = 4096
# Longest text of one record: the kernel caps a record's text at about 1 KiB
# (PRINTKRB_RECORD_MAX, earlier LOG_LINE_MAX = 1024 - 32); 8 KiB leaves room for every
# kernel and still stops a forged 64 KiB text_len.
MAX_RECORD_TEXT = 8192


@dataclass(frozen=True)
class PrintkRecord:
    seq: int
    ts_nsec: int
    text: str
    level: Optional[int] = None
    facility: Optional[int] = None
    caller_id: Optional[int] = None
    subsystem: str = ""
    device: str = ""

    def dmesg_lines(self) -> List[str]:
        """The record as ``dmesg`` prints it: every line with the record's timestamp."""
        sec, nsec = divmod(self.ts_nsec, 1_000_000_000)
        prefix = f"[{sec:5d}.{nsec // 1000:06d}] "
        return [prefix + line for line in self.text.split("\n")]

    @property
    def caller(self) -> Optional[str]:
        """``T<pid>`` or ``C<cpu>`` as printk's caller id says (bit 31 set: a CPU id, the
        message came from interrupt context), like the kernel's ``[T123]`` prefix."""
        if self.caller_id is None:
            return None
        if self.caller_id & 0x80000000:
            return f"C{self.caller_id & 0x7FFFFFFF}"
        return f"T{self.caller_id}"

    def to_json(self) -> dict:
        return {"seq": self.seq, "ts_nsec": self.ts_nsec, "level": self.level,
                "facility": self.facility, "caller_id": self.caller_id, "caller": self.caller,
                "subsystem": self.subsystem, "device": self.device, "text": self.text}


@dataclass(frozen=True)
class PrintkLog:
    kind: str                     # "lockless" or "printk_log"
    records: Tuple[PrintkRecord, ...]
    warnings: Tuple[str, ...] = ()

    def dmesg_lines(self) -> List[str]:
        out: List[str] = []
        for rec in self.records:
            out += rec.dmesg_lines()
        return out


class _Mem:
    """A kernel-virtual buffer read page by page; missing pages are remembered."""

    def __init__(self, read: Reader, vaddr: int, size: int, what: str) -> None:
        self.vaddr, self.size, self.what = vaddr, size, what
        self.pages: Dict[int, bytes] = {}
        self.missing: List[Tuple[int, str]] = []
        addr, end = vaddr, vaddr + size
        while addr < end:
            n = min(4096 - (addr & 0xFFF), end - addr)
            try:
                data = read(addr, n)
            except KdumptoolError as err:
                self.missing.append((addr, str(err)))
                data = None
            if data is not None:
                self.pages[addr - vaddr] = data
            addr += n
        # every page read (the common case): one buffer, and get() is one slice
        self.flat: Optional[bytes] = None
        if not self.missing:
            flat = b"".join(self.pages[k] for k in sorted(self.pages))
            if len(flat) == size:
                self.flat = flat

    def get(self, off: int, size: int) -> Optional[bytes]:
        """Bytes [off, off + size) of the buffer, or None when any part is missing."""
        if off < 0 or size < 0 or off + size > self.size:
            return None
        if self.flat is not None:
            return self.flat[off:off + size]
        out = []
        pos, end = off, off + size
        while pos < end:
            # Chunks were cut at virtual page boundaries; the first may start mid-page.
            page_off = max(0, pos - ((self.vaddr + pos) & 0xFFF))
            chunk = self.pages.get(page_off)
            if chunk is None:
                return None
            take = min(end, page_off + len(chunk)) - pos
            out.append(chunk[pos - page_off:pos - page_off + take])
            pos += take
        return b"".join(out)


def _u(b: bytes, off: int, size: int) -> int:
    return int.from_bytes(b[off:off + size], "little")


def _need(vi: VmcoreInfo, kind: str, names: List[str]) -> Dict[str, int]:
    table = {"OFFSET": vi.offsets, "SIZE": vi.sizes, "SYMBOL": vi.symbols}[kind]
    missing = [n for n in names if n not in table]
    if missing:
        raise UnsupportedFormat(f"VMCOREINFO lacks {', '.join(f'{kind}({n})' for n in missing)}")
    return {n: table[n] for n in names}


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _read_u(read: Reader, vaddr: int, size: int, what: str) -> int:
    try:
        return int.from_bytes(read(vaddr, size), "little")
    except KdumptoolError as err:
        raise DecodeError("kernel log", None, f"cannot read {what} at 0x{vaddr:x}: {err}") from None


def decode_lockless(vi: VmcoreInfo, read: Reader) -> PrintkLog:
    """Decode the 5.10+ lockless ring buffer (see the module docstring)."""
    off = _need(vi, "OFFSET", [
        "printk_ringbuffer.desc_ring", "printk_ringbuffer.text_data_ring",
        "prb_desc_ring.count_bits", "prb_desc_ring.descs", "prb_desc_ring.infos",
        "prb_desc_ring.head_id", "prb_desc_ring.tail_id", "prb_desc.state_var",
        "prb_desc.text_blk_lpos", "prb_data_blk_lpos.begin", "prb_data_blk_lpos.next",
        "printk_info.seq", "printk_info.ts_nsec", "printk_info.text_len",
        "prb_data_ring.size_bits", "prb_data_ring.data"])
    size = _need(vi, "SIZE", ["prb_desc", "printk_info"])
    prb_sym = _need(vi, "SYMBOL", ["prb"])["prb"]
    lpos = off["prb_desc.text_blk_lpos"]
    _fits(size, "prb_desc", [
        ("prb_desc.state_var", off["prb_desc.state_var"], 8),
        ("prb_desc.text_blk_lpos", lpos + off["prb_data_blk_lpos.begin"], 8),
        ("prb_desc.text_blk_lpos", lpos + off["prb_data_blk_lpos.next"], 8)])
    _fits(size, "printk_info", [
        ("printk_info.seq", off["printk_info.seq"], 8),
        ("printk_info.ts_nsec", off["printk_info.ts_nsec"], 8),
        ("printk_info.text_len", off["printk_info.text_len"], 2)])
    counter = vi.offsets.get("atomic_long_t.counter", 0)
    rb = _read_u(read, prb_sym, 8, "prb")
    dr = rb + off["printk_ringbuffer.desc_ring"]
    tr = rb + off["printk_ringbuffer.text_data_ring"]
    count_bits = _read_u(read, dr + off["prb_desc_ring.count_bits"], 4, "prb_desc_ring.count_bits")
    descs = _read_u(read, dr + off["prb_desc_ring.descs"], 8, "prb_desc_ring.descs")
    infos = _read_u(read, dr + off["prb_desc_ring.infos"], 8, "prb_desc_ring.infos")
    head_id = _read_u(read, dr + off["prb_desc_ring.head_id"] + counter, 8, "head_id")
    tail_id = _read_u(read, dr + off["prb_desc_ring.tail_id"] + counter, 8, "tail_id")
    size_bits = _read_u(read, tr + off["prb_data_ring.size_bits"], 4, "prb_data_ring.size_bits")
    data_va = _read_u(read, tr + off["prb_data_ring.data"], 8, "prb_data_ring.data")
    if not 1 <= count_bits <= 24 or not 1 <= size_bits <= 30:
        raise DecodeError("printk ring", None, f"implausible count_bits {count_bits} / "
                          f"size_bits {size_bits}")
    count = 1 << count_bits
    dsize = 1 << size_bits
    if count * max(size["printk_info"], size["prb_desc"]) > MAX_RING_BYTES \
            or dsize > MAX_RING_BYTES:
        raise DecodeError("printk ring", None, f"ring of {count} descriptors / {dsize} bytes "
                          f"is larger than any kernel's")
    desc_mem = _Mem(read, descs, count * size["prb_desc"], "descs")
    info_mem = _Mem(read, infos, count * size["printk_info"], "infos")
    data_mem = _Mem(read, data_va, dsize, "text data ring")
    warnings = [f"{m.what}: {len(m.missing)} page(s) unreadable, first {m.missing[0][1]}"
                for m in (desc_mem, info_mem, data_mem) if m.missing]
    tl_off = off["printk_info.text_len"]
    isize = size["printk_info"]
    caller_off = vi.offsets.get("printk_info.caller_id")
    if caller_off is not None and caller_off + 4 > isize:
        warnings.append(f"OFFSET(printk_info.caller_id) {caller_off} + 4 is past "
                        f"SIZE(printk_info) {isize}: caller ids not decoded")
        caller_off = None
    has_level = caller_off is not None and caller_off >= tl_off + 4
    dev_off = vi.offsets.get("printk_info.dev_info")
    sub_off = vi.offsets.get("dev_printk_info.subsystem")
    sub_len = vi.lengths.get("printk_info_subsystem")
    devn_off = vi.offsets.get("dev_printk_info.device")
    devn_len = vi.lengths.get("printk_info_device")
    if dev_off is not None and any(
            o is not None and n and dev_off + o + n > isize
            for o, n in ((sub_off, sub_len), (devn_off, devn_len))):
        warnings.append(f"printk_info.dev_info runs past SIZE(printk_info) {isize}: "
                        f"subsystem and device not decoded")
        dev_off = None
    records: List[PrintkRecord] = []
    skipped = inconsistent = 0
    text_budget = dsize      # all texts together come from the data ring: never more
    idx_id = tail_id & DESC_ID_MASK
    head_id &= DESC_ID_MASK
    for _ in range(count):
        cur = idx_id
        idx_id = (idx_id + 1) & DESC_ID_MASK
        i = cur & (count - 1)
        d = desc_mem.get(i * size["prb_desc"], size["prb_desc"])
        info = info_mem.get(i * size["printk_info"], size["printk_info"])
        done = cur == head_id
        if d is None or info is None:
            skipped += 1
            if done:
                break
            continue
        sv = _u(d, off["prb_desc.state_var"], 8)
        state = sv >> DESC_FLAGS_SHIFT
        if (sv & DESC_ID_MASK) != cur or state not in (DESC_COMMITTED, DESC_FINALIZED):
            # reserved (being written at the crash) or reusable (dropped): not records;
            # a descriptor holding another id was overwritten after tail_id was read
            if done:
                break
            continue
        begin = _u(d, lpos + off["prb_data_blk_lpos.begin"], 8)
        nxt = _u(d, lpos + off["prb_data_blk_lpos.next"], 8)
        text_len = _u(info, tl_off, 2)
        text: Optional[str]
        if begin & 1 and nxt & 1:
            text = ""
        elif text_len > MAX_RECORD_TEXT or text_len > text_budget:
            text = None
            inconsistent += 1
        else:
            text = _block_text(data_mem, begin, nxt, size_bits, text_len, cur)
            if text is None:
                inconsistent += 1
        if text is None:
            skipped += 1
        else:
            text_budget -= text_len
            level = facility = None
            if has_level:
                facility = info[tl_off + 2]
                level = info[tl_off + 3] >> 5
            subsystem = device = ""
            if dev_off is not None and sub_off is not None and sub_len:
                subsystem = _cstr(info[dev_off + sub_off:dev_off + sub_off + sub_len])
            if dev_off is not None and devn_off is not None and devn_len:
                device = _cstr(info[dev_off + devn_off:dev_off + devn_off + devn_len])
            records.append(PrintkRecord(
                seq=_u(info, off["printk_info.seq"], 8),
                ts_nsec=_u(info, off["printk_info.ts_nsec"], 8),
                text=text, level=level, facility=facility,
                caller_id=_u(info, caller_off, 4) if caller_off is not None else None,
                subsystem=subsystem, device=device))
        if done:
            break
    if skipped:
        warnings.append(f"{skipped} record(s) skipped: descriptor, info or text unreadable "
                        f"or inconsistent ({inconsistent} with a text block that is not "
                        f"theirs or a text_len past the kernel's {MAX_RECORD_TEXT})")
    if not records:
        warnings.append(f"no record decoded between tail id {tail_id & DESC_ID_MASK} and head "
                        f"id {head_id}: the ring is empty or damaged")
    return PrintkLog("lockless", tuple(records), tuple(warnings))


def _fits(size: Dict[str, int], struct_name: str, fields: List[Tuple[str, int, int]]) -> None:
    """Every field [off, off + n) of a record struct lies inside its SIZE(); the SIZE is
    one a kernel could have. Else the VMCOREINFO is damaged: refuse the buffer."""
    total = size[struct_name]
    if not 0 < total <= MAX_STRUCT_SIZE:
        raise DecodeError("VMCOREINFO", None, f"SIZE({struct_name}) {total} is not in "
                          f"1..{MAX_STRUCT_SIZE}")
    for name, at, n in fields:
        if at + n > total:
            raise DecodeError("VMCOREINFO", None, f"OFFSET({name}) {at} + {n} is past "
                              f"SIZE({struct_name}) {total}")


def _block_text(mem: _Mem, begin: int, nxt: int, size_bits: int,
                text_len: int, desc_id: Optional[int] = None) -> Optional[str]:
    dsize = 1 << size_bits
    bw, nw = begin >> size_bits, nxt >> size_bits
    bi, ni = begin & (dsize - 1), nxt & (dsize - 1)
    if bw == nw:
        start, length = bi, ni - bi
    elif (bw + 1) & ((1 << (64 - size_bits)) - 1) == nw:
        start, length = 0, ni
    else:
        return None
    if length < 8:
        return None
    if desc_id is not None:
        # a data block starts with the id of the descriptor that owns it
        owner = mem.get(start, 8)
        if owner is None or int.from_bytes(owner, "little") & DESC_ID_MASK != desc_id:
            return None
    n = min(text_len, length - 8)
    raw = mem.get(start + 8, n)
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def decode_printk_log(vi: VmcoreInfo, read: Reader) -> PrintkLog:
    """Decode the 3.5-5.9 ``printk_log`` record buffer (see the module docstring)."""
    sym = _need(vi, "SYMBOL", ["log_buf", "log_buf_len", "log_first_idx", "log_next_idx"])
    struct_name = "printk_log" if "printk_log" in vi.sizes else "log"
    size = _need(vi, "SIZE", [struct_name])[struct_name]
    off = _need(vi, "OFFSET", [f"{struct_name}.ts_nsec", f"{struct_name}.len",
                               f"{struct_name}.text_len"])
    ts_off, len_off, tl_off = (off[f"{struct_name}.{k}"] for k in ("ts_nsec", "len", "text_len"))
    _fits({struct_name: size}, struct_name, [
        (f"{struct_name}.ts_nsec", ts_off, 8), (f"{struct_name}.len", len_off, 2),
        (f"{struct_name}.text_len", tl_off, 2)])
    buf = _read_u(read, sym["log_buf"], 8, "log_buf")
    buf_len = _read_u(read, sym["log_buf_len"], 4, "log_buf_len")
    first = _read_u(read, sym["log_first_idx"], 4, "log_first_idx")
    nxt = _read_u(read, sym["log_next_idx"], 4, "log_next_idx")
    if not 0 < buf_len <= MAX_RING_BYTES or first >= buf_len or nxt >= buf_len:
        raise DecodeError("log_buf", None, f"implausible log_buf_len {buf_len}, first {first}, "
                          f"next {nxt}")
    mem = _Mem(read, buf, buf_len, "log_buf")
    warnings = [f"log_buf: {len(mem.missing)} page(s) unreadable, first {mem.missing[0][1]}"] \
        if mem.missing else []
    has_level = tl_off + 6 <= size
    records: List[PrintkRecord] = []
    idx, seq = first, 0
    wrapped = False
    for _ in range(buf_len // max(size, 1) + 2):
        if idx == nxt:
            break
        hdr = mem.get(idx, size)
        if hdr is None:
            if idx + size > buf_len and not wrapped:
                idx, wrapped = 0, True
                continue
            warnings.append(f"log_buf: record header at index {idx} unreadable; log cut here")
            break
        rec_len = _u(hdr, len_off, 2)
        if rec_len == 0:
            if wrapped:
                warnings.append(f"log_buf: second wrap marker at index {idx}; log cut here")
                break
            idx, wrapped = 0, True
            continue
        text_len = _u(hdr, tl_off, 2)
        if rec_len < size or size + text_len > rec_len or idx + rec_len > buf_len \
                or text_len > MAX_RECORD_TEXT:
            warnings.append(f"log_buf: bad record at index {idx} (len {rec_len}, text_len "
                            f"{text_len}); log cut here")
            break
        raw = mem.get(idx + size, text_len)
        if raw is None:
            warnings.append(f"log_buf: text at index {idx} unreadable")
        else:
            records.append(PrintkRecord(
                seq=seq, ts_nsec=_u(hdr, ts_off, 8), text=raw.decode("utf-8", "backslashreplace"),
                level=(hdr[tl_off + 5] >> 5) if has_level else None,
                facility=hdr[tl_off + 4] if has_level else None))
        seq += 1
        idx += rec_len
    else:
        warnings.append("log_buf: walk did not reach log_next_idx; log cut here")
    if not records and first != nxt:
        warnings.append(f"log_buf: no record decoded between index {first} and {nxt}: the "
                        f"buffer is damaged")
    return PrintkLog("printk_log", tuple(records), tuple(warnings))


def decode_printk(vi: VmcoreInfo, read: Reader) -> PrintkLog:
    """The crashed kernel's log, from whichever buffer VMCOREINFO describes."""
    if "prb" in vi.symbols:
        return decode_lockless(vi, read)
    if "log_buf" in vi.symbols and ("printk_log" in vi.sizes or "log" in vi.sizes):
        return decode_printk_log(vi, read)
    if "log_buf" in vi.symbols:
        raise UnsupportedFormat("VMCOREINFO describes the unstructured log_buf of kernels "
                                "before 3.5, which is not decoded")
    raise UnsupportedFormat("VMCOREINFO describes no printk buffer (no SYMBOL(prb) nor "
                            "SYMBOL(log_buf))")
