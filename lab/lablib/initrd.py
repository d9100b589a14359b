"""Build the lab's initramfs: busybox, the 9p modules, the guest scripts and kdumptool.

The archive is a gzip'd ``newc`` cpio written here (no external cpio needed). It is small
(a few MB): the Python runtime and the tools stay in the sysroot that the guest mounts
read-only over 9p, so the same image serves as the live initramfs and as the kdump
kernel's initrd (loaded with ``kexec -p``) without eating the crashkernel reservation.
"""

from __future__ import annotations

import gzip
import io
import os
import py_compile
import stat
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .ingredients import LAB, REPO

#: Modules the init loads before it can mount the 9p shares.
EARLY_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]


class CpioWriter:
    """Minimal ``newc`` (SVR4, no CRC) cpio writer, as the kernel's initramfs unpacker reads."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.seen: set = set()

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        name = name.strip("/")
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub and sub not in self.seen:
                self.seen.add(sub)
                self._entry(sub, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self.seen.add(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self.seen.add(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def _modules_dep(tree: Path, kver: str) -> Tuple[Dict[str, List[str]], Dict[str, str], set]:
    moddir = tree / "lib" / "modules" / kver
    deps: Dict[str, List[str]] = {}
    by_name: Dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[_modname(path)] = path
    builtin = {_modname(x) for x in (moddir / "modules.builtin").read_text().split()}
    return deps, by_name, builtin


def _modname(path: str) -> str:
    base = os.path.basename(path)
    for suf in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suf):
            base = base[: -len(suf)]
    return base.replace("-", "_")


def module_load_order(tree: Path, kver: str, names: Iterable[str]) -> List[str]:
    """Module paths (relative to the modules dir) for ``names`` and their dependencies,
    dependencies first; built-in modules are skipped."""
    deps, by_name, builtin = _modules_dep(tree, kver)
    order: List[str] = []

    def visit(path: str, depth: int = 0) -> None:
        if path in order or depth > 50:
            return
        for d in deps.get(path, []):
            visit(d, depth + 1)
        order.append(path)

    for n in names:
        key = n.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name:
            raise SystemExit(f"lab: module {n} not found in modules.dep of {kver}")
        visit(by_name[key])
    return order


def build_initrd(out: Path, tree: Path, kver: str, extra_files: Optional[Dict[str, bytes]] = None) -> int:
    """Write the default lab initramfs to ``out``; returns its size in bytes."""
    w = CpioWriter()
    for d in ("bin", "proc", "sys", "dev", "t", "cfg", "out", "tmp", "run", "etc", "mnt", "root"):
        w.dir(d)
    w.file("bin/busybox", (tree / "bin" / "busybox").read_bytes(), 0o755)
    w.symlink("bin/sh", "busybox")
    # Debian's binaries in the 9p sysroot look for their loader and libraries under these.
    for name in ("lib", "lib64", "usr", "sbin"):
        w.symlink(name, f"/t/{name}")
    w.symlink("etc/ld.so.cache", "/t/etc/ld.so.cache")
    w.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    w.file("etc/group", b"root:x:0:\n")
    moddir = tree / "lib" / "modules" / kver
    order = module_load_order(tree, kver, EARLY_MODULES)
    names = []
    for rel in order:
        name = os.path.basename(rel)
        w.file(f"lab/mod/{name}", (moddir / rel).read_bytes())
        names.append(name)
    w.file("lab/mod/order", ("\n".join(names) + "\n").encode())
    for f in sorted((LAB / "guest").iterdir()):
        if f.is_file():
            mode = 0o755 if os.access(f, os.X_OK) else 0o644
            w.file(f"lab/{f.name}", f.read_bytes(), mode)
    w.file("init", (LAB / "guest" / "init").read_bytes(), 0o755)
    # kdumptool from the working tree (sources only).
    # Byte-compiled here (unchecked-hash .pyc: valid whatever the cpio mtimes), because
    # compiling at every start under TCG costs seconds per kdumptool call.
    pkg = REPO / "kdumptool"
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted(pkg.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            rel = f.relative_to(REPO)
            w.file(f"kdt/{rel}", f.read_bytes())
            if sys.version_info[:2] != (3, 11):  # the guest runs Debian 12's Python 3.11
                continue
            pyc = Path(tmp) / "x.pyc"
            py_compile.compile(str(f), cfile=str(pyc), dfile=f"/kdt/{rel}", doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            w.file(f"kdt/{rel.parent}/__pycache__/{f.stem}.{sys.implementation.cache_tag}.pyc",
                   pyc.read_bytes())
    for name, data in (extra_files or {}).items():
        w.file(name, data)
    raw = w.finish()
    data = gzip.compress(raw, compresslevel=6, mtime=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return len(data)
