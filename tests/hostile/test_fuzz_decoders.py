"""One hypothesis fuzz target per decoder in kdumptool/formats (issue 14): whatever the
input, only KdumptoolError subclasses may escape. Most decoders also have format-aware
fuzz tests next to their own tests; these run every decoder on raw bytes/text (plus a
structured seed where a magic would stop everything at once) under one budget.

Budget: ``max_examples`` per target below (default tier: a few seconds in all).
``KDUMPTOOL_FUZZ_SCALE=N`` multiplies every budget (e.g. 50 for a long local run)."""

from __future__ import annotations

import os
import struct
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumptool.errors import KdumptoolError
from kdumptool.formats import (
    acpi_text,
    cpio,
    diskdump,
    dmar,
    elf,
    kdumpconf,
    klog,
    lspci_dump,
    pciconfig,
    printk,
    vmcoreinfo,
    vtd_regs,
    vtd_tables,
)

SCALE = max(1, int(os.environ.get("KDUMPTOOL_FUZZ_SCALE", "1") or 1))


def budget(n: int) -> Any:
    return settings(max_examples=n * SCALE, deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def only_ours(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except KdumptoolError:
        pass


def with_magic(magic: bytes, size: int = 600) -> Any:
    """Raw bytes, half of them starting with ``magic`` so the decoder gets past it."""
    return st.one_of(st.binary(max_size=size), st.binary(max_size=size).map(lambda b: magic + b))


@budget(40)
@given(with_magic(diskdump.KDUMP_SIGNATURE, 600), st.integers(-1, 8))
def test_fuzz_diskdump(data, version):
    only_ours(lambda: diskdump.parse_disk_dump_header(data))
    only_ours(lambda: diskdump.parse_sub_header(data, version))
    for flags in (0, 1, 2, 4, 0x20, 0x21):
        only_ours(lambda f=flags: diskdump.decompress_page(data, f, 4096))


@budget(40)
@given(with_magic(b"\x7fELF\x02\x01\x01", 400))
def test_fuzz_elf(data):
    only_ours(lambda: elf.parse_elf_header(data))
    only_ours(lambda: elf.parse_program_headers(data, len(data) // elf.PHDR_SIZE))
    only_ours(lambda: elf.parse_notes(data))
    only_ours(lambda: elf.decode_prstatus(data, 0))


@budget(40)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400),
                 st.lists(st.sampled_from(["PAGESIZE=", "SIZE(prb_desc)=", "OFFSET(x.y)=", "SYMBOL(prb)=",
                                           "NUMBER(phys_base)=", "-1", "ff", "0x10", "\n", "=", "4096"]),
                          max_size=30).map("".join)))
def test_fuzz_vmcoreinfo(data):
    def go() -> None:
        vi = vmcoreinfo.parse_vmcoreinfo(data)
        assert vi.page_size is None or (vi.page_size >= 4096 and not vi.page_size & (vi.page_size - 1))
        assert all(v >= 0 for d in (vi.sizes, vi.offsets, vi.lengths) for v in d.values())
    only_ours(go)


def _flat_reader(blob: bytes, base: int) -> Callable[[int, int], bytes]:
    from kdumptool.errors import NotMapped

    def read(addr: int, size: int) -> bytes:
        if size > 1 << 24:
            raise AssertionError(f"decoder asked for {size} bytes at once")
        off = addr - base
        if off < 0 or off + size > len(blob):
            raise NotMapped(addr)
        return blob[off:off + size]
    return read


_PRINTK_KEYS = ["printk_ringbuffer.desc_ring", "printk_ringbuffer.text_data_ring", "prb_desc_ring.count_bits",
                "prb_desc_ring.descs", "prb_desc_ring.infos", "prb_desc_ring.head_id", "prb_desc_ring.tail_id",
                "prb_desc.state_var", "prb_desc.text_blk_lpos", "prb_data_blk_lpos.begin", "prb_data_blk_lpos.next",
                "printk_info.seq", "printk_info.ts_nsec", "printk_info.text_len", "prb_data_ring.size_bits",
                "prb_data_ring.data", "printk_info.caller_id"]


@budget(40)
@given(st.binary(min_size=64, max_size=4096), st.dictionaries(st.sampled_from(_PRINTK_KEYS), st.integers(0, 5000)),
       st.integers(0, 1 << 20), st.integers(0, 1 << 20), st.booleans())
def test_fuzz_printk(blob, offsets, size_desc, size_info, lockless):
    base = 0xFFFFFFFF81000000
    lines = [f"OFFSET({k})={v}" for k, v in offsets.items()]
    if lockless:
        lines += [f"SYMBOL(prb)={base:x}", f"SIZE(prb_desc)={size_desc}", f"SIZE(printk_info)={size_info}"]
    else:
        lines += [f"SYMBOL(log_buf)={base:x}", f"SYMBOL(log_buf_len)={base + 8:x}",
                  f"SYMBOL(log_first_idx)={base + 16:x}", f"SYMBOL(log_next_idx)={base + 24:x}",
                  f"SIZE(printk_log)={size_desc}", "OFFSET(printk_log.ts_nsec)=0", "OFFSET(printk_log.len)=8",
                  "OFFSET(printk_log.text_len)=10"]
    vi = vmcoreinfo.parse_vmcoreinfo("\n".join(lines))
    only_ours(lambda: printk.decode_printk(vi, _flat_reader(blob, base)))


@budget(60)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=4, max_size=4))
def test_fuzz_vtd_tables(q):
    data = struct.pack("<4Q", *q)
    for fn in (vtd_tables.decode_root_entry, vtd_tables.decode_sm_root_entry, vtd_tables.decode_context_entry,
               vtd_tables.decode_sm_context_entry):
        only_ours(lambda f=fn: f(data))


