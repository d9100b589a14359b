"""What ``vmcore info`` shows of a dump (:class:`DumpInfo`, read by
``sources/vmcore.read_dump_info``) and what the dump says about the crash
(:class:`CrashFacts`, from ``analysis/panic.crash_facts``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from kdumptool.formats.elf import Note, PrStatus
from kdumptool.formats.vmcoreinfo import VmcoreInfo


@dataclass(frozen=True)
class DumpInfo:
    path: str
    file_size: int
    page_size: int
    layout: Mapping[str, object]  # the reader's describe(): format, headers, segments
    ranges: Tuple[Tuple[int, int], ...]  # dumped physical [start, end)
    cpus: Tuple[PrStatus, ...]
    notes: Tuple[Note, ...]
    vmcoreinfo: VmcoreInfo
    warnings: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Panic:
    kind: str  # panic | sysrq | oops
    seconds: Optional[float]
    message: str


@dataclass(frozen=True)
class CrashFacts:
    """The crash date (VMCOREINFO CRASHTIME, UTC) and the panic line of the crashed
    kernel's own log; ``panic_unknown_reason`` says why there is no panic line."""

    crash_date: Optional[str]
    panic: Optional[Panic]
    panic_unknown_reason: Optional[str]
