"""ELF64 core files as the kernel writes ``/proc/vmcore``: headers, segments and notes.

References: System V gABI "ELF-64 Object File Format" 1.5 (Elf64_Ehdr, Elf64_Phdr,
Elf64_Nhdr); ``include/uapi/linux/elf.h``; ``fs/proc/vmcore.c`` (how the kdump kernel
merges the per-CPU PT_NOTE segments and the VMCOREINFO note); x86-64 ``struct
elf_prstatus`` (``include/linux/elfcore.h``) with ``user_regs_struct``
(``arch/x86/include/asm/user_64.h``).

What a dump reader needs: every ``PT_LOAD`` maps ``p_filesz`` bytes at file offset
``p_offset`` to physical addresses from ``p_paddr``; bytes of ``p_memsz`` past
``p_filesz`` are *not* in the file (makedumpfile ``-E`` drops filtered pages that way) and
must not be read as zeros. ``PT_NOTE`` holds ``CORE``/``NT_PRSTATUS`` notes (one per CPU
that saved its registers) and the ``VMCOREINFO`` note.

Only little-endian ELFCLASS64 is decoded (x86-64); anything else is UnsupportedFormat.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

from kdumptool.errors import DecodeError, UnsupportedFormat
from kdumptool.formats.frozen import dataclass  # dataclasses costs ~10 ms of start-up
from kdumptool.formats.lazyspec import lazy_specs

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

ELFMAG = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ET_CORE = 4
EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF
NT_PRSTATUS = 1
VMCOREINFO_NOTE_NAME = "VMCOREINFO"

EHDR_SIZE = 64
# Bounds on what a dump's headers may ask us to read (a sparse or forged file can claim
# any size): /proc/vmcore has one PRSTATUS note (336 + 20 bytes) per CPU plus VMCOREINFO
# (a few KiB), so 8,192 CPUs need about 3 MiB of notes; and one PT_LOAD per RAM range.
MAX_NOTES_SIZE = 32 << 20
MAX_PHNUM = 1 << 20
PHDR_SIZE = 56
SHDR_SIZE = 64

def _construct_specs() -> Dict[str, Any]:
    """The construct specs: the documented layouts, built on first use (module
    ``__getattr__``; importing construct costs about 40 ms). The decoders use the same
    layouts through ``struct``; tests/formats/test_struct_specs.py checks both agree."""
    from construct import Bytes, Const, Int16ul, Int32ul, Int64ul, Struct

    # gABI Elf64_Ehdr, little-endian (ELFDATA2LSB).
    Elf64EhdrStruct = Struct(
        "ei_mag" / Const(ELFMAG),       # +0x00 e_ident[EI_MAG0..3]
        "ei_class" / Bytes(1),          # +0x04 ELFCLASS64 = 2
        "ei_data" / Bytes(1),           # +0x05 ELFDATA2LSB = 1
        "ei_rest" / Bytes(10),          # +0x06 version, OS ABI, padding
        "e_type" / Int16ul,             # +0x10 ET_CORE = 4
        "e_machine" / Int16ul,          # +0x12 EM_X86_64 = 62
        "e_version" / Int32ul,          # +0x14
        "e_entry" / Int64ul,            # +0x18
        "e_phoff" / Int64ul,            # +0x20 program header table offset
        "e_shoff" / Int64ul,            # +0x28 section header table offset (PN_XNUM)
        "e_flags" / Int32ul,            # +0x30
        "e_ehsize" / Int16ul,           # +0x34
        "e_phentsize" / Int16ul,        # +0x36 56 for ELF64
        "e_phnum" / Int16ul,            # +0x38 PN_XNUM: real count in shdr[0].sh_info
        "e_shentsize" / Int16ul,        # +0x3a
        "e_shnum" / Int16ul,            # +0x3c
        "e_shstrndx" / Int16ul,         # +0x3e
    )

    # gABI Elf64_Phdr.
    Elf64PhdrStruct = Struct(
        "p_type" / Int32ul,             # +0x00
        "p_flags" / Int32ul,            # +0x04
        "p_offset" / Int64ul,           # +0x08 file offset
        "p_vaddr" / Int64ul,            # +0x10
        "p_paddr" / Int64ul,            # +0x18 physical address (what we index by)
        "p_filesz" / Int64ul,           # +0x20 bytes present in the file
        "p_memsz" / Int64ul,            # +0x28 bytes of memory described
        "p_align" / Int64ul,            # +0x30
    )

    # gABI Elf64_Nhdr (the kernel uses 4-byte words for the header in ELF64 notes too).
    Elf64NhdrStruct = Struct(
        "n_namesz" / Int32ul,           # +0x00 name length including NUL
        "n_descsz" / Int32ul,           # +0x04 descriptor length
        "n_type" / Int32ul,             # +0x08
    )
    return {"Elf64EhdrStruct": Elf64EhdrStruct, "Elf64PhdrStruct": Elf64PhdrStruct,
            "Elf64NhdrStruct": Elf64NhdrStruct}


__getattr__ = lazy_specs(__name__, _construct_specs)


# Hot path: the same layouts with struct.
_EHDR = struct.Struct("<4sBB10sHHIQQQIHHHHHH")
_EHDR_FIELDS = ("ei_mag ei_class ei_data ei_rest e_type e_machine e_version e_entry e_phoff e_shoff "
                "e_flags e_ehsize e_phentsize e_phnum e_shentsize e_shnum e_shstrndx").split()
_PHDR = struct.Struct("<IIQQQQQQ")
_NHDR = struct.Struct("<III")

# x86-64 user_regs_struct order (arch/x86/include/asm/user_64.h), 27 x u64.
X86_64_REGS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
    "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
    "gs_base", "ds", "es", "fs", "gs",
)
# struct elf_prstatus on x86-64: pr_info(12) pr_cursig(2) pad(2) pr_sigpend(8)
# pr_sighold(8) pr_pid(4) pr_ppid(4) pr_pgrp(4) pr_sid(4) 4 x timeval(16) pr_reg(216)
# pr_fpvalid(4) pad(4) = 336 bytes.
PRSTATUS_PID_OFFSET = 32
PRSTATUS_REG_OFFSET = 112
PRSTATUS_SIZE_X86_64 = 336


@dataclass(frozen=True)
class ElfHeader:
    e_type: int
    e_machine: int
    e_phoff: int
    e_phentsize: int
    e_phnum: int
    e_shoff: int
    e_shnum: int


@dataclass(frozen=True)
class ProgramHeader:
    index: int
    p_type: int
    p_flags: int
    p_offset: int
    p_vaddr: int
    p_paddr: int
    p_filesz: int
    p_memsz: int
    p_align: int


@dataclass(frozen=True)
class Note:
    offset: int          # of the note header, relative to the start of the note data
    name: str
    n_type: int
    desc: bytes


@dataclass(frozen=True)
class PrStatus:
    """One CPU's ``NT_PRSTATUS`` note (the registers saved by crash_save_cpu())."""

    cpu_index: int       # order of the note in the dump (the kernel writes them by CPU)
    pid: int
    registers: Tuple[Tuple[str, int], ...]

    def reg(self, name: str) -> Optional[int]:
        return dict(self.registers).get(name)


