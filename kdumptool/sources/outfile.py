"""Every file kdumptool writes (``collect -o``, ``record --out``): created as a temporary
file with O_CREAT|O_EXCL|O_NOFOLLOW in the destination folder, written, fsync'd, then put
in place with one rename, so that

- a symlink planted at the destination (or at the temporary name) is never followed: the
  link itself is replaced, or the write refused;
- an existing file is not overwritten unless ``force`` (``--force``): without it the file
  is put in place with link(2), which fails if the name exists, even if it appeared
  between the check and the write;
- a failed write (ENOSPC, EIO, EROFS...) leaves nothing behind and is one line
  (:class:`OutputError`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import IO, Iterator, Union

from kdumptool.errors import KdumptoolError


class OutputError(KdumptoolError):
    """A file kdumptool was asked to write could not be written (nothing is left behind)."""


def _flags() -> int:
    return os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def refuse_existing(path: Union[str, Path], force: bool) -> None:
    """Refuse an existing destination (file, link or anything else) unless ``force``."""
    p = Path(path)
    if os.path.lexists(p):
        if p.is_dir() and not p.is_symlink():
            raise OutputError(f"{p}: is a directory")
        if not force:
            raise OutputError(f"{p}: exists (not overwritten; --force replaces it)")


@contextlib.contextmanager
def atomic_output(path: Union[str, Path], force: bool = False) -> Iterator[IO[bytes]]:
    """A binary file object that becomes ``path`` when the block ends without error."""
    p = Path(path)
    refuse_existing(p, force)
    folder = p.parent
    tmp = folder / f".{p.name}.tmp-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, _flags(), 0o644)
    except OSError as exc:
        raise OutputError(f"{p}: cannot create (temporary file {tmp.name}): {exc.strerror}") from None
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _put_in_place(tmp, p, force)
        done = True
    except OSError as exc:
        raise OutputError(f"{p}: {exc.strerror or exc}" + ("; nothing written" if exc.errno == errno.ENOSPC else
                                                           "; the partial file is removed")) from None
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _put_in_place(tmp: Path, dest: Path, force: bool) -> None:
    if force:
        os.replace(tmp, dest)  # rename(2) replaces a link itself, never its target
        return
    try:
        os.link(tmp, dest, follow_symlinks=False)  # fails with EEXIST: no overwrite, ever
    except FileExistsError:
        raise OutputError(f"{dest}: exists (not overwritten; --force replaces it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # a filesystem without hard links (vfat, some FUSE): check, then rename
        if os.path.lexists(dest):
            raise OutputError(f"{dest}: exists (not overwritten; --force replaces it)") from None
        os.rename(tmp, dest)
        return
    os.unlink(tmp)


def write_file(path: Union[str, Path], data: Union[bytes, str], force: bool = False) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_output`."""
    with atomic_output(path, force) as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
