"""ELF64 core decoding: headers, notes (bounds-checked walk), PRSTATUS, malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError, UnsupportedFormat
from kdumptool.formats import elf
from kdumptool.sources.vmcore import open_dump
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, note, write_elf

TRIM_ELF = FIXTURES / "vmcore" / "legacy_on.trim.elf"


def test_real_notes_and_prstatus():
    data = TRIM_ELF.read_bytes()
    h = elf.parse_elf_header(data)
    assert (h.e_type, h.e_machine) == (elf.ET_CORE, elf.EM_X86_64)
    phdrs = elf.parse_program_headers(data[h.e_phoff:], h.e_phnum)
    (pn,) = [p for p in phdrs if p.p_type == elf.PT_NOTE]
    notes, warnings = elf.parse_notes(data[pn.p_offset:pn.p_offset + pn.p_filesz])
    assert warnings == []
    assert [n.name for n in notes] == ["CORE", "CORE", "VMCOREINFO"]
    cpus, w = elf.prstatus_notes(notes)
    assert w == [] and len(cpus) == 2
    # Oracle: the crashed kernel's own panic message, "CPU: 0 PID: 104 Comm: sh".
    log = (FIXTURES / "vmcore" / "legacy_on.makedumpfile_dmesg.txt").read_text()
    assert "CPU: 0 PID: 104 Comm: sh" in log
    assert cpus[0].pid == 104
    # Saved RIP is in the kernel text (SYMBOL(_stext) .. + KERNEL_IMAGE_SIZE).
    vi = (elf.find_vmcoreinfo(notes) or b"").decode()
    stext = int(vi.split("SYMBOL(_stext)=")[1].split()[0], 16)
    assert stext <= cpus[0].reg("rip") < stext + (1 << 30)


def test_note_walk_bounds():
    good = note(b"CORE", 1, b"\1" * 8)
    notes, w = elf.parse_notes(good + b"\0" * 24)      # zero padding ends the walk
    assert len(notes) == 1 and w == []
    # descsz claims more than is there: the notes before it survive, a warning names it.
    bad = good + struct.pack("<III", 5, 0x1000, 1) + b"CORE\0\0\0\0"
    notes, w = elf.parse_notes(bad)
    assert len(notes) == 1 and "runs past the end" in w[0] and "offset 0x1c" in w[0]
    notes, w = elf.parse_notes(good + b"\x01\x02")
    assert len(notes) == 1 and "trailing bytes" in w[0]


def test_malformed_headers():
    with pytest.raises(DecodeError, match="no \\\\x7fELF magic"):
        elf.parse_elf_header(b"MZ" + b"\0" * 100)
    with pytest.raises(DecodeError, match="truncated ELF header"):
        elf.parse_elf_header(b"\x7fELF\x02\x01\x01" + b"\0" * 20)
    hdr = bytearray(TRIM_ELF.read_bytes()[:64])
    hdr[4] = 1
    with pytest.raises(UnsupportedFormat, match="ELFCLASS64"):
        elf.parse_elf_header(bytes(hdr))
    hdr[4] = 2
    hdr[16] = 2   # ET_EXEC
    with pytest.raises(UnsupportedFormat, match="not a core file"):
        elf.parse_elf_header(bytes(hdr))
    with pytest.raises(DecodeError, match="program header table truncated"):
        elf.parse_program_headers(b"\0" * 100, 2)


def test_overlapping_segments_rejected(tmp_path):
    spec = DumpSpec(pages={1: b"\1" * 4096, 2: b"\2" * 4096})
    path = tmp_path / "overlap.elf"
    path.write_bytes(write_elf(spec, overlap=True))
    with pytest.raises(DecodeError) as err:
        open_dump(str(path))
    msg = str(err.value)
    assert str(path) in msg and "overlaps" in msg and "offset 0x" in msg
    # A kernel-text mapping partly outside RAM segments fills only the gap.
    path.write_bytes(write_elf(spec, kernel_text=(0xFFFFFFFF81000000, 0x2000, 0x2000)))
    with open_dump(str(path)) as dump:
        assert [(s.start, s.memsz) for s in dump.segments] == [(0x1000, 0x2000), (0x3000, 0x1000)]
        assert dump.read(0x2000, 4096) == b"\2" * 4096
        assert dump.read(0x3000, 4096) == bytes(4096)     # the alias's own bytes


def test_proc_vmcore_kernel_text_alias(tmp_path):
    """/proc/vmcore maps the kernel text twice: as System RAM and as a PT_LOAD at
    __START_KERNEL_map (kexec-tools, crash_prepare_elf64_headers). Not an overlap error;
    reads come from the RAM segment and equal the alias's copy."""
    pages = {p: bytes([p]) * 4096 for p in range(1, 9)}
    spec = DumpSpec(pages=pages)
    path = tmp_path / "vmcore.elf"
    path.write_bytes(write_elf(spec, kernel_text=(0xFFFFFFFF81000000, 0x3000, 0x3000)))
    data = path.read_bytes()
    h = elf.parse_elf_header(data)
    phdrs = elf.parse_program_headers(data[h.e_phoff:], h.e_phnum)
    text = [p for p in phdrs if p.p_type == elf.PT_LOAD and p.p_vaddr >= 0xFFFFFFFF80000000]
    assert len(text) == 1 and text[0].p_paddr == 0x3000
    index, warnings = elf.check_load_segments(phdrs, len(data))
    assert text[0].index not in [p.index for p in index] and warnings == []
    assert data[text[0].p_offset:text[0].p_offset + 0x3000] == pages[3] + pages[4] + pages[5]
    with open_dump(str(path)) as dump:
        assert [s.index for s in dump.segments] == [p.index for p in index]
        assert dump.read(0x1000, 8 * 4096) == b"".join(pages[p] for p in range(1, 9))
        assert list(dump.iter_dumped_ranges()) == [(0x1000, 0x9000)]