def parse_elf_header(data: bytes, what: str = "ELF") -> ElfHeader:
    """Decode and check Elf64_Ehdr. ``data`` is at least the first 64 bytes of the file."""
    if len(data) < 4 or data[:4] != ELFMAG:
        raise DecodeError(what, 0, "not an ELF file (no \\x7fELF magic)")
    if len(data) < EHDR_SIZE:
        raise DecodeError(what, len(data), f"truncated ELF header ({len(data)} of {EHDR_SIZE} bytes)")
    if data[4] != ELFCLASS64:
        raise UnsupportedFormat(f"{what}: ELF class {data[4]} (only ELFCLASS64 cores are read)")
    if data[5] != ELFDATA2LSB:
        raise UnsupportedFormat(f"{what}: big-endian ELF (only little-endian x86-64 cores are read)")
    h = SimpleNamespace(**dict(zip(_EHDR_FIELDS, _EHDR.unpack_from(data))))
    if h.e_type != ET_CORE:
        raise UnsupportedFormat(f"{what}: ELF type {h.e_type}, not a core file (ET_CORE)")
    if h.e_phentsize != PHDR_SIZE:
        raise DecodeError(what, 0x36, f"e_phentsize {h.e_phentsize}, expected {PHDR_SIZE}")
    return ElfHeader(h.e_type, h.e_machine, h.e_phoff, h.e_phentsize, h.e_phnum, h.e_shoff,
                     h.e_shnum)


