"""VMCOREINFO decoding: every key kind, on the real text of the lab kernel."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats.vmcoreinfo import parse_vmcoreinfo
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES

TRIM = FIXTURES / "vmcore" / "legacy_on.trim.kdump"


def _real() -> str:
    with open_dump(str(TRIM)) as dump:
        return dump.vmcoreinfo.raw


def test_real_vmcoreinfo_all_kinds():
    text = _real()
    vi = parse_vmcoreinfo(text.encode() + b"\0\0\0")
    # Expected values are the kernel's own text, line by line.
    assert vi.osrelease == "6.1.0-56-amd64"
    assert vi.build_id == "eb4fbcd037e7253717950bf2b93bd5566f47c56f"
    assert vi.page_size == 4096
    assert vi.crashtime == 1795247327
    assert vi.kerneloffset == 0x34200000
    assert vi.symbol("prb") == 0xFFFFFFFFB6C643E0
    assert vi.symbol("mem_section") == 0xFFFF88913F917000
    assert vi.offset("printk_ringbuffer.text_data_ring") == 48
    assert vi.size("printk_info") == 88
    assert vi.length("printk_info_device") == 48
    assert vi.number("phys_base") == vi.phys_base == -140509184
    assert vi.number("PAGE_BUDDY_MAPCOUNT_VALUE") == -129
    assert vi.number("pgtable_l5_enabled") == 0
    assert vi.warnings == ()
    lines = [ln for ln in text.splitlines() if ln]
    counted = (len(vi.symbols) + len(vi.offsets) + len(vi.sizes) + len(vi.lengths)
               + len(vi.numbers) + len(vi.other) + 5)   # OSRELEASE BUILD-ID PAGESIZE CRASHTIME KERNELOFFSET
    assert counted == len(lines)
    j = vi.to_json()
    assert j["symbols"]["prb"] == 0xFFFFFFFFB6C643E0 and j["numbers"]["phys_base"] < 0


def test_bad_lines_are_warnings_not_errors():
    vi = parse_vmcoreinfo("OSRELEASE=5.4\nnonsense\nSIZE(page)=abc\nSYMBOL(x)=0xffff\nFOO=bar\n")
    assert vi.osrelease == "5.4"
    assert vi.symbol("x") == 0xFFFF
    assert vi.other == {"FOO": "bar"}
    assert len(vi.warnings) == 2
    assert "line 2" in vi.warnings[0] and "SIZE(page)" in vi.warnings[1]


def test_not_text_is_decode_error():
    try:
        parse_vmcoreinfo(b"OSRELEASE=\xff\xfe")
    except DecodeError as err:
        assert "VMCOREINFO" in str(err)
    else:
        raise AssertionError("no error")


@settings(deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_vmcoreinfo(data):
    try:
        parse_vmcoreinfo(data)
    except KdumptoolError:
        pass


@settings(deadline=None)
@given(st.text(max_size=300))
def test_fuzz_vmcoreinfo_text(text):
    vi = parse_vmcoreinfo(text)
    assert isinstance(vi.warnings, tuple)


def test_hex_number_values():
    # 6.12 writes some NUMBER() lines with 0x (x86-64 arch_crash_save_vmcoreinfo); the
    # first value is the one the issue quotes from a 6.12.118 dump.
    vi = parse_vmcoreinfo("OSRELEASE=6.12.95+deb12-amd64\n"
                          "NUMBER(VMALLOC_START)=0xffffd1e400000000\n"
                          "NUMBER(phys_base)=-2097152\nNUMBER(neg)=-0x10\n"
                          "SIZE(x)=0x40\nNUMBER(bad)=ff\nNUMBER(bad2)=0x\n")
    assert vi.number("VMALLOC_START") == 0xFFFFD1E400000000
    assert vi.number("phys_base") == -2097152 and vi.number("neg") == -16
    assert vi.size("x") == 0x40
    assert [w.split(":")[0] for w in vi.warnings] == ["line 6", "line 7"]
