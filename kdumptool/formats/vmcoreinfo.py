"""VMCOREINFO: the ``KEY=VALUE`` text the crashing kernel leaves for dump readers.

The kernel writes it in ``kernel/crash_core.c`` (``vmcoreinfo_append_str`` and the
``VMCOREINFO_SYMBOL/OFFSET/SIZE/LENGTH/NUMBER`` macros of ``include/linux/crash_core.h``)
plus the architecture's ``arch_crash_save_vmcoreinfo`` (x86-64:
``arch/x86/kernel/crash_core_64.c``); ``CRASHTIME`` is appended at panic time. It reaches
the dump as an ELF note named ``VMCOREINFO`` (``/proc/vmcore``) and as a copy that
makedumpfile stores at ``kdump_sub_header.offset_vmcoreinfo``.

Value encodings, as the macros print them:

- ``SYMBOL(name)=%lx``  hexadecimal, no ``0x`` (a run-time, KASLR-relocated virtual address)
- ``OFFSET(struct.member)=%lu`` / ``SIZE(type)=%lu`` / ``LENGTH(name)=%lu``  decimal
- ``NUMBER(name)=%ld``  signed decimal (``phys_base`` is negative on some boots); newer
  x86-64 kernels append some NUMBER() lines with ``0x%lx`` themselves (6.12:
  ``NUMBER(VMALLOC_START)=0xffffd1e400000000``, ``NUMBER(page_offset_base)``...), so a
  ``0x`` prefix means hexadecimal for every decimal key
- ``KERNELOFFSET=%lx``  hexadecimal; ``PAGESIZE``/``CRASHTIME`` decimal; others kept as text.

Unknown keys are kept verbatim in ``VmcoreInfo.other``; lines without ``=`` become warnings.
"""

from __future__ import annotations

import re

from kdumptool.errors import DecodeError
from kdumptool.formats.frozen import dataclass, field  # dataclasses costs ~10 ms of start-up

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple, Union

# x86-64 __START_KERNEL_map (arch/x86/include/asm/page_64_types.h): the kernel image
# is mapped at this virtual base plus phys_base.
START_KERNEL_MAP = 0xFFFFFFFF80000000

# PAGESIZE bounds: the smallest and largest base page of any Linux architecture (4 KiB on
# x86; 16/64 KiB on arm64 and ppc64; 256 KiB on hexagon). A value outside, or not a power
# of two, is a damaged VMCOREINFO: it is dropped with a warning, never used to cut pages.
MIN_PAGE_SIZE = 4096
MAX_PAGE_SIZE = 1 << 20

_KEYED = re.compile(r"^(SYMBOL|OFFSET|SIZE|LENGTH|NUMBER)\((.+)\)$")


@dataclass(frozen=True)
class VmcoreInfo:
    """Decoded VMCOREINFO. ``raw`` is the text exactly as found (for ``vmcore info``)."""

    raw: str
    osrelease: Optional[str] = None
    build_id: Optional[str] = None
    page_size: Optional[int] = None
    crashtime: Optional[int] = None
    kerneloffset: Optional[int] = None
    symbols: Dict[str, int] = field(default_factory=dict)
    offsets: Dict[str, int] = field(default_factory=dict)
    sizes: Dict[str, int] = field(default_factory=dict)
    lengths: Dict[str, int] = field(default_factory=dict)
    numbers: Dict[str, int] = field(default_factory=dict)
    other: Dict[str, str] = field(default_factory=dict)
    warnings: Tuple[str, ...] = ()

    def symbol(self, name: str) -> Optional[int]:
        return self.symbols.get(name)

    def offset(self, name: str) -> Optional[int]:
        return self.offsets.get(name)

    def size(self, name: str) -> Optional[int]:
        return self.sizes.get(name)

    def length(self, name: str) -> Optional[int]:
        return self.lengths.get(name)

    def number(self, name: str) -> Optional[int]:
        return self.numbers.get(name)

    @property
    def phys_base(self) -> Optional[int]:
        """x86-64 ``phys_base`` (``NUMBER(phys_base)``), as a signed value."""
        return self.numbers.get("phys_base")

    def to_json(self) -> dict:
        return {
            "osrelease": self.osrelease,
            "build_id": self.build_id,
            "page_size": self.page_size,
            "crashtime": self.crashtime,
            "kerneloffset": self.kerneloffset,
            "symbols": dict(self.symbols),
            "offsets": dict(self.offsets),
            "sizes": dict(self.sizes),
            "lengths": dict(self.lengths),
            "numbers": dict(self.numbers),
            "other": dict(self.other),
            "warnings": list(self.warnings),
        }