def phnum_from_section0(shdr0: bytes, what: str = "ELF") -> int:
    """With e_phnum == PN_XNUM the real count is section header 0's sh_info (+0x2c)."""
    if len(shdr0) < SHDR_SIZE:
        raise DecodeError(what, None, "e_phnum is PN_XNUM but section header 0 is truncated")
    return int.from_bytes(shdr0[0x2C:0x30], "little")


def parse_program_headers(data: bytes, count: int, base_offset: int = 0,
                          what: str = "ELF") -> List[ProgramHeader]:
    """Decode ``count`` Elf64_Phdr from ``data`` (the table's bytes)."""
    need = count * PHDR_SIZE
    if len(data) < need:
        raise DecodeError(what, base_offset + len(data),
                          f"program header table truncated ({len(data)} of {need} bytes)")
    out = []
    for i in range(count):
        f = _PHDR.unpack_from(data, i * PHDR_SIZE)
        out.append(ProgramHeader(i, *f))
    return out


KERNEL_TEXT_VADDR = 0xFFFFFFFF80000000   # x86-64 __START_KERNEL_map


def check_load_segments(phdrs: List[ProgramHeader], file_size: Optional[int],
                        what: str = "ELF") -> Tuple[List[ProgramHeader], List[str]]:
    """The PT_LOADs that index physical memory (sorted, disjoint), and warnings.

    ``/proc/vmcore`` (kexec-tools and the kernel's crash_prepare_elf64_headers alike)
    carries a kernel-text PT_LOAD (``p_vaddr`` = ``_text`` in ``__START_KERNEL_map``,
    ``p_paddr`` = its physical address) whose physical range lies inside the System RAM
    PT_LOADs: the same memory twice. Kernel-text segments therefore only fill what no
    other segment covers: they are clipped to the gaps (the returned headers may be such
    clipped pieces, same ``index``), and dropped where fully covered. Any other overlap
    makes the mapping ambiguous: DecodeError naming both segments. Segments extending past
    the end of the file give warnings (the dump is truncated).
    """
    warnings = []
    loads = [p for p in phdrs if p.p_type == PT_LOAD and p.p_memsz]
    for p in loads:
        if p.p_filesz > p.p_memsz:
            raise DecodeError(what, EHDR_SIZE + p.index * PHDR_SIZE,
                              f"PT_LOAD {p.index}: p_filesz 0x{p.p_filesz:x} > p_memsz 0x{p.p_memsz:x}")
        if p.p_paddr + p.p_memsz > 1 << 64:
            raise DecodeError(what, EHDR_SIZE + p.index * PHDR_SIZE,
                              f"PT_LOAD {p.index}: physical range wraps past 2^64")
        if file_size is not None and p.p_offset + p.p_filesz > file_size:
            warnings.append(
                f"PT_LOAD {p.index} ends at file offset 0x{p.p_offset + p.p_filesz:x}, past the "
                f"end of the file (0x{file_size:x}): the dump is truncated")

    def check_disjoint(segs: List[ProgramHeader]) -> None:
        for a, b in zip(segs, segs[1:]):
            if b.p_paddr < a.p_paddr + a.p_memsz:
                raise DecodeError(
                    what, EHDR_SIZE + b.index * PHDR_SIZE,
                    f"PT_LOAD {b.index} [0x{b.p_paddr:x}-0x{b.p_paddr + b.p_memsz:x}) overlaps "
                    f"PT_LOAD {a.index} [0x{a.p_paddr:x}-0x{a.p_paddr + a.p_memsz:x})")

    ram = sorted((p for p in loads if p.p_vaddr < KERNEL_TEXT_VADDR), key=lambda p: p.p_paddr)
    text = sorted((p for p in loads if p.p_vaddr >= KERNEL_TEXT_VADDR), key=lambda p: p.p_paddr)
    check_disjoint(ram)
    check_disjoint(text)
    pieces: List[ProgramHeader] = []
    for t in text:
        lo, hi = t.p_paddr, t.p_paddr + t.p_memsz
        cuts = [(r.p_paddr, r.p_paddr + r.p_memsz) for r in ram
                if r.p_paddr < hi and lo < r.p_paddr + r.p_memsz]
        pos = lo
        for a, b in cuts + [(hi, hi)]:
            if a > pos:
                rel = pos - t.p_paddr
                filesz = max(0, min(t.p_filesz, a - t.p_paddr) - rel)
                pieces.append(ProgramHeader(t.index, t.p_type, t.p_flags, t.p_offset + rel,
                                            t.p_vaddr + rel, pos, filesz, a - pos, t.p_align))
            pos = max(pos, b)
    return sorted(ram + pieces, key=lambda p: p.p_paddr), warnings


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse_notes(data: bytes, what: str = "PT_NOTE") -> Tuple[List[Note], List[str]]:
    """Walk ELF notes with bounds checks. Returns (notes, warnings).

    A header or name/descriptor running past the buffer stops the walk with a warning
    (the notes before it are kept). An all-zero header ends the walk silently: the kdump
    kernel pads each CPU's note buffer with zeros.
    """
    notes: List[Note] = []
    warnings: List[str] = []
    off = 0
    n = len(data)
    while off + _NHDR.size <= n:
        namesz, descsz, ntype = _NHDR.unpack_from(data, off)
        if namesz == 0 and descsz == 0 and ntype == 0:
            break
        name_off = off + _NHDR.size
        desc_off = name_off + _align4(namesz)
        end = desc_off + _align4(descsz)
        if desc_off > n or desc_off + descsz > n:
            warnings.append(f"{what}: note at offset 0x{off:x} (namesz {namesz}, descsz "
                            f"{descsz}) runs past the end of the notes (0x{n:x})")
            break
        name = data[name_off:name_off + namesz].split(b"\0", 1)[0].decode("ascii", "replace")
        notes.append(Note(off, name, ntype, bytes(data[desc_off:desc_off + descsz])))
        off = end
    else:
        if off < n and any(data[off:]):
            warnings.append(f"{what}: {n - off} trailing bytes at offset 0x{off:x} are not a note")
    return notes, warnings


