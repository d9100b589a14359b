"""Put one file of the dracut module or the systemd units in place for
``kdumptool install-integration`` (which plans the list and prints it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: the kdumptool path the files in systemd/ name; replaced by the installed one
UNIT_KDUMPTOOL = "/usr/bin/kdumptool"


def unit_text(src: Path, exe: str) -> bytes:
    """A unit or the shutdown hook, naming ``exe`` wherever it runs kdumptool (a bare
    ``kdumptool`` in the hook too: PATH is minimal at shutdown)."""
    text = src.read_text()
    text = text.replace(UNIT_KDUMPTOOL, exe)
    if src.name == "kdumptool.shutdown":
        text = "\n".join(exe + ln[len("kdumptool"):] if ln.startswith("kdumptool ") else ln
                         for ln in text.split("\n"))
    return text.encode()


def put_file(src: Path, dst: Path, mode: int, exe: str) -> None:
    """Copy ``src`` to ``dst`` (systemd files with ``exe`` substituted), then chmod."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.parent.name == "systemd":
        dst.write_bytes(unit_text(src, exe))
    else:
        shutil.copyfile(src, dst)
    os.chmod(dst, mode)
