"""Where a crashed kernel's VT-d root table may be: candidate RTADDR values (given on the
command line, kept by a snapshot or ``kdumptool record``, left in the registers) in the
order they are tried, and the root table that was picked.

Sources read candidates; :func:`kdumptool.analysis.crashed.resolve_root_tables` checks
every one against the dump and falls through to the next, then to a scan.
"""

from __future__ import annotations

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up


@dataclass(frozen=True)
class RtaddrCandidate:
    unit: str  # dmar0, or what the source calls it
    value: int  # the RTADDR register value (bits 11:10 the table mode), or a bare address
    source: str  # argument | saved | register | record | snapshot | left-behind
    detail: str  # where it came from, in words (shown as the root table's origin)
    segment: int = 0  # the unit's PCI segment, when known
    #: given by the user (--rtaddr): used even when it does not look like a root table
    trusted: bool = False


@dataclass(frozen=True)
class RootTable:
    address: int
    mode: str  # legacy | scalable
    source: str  # the candidate's source, or "scan"
    detail: str
    unit: str
    segment: int = 0
