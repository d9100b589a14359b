"""A tree that mirrors ``/``: the live host (``/``), a snapshot directory, or a snapshot
archive (``.tar``, ``.tar.gz``, ``.tgz``) unpacked to a private temporary directory.

Every live source takes a :class:`Root`, so a captured snapshot reads exactly like a host
(sos's ``sysroot``). Files that are not mirrored paths (the kernel log, VT-d registers
read through /dev/mem, command outputs) live under :data:`EXTRA_DIR` inside the snapshot.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

from kdumptool.errors import DecodeError, PermissionDenied, SourceMissing

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where a snapshot is unpacked: not on `dmar FILE`'s start-up
    import tarfile
    import tempfile

#: Folder inside a snapshot for data that has no path of its own under ``/``.
EXTRA_DIR = "_kdumptool"


#: Symlinks followed at most while resolving one path (the kernel's MAXSYMLINKS).
MAX_LINK_HOPS = 40
#: Largest file read whole under a root (sysfs attributes, /proc files, ACPI tables,
#: kdump.conf, modules.alias, a saved lspci output): 16 MiB.
MAX_FILE_BYTES = 16 << 20
#: Largest kernel log read (a saved dmesg, a log FILE): 256 MiB. The kernel's own ring
#: is at most 32 MiB (CONFIG_LOG_BUF_SHIFT <= 25).
MAX_LOG_BYTES = 256 << 20
#: Largest snapshot archive unpacked: bytes written and members.
MAX_SNAPSHOT_BYTES = 512 << 20
#: Largest initramfs image read (a kdump initramfs is typically 20-80 MiB).
MAX_IMAGE_BYTES = 1 << 30
MAX_SNAPSHOT_MEMBERS = 50_000  # a lab snapshot (13 devices) holds 217 files; 1,000 devices ~17,000


class TooLarge(DecodeError):
    """An input larger than the named limit for its kind."""


def _limit_name(cap: int) -> str:
    for name in ("MAX_FILE_BYTES", "MAX_LOG_BYTES", "MAX_IMAGE_BYTES"):
        if globals()[name] == cap:
            return f"{name} = {_human(cap)}"
    return _human(cap)


def _human(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def open_regular(path: Union[str, Path], nofollow: bool = False, regular_only: bool = True) -> int:
    """A read-only descriptor on ``path``, opened O_NONBLOCK (a FIFO or device node never
    blocks the open) and then checked with fstat: only a regular file is accepted unless
    ``regular_only`` is False. Errors are :class:`KdumptoolError` lines naming the path."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if nofollow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SourceMissing(f"{path}: no such file") from None
    except PermissionError:
        who = "" if os.geteuid() == 0 else " (run as root?)"
        raise PermissionDenied(f"{path}: permission denied{who}") from None
    except IsADirectoryError:
        raise SourceMissing(f"{path}: is a directory") from None
    except ValueError:  # a NUL in a path built from a damaged snapshot's text
        raise SourceMissing(f"{str(path)!r}: not a valid path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceMissing(f"{path}: is a symbolic link (not followed)") from None
        raise SourceMissing(f"{path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise SourceMissing(f"{path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise SourceMissing(f"{path}: is a directory")
    if regular_only and not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SourceMissing(f"{path}: not a regular file ({_kind(st.st_mode)}); not read")
    return fd


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def read_fd_capped(fd: int, path: Union[str, Path], cap: int, truncate: bool = False) -> bytes:
    """Up to ``cap`` bytes from ``fd``; more than that raises :class:`TooLarge` (or, with
    ``truncate``, returns the first ``cap`` bytes)."""
    try:
        st = os.fstat(fd)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_size > cap and not truncate:
        # a regular file says its size: refuse before reading (sysfs files say 4096 and
        # are read, which the loop below bounds the same way)
        raise TooLarge(str(path), None, f"{st.st_size} bytes, larger than the limit ({_limit_name(cap)}); not read")
    chunks: List[bytes] = []
    got = 0
    while got <= cap:
        try:
            b = os.read(fd, min(1 << 20, cap + 1 - got))
        except BlockingIOError:
            break
        except OSError as exc:
            raise SourceMissing(f"{path}: read at {got:#x}: {exc.strerror}") from None
        if not b:
            break
        chunks.append(b)
        got += len(b)
    data = b"".join(chunks)
    if len(data) > cap:
        if truncate:
            return data[:cap]
        raise TooLarge(str(path), None, f"larger than the limit ({_limit_name(cap)}); not read")
    return data


def read_file_capped(path: Union[str, Path], cap: int = MAX_FILE_BYTES) -> bytes:
    """A whole regular file given on the command line, at most ``cap`` bytes."""
    fd = open_regular(path)
    try:
        return read_fd_capped(fd, path, cap)
    finally:
        os.close(fd)


class Root:
    """Read-only access to paths below a root directory, confined to it.

    Paths are given as absolute paths of the mirrored system (``/sys/bus/pci/devices``)
    and resolved below ``self.path`` component by component: ``..`` stops at the root,
    and every symlink met on the way (relative or absolute) is resolved inside the tree,
    at most :data:`MAX_LINK_HOPS` of them. A snapshot can therefore never lead a read to
    the host's own files (``proc/cmdline -> ../../../etc/hostname`` reads the snapshot's
    ``/etc/hostname``, or nothing). Files are opened O_NONBLOCK, must be regular files in
    a snapshot (a FIFO or device node is refused, not read) and are read up to a cap.
    The live host (``/``) is read as the kernel presents it.
    """

    def __init__(self, path: Union[str, Path] = "/") -> None:
        self.path = Path(path)
        #: what the user named (a tarball's own path, not the temporary directory)
        self.origin = str(path)
        self._tmp: Optional[tempfile.TemporaryDirectory] = None  # type: ignore[type-arg]
        #: True for an unpacked archive: nothing written below it reaches the archive.
        self.from_archive = False

    @property
    def is_live(self) -> bool:
        return str(self.path) == "/"

    def p(self, rel: str, follow_last: bool = True) -> Path:
        """The real path of ``rel`` (an absolute path on the mirrored system), confined
        below the root: symlinks on the way (and the last one unless ``follow_last`` is
        False) are resolved inside the tree."""
        if str(self.path) == "/":
            return Path("/" + rel.lstrip("/"))
        parts = deque(c for c in rel.split("/") if c not in ("", "."))
        cur: List[str] = []
        hops = 0
        base = str(self.path)
        while parts:
            name = parts.popleft()
            if name == "..":
                if cur:
                    cur.pop()
                continue
            cand = os.path.join(base, *cur, name)
            if parts or follow_last:
                try:
                    is_link = stat.S_ISLNK(os.lstat(cand).st_mode)
                except ValueError:
                    raise SourceMissing(f"{rel!r}: not a valid path") from None
                except OSError:
                    is_link = False
                if is_link:
                    hops += 1
                    if hops > MAX_LINK_HOPS:
                        raise SourceMissing(f"{cand}: more than {MAX_LINK_HOPS} symbolic links "
                                            "(MAX_LINK_HOPS); not followed")
                    target = os.readlink(cand)
                    if target.startswith("/"):
                        cur = []
                    parts.extendleft(reversed([c for c in target.split("/") if c not in ("", ".")]))
                    continue
            cur.append(name)
        return Path(base, *cur)

    def contains(self, path: Union[str, Path]) -> bool:
        """Whether the real path ``path`` lies inside the tree (after resolving links)."""
        base = os.path.realpath(self.path)
        real = os.path.realpath(path)
        return real == base or real.startswith(base.rstrip(os.sep) + os.sep)

    def exists(self, rel: str) -> bool:
        try:
            return os.path.lexists(self.p(rel, follow_last=False))
        except SourceMissing:
            return False

    def open_file(self, rel: str) -> Tuple[int, Path]:
        """A non-blocking read-only descriptor on the regular file ``rel`` and its real path."""
        path = self.p(rel)
        return open_regular(path, nofollow=not self.is_live, regular_only=not self.is_live), path

    def read_bytes(self, rel: str, limit: Optional[int] = None, cap: int = MAX_FILE_BYTES) -> bytes:
        """The bytes of ``rel``: the first ``limit`` bytes, or the whole file when it is at
        most ``cap`` bytes (a larger one raises :class:`TooLarge`)."""
        fd, path = self.open_file(rel)
        try:
            if limit is not None:
                return read_fd_capped(fd, path, min(limit, cap), truncate=True)
            return read_fd_capped(fd, path, cap)
        finally:
            os.close(fd)

    def read_text(self, rel: str, limit: Optional[int] = None, cap: int = MAX_FILE_BYTES) -> str:
        return self.read_bytes(rel, limit, cap=cap).decode("utf-8", "replace")

    def read_optional(self, rel: str) -> Optional[str]:
        """The stripped text of a small file, or None when it is absent or unreadable."""
        try:
            return self.read_text(rel).strip()
        except (SourceMissing, PermissionDenied, TooLarge):
            return None

    def is_file(self, rel: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self.p(rel)).st_mode)
        except (OSError, ValueError, SourceMissing):
            return False

    def is_dir(self, rel: str) -> bool:
        try:
            return stat.S_ISDIR(os.stat(self.p(rel)).st_mode)
        except (OSError, ValueError, SourceMissing):
            return False

    def listdir(self, rel: str) -> List[str]:
        try:
            path = self.p(rel)
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return []
        except PermissionError:
            raise PermissionDenied(f"{self.p(rel)}: permission denied") from None
        except OSError as exc:
            raise SourceMissing(f"{self.path}{rel}: {exc.strerror}") from None

    def readlink(self, rel: str) -> Optional[str]:
        try:
            return os.readlink(self.p(rel, follow_last=False))
        except (OSError, ValueError, SourceMissing):
            return None

    def link_name(self, rel: str) -> Optional[str]:
        """The last component of a symlink's target (``driver`` -> ``e1000e``)."""
        target = self.readlink(rel)
        return os.path.basename(target.rstrip("/")) if target else None

    def extra(self, name: str) -> Path:
        """Path of a non-mirrored snapshot file (``_kdumptool/<name>``), confined; in a
        sos report, where sos keeps the same thing (sources/sos.py: the kernel log, lspci)."""
        return self.p(self.extra_rel(name))

    def extra_rel(self, name: str) -> str:
        """``_kdumptool/<name>`` as a path below the root, or a sos report's own place
        for it (``/sos_commands/kernel/dmesg``) when the snapshot has none."""
        rel = extra_rel(name)
        if not self.is_live and not self.exists(rel):
            from kdumptool.sources.sos import is_sos_report, sos_extra

            if is_sos_report(self.path):
                found = sos_extra(self.path, name)
                if found is not None:
                    return "/" + os.path.relpath(found, self.path)
        return rel

    def read_extra(self, name: str, cap: int = MAX_FILE_BYTES) -> Optional[bytes]:
        """The bytes of ``_kdumptool/<name>`` (or a sos report's copy), None when absent."""
        rel = self.extra_rel(name)
        if not self.exists(rel):
            return None
        return self.read_bytes(rel, cap=cap)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def extra_rel(name: str) -> str:
    """``_kdumptool/<name>`` as a path below the root."""
    return f"/{EXTRA_DIR}/{name}"


def _inside(dest: str, path: str) -> bool:
    return path == dest or path.startswith(dest + os.sep)


def _check_member(archive: Path, dest: str, m: tarfile.TarInfo) -> None:
    """Refuse a member that would be written, or would point, outside ``dest``."""
    parent = os.path.realpath(os.path.join(dest, os.path.dirname(m.name)))
    where = os.path.realpath(os.path.join(dest, m.name)) if not m.issym() else parent
    if not (_inside(dest, parent) and _inside(dest, where)):
        raise DecodeError(str(archive), None, f"unsafe member path {m.name!r} (leaves the snapshot through a link)")
    if m.issym():
        target = os.path.realpath(os.path.join(parent, m.linkname))
    elif m.islnk():
        target = os.path.realpath(os.path.join(dest, m.linkname))
    else:
        return
    if m.linkname.startswith("/") or not _inside(dest, target):
        raise DecodeError(str(archive), None, f"unsafe link {m.name!r} -> {m.linkname!r} (points outside the snapshot)")


def open_root(path: Union[str, Path, None]) -> Root:
    """Open ``--root``: None or ``/`` is the live host, a directory is used as is, a tar
    archive is unpacked (members with absolute paths or ``..`` are refused, and at most
    :data:`MAX_SNAPSHOT_BYTES` bytes in :data:`MAX_SNAPSHOT_MEMBERS` members)."""
    if path is None or str(path) == "/":
        return Root("/")
    p = Path(path)
    if p.is_dir():
        return _recognised(Root(p), str(p))
    if not p.exists():
        raise SourceMissing(f"{p}: no such file or directory")
    fd = open_regular(p)  # a FIFO or a device is refused before tarfile reads it
    os.close(fd)
    import tarfile
    import tempfile

    try:
        is_tar = tarfile.is_tarfile(str(p))
    except OSError as exc:
        raise SourceMissing(f"{p}: {exc.strerror}") from None
    if not is_tar:
        raise DecodeError(str(p), None, "not a directory or a tar snapshot")
    tmp = tempfile.TemporaryDirectory(prefix="kdumptool-root-")
    dest = os.path.realpath(tmp.name)
    # tarfile's own "data" filter (Python 3.12, backported to 3.9.17+) refuses links that
    # leave the tree; _check_member does the same where it is missing.
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(str(p)) as tar:

            # First pass, headers only (nothing written): the counts, sizes, names and
            # hard links of the whole archive are checked before any byte is unpacked,
            # so a bomb stops at its first header past a limit.
            checked: List[tarfile.TarInfo] = []
            total = 0
            seen = set()
            for m in tar:
                if len(checked) >= MAX_SNAPSHOT_MEMBERS:
                    raise DecodeError(str(p), None, f"more than {MAX_SNAPSHOT_MEMBERS} members "
                                      "(MAX_SNAPSHOT_MEMBERS); not unpacked")
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise DecodeError(str(p), None, f"unsafe member path {m.name!r}")
                if m.isdev():
                    continue
                if m.isfile():
                    total += m.size
                    if total > MAX_SNAPSHOT_BYTES:
                        raise DecodeError(str(p), None, f"unpacks to more than {_human(MAX_SNAPSHOT_BYTES)} "
                                          f"(MAX_SNAPSHOT_BYTES) at member {m.name!r}; not unpacked")
                if m.islnk() and os.path.normpath(m.linkname) not in seen:
                    raise DecodeError(str(p), None, f"hard link {m.name!r} -> {m.linkname!r}: "
                                      "no such earlier member")
                seen.add(os.path.normpath(m.name))
                checked.append(m)

            def members() -> Iterator[tarfile.TarInfo]:
                # Second pass, checked one by one as extractall reaches them, against what
                # is already extracted (a link may pass through an earlier one): nothing
                # may be written, or point, outside the tree. sysfs links are relative
                # with ..: kept while they stay inside it.
                for m in checked:
                    _check_member(p, dest, m)
                    yield m

            tar.extractall(dest, members=members(), **kwargs)  # type: ignore[arg-type]  # noqa: S202
    except (tarfile.TarError, OSError, EOFError, KeyError) as exc:
        tmp.cleanup()
        raise DecodeError(str(p), None, f"unreadable snapshot archive: {exc}") from None
    except BaseException:  # DecodeError, and SIGINT/SIGTERM (SystemExit) mid-extraction
        tmp.cleanup()
        raise
    top = Path(tmp.name)
    entries = os.listdir(top)
    # An archive may hold one top folder (snapshot/...) or the tree directly.
    if len(entries) == 1 and (top / entries[0]).is_dir() and not (top / "sys").exists():
        top = top / entries[0]
    root = Root(top)
    root.origin = str(p)
    root._tmp = tmp
    root.from_archive = True
    try:
        return _recognised(root, str(p))
    except BaseException:
        root.close()
        raise


#: What a tree must hold to be read as a system: any one of these (a snapshot written by
#: ``kdumptool collect``/``record``, or a copied root filesystem).
SNAPSHOT_MARKERS = ("sys", "proc", EXTRA_DIR)


def _recognised(root: Root, name: str) -> Root:
    """``root`` when it looks like a system tree; an empty or unrelated folder is an error
    (read as a system it would be "no devices, no IOMMU": an answer resting on nothing)."""
    if any(os.path.isdir(root.path / m) for m in SNAPSHOT_MARKERS):
        return root
    from kdumptool.sources.sos import is_sos_report

    if not is_sos_report(root.path):
        raise SourceMissing(f"{name}: not a snapshot: none of {', '.join(m + '/' for m in SNAPSHOT_MARKERS)} "
                            "in it (kdumptool collect -o DIR writes one)")
    return root
