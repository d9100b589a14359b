"""Fetch and prepare what the lab boots: Debian packages unpacked into a guest sysroot.

Everything comes from the Debian archive through ``apt-get download`` (cached in
``lab/cache/debs``) and is unpacked with ``dpkg-deb -x`` into ``lab/cache/tree``. That tree
is the guest's userland, shared read-only over 9p: the kernel and its modules (``depmod``
is run here because the package ships no ``modules.dep``), busybox, kexec-tools,
makedumpfile, pciutils and a Python 3.11 runtime. kdumptool's Python dependencies are
copied from the host's site-packages by their installed file lists.

QEMU itself runs on the host: ``apt-get install qemu-system-x86`` when it is missing.
"""

from __future__ import annotations

import glob
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

LAB = Path(__file__).resolve().parent.parent
REPO = LAB.parent
CACHE = LAB / "cache"
DEBS = CACHE / "debs"
TREE = CACHE / "tree"

#: Packages unpacked into the guest sysroot (the kernel is added by :func:`kernel_package`).
#: Chosen by the NEEDED entries of the binaries we run (checked by :func:`check_needed`),
#: not by the packages' full Depends (kexec-tools would pull debconf and perl).
GUEST_PACKAGES = [
    # C runtime, ldconfig (ctypes.util.find_library runs ``ldconfig -p``)
    "libc6", "libc-bin", "libgcc-s1", "zlib1g", "liblzma5", "libzstd1", "libbz2-1.0",
    "libssl3", "libuuid1",
    # Python 3.11 (the same minor version as Debian 12's python3)
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
    "libexpat1", "libffi8", "libcrypt1", "libncursesw6", "libtinfo6",
    # tools
    "busybox-static", "kexec-tools", "makedumpfile", "pciutils", "libpci3", "libkmod2",
    "libudev1", "pci.ids", "libelf1", "libdw1", "liblzo2-2",
    # kexec-tools links libxenctrl (package libxenmisc4.17) and its closure
    "libxenmisc4.17", "libxencall1", "libxenforeignmemory1", "libxengnttab1",
    "libxendevicemodel1", "libxentoollog1", "libxenevtchn1", "libxenstore4",
    "libxentoolcore1", "libxenhypfs1", "libext2fs2", "libcom-err2", "libyajl2",
]

#: Binaries in the tree that must find all their shared libraries.
NEEDED_ROOTS = [
    "usr/bin/python3.11", "sbin/kexec", "usr/bin/makedumpfile", "usr/bin/lspci",
    "usr/bin/setpci",
]

#: Python distributions kdumptool needs in the guest (their requirements are followed).
PY_DISTS = ["construct", "typer", "rich", "psutil", "pyudev"]


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def run(cmd: List[str], **kw: object) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def _apt_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    return env


_updated = False


def apt_update() -> None:
    global _updated
    if not _updated:
        log("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], env=_apt_env(), check=False)
        _updated = True


def kernel_package() -> str:
    """The current Debian 12 ``linux-image-6.1.*-amd64`` (what linux-image-amd64 depends on),
    or ``$LAB_KERNEL_PKG``."""
    pinned = os.environ.get("LAB_KERNEL_PKG")
    if pinned:
        return pinned
    for attempt in (0, 1):
        out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                             capture_output=True, text=True).stdout
        m = re.search(r"Depends: (linux-image-6\.1\.[0-9.]+-[0-9]+-amd64|linux-image-6\.1\.0-[0-9]+-amd64)", out)
        if m:
            return m.group(1)
        if attempt == 0:
            apt_update()
    # Offline: whatever is already cached.
    cached = sorted(DEBS.glob("linux-image-6.1.*-amd64_*.deb"))
    if cached:
        return cached[-1].name.split("_")[0]
    raise SystemExit("lab: cannot find linux-image-6.1.*-amd64 (apt-cache depends linux-image-amd64)")


def _cached_deb(pkg: str) -> Optional[Path]:
    hits = sorted(DEBS.glob(f"{glob.escape(pkg)}_*.deb"))
    return hits[-1] if hits else None


