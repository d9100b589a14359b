"""Helpers for the hostile-input suite: a deadline that turns a hang into a failure, and
a copy of a lab snapshot to plant things in."""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path
from typing import Iterator

from tests.conftest import FIXTURES

SNAPSHOTS = FIXTURES / "snapshots"


class Hung(BaseException):  # not swallowed by the CLI's "internal error" catch-all
    pass


@contextlib.contextmanager
def deadline(seconds: int = 10) -> Iterator[None]:
    """Fail (raise Hung) instead of hanging: a blocking open() of a FIFO is interrupted."""

    def fire(signum: int, frame: object) -> None:
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def snapshot_copy(name: str, dest: Path) -> Path:
    out = dest / name
    shutil.copytree(SNAPSHOTS / name, out, symlinks=True)
    return out


def plant_link(at: Path, target: str) -> None:
    """Replace ``at`` by a symlink to ``target``."""
    if at.is_symlink() or at.exists():
        at.unlink()
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(target)


def escape_to(at: Path, outside: Path) -> str:
    """A relative link text from ``at``'s folder that climbs far above / and lands on
    ``outside`` (an absolute host path)."""
    return "../" * (len(at.parent.parts) + 3) + str(outside).lstrip("/")
