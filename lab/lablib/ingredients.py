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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class KernelSource:
    """Where one kernel series of the lab's matrix comes from."""
    series: str
    #: Debian suite added in a private apt configuration (lab/cache/apt) for the download
    #: only; None: the host's own sources (Debian 12).
    suite: Optional[str]
    #: Full match of the package name; the highest version that matches is taken.
    pattern: str
    what: str


#: The lab's kernel axis (``LAB_KERNELS``, ``lab/run --kernel``). 6.1 is the default.
KERNELS: Dict[str, KernelSource] = {
    "6.1": KernelSource("6.1", None, r"linux-image-6\.1\.0-[0-9]+-amd64",
                        "Debian 12's current kernel (what linux-image-amd64 depends on)"),
    "5.10": KernelSource("5.10", "bullseye", r"linux-image-5\.10\.0-[0-9]+-amd64",
                         "Debian 11's kernel (bullseye main, the last point release's build)"),
    "6.12": KernelSource("6.12", "bookworm-backports",
                         r"linux-image-6\.12\.[0-9]+\+deb12(\.[0-9]+)?-amd64",
                         "Debian 12 backports' 6.12"),
}
DEFAULT_KERNEL = "6.1"
APT = CACHE / "apt"


def _apt_opts() -> List[str]:
    """apt options for the private configuration that knows the extra suites (nothing of
    the host's apt state is changed)."""
    return ["-o", f"Dir::Etc::sourcelist={APT / 'sources.list'}",
            "-o", "Dir::Etc::sourceparts=/nonexistent",
            "-o", f"Dir::State::Lists={APT / 'lists'}",
            "-o", f"Dir::Cache={APT / 'cache'}",
            "-o", "Dir::State::status=/dev/null"]


def _private_apt_update() -> None:
    suites = sorted({k.suite for k in KERNELS.values() if k.suite})
    (APT / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (APT / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (APT / "sources.list").write_text("".join(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        f"http://deb.debian.org/debian {s} main\n" for s in suites))
    log(f"apt-get update (private: {', '.join(suites)})")
    subprocess.run(["apt-get", "update", "-qq", *_apt_opts()], env=_apt_env(), check=False)


def _version_key(pkg: str) -> List[object]:
    return [int(x) if x.isdigit() else x for x in re.split(r"([0-9]+)", pkg)]


def kernel_package(series: str = DEFAULT_KERNEL) -> str:
    """The newest ``linux-image-*-amd64`` of a kernel series (:data:`KERNELS`), or
    ``$LAB_KERNEL_PKG`` for the default series."""
    pinned = os.environ.get("LAB_KERNEL_PKG")
    if pinned and series == DEFAULT_KERNEL:
        return pinned
    if series not in KERNELS:
        raise SystemExit(f"lab: unknown kernel {series!r}; known: {', '.join(KERNELS)}")
    src = KERNELS[series]
    for attempt in (0, 1):
        if src.suite is None:
            out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                                 capture_output=True, text=True).stdout
            names = re.findall(r"Depends: (\S+)", out)
        else:
            out = subprocess.run(["apt-cache", *_apt_opts(), "search", "--names-only",
                                  f"^{src.pattern}$"], capture_output=True, text=True).stdout
            names = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
        names = [n for n in names if re.fullmatch(src.pattern, n)]
        if names:
            return max(names, key=_version_key)
        if attempt == 0:
            if src.suite is None:
                apt_update()
            else:
                _private_apt_update()
    # Offline: whatever is already cached.
    cached = [p.name.split("_")[0] for p in DEBS.glob("linux-image-*.deb")]
    cached = [n for n in cached if re.fullmatch(src.pattern, n)]
    if cached:
        return max(cached, key=_version_key)
    raise SystemExit(f"lab: cannot find a {src.pattern} package ({src.what})")


def _cached_deb(pkg: str) -> Optional[Path]:
    hits = sorted(DEBS.glob(f"{glob.escape(pkg)}_*.deb"))
    return hits[-1] if hits else None


def download(pkgs: Iterable[str], private: bool = False) -> Dict[str, Path]:
    """``apt-get download`` what is not cached yet; return package -> .deb path.
    ``private``: through the private apt configuration of the extra suites."""
    DEBS.mkdir(parents=True, exist_ok=True)
    pkgs = list(pkgs)
    missing = [p for p in pkgs if _cached_deb(p) is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        t0 = time.monotonic()
        opts = _apt_opts() if private else []
        r = subprocess.run(["apt-get", "download", "-qq", *opts, *missing], cwd=DEBS, env=_apt_env())
        if r.returncode != 0:
            if private:
                _private_apt_update()
            else:
                apt_update()
            run(["apt-get", "download", "-qq", *opts, *missing], cwd=DEBS, env=_apt_env())
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


def prepare_tree(force: bool = False, series: str = DEFAULT_KERNEL) -> Dict[str, str]:
    """Download and unpack the guest sysroot once, and the kernel of ``series`` into it;
    returns facts about it (kernel version...).

    The userland is rebuilt only when the set of .deb files or host Python packages
    changes. Each kernel is unpacked beside the others (its own ``boot/vmlinuz-KVER`` and
    ``lib/modules/KVER``, stamped ``.lab-kernel-KVER``), so kernels never overwrite each
    other and switching kernels unpacks nothing twice.
    """
    kpkg = kernel_package(series)
    debs = download(GUEST_PACKAGES)
    kdeb = download([kpkg], private=KERNELS.get(series, KERNELS[DEFAULT_KERNEL]).suite is not None)[kpkg]
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
        # ld.so.cache for ctypes.util.find_library (pyudev looks up libudev that way).
        (TREE / "etc").mkdir(exist_ok=True)
        run(["ldconfig", "-r", str(TREE)], stderr=subprocess.DEVNULL)
        copy_site_packages(TREE / "opt" / "lab-site")
        check_needed(TREE)
        stamp_file.write_text(stamp)
    kstamp = TREE / f".lab-kernel-{kver}"
    if not kstamp.exists() or kstamp.read_text() != kdeb.name:
        t0 = time.monotonic()
        run(["dpkg-deb", "-x", str(kdeb), str(TREE)])
        n = _decompress_modules(TREE / "lib" / "modules" / kver)
        run(["depmod", "-b", str(TREE), kver])
        if n:
            log(f"{kver}: decompressed {n} .ko.xz modules (busybox insmod/modprobe load .ko)")
        kstamp.write_text(kdeb.name)
        log(f"unpacked {kdeb.name} in {time.monotonic() - t0:.1f}s")
    return {"kver": kver, "kernel_package": kpkg, "series": series,
            "vmlinuz": f"boot/vmlinuz-{kver}", "tree": str(TREE)}


def _decompress_modules(moddir: Path) -> int:
    """Debian's 6.12 ships its modules as ``.ko.xz``; the guest's busybox loads plain
    ``.ko``, so they are decompressed once here (``depmod`` then lists the ``.ko``)."""
    import lzma

    n = 0
    for f in moddir.rglob("*.ko.xz"):
        f.with_suffix("").write_bytes(lzma.decompress(f.read_bytes()))
        f.unlink()
        n += 1
    return n


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
