"""A tree that mirrors ``/``: the live host (``/``), a snapshot directory, or a snapshot
archive (``.tar``, ``.tar.gz``, ``.tgz``) unpacked to a private temporary directory.

Every live source takes a :class:`Root`, so a captured snapshot reads exactly like a host
(sos's ``sysroot``). Files that are not mirrored paths (the kernel log, VT-d registers
read through /dev/mem, command outputs) live under :data:`EXTRA_DIR` inside the snapshot.
"""

from __future__ import annotations

import errno
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Union

from kdumptool.errors import DecodeError, PermissionDenied, SourceMissing

#: Folder inside a snapshot for data that has no path of its own under ``/``.
EXTRA_DIR = "_kdumptool"


class Root:
    """Read-only access to paths below a root directory.

    Paths are given as absolute paths of the mirrored system (``/sys/bus/pci/devices``);
    they are resolved below ``self.path``. Symlinks inside the tree that are absolute
    (as sysfs links are not, but copied trees may be) are resolved relative to the root.
    """

    def __init__(self, path: Union[str, Path] = "/") -> None:
        self.path = Path(path)
        #: what the user named (a tarball's own path, not the temporary directory)
        self.origin = str(path)
        self._tmp: Optional[tempfile.TemporaryDirectory] = None  # type: ignore[type-arg]
        self._abs_links: Optional[bool] = None

    @property
    def is_live(self) -> bool:
        return str(self.path) == "/"

    def p(self, rel: str, follow_last: bool = True) -> Path:
        """The real path of ``rel`` (an absolute path on the mirrored system)."""
        path = self.path / rel.lstrip("/")
        if self.is_live or not self._has_absolute_links():
            return path
        return self._reroot(rel, follow_last) or path

    def _has_absolute_links(self) -> bool:
        """Whether the tree holds any absolute symlink (one scan, on first use): the
        usual snapshot has none, and its paths need no walk."""
        if self._abs_links is None:
            found = False
            stack = [str(self.path)]
            while stack and not found:
                try:
                    with os.scandir(stack.pop()) as it:
                        for e in it:
                            if e.is_symlink():
                                if os.readlink(e.path).startswith("/"):
                                    found = True
                                    break
                            elif e.is_dir(follow_symlinks=False):
                                stack.append(e.path)
                except OSError:
                    continue
            self._abs_links = found
        return self._abs_links

    def _reroot(self, rel: str, follow_last: bool) -> Optional[Path]:
        """``rel`` with absolute symlinks met on the way resolved below the root (a copied
        tree must not lead to the host's own files); None when there are none."""
        parts = [c for c in rel.split("/") if c not in ("", ".")]
        cur: List[str] = []
        rerooted = False
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if cur:
                    cur.pop()
                continue
            cand = os.path.join(self.path, *cur, name)
            if (parts or follow_last) and os.path.islink(cand) and hops < 40:
                hops += 1
                target = os.readlink(cand)
                if target.startswith("/"):
                    rerooted = True
                    cur = []
                parts = [c for c in target.split("/") if c not in ("", ".")] + parts
                continue
            cur.append(name)
        return Path(self.path, *cur) if rerooted else None

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.p(rel, follow_last=False))

    def read_bytes(self, rel: str, limit: Optional[int] = None) -> bytes:
        path = self.p(rel)
        try:
            with open(path, "rb") as fh:
                return fh.read() if limit is None else fh.read(limit)
        except FileNotFoundError:
            raise SourceMissing(f"{path}: no such file") from None
        except PermissionError:
            raise PermissionDenied(f"{path}: permission denied (run as root?)") from None
        except IsADirectoryError:
            raise SourceMissing(f"{path}: is a directory") from None
        except ValueError:  # a NUL in a path built from a damaged snapshot's text
            raise SourceMissing(f"{str(path)!r}: not a valid path") from None
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.ENXIO, errno.ENODEV, errno.EINVAL, errno.ELOOP, errno.ENOTDIR):
                raise SourceMissing(f"{path}: {exc.strerror}") from None
            raise

    def read_text(self, rel: str, limit: Optional[int] = None) -> str:
        return self.read_bytes(rel, limit).decode("utf-8", "replace")

    def read_optional(self, rel: str) -> Optional[str]:
        """The stripped text of a small file, or None when it is absent or unreadable."""
        try:
            return self.read_text(rel).strip()
        except (SourceMissing, PermissionDenied):
            return None

    def listdir(self, rel: str) -> List[str]:
        try:
            return sorted(os.listdir(self.p(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceMissing(f"{self.p(rel)}: {exc.strerror}") from None
            raise
        except PermissionError:
            raise PermissionDenied(f"{self.p(rel)}: permission denied") from None

    def readlink(self, rel: str) -> Optional[str]:
        try:
            return os.readlink(self.p(rel, follow_last=False))
        except OSError:
            return None

    def link_name(self, rel: str) -> Optional[str]:
        """The last component of a symlink's target (``driver`` -> ``e1000e``)."""
        target = self.readlink(rel)
        return os.path.basename(target.rstrip("/")) if target else None

    def extra(self, name: str) -> Path:
        """Path of a non-mirrored snapshot file (``_kdumptool/<name>``); in a sos report,
        where sos keeps the same thing (sources/sos.py: the kernel log, lspci)."""
        path = self.path / EXTRA_DIR / name
        if not path.exists() and not self.is_live:
            from kdumptool.sources.sos import is_sos_report, sos_extra

            if is_sos_report(self.path):
                return sos_extra(self.path, name) or path
        return path

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    archive is unpacked (members with absolute paths or ``..`` are refused)."""
    if path is None or str(path) == "/":
        return Root("/")
    p = Path(path)
    if p.is_dir():
        return Root(p)
    if not p.exists():
        raise SourceMissing(f"{p}: no such file or directory")
    if not tarfile.is_tarfile(str(p)):
        raise DecodeError(str(p), None, "not a directory or a tar snapshot")
    tmp = tempfile.TemporaryDirectory(prefix="kdumptool-root-")
    dest = os.path.realpath(tmp.name)
    # tarfile's own "data" filter (Python 3.12, backported to 3.9.17+) refuses links that
    # leave the tree; _check_member does the same where it is missing.
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(str(p)) as tar:

            def members() -> Iterator[tarfile.TarInfo]:
                # Checked one by one as extractall reaches them, against what is already
                # extracted (a link may pass through an earlier one): nothing may be
                # written, or point, outside the tree. sysfs links are relative with ..:
                # kept while they stay inside it.
                for m in tar:
                    if m.name.startswith("/") or ".." in Path(m.name).parts:
                        raise DecodeError(str(p), None, f"unsafe member path {m.name!r}")
                    if m.isdev():
                        continue
                    _check_member(p, dest, m)
                    yield m

            tar.extractall(dest, members=members(), **kwargs)  # type: ignore[arg-type]  # noqa: S202
    except (tarfile.TarError, OSError, EOFError) as exc:
        tmp.cleanup()
        raise DecodeError(str(p), None, f"unreadable snapshot archive: {exc}") from None
    except DecodeError:
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
    return root