def _int(text: str, base: int) -> int:
    """``base`` 16: hex with or without ``0x``. ``base`` 10: decimal, or hex when the kernel
    wrote a ``0x`` prefix (``-0x...`` too); a bare word like ``ff`` stays an error."""
    t = text.strip()
    neg = t.startswith("-")
    body = t[1:] if neg else t
    if body.lower().startswith("0x"):
        if base == 10 or not neg:
            v = int(body[2:], 16)
            return -v if neg else v
    return int(t, base)


def parse_vmcoreinfo(data: Union[bytes, str], name: str = "VMCOREINFO") -> VmcoreInfo:
    """Decode VMCOREINFO text. Trailing NULs (note padding) are ignored.

    A value that does not parse for its key is a warning, not an error: a dump with one odd
    line should still give its log. Non-text input (invalid UTF-8 before the NULs) raises.
    """
    if isinstance(data, bytes):
        data = data.split(b"\0", 1)[0]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DecodeError(name, err.start, "VMCOREINFO is not text") from None
    else:
        text = data.split("\0", 1)[0]
    fields: dict = {
        "symbols": {}, "offsets": {}, "sizes": {}, "lengths": {}, "numbers": {}, "other": {},
    }
    scalars: dict = {}
    warnings = []
    bucket = {"SYMBOL": "symbols", "OFFSET": "offsets", "SIZE": "sizes", "LENGTH": "lengths",
              "NUMBER": "numbers"}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "=" not in line:
            warnings.append(f"line {lineno}: no '=' in {line[:60]!r}")
            continue
        key, value = line.split("=", 1)
        try:
            m = _KEYED.match(key)
            if m:
                kind, inner = m.group(1), m.group(2)
                fields[bucket[kind]][inner] = _int(value, 16 if kind == "SYMBOL" else 10)
            elif key == "OSRELEASE":
                scalars["osrelease"] = value
            elif key == "BUILD-ID":
                scalars["build_id"] = value
            elif key == "PAGESIZE":
                scalars["page_size"] = _int(value, 10)
            elif key == "CRASHTIME":
                scalars["crashtime"] = _int(value, 10)
            elif key == "KERNELOFFSET":
                scalars["kerneloffset"] = _int(value, 16)
            else:
                fields["other"][key] = value
        except ValueError:
            warnings.append(f"line {lineno}: bad value for {key}: {value[:40]!r}")
    ps = scalars.get("page_size")
    if ps is not None and not (MIN_PAGE_SIZE <= ps <= MAX_PAGE_SIZE and not ps & (ps - 1)):
        warnings.append(f"PAGESIZE {ps} is not a power of two in {MIN_PAGE_SIZE}..{MAX_PAGE_SIZE}: "
                        f"ignored")
        del scalars["page_size"]
    for kind in ("offsets", "sizes", "lengths"):
        bad = [k for k, v in fields[kind].items() if v < 0]
        for k in bad:   # printed with %lu by the kernel: a negative value is damage
            warnings.append(f"{kind[:-1].upper()}({k}) {fields[kind].pop(k)} is negative: ignored")
    return VmcoreInfo(raw=text, warnings=tuple(warnings), **scalars, **fields)
