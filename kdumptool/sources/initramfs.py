"""The kdump initramfs and the kernel modules it carries.

Where distributions put the kdump initramfs:

- RHEL/Fedora (kdumpctl): ``/boot/initramfs-<release>kdump.img``
- Debian/Ubuntu (kdump-tools): ``/var/lib/kdump/initrd.img-<release>``
- SUSE (mkdumprd): ``/boot/initrd-<release>-kdump``

The file list comes from ``lsinitrd`` (dracut) or ``lsinitramfs`` (initramfs-tools) when
one is installed and we read the live host, otherwise from our own cpio reader
(:mod:`kdumptool.formats.cpio`); zstd falls back to the ``zstd`` binary when the
``zstandard`` package is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

from kdumptool.errors import (
    DecodeError,
    KdumptoolError,
    PermissionDenied,
    SourceMissing,
    UnsupportedFormat,
)
from kdumptool.formats.cpio import Decompressor, modules_of, parse_cpio
from kdumptool.model.triage import KdumpInitrd
from kdumptool.sources.root import MAX_IMAGE_BYTES, Root

PATTERNS: Tuple[Tuple[str, str], ...] = (
    ("/boot", r"^initramfs-(?P<rel>.+?)kdump\.img$"),
    ("/var/lib/kdump", r"^initrd\.img-(?P<rel>.+)$"),
    ("/boot", r"^initrd-(?P<rel>.+?)-kdump$"),
)


KDUMPTOOL_FILES = ("usr/bin/kdumptool", "usr/libexec/kdumptool/kdump-post")


def _has_kdumptool(names: List[str]) -> bool:
    clean = {n.lstrip("./") for n in names}
    return all(f in clean for f in KDUMPTOOL_FILES)


def find_kdump_initrds(root: Root) -> List[Tuple[str, str]]:
    """(path, kernel release) of every kdump initramfs under ``root``."""
    found: List[Tuple[str, str]] = []
    for folder, pat in PATTERNS:
        for name in root.listdir(folder):
            m = re.match(pat, name)
            if m:
                found.append((f"{folder}/{name}", m.group("rel")))
    return found


def running_release(root: Root) -> Optional[str]:
    """The kernel release, only when it looks like one: it becomes part of paths
    (``/lib/modules/<release>``), so a damaged snapshot must not put NUL or ``..`` there."""
    rel = root.read_optional("/proc/sys/kernel/osrelease")
    if not rel:
        try:
            raw = root.read_extra("uname.txt")
        except KdumptoolError:
            return None
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace")
        parts = text.split()
        rel = parts[2] if len(parts) > 2 and parts[0] == "Linux" else (parts[0] if parts else None)
    if rel is None or not re.fullmatch(r"[A-Za-z0-9+_~-][A-Za-z0-9.+_~-]*", rel):
        return None
    return rel


def pick_kdump_initrd(root: Root) -> Optional[Tuple[str, str]]:
    """The kdump initramfs of the running kernel (else the newest one)."""
    found = find_kdump_initrds(root)
    if not found:
        return None
    rel = running_release(root)
    for path, r in found:
        if r == rel:
            return path, r

    def mtime(pr: Tuple[str, str]) -> float:
        try:
            return os.path.getmtime(root.p(pr[0]))
        except (OSError, KdumptoolError):
            return 0.0

    return max(found, key=mtime)


def _zstd_binary(data: bytes) -> Tuple[bytes, bytes]:
    exe = shutil.which("zstd")
    if exe is None:
        raise UnsupportedFormat("zstd-compressed initramfs: install the zstandard package or zstd")
    # The binary decodes all concatenated frames; the kernel image holds one stream.
    proc = subprocess.run([exe, "-dc"], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(proc.stderr.decode("utf-8", "replace").strip()[:200])
    return proc.stdout, b""


def _names_from_tool(path: str) -> Optional[Tuple[List[str], str]]:
    for tool in ("lsinitrd", "lsinitramfs"):
        exe = shutil.which(tool)
        if exe is None:
            continue
        try:
            proc = subprocess.run([exe, path], capture_output=True, check=False, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode != 0:
            continue
        out = proc.stdout.decode("utf-8", "replace").splitlines()
        names: List[str] = []
        for line in out:
            if tool == "lsinitrd":
                # ls -l style: "-rw-r--r--   1 root root  1234 Jan  1 00:00 usr/lib/...ko.xz"
                fields = line.split()
                if len(fields) >= 9 and fields[0][:1] in "-dlcbps":
                    names.append(" ".join(fields[8:]).split(" -> ")[0])
            else:
                names.append(line.strip())
        return names, tool
    return None


def read_kdump_initrd(
    root: Root, path: Optional[str] = None, use_tools: Optional[bool] = None
) -> Optional[KdumpInitrd]:
    """The module list of the kdump initramfs (None when there is none).

    ``use_tools`` defaults to True on the live host and False for snapshots (the
    snapshot's own image is read with our cpio reader, the result does not depend on
    what the reading host has installed).
    """
    release = ""
    if path is None:
        picked = pick_kdump_initrd(root)
        if picked is None:
            return None
        path, release = picked
    real = str(root.p(path))
    if use_tools is None:
        use_tools = root.is_live
    if use_tools:
        got = _names_from_tool(real)
        if got is not None:
            names, tool = got
            return KdumpInitrd(path, release, tuple(modules_of(names)), tool, (), _has_kdumptool(names))
    try:
        data = root.read_bytes(path, cap=MAX_IMAGE_BYTES)
    except (SourceMissing, PermissionDenied):
        raise
    decs: Dict[str, Decompressor] = {}
    try:
        import zstandard  # noqa: F401
    except ImportError:
        decs["zstd"] = _zstd_binary
    try:
        image = parse_cpio(data, what=path, decompressors=decs)
    except DecodeError as exc:
        raise exc.with_source(path) from None
    names = image.names()
    return KdumpInitrd(path, release, tuple(modules_of(names)), "cpio", image.warnings, _has_kdumptool(names))
