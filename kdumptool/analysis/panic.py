"""The panic message of a crashed kernel's log, as crash's ``sys`` shows it (PANIC: "...").

The last line of the log that says why the kernel went down, most explicit first: the
``Kernel panic - not syncing: ...`` line (panic()), a sysrq-triggered crash, then an oops
(``BUG: ...``, ``Oops: ...``, ``kernel BUG at ...``, ``general protection fault``).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Sequence, Tuple

from kdumptool.model.dump import CrashFacts, Panic

#: (what, pattern), searched in this order; the last matching line of a kind wins.
PANIC_PATTERNS = (
    ("panic", re.compile(r"Kernel panic - not syncing:.*")),
    ("sysrq", re.compile(r"(?:sysrq|SysRq) ?: Trigger a crash.*")),
    ("oops", re.compile(r"(?:BUG: .*|Oops: .*|kernel BUG at .*|general protection fault.*)")),
)


def find_panic(lines: Iterable[Tuple[Optional[float], str]]) -> Optional[Tuple[str, Optional[float], str]]:
    """(kind, seconds since boot or None, message) of the log's panic, or None."""
    lines = list(lines)
    for kind, pat in PANIC_PATTERNS:
        for ts, text in reversed(lines):
            m = pat.search(text)
            if m:
                return kind, ts, m.group(0).strip()
    return None


def crash_facts(crashtime: Optional[int], records: Sequence[Tuple[float, str]], log_error: Optional[str]
                ) -> CrashFacts:
    """The crash date from VMCOREINFO CRASHTIME (UTC; None when absent or implausible) and
    the panic line among the crashed kernel's log ``records`` (``log_error``: why the log
    could not be read), as crash's ``sys`` shows DATE and PANIC."""
    import time

    date = None
    if isinstance(crashtime, int) and 0 < crashtime < 2**40:
        date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(crashtime))
    why = log_error
    panic = None
    if why is None:
        found = find_panic(records)
        if found is not None:
            panic = Panic(*found)
        else:
            why = f"no panic, sysrq crash or oops line among {len(records)} log records"
    return CrashFacts(date, panic, why)