_REG = st.one_of(st.integers(-5, 2**70), st.none(), st.booleans(), st.text(max_size=5), st.floats(),
                 st.lists(st.lists(st.integers(-1, 2**65), max_size=3), max_size=3))


@budget(60)
@given(st.dictionaries(st.sampled_from(["GSTS", "GCMD", "RTADDR", "CAP", "ECAP", "FSTS", "FECTL", "FRCD", "VER",
                                        "X", ""]), _REG, max_size=8),
       st.text(max_size=300),
       st.lists(st.sampled_from(["# dmar0 base=0xfed90000", "GSTS off=0x1c w=32 0xc0000000", "FRCD0 off=0x200 "
                                 "lo=0x1 hi=0x8", "RTADDR off=0x20 w=64 0xzz", "# dmar1 base=zz", "x", ""]),
                max_size=8))
def test_fuzz_vtd_regs(values, text, lines):
    """vtd_regs had no fuzz target before issue 14."""
    only_ours(lambda: vtd_regs.decode_vtd_registers(values))
    only_ours(lambda: vtd_regs.parse_devmem_dump(text))
    only_ours(lambda: vtd_regs.parse_devmem_dump("\n".join(lines)))


@budget(40)
@given(st.lists(st.one_of(st.text(max_size=120), st.sampled_from([
    "DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x1000 [fault reason 0x06] x",
    "DMAR: DRHD: handling fault status reg 2", "DMAR: Dump dmar0 table entries for IOVA 0x1000",
    "[    0.000000] Linux version 6.1", "DMAR:[fault reason 0xff]", "\x1b[31m", "\x00"])), max_size=20))
def test_fuzz_klog(lines):
    only_ours(lambda: list(klog.parse_log(lines)))


@budget(30)
@given(with_magic(b"070701", 800))
def test_fuzz_cpio(data):
    only_ours(lambda: cpio.parse_cpio(data))


@budget(40)
@given(st.binary(max_size=4096))
def test_fuzz_pciconfig(data):
    only_ours(lambda: pciconfig.parse_pci_config(data))


@budget(40)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from([
    "00:02.0 VGA compatible controller: Intel", "00: 86 80 12 34 07 04 10 00 00 00 00 03 00 00 00 00",
    "f0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", "0000:00:1f.3 Audio", "ff: zz"])), max_size=20))
def test_fuzz_lspci_dump(lines):
    only_ours(lambda: lspci_dump.parse_lspci_dump("\n".join(lines)))


@budget(40)
@given(st.text(max_size=400))
def test_fuzz_kdumpconf(text):
    only_ours(lambda: kdumpconf.parse_kdump_conf(text))
    only_ours(lambda: kdumpconf.parse_sysconfig_kdump(text))
    only_ours(lambda: kdumpconf.parse_kdump_tools(text))


@budget(40)
@given(with_magic(b"DMAR", 600))
def test_fuzz_dmar(data):
    only_ours(lambda: dmar.parse_dmar(data))


@budget(40)
@given(st.one_of(st.binary(max_size=600), st.lists(st.sampled_from([
    "[000h 0000   4]                    Signature : \"DMAR\"", "[004h 0004   4]                 Table Length : 00000050",
    "    0000: 44 4D 41 52 50 00 00 00 01 B0 49 4E 54 45 4C 20  DMARP.....INTEL ", "DMAR @ 0x0000000000000000",
    "zz", ""]), max_size=10).map(lambda ls: "\n".join(ls).encode())))
def test_fuzz_acpi_text(data):
    only_ours(lambda: acpi_text.extract_table(data))
    only_ours(lambda: acpi_text.parse_acpi_text(data.decode("utf-8", "replace")))