def download(pkgs: Iterable[str]) -> Dict[str, Path]:
    """``apt-get download`` what is not cached yet; return package -> .deb path."""
    DEBS.mkdir(parents=True, exist_ok=True)
    pkgs = list(pkgs)
    missing = [p for p in pkgs if _cached_deb(p) is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        t0 = time.monotonic()
        r = subprocess.run(["apt-get", "download", "-qq", *missing], cwd=DEBS, env=_apt_env())
        if r.returncode != 0:
            apt_update()
            run(["apt-get", "download", "-qq", *missing], cwd=DEBS, env=_apt_env())
        log(f"downloaded {len(missing)} packages in {time.monotonic() - t0:.1f}s")
    out = {}
    for p in pkgs:
        deb = _cached_deb(p)
        if deb is None:
            raise SystemExit(f"lab: {p}: apt-get download left no .deb in {DEBS}")
        out[p] = deb
    return out


def ensure_qemu() -> str:
    """Path of qemu-system-x86_64, installing Debian's qemu-system-x86 when missing."""
    exe = shutil.which("qemu-system-x86_64")
    if exe:
        return exe
    if os.geteuid() != 0:
        raise SystemExit("lab: qemu-system-x86_64 missing; install qemu-system-x86 (needs root)")
    apt_update()
    log("apt-get install qemu-system-x86")
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "qemu-system-x86"],
        env=_apt_env(), stdout=subprocess.DEVNULL)
    exe = shutil.which("qemu-system-x86_64")
    if not exe:
        raise SystemExit("lab: qemu-system-x86_64 still missing after apt-get install")
    return exe


def _stamp(debs: Dict[str, Path]) -> str:
    return json.dumps(sorted(p.name for p in debs.values()) + [_site_stamp()])


def _site_stamp() -> str:
    return ";".join(f"{d}={md.version(d)}" for d in sorted(py_dist_closure()))


def prepare_tree(force: bool = False) -> Dict[str, str]:
    """Download and unpack the guest sysroot once; returns facts about it (kernel version...).

    Rebuilt only when the set of .deb files or host Python packages changes.
    """
    kpkg = kernel_package()
    debs = download(GUEST_PACKAGES + [kpkg])
    stamp_file = CACHE / "tree.stamp"
    stamp = _stamp(debs)
    kver = kpkg[len("linux-image-"):]
    if force or not stamp_file.exists() or stamp_file.read_text() != stamp or not TREE.is_dir():
        t0 = time.monotonic()
        if TREE.exists():
            shutil.rmtree(TREE)
        TREE.mkdir(parents=True)
        for deb in debs.values():
            run(["dpkg-deb", "-x", str(deb), str(TREE)])
        log(f"unpacked {len(debs)} packages in {time.monotonic() - t0:.1f}s")
        run(["depmod", "-b", str(TREE), kver])
        # ld.so.cache for ctypes.util.find_library (pyudev looks up libudev that way).
        (TREE / "etc").mkdir(exist_ok=True)
        run(["ldconfig", "-r", str(TREE)], stderr=subprocess.DEVNULL)
        copy_site_packages(TREE / "opt" / "lab-site")
        check_needed(TREE)
        stamp_file.write_text(stamp)
    return {"kver": kver, "kernel_package": kpkg,
            "vmlinuz": f"boot/vmlinuz-{kver}", "tree": str(TREE)}


def py_dist_closure() -> Set[str]:
    """The distributions in :data:`PY_DISTS` and everything they require (no extras,
    nothing restricted to Windows)."""
    seen: Set[str] = set()
    todo = list(PY_DISTS)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for req in md.requires(name) or []:
            spec, _, marker = req.partition(";")
            if "extra" in marker or "Windows" in marker or "win32" in marker:
                continue
            m = re.match(r"\s*([A-Za-z0-9_.-]+)", spec)
            if m:
                todo.append(m.group(1))
    return seen


def copy_site_packages(dest: Path) -> None:
    """Copy the host's installed files of :func:`py_dist_closure` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for name in sorted(py_dist_closure()):
        dist = md.distribution(name)
        base = Path(str(dist.locate_file("")))
        for f in dist.files or []:
            rel = Path(str(f))
            if rel.is_absolute() or ".." in rel.parts or "__pycache__" in rel.parts:
                continue
            src = base / rel
            if not src.is_file():
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
            n += 1
    log(f"copied {n} files of {len(py_dist_closure())} Python distributions")


def _needed(path: Path) -> List[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def check_needed(tree: Path) -> None:
    """Every shared library the guest binaries need, transitively, is in the tree."""
    libdirs = [tree / d for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64")]
    missing: Dict[str, str] = {}
    todo = [(tree / r, r) for r in NEEDED_ROOTS]
    seen: Set[str] = set()
    while todo:
        path, who = todo.pop()
        if not path.exists():
            missing[str(path.relative_to(tree))] = "(binary itself)"
            continue
        for lib in _needed(path):
            if lib in seen:
                continue
            seen.add(lib)
            hit = next((d / lib for d in libdirs if (d / lib).exists()), None)
            if hit is None:
                missing[lib] = who
            else:
                todo.append((hit.resolve(), lib))
    if missing:
        raise SystemExit("lab: guest tree lacks shared libraries: "
                         + ", ".join(f"{k} (needed by {v})" for k, v in sorted(missing.items())))