def test_prstatus_too_short():
    with pytest.raises(DecodeError, match="prstatus of CPU 3"):
        elf.decode_prstatus(b"\0" * 100, 3)
    cpus, w = elf.prstatus_notes([elf.Note(0, "CORE", 1, b"\0" * 10)])
    assert cpus == [] and "prstatus" in w[0]


def test_pn_xnum_count():
    shdr0 = bytearray(64)
    struct.pack_into("<I", shdr0, 0x2C, 70000)
    assert elf.phnum_from_section0(bytes(shdr0)) == 70000
    with pytest.raises(DecodeError):
        elf.phnum_from_section0(b"\0" * 10)


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_notes(data):
    notes, warnings = elf.parse_notes(data)
    for n in notes:
        assert n.offset + 12 <= len(data)


@settings(deadline=None)
@given(st.binary(min_size=0, max_size=128))
def test_fuzz_elf_header(data):
    try:
        elf.parse_elf_header(b"\x7fELF" + data)
    except KdumptoolError:
        pass


@settings(deadline=None)
@given(st.binary(max_size=300), st.integers(0, 8))
def test_fuzz_program_headers(data, count):
    try:
        phdrs = elf.parse_program_headers(data, count)
        elf.check_load_segments(phdrs, len(data))
    except KdumptoolError:
        pass


def test_phys_base_from_the_kernel_text_segment(tmp_path):
    """Without NUMBER(phys_base) the kernel-text PT_LOAD gives it: p_paddr - (p_vaddr -
    __START_KERNEL_map). Real values of the lab crash: _stext 0xffffffffb5200000 at
    physical 0x2cc00000 (live iomem "Kernel code"), phys_base -0x8600000."""
    pages = {0x2CC00: b"text" * 1024}
    vi = b"OSRELEASE=6.1.0-56-amd64\nSYMBOL(_stext)=ffffffffb5200000\n"
    spec = DumpSpec(pages=pages, vmcoreinfo=vi)
    path = tmp_path / "nophysbase.elf"
    path.write_bytes(write_elf(spec, kernel_text=(0xFFFFFFFFB5200000, 0x2CC00000, 0x1000)))
    with open_dump(str(path)) as dump:
        assert dump.vmcoreinfo.phys_base is None
        assert dump.phys_base == -0x8600000
        assert dump.read_virt(0xFFFFFFFFB5200000, 8) == b"texttext"
