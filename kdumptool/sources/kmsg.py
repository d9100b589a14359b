"""Where kernel log lines come from: live ``/dev/kmsg``, a file, stdin, or a snapshot.

* Live: ``/dev/kmsg`` opened non-blocking and read record by record until ``EAGAIN``
  (the whole ring buffer as it stands, then stop: we never wait for new messages).
  Each ``read()`` returns one record ``prio,seq,usec,flags;message`` followed by
  dictionary lines (``' SUBSYSTEM=pci'``); ``EPIPE`` means records were overwritten
  while we read, and reading goes on from the next one (noted in ``warnings``).
* A file or ``-`` (stdin): read line by line, streaming (a 1 GB log is fine).
* ``--root DIR``: the snapshot's ``_kdumptool/dmesg.txt`` (``dmesg`` output).

Every reader yields ``str`` lines without their newline, decoded as UTF-8 with
replacement (kernel logs hold arbitrary bytes).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from typing import IO, AnyStr, Callable, Iterator, List, Optional

from kdumptool.errors import PermissionDenied, SourceMissing, UnsupportedFormat
from kdumptool.sources.root import Root, open_regular

KMSG_PATH = "/dev/kmsg"
#: First read size: a record of the kernel's ``CONSOLE_EXT_LOG_MAX`` (8 KiB) fits.
KMSG_READ = 8192
#: A record that does not fit makes ``read()`` fail with ``EINVAL`` without consuming it
#: (devkmsg_read); the buffer is doubled up to this bound, then the record is given up.
KMSG_READ_MAX = 1 << 20
#: Records at most in one live read, a bound for a misbehaving device.
_KMSG_MAX_RECORDS = 10_000_000


class LogSource:
    """An iterable of log lines plus what went wrong while reading them."""

    def __init__(self, name: str, lines: Iterator[str]) -> None:
        self.name = name
        self._lines = lines
        self.warnings: List[str] = []
        self.count = 0  # lines (or kmsg record lines) read so far
        self.truncated = False  # stopped at MAX_LOG_STREAM

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.count += 1
            yield line


#: Longest line kept (the rest of a longer one is skipped): input without newlines
#: (binary junk, /dev/zero) must not grow one line without bound.
_MAX_LINE = 1 << 20


def _bounded_lines(readline: Callable[[int], AnyStr], nl: AnyStr) -> Iterator[AnyStr]:
    while True:
        line = readline(_MAX_LINE)
        if not line:
            return
        if len(line) == _MAX_LINE and not line.endswith(nl):
            while True:  # skip the rest of an overlong line, so line numbers stay right
                rest = readline(_MAX_LINE)
                if not rest or rest.endswith(nl):
                    break
        yield line


def _iter_stream(fh: IO[bytes]) -> Iterator[str]:
    for raw in _bounded_lines(fh.readline, b"\n"):
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def _iter_text(fh: IO[str]) -> Iterator[str]:
    for line in _bounded_lines(fh.readline, "\n"):
        yield line.rstrip("\r\n")


#: Most characters read from one log FILE, stdin or snapshot log (a streamed read:
#: memory stays flat, but ``log /dev/zero`` must end): 2 GiB.
MAX_LOG_STREAM = 2 << 30


def _capped(readline: Callable[[int], AnyStr], src: Optional[LogSource], name: str) -> Callable[[int], AnyStr]:
    """``readline`` that stops (with a warning on ``src``) after :data:`MAX_LOG_STREAM`."""
    got = 0

    def rl(n: int) -> AnyStr:
        nonlocal got
        if got >= MAX_LOG_STREAM:
            if src is not None and not src.truncated:
                src.truncated = True
                src.warnings.append(f"{name}: stopped after {MAX_LOG_STREAM} characters (MAX_LOG_STREAM); "
                                    "the rest of the log is not read")
            return readline(0)
        line = readline(n)
        got += len(line)
        return line

    return rl


def _iter_path(path: str, src: Optional[LogSource] = None, regular_only: bool = False) -> Iterator[str]:
    # Text mode with replacement: the C decoder is several times faster than decoding
    # each line in Python; newline="\n" splits on \n only (a stray \r stays in its line,
    # so line numbers match grep -n). Opened O_NONBLOCK so a FIFO planted in a snapshot
    # cannot hang the open; a FIFO given by the user (``log <(dmesg)``) is then read
    # blocking, as a pipe should be.
    fd = open_regular(path, nofollow=regular_only, regular_only=regular_only)
    try:
        os.set_blocking(fd, True)
        fh = open(fd, encoding="utf-8", errors="replace", newline="\n")
    except OSError as exc:
        os.close(fd)
        raise SourceMissing(f"{path}: {exc.strerror}") from None
    with fh:
        try:
            for raw in _bounded_lines(_capped(fh.readline, src, path), "\n"):
                yield raw.rstrip("\r\n")
        except OSError as exc:
            raise SourceMissing(f"{path}: {exc.strerror}") from None


def open_log_file(path: str) -> LogSource:
    """A log file, or ``-`` for standard input. Fails early if the file is missing."""
    if path == "-":
        src = LogSource("<stdin>", iter(()))
        src._lines = (raw.decode("utf-8", "replace").rstrip("\r\n")
                      for raw in _bounded_lines(_capped(sys.stdin.buffer.readline, src, "<stdin>"), b"\n"))
        return src
    fd = open_regular(path, regular_only=False)  # missing, a directory, unreadable: one line now
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            # a pipe is a log (``log <(journalctl -k)``); a device node (/dev/zero) is not
            raise SourceMissing(f"{path}: not a regular file or a pipe; not read "
                                "(the live log: run `kdumptool log` without FILE)")
        is_reg = stat.S_ISREG(mode)
        head = os.pread(fd, 4096, 0) if is_reg else b""
    except OSError:
        head = b""
    finally:
        os.close(fd)
    src = LogSource(path, iter(()))
    src._lines = _iter_path(path, src)
    if head.startswith((b"\x7fELF", b"KDUMP   ", b"makedumpfile")):
        raise UnsupportedFormat(f"{path}: a vmcore, not a text log (kdumptool vmcore log reads its log)")
    if b"\x00" in head:
        src.warnings.append(f"{path}: binary data (NUL bytes) in the first 4 KiB: is this a kernel log?")
    return src


def open_snapshot_log(root: Root) -> LogSource:
    """The kernel log saved in a snapshot (``_kdumptool/dmesg.txt``)."""
    rel = root.extra_rel("dmesg.txt")  # _kdumptool/dmesg.txt, or a sos report's copy
    path = root.p(rel)
    if not root.exists(rel):
        raise SourceMissing(f"{path}: the snapshot holds no kernel log")
    src = LogSource(str(path), iter(()))
    src._lines = _iter_path(str(path), src, regular_only=True)
    return src


def read_kmsg_records(
    fd: int, warnings: Optional[List[str]] = None, read: Callable[[int, int], bytes] = os.read,
) -> Iterator[str]:
    """Records from an open non-blocking ``/dev/kmsg`` descriptor until ``EAGAIN``.

    Yields each record's first line (``prio,seq,usec,flags;text``) and its dictionary
    lines (starting with a space), exactly as the kernel gives them. The one reader of
    /dev/kmsg (``kdumptool log``, ``collect``, ``triage``); ``read`` is ``os.read``.
    """
    size = KMSG_READ
    overwritten = False
    for _ in range(_KMSG_MAX_RECORDS):
        try:
            data = read(fd, size)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return
            if exc.errno == errno.EPIPE:
                # Records were overwritten; the next read returns the oldest one left.
                if warnings is not None and not overwritten:
                    warnings.append("/dev/kmsg: records were overwritten while reading (EPIPE)")
                overwritten = True
                continue
            if exc.errno == errno.EINVAL:
                if size < KMSG_READ_MAX:
                    size = min(size * 2, KMSG_READ_MAX)  # the record is still there: retry larger
                    continue
                if warnings is not None:
                    warnings.append(f"/dev/kmsg: a record does not fit {KMSG_READ_MAX} bytes (EINVAL); "
                                    "the rest of the log is not read")
                return
            raise
        if not data:
            return
        yield from data.decode("utf-8", "replace").rstrip("\n").split("\n")


_KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def format_kmsg_record(rec: bytes) -> List[str]:
    """One ``/dev/kmsg`` record (``prio,seq,usec,flags;text`` plus dictionary lines) as
    the lines ``dmesg`` prints: the kernel's ``\\xNN`` escapes decoded (a tab is a tab,
    ``\\x5c`` a backslash), and each line of a multi-line message under the record's
    timestamp. Records that do not parse give no line."""
    text = rec.decode("utf-8", "replace")
    head, sep, msg = text.partition(";")
    parts = head.split(",")
    if not sep or len(parts) < 3 or not parts[2].isdigit():
        return []
    usec = int(parts[2])
    first = msg.split("\n", 1)[0]  # continuation lines hold the KEY=value dictionary
    first = _KMSG_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), first)
    stamp = f"[{usec // 1000000:5d}.{usec % 1000000:06d}]"
    return [f"{stamp} {line}" for line in first.split("\n")]


def read_kmsg(path: str = "/dev/kmsg", max_records: int = 200000) -> str:
    """The kernel log as ``dmesg`` prints it, from /dev/kmsg records
    (``prio,seq,usec,flags;text``, Documentation/ABI/testing/dev-kmsg)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SourceMissing(f"{path}: no such device") from None
    except PermissionError:
        raise PermissionDenied(f"{path}: permission denied (kernel.dmesg_restrict? run as root)") from None
    lines: List[str] = []
    try:
        for n, rec in enumerate(read_kmsg_records(fd)):
            if n >= max_records:
                break
            if not rec.startswith(" "):  # dictionary lines (" KEY=value") are not printed
                lines.extend(format_kmsg_record(rec.encode("utf-8", "replace")))
    except OSError as exc:
        raise SourceMissing(f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return "\n".join(lines) + ("\n" if lines else "")


def open_kmsg(path: str = KMSG_PATH) -> LogSource:
    """The live kernel ring buffer, read once without blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SourceMissing(f"{path}: no such device (not Linux, or a container without it)") from None
    except PermissionError:
        raise PermissionDenied(
            f"{path}: permission denied (run as root, or lower kernel.dmesg_restrict)"
        ) from None
    src = LogSource(path, iter(()))

    def gen() -> Iterator[str]:
        try:
            yield from read_kmsg_records(fd, src.warnings)
        except OSError as exc:
            raise SourceMissing(f"{path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    src._lines = gen()
    return src


def open_log(file: Optional[str], root: Optional[Root]) -> LogSource:
    """What ``kdumptool log`` reads: FILE/``-``, else the snapshot, else ``/dev/kmsg``."""
    if file is not None:
        return open_log_file(file)
    if root is not None and not root.is_live:
        return open_snapshot_log(root)
    return open_kmsg()