def decode_prstatus(desc: bytes, cpu_index: int, what: str = "NT_PRSTATUS") -> PrStatus:
    """Decode an x86-64 elf_prstatus (pid and the saved general registers)."""
    if len(desc) < PRSTATUS_REG_OFFSET + 8 * len(X86_64_REGS):
        raise DecodeError(what, None, f"prstatus of CPU {cpu_index} is {len(desc)} bytes, "
                          f"expected {PRSTATUS_SIZE_X86_64}")
    pid = int.from_bytes(desc[PRSTATUS_PID_OFFSET:PRSTATUS_PID_OFFSET + 4], "little")
    regs = struct.unpack_from(f"<{len(X86_64_REGS)}Q", desc, PRSTATUS_REG_OFFSET)
    return PrStatus(cpu_index, pid, tuple(zip(X86_64_REGS, regs)))


def find_vmcoreinfo(notes: List[Note]) -> Optional[bytes]:
    for note in notes:
        if note.name == VMCOREINFO_NOTE_NAME:
            return note.desc
    return None


def prstatus_notes(notes: List[Note]) -> Tuple[List[PrStatus], List[str]]:
    out: List[PrStatus] = []
    warnings: List[str] = []
    for note in notes:
        if note.name == "CORE" and note.n_type == NT_PRSTATUS:
            try:
                out.append(decode_prstatus(note.desc, len(out)))
            except DecodeError as err:
                warnings.append(str(err))
    return out, warnings
