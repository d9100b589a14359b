"""What one run cost, for measuring the kdump kernel's hooks: with ``KDUMPTOOL_STATS`` set
to a file (the hooks use ``/dev/kmsg``, so the line lands on the serial console beside
their uptime lines), :func:`write_stats` appends one line at exit::

    kdumptool: stats record: 1.23 s since exec, cpu 1.10 s (user 0.95, sys 0.15), peak RSS 38200 kB (VmHWM), 151 modules, 0 of 97 kdumptool modules compiled from source

"compiled from source": a kdumptool module whose ``.pyc`` is missing or stale (its source
changed after it was written), which a read-only root recompiles at every start. Without
``KDUMPTOOL_STATS`` nothing is read or written (one environment look-up).
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple


_marks: List[Tuple[str, float]] = []


def enabled() -> bool:
    return bool(os.environ.get("KDUMPTOOL_STATS"))


def mark(what: str) -> None:
    """Note that ``what`` is done now (kept only with ``KDUMPTOOL_STATS``): the stats line
    lists each mark's time since exec, so a slow step shows where it sits."""
    if enabled():
        _marks.append((what, _boottime()))


def step_marks(prefix: str) -> Optional[Callable[[str, int, int], None]]:
    """A ``progress(step, done, total)`` callback marking when each step starts (None without
    ``KDUMPTOOL_STATS``): ``snapshot.collect`` takes one."""
    if not enabled():
        return None

    def progress(step: str, done: int, total: int) -> None:
        mark(f"{prefix} {step}")

    return progress


def write_stats(command: str) -> None:
    path = os.environ.get("KDUMPTOOL_STATS")
    if not path:
        return
    try:
        line = _stats_line(command)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # a measurement never fails the command


def _stats_line(command: str) -> str:
    t = os.times()
    parts = [f"kdumptool: stats {command}:"]
    since = _since_exec()
    if since is not None:
        parts.append(f"{since:.2f} s since exec,")
    parts.append(f"cpu {t.user + t.system:.2f} s (user {t.user:.2f}, sys {t.system:.2f}),")
    parts.append(f"peak RSS {_vmhwm()} kB (VmHWM), {len(sys.modules)} modules,")
    ours = [m for n, m in list(sys.modules.items()) if n.split(".")[0] == "kdumptool"]
    parts.append(f"{sum(1 for m in ours if not _has_valid_pyc(m))} of {len(ours)} kdumptool modules "
                 "compiled from source")
    start = _start()
    if _marks and start is not None:
        parts[-1] += ";"
        parts.append("since exec: " + ", ".join(f"{what} {t - start:.2f}" for what, t in _marks))
    return " ".join(parts) + "\n"


def _boottime() -> float:
    """The clock of /proc/uptime (and of a process's start time in /proc/self/stat)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _vmhwm() -> str:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return line.split()[1]
    except OSError:
        pass
    return "?"


def _start() -> Optional[float]:
    """When this process started, on the CLOCK_BOOTTIME scale (/proc/self/stat field 22)."""
    try:
        with open("/proc/self/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
        return int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _since_exec() -> Optional[float]:
    start = _start()
    return None if start is None else _boottime() - start


def _has_valid_pyc(mod: object) -> bool:
    """True when the module came from a .pyc: a sourceless one, or a cached one whose
    header matches its source's mtime and size (PEP 552 timestamp pycs; a hash-based pyc
    counts as valid)."""
    f = getattr(mod, "__file__", None)
    if not f:
        return True  # a namespace or built-in module: nothing to compile
    if f.endswith(".pyc"):
        return True
    spec = getattr(mod, "__spec__", None)
    cached = getattr(spec, "cached", None)
    if not cached:
        return False
    try:
        with open(cached, "rb") as fh:
            head = fh.read(16)
        st = os.stat(f)
    except OSError:
        return False
    from importlib.util import MAGIC_NUMBER

    if len(head) < 16 or head[:4] != MAGIC_NUMBER:
        return False
    flags = int.from_bytes(head[4:8], "little")
    if flags & 1:
        return True
    return (int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF)
