"""The panic message of a crashed kernel's log, as crash's ``sys`` shows it (PANIC: "...").

The last line of the log that says why the kernel went down, most explicit first: the
``Kernel panic - not syncing: ...`` line (panic()), a sysrq-triggered crash, then an oops
(``BUG: ...``, ``Oops: ...``, ``kernel BUG at ...``, ``general protection fault``).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

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
