"""Hostile dumps, vmcore side (issue 14): VMCOREINFO values checked against their structs,
the printk ring's record lengths and block ids, declared decompressed sizes, the PT_NOTE
bound, truncated kdump files, zstd dumps in the root-table scan. Each dump is generated
(tests/hostile/dumpgen.py), damaged in one named way, and read with a budget: a reader
that stops after a bounded number of reads, so a regression fails fast instead of hanging.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats import diskdump as dd
from kdumptool.formats.printk import decode_printk
from kdumptool.formats.vmcoreinfo import parse_vmcoreinfo
from kdumptool.sources.vmcore import open_dump
from tests.cliutil import run
from tests.dumpwriter import DumpSpec, need, write_elf, write_kdump
from tests.hostile.dumpgen import (
    DATA_P,
    FIRST_ID,
    VMCOREINFO,
    ring_pages,
    texts,
    write_dump,
)

ROOT = Path(__file__).resolve().parents[2]


class Budget(Exception):
    """Not a KdumptoolError: escaping it means the decoder was about to run away."""


def budgeted(read, calls: int = 20_000):  # type: ignore[no-untyped-def]
    n = [0]

    def r(addr: int, size: int) -> bytes:
        n[0] += 1
        if n[0] > calls or size > 1 << 26:
            raise Budget(f"read #{n[0]} of {size} bytes at 0x{addr:x}")
        return read(addr, size)
    return r


def _dump(tmp_path: Path, pages, vmcoreinfo: str = VMCOREINFO, kind: str = "kdump",
          compression: str = "zlib") -> Path:
    p = tmp_path / f"hostile.{kind}"
    p.write_bytes(write_dump(pages, vmcoreinfo, kind, compression))
    return p


# -- VMCOREINFO values ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-409", "0", "4095", "12288", str(1 << 30)])
def test_pagesize_not_a_sane_power_of_two_is_ignored(value):
    vi = parse_vmcoreinfo(f"PAGESIZE={value}\nOSRELEASE=6.1\n")
    assert vi.page_size is None
    assert any("PAGESIZE" in w and "power of two" in w for w in vi.warnings)


def test_negative_size_offset_length_are_dropped():
    vi = parse_vmcoreinfo("SIZE(prb_desc)=-24\nOFFSET(printk_info.seq)=-1\nLENGTH(x)=-3\n")
    assert vi.sizes == {} and vi.offsets == {} and vi.lengths == {}
    assert len(vi.warnings) == 3


def test_pagesize_minus_409_elf_dump_reads_with_4k_pages(tmp_path, capsys):
    """PAGESIZE=-409 used to become the ELF reader's page size: every read looped forever
    (log, iommu, scan, exposure)."""
    path = _dump(tmp_path, ring_pages(texts(3)), VMCOREINFO.replace("PAGESIZE=4096",
                                                                    "PAGESIZE=-409"), "elf")
    with open_dump(str(path)) as dump:
        assert dump.page_size == 4096
        assert any("PAGESIZE -409" in w for w in dump.warnings)
        log = decode_printk(dump.vmcoreinfo, budgeted(dump.read_virt))
    assert [r.text for r in log.records] == [t.decode() for t in texts(3)]
    code, out, err = run(capsys, "vmcore", "scan", str(path), "-f", "json")
    assert code == 0 and json.loads(out)["pages_scanned"] == 5


def test_huge_size_prb_desc_is_refused_not_read(tmp_path):
    path = _dump(tmp_path, ring_pages(texts(3)),
                 VMCOREINFO.replace("SIZE(prb_desc)=24", "SIZE(prb_desc)=4000000"))
    with open_dump(str(path)) as dump, pytest.raises(DecodeError, match=r"SIZE\(prb_desc\)"):
        decode_printk(dump.vmcoreinfo, budgeted(dump.read_virt, 200))


def test_small_size_printk_info_is_a_decode_error_not_index_error(tmp_path):
    path = _dump(tmp_path, ring_pages(texts(3)),
                 VMCOREINFO.replace("SIZE(printk_info)=88", "SIZE(printk_info)=8"))
    with open_dump(str(path)) as dump, pytest.raises(DecodeError, match="printk_info"):
        decode_printk(dump.vmcoreinfo, budgeted(dump.read_virt))


def test_caller_id_past_printk_info_is_dropped_with_a_warning(tmp_path):
    path = _dump(tmp_path, ring_pages(texts(2)),
                 VMCOREINFO.replace("OFFSET(printk_info.caller_id)=20",
                                    "OFFSET(printk_info.caller_id)=86"))
    with open_dump(str(path)) as dump:
        log = decode_printk(dump.vmcoreinfo, budgeted(dump.read_virt))
    assert [r.caller_id for r in log.records] == [None, None]
    assert any("caller_id" in w for w in log.warnings)


# -- printk ring records ----------------------------------------------------------------

def test_records_sharing_one_64k_block_do_not_amplify(tmp_path):
    """16 descriptors pointing at the same data block with text_len 65535: each block
    belongs to one id (its first word), and text_len is capped."""
    n = 16
    pages = ring_pages([b"x" * 100] * n, text_len=[0xFFFF] * n, lpos=[(0, 4088)] * n)
    pages[DATA_P >> 12] = struct.pack("<Q", FIRST_ID) + b"A" * 4088
    path = _dump(tmp_path, pages)
    with open_dump(str(path)) as dump:
        log = decode_printk(dump.vmcoreinfo, budgeted(dump.read_virt))
    assert sum(len(r.text) for r in log.records) <= 4096
    assert any("skipped" in w for w in log.warnings)


def test_block_owned_by_another_id_is_skipped(tmp_path):
    good = texts(3)
    path = _dump(tmp_path, ring_pages(good, block_ids=[FIRST_ID, 999, FIRST_ID + 2]))
    with open_dump(str(path)) as dump:
        log = decode_printk(dump.vmcoreinfo, budgeted(dump.read_virt))
    assert [r.text for r in log.records] == [good[0].decode(), good[2].decode()]
    assert any("1 record(s) skipped" in w for w in log.warnings)


def test_damaged_ring_warns_and_exits_non_zero(tmp_path, capsys):
    """Every descriptor holding a foreign id: the log used to be empty with exit 0."""
    path = _dump(tmp_path, ring_pages(texts(4), state_ids=[7, 7, 7, 7]))
    code, out, err = run(capsys, "vmcore", "log", str(path))
    assert code == 3
    assert "no record decoded" in err and "incomplete or damaged" in err
    code, out, err = run(capsys, "vmcore", "log", str(path), "-f", "json")
    assert code == 3 and json.loads(out)["complete"] is False


def test_intact_ring_exits_zero(tmp_path, capsys):
    code, out, err = run(capsys, "vmcore", "log", str(_dump(tmp_path, ring_pages(texts(4)))))
    assert code == 0 and out.count("hostile record") == 4 and "warning" not in err


# -- declared decompressed sizes --------------------------------------------------------

def test_snappy_preamble_of_4gib_is_refused_before_decompressing():
    """cramjam allocates what the preamble says: 4 GiB aborted the process natively. Run
    in a child with a 1 GiB address-space cap so a regression fails, not kills pytest."""
    need("snappy")
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from kdumptool.formats.diskdump import decompress_page\n"
        "from kdumptool.errors import DecodeError\n"
        "data = bytes([0xff, 0xff, 0xff, 0xff, 0x0f]) + bytes(64)\n"
        "try:\n"
        "    decompress_page(data, 0x4, 4096, 'page', 0)\n"
        "except DecodeError as e:\n"
        "    print('DecodeError', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-500:]
    assert "DecodeError" in r.stdout and "declares 4294967295 bytes" in r.stdout


def test_zstd_frame_declaring_300mb_is_refused_before_decompressing():
    need("zstd")
    import zstandard

    cobj = zstandard.ZstdCompressor().compressobj(size=300 << 20)   # streamed: no 300 MB buffer
    chunk = bytes(1 << 20)
    blob = b"".join(cobj.compress(chunk) for _ in range(300)) + cobj.flush()
    assert len(blob) < 20000 and dd.zstd_content_size(blob) == 300 << 20
    with pytest.raises(DecodeError, match="declares 314572800 bytes, expected 4096"):
        dd.decompress_page(blob, dd.DUMP_DH_COMPRESSED_ZSTD, 4096)


def test_zstd_frame_without_content_size_stops_at_the_page():
    need("zstd")
    import zstandard

    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    chunk = bytes(1 << 20)
    blob = b"".join(cobj.compress(chunk) for _ in range(64)) + cobj.flush()
    assert dd.zstd_content_size(blob) is None
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="decompresses to 4097 bytes"):
            dd.decompress_page(blob, dd.DUMP_DH_COMPRESSED_ZSTD, 4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


# -- ELF notes, truncated kdump files ---------------------------------------------------

def test_pt_note_is_bounded_by_a_named_limit_not_the_file_size(tmp_path):
    """A sparse file whose PT_NOTE claims 100 MB: not read (MAX_NOTES_SIZE)."""
    path = tmp_path / "bignote.elf"
    blob = bytearray(write_elf(DumpSpec(pages=ring_pages(texts(1)),
                                        vmcoreinfo=VMCOREINFO.encode())))
    note_filesz = 100 << 20
    struct.pack_into("<QQ", blob, 64 + 32, note_filesz, note_filesz)   # PT_NOTE is phdr 0
    with open(path, "wb") as f:
        f.write(blob)
        f.truncate(len(blob) + note_filesz)
    with open_dump(str(path)) as dump:
        assert any("MAX_NOTES_SIZE" in w for w in dump.warnings)
        assert dump.stats["bytes_read"] < 1 << 20


@pytest.mark.parametrize("where", ["last byte", "page data", "descriptors"])
def test_kdump_cut_short_says_incomplete(tmp_path, capsys, where):
    blob = write_dump(ring_pages(texts(8)))
    with open_dump_bytes(tmp_path, blob) as dump:
        desc_offset = dump.desc_offset
    end = {"last byte": len(blob) - 1, "page data": len(blob) - 100,
           "descriptors": desc_offset + 2 * dd.PAGE_DESC_SIZE}[where]
    path = tmp_path / "cut.kdump"
    path.write_bytes(blob[:end])
    code, out, err = run(capsys, "vmcore", "info", str(path), "-f", "json")
    info = json.loads(out)
    assert code == 3 and info["incomplete"] is True and info["truncated"] is True
    assert any("truncated" in w for w in info["warnings"])
    code, out, err = run(capsys, "vmcore", "scan", str(path), "-f", "json")
    scan = json.loads(out)
    assert code == 3 and scan["incomplete"] is True
    code, out, err = run(capsys, "vmcore", "info", str(path))
    assert code == 3 and "truncated" in out


def open_dump_bytes(tmp_path: Path, blob: bytes):  # type: ignore[no-untyped-def]
    p = tmp_path / "whole.kdump"
    p.write_bytes(blob)
    return open_dump(str(p))


def test_whole_kdump_is_complete(tmp_path, capsys):
    path = tmp_path / "whole.kdump"
    path.write_bytes(write_dump(ring_pages(texts(8))))
    code, out, err = run(capsys, "vmcore", "info", str(path), "-f", "json")
    assert code == 0 and json.loads(out)["incomplete"] is False


# -- the root-table scan on zstd dumps ----------------------------------------------------

@pytest.mark.parametrize("compression", ["zlib", "zstd", "snappy", "lzo"])
def test_scan_finds_the_root_table_in_every_compression(tmp_path, compression):
    """rtscan masked page flags with 0xF and dropped zstd's 0x20: no root table found."""
    need(compression)
    from kdumptool.analysis.rtscan import find_root_tables
    from tests.vtd_memory import LegacyTables, PageTable, VtdMemory

    mem = VtdMemory(base=0x100000)
    lt = LegacyTables(mem)
    pt = PageTable(mem, 4)
    pt.map(0x1000, 0x200000)
    lt.device(0, 0x10, pt.root, did=1, aw=2)
    pages = {p >> 12: bytes(b) for p, b in mem.pages.items()}
    pages[0x200] = b"\x5a" * 4096
    spec = DumpSpec(pages=pages, vmcoreinfo=b"OSRELEASE=6.1\n")
    path = tmp_path / f"rt.{compression}.kdump"
    path.write_bytes(write_kdump(spec, compression))
    with open_dump(str(path)) as dump:
        res = find_root_tables(dump, list(dump.iter_dumped_ranges()))
    assert res.fast_path and res.best is not None and res.best.address == lt.root


def test_decoders_raise_only_kdumptool_errors_on_these_inputs():
    """The hand-made attacks above, straight at the pure decoders."""
    for data, flags in ((b"\xff" * 6, 0x4), (b"\x28\xb5\x2f\xfd" + b"\xff" * 20, 0x20)):
        try:
            dd.decompress_page(data, flags, 4096)
        except KdumptoolError:
            pass
