"""Attack run for issue 14 (stream hostile-io): confinement, device nodes and FIFOs, size
bombs, archives, writers, terminal escapes, PCI writes and wrong answers.

Every attack is one ``python -m kdumptool ...`` child under ``timeout`` and an
address-space cap (RLIMIT_AS); the table counts clean errors (exit 1 and one ``error:``
line), labelled partial results (exit 0/3/4 with a ``warning``/``WARNING``/``unknown``),
hangs (killed at the timeout), tracebacks (``Traceback`` or ``internal error``) and the
peak RSS of the children (``wait4``). Run from the repository:

    PYTHONPATH=$PWD python3 bench/attack_io.py [--timeout 30] [--cap-mb 2048]

Inputs are generated in a temporary folder and removed afterwards (nothing is written
outside it; PCI writes only touch copies of snapshot trees).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
SNAP = REPO / "fixtures" / "snapshots" / "kdump_legacy_on"
VMCORE = REPO / "fixtures" / "vmcore" / "lab_legacy_on.trim.kdump"
MARKER = "HOST-SECRET-7d2e"
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m"


@dataclass
class Result:
    cls: str
    args: List[str]
    code: Optional[int]
    out: str
    err: str
    rss_kb: int
    seconds: float
    hung: bool
    check: Optional[str] = None  # a failed class-specific check (leak, escape, write)


@dataclass
class Row:
    runs: List[Result] = field(default_factory=list)


def run(cls: str, args: List[str], timeout: float, cap: int, env: Dict[str, str],
        check: Optional[Callable[[Result], Optional[str]]] = None,
        sigterm_after: Optional[float] = None) -> Result:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        os.setsid()

    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, "-m", "kdumptool", *args], stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL, env=env, preexec_fn=limit)
        hung = False
        status = None
        rusage = None
        deadline = t0 + timeout
        sent = False
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if sigterm_after is not None and not sent and now - t0 >= sigterm_after:
                os.kill(p.pid, signal.SIGTERM)
                sent = True
            if now > deadline:
                hung = True
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
        out.seek(0)
        err.seek(0)
        r = Result(cls, args, None if hung else p.returncode, out.read().decode("utf-8", "replace"),
                   err.read().decode("utf-8", "replace"), rusage.ru_maxrss if rusage else 0,
                   time.monotonic() - t0, hung)
    if check is not None and not hung:
        r.check = check(r)
    return r


def traceback(r: Result) -> bool:
    return "Traceback" in r.err or "internal error" in r.err


def clean_error(r: Result) -> bool:
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error: ")]
    return r.code == 1 and len(lines) == 1 and not traceback(r)


def labelled(r: Result) -> bool:
    text = r.out + r.err
    return r.code in (0, 3, 4) and any(w in text for w in ("warning", "WARNING", "unknown", "not read",
                                                              "incomplete", "truncated", "refused"))


def no_leak(r: Result) -> Optional[str]:
    return "host file content in the output" if MARKER in r.out + r.err else None


def no_raw_escape(r: Result) -> Optional[str]:
    raw = [c for c in ("\x1b", "\x07", "\x9b") if c in r.out + r.err]
    return f"raw control bytes {raw!r} in the output" if raw else None


# --- input generators --------------------------------------------------------------------


def copy_snap(base: Path, name: str) -> Path:
    dest = base / name
    shutil.copytree(SNAP, dest, symlinks=True)
    return dest


def replace(p: Path) -> None:
    if p.is_symlink() or p.exists():
        p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)


def escape_link(at: Path, target: Path) -> str:
    return "../" * (len(at.parent.parts) + 3) + str(target).lstrip("/")


def config_of(snap: Path, bdf: str = "0000:03:01.0") -> Path:
    return (snap / "sys/bus/pci/devices" / bdf / "config").resolve()


TARGETS = ("proc/cmdline", "proc/iomem", "sys/firmware/acpi/tables/DMAR", "_kdumptool/vtd_registers.json",
           "_kdumptool/dmesg.txt", "CONFIG")


def target_path(snap: Path, rel: str) -> Path:
    return config_of(snap) if rel == "CONFIG" else snap / rel


def gzip_member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = size if kind == tarfile.REGTYPE else 0
    ti.type = kind
    ti.linkname = linkname
    return ti.tobuf(format=tarfile.GNU_FORMAT)


def tar_bomb(path: Path, total: int) -> None:
    """A .tar.gz of one ``total``-byte member of zeros, as concatenated gzip members (one
    1 MiB block compressed once, repeated): small on disk, fast to make."""
    block = gzip_member(bytes(1 << 20))
    n = total >> 20
    with open(path, "wb") as fh:
        fh.write(gzip_member(tar_header("snapshot/proc/cmdline", 2) + b"x\n".ljust(512, b"\0")))
        fh.write(gzip_member(tar_header("snapshot/big", n << 20)))
        for _ in range(n):
            fh.write(block)
        fh.write(gzip_member(bytes(1024)))


def tar_members(path: Path, count: int) -> None:
    one = gzip_member(tar_header("snapshot/proc/cmdline", 0))
    with open(path, "wb") as fh:
        fh.write(one * count)
        fh.write(gzip_member(bytes(1024)))


def tar_of(path: Path, members: List[Tuple[str, object]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members:
            ti = tarfile.TarInfo(name)
            if isinstance(body, tuple):
                ti.type, ti.linkname = body
                tar.addfile(ti)
            else:
                data = body if isinstance(body, bytes) else b""
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))


# --- the run -----------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--cap-mb", type=int, default=2048)
    ap.add_argument("--quick", action="store_true", help="skip the 1.1 GB archive and the 2 GiB stream")
    opts = ap.parse_args()
    cap = opts.cap_mb << 20
    results: List[Result] = []
    base = Path(tempfile.mkdtemp(prefix="kdumptool-attack-"))
    # the children's own TMPDIR: "temporary tree left" is then exact, whatever else runs
    child_tmp = base / "tmp"
    child_tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200", TERM="dumb", TMPDIR=str(child_tmp))
    secret = base / "host-secret"
    secret.write_text(MARKER + "\n")

    def go(cls: str, args: List[str], check: Optional[Callable[[Result], Optional[str]]] = None,
           **kw: object) -> Result:
        r = run(cls, args, opts.timeout, cap, env, check, **kw)  # type: ignore[arg-type]
        results.append(r)
        return r

    cmds = [["triage", "-f", "json"], ["pci", "-f", "json"], ["iommu", "-f", "json"], ["log", "-f", "text"],
            ["dmar", "-f", "text"], ["quiesce", "--plan"], ["triage", "-f", "text"]]
    try:
        # 1. confinement: links out of the tree (relative, absolute, 41 hops)
        n = 0
        for style in ("relative", "absolute", "chain41"):
            snap = copy_snap(base, f"links-{style}")
            for rel in TARGETS:
                at = target_path(snap, rel)
                replace(at)
                if style == "relative":
                    at.symlink_to(escape_link(at, secret))
                elif style == "absolute":
                    at.symlink_to(str(secret))
                else:
                    chain = snap / f"chain-{n}"
                    chain.mkdir()
                    for i in range(40):
                        (chain / f"l{i}").symlink_to(f"/chain-{n}/l{i + 1}" if i < 39 else str(secret))
                    at.symlink_to(f"/chain-{n}/l0")
                    n += 1
            for c in cmds:
                go("links out of --root", [*c, "--root", str(snap)], no_leak)
            out = base / f"collect-{style}.tar.gz"
            go("links out of --root", ["collect", "--root", str(snap), "-o", str(out), "--no-lspci"],
               lambda r, o=out: no_leak(r) or (_tar_leak(o) if o.exists() else None))
        # quiesce --apply through a link to a "host" config, and on a tarball
        snap = copy_snap(base, "quiesce-link")
        victim = base / "victim-config"
        cfg = config_of(snap)
        victim.write_bytes(cfg.read_bytes())
        before = victim.read_bytes()
        replace(cfg)
        cfg.symlink_to(escape_link(cfg, victim))
        go("quiesce --apply outside the tree", ["quiesce", "--apply", "--root", str(snap)],
           lambda r: "the file outside the tree was written" if victim.read_bytes() != before else None)
        tgz = base / "quiesce.tar.gz"
        with tarfile.open(tgz, "w:gz") as tar:
            tar.add(str(SNAP), arcname="snapshot")
        go("quiesce --apply outside the tree", ["quiesce", "--apply", "--root", str(tgz)],
           lambda r: "tarball --apply not refused" if r.code != 1 or "changed" in r.out else None)

        # 2. FIFOs and device nodes in the tree
        for kind in ("fifo", "chardev"):
            if kind == "chardev" and os.geteuid() != 0:
                continue
            for rel in TARGETS:
                snap = copy_snap(base, f"{kind}-{rel.replace('/', '_')}")
                at = target_path(snap, rel)
                replace(at)
                if kind == "fifo":
                    os.mkfifo(at)
                else:
                    os.mknod(at, 0o20644, os.makedev(1, 5))  # /dev/zero
                for c in cmds[:5]:
                    go("FIFO / device node in --root", [*c, "--root", str(snap)])

        # 3. device nodes and huge files as direct inputs
        big = base / "sparse-3g.log"
        with open(big, "wb") as fh:
            fh.truncate(3 << 30)
        big17 = base / "sparse-17m.txt"
        with open(big17, "wb") as fh:
            fh.truncate(17 << 20)
        direct = [["log", "/dev/zero"], ["log", "/dev/null"], ["pci", "--from-lspci", "/dev/zero"],
                  ["dmar", "/dev/zero"], ["pci", "--from-lspci", str(big17)], ["dmar", str(big17)],
                  ["vmcore", "iommu", str(VMCORE), "--rtaddr", "0x25d5000", "--faults", "/dev/zero"],
                  ["vmcore", "iommu", str(VMCORE), "--rtaddr", "0x25d5000", "--faults", str(big17)]]
        if not opts.quick:
            direct.append(["log", str(big)])
        for a in direct:
            go("device nodes / huge input files", a)
        snap = copy_snap(base, "huge-files")
        for rel, size in (("proc/iomem", 17 << 20), ("_kdumptool/dmesg.txt", 300 << 20),
                          ("_kdumptool/vtd_registers.json", 17 << 20), ("proc/cmdline", 17 << 20)):
            p = snap / rel
            replace(p)
            with open(p, "wb") as fh:
                fh.truncate(size)
        for c in cmds[:5]:
            go("device nodes / huge input files", [*c, "--root", str(snap)])

        # 4. archives
        arch = []
        if not opts.quick:
            bomb = base / "bomb.tar.gz"
            tar_bomb(bomb, 1100 << 20)
            arch.append((bomb, None))
            arch.append((bomb, 1.0))  # SIGTERM during the extraction
        many = base / "members.tar.gz"
        tar_members(many, 300_000)
        arch.append((many, None))
        hl = base / "hardlink.tar.gz"
        tar_of(hl, [("snapshot/proc/cmdline", b"x"), ("snapshot/proc/iomem", (tarfile.LNKTYPE, "snapshot/nowhere"))])
        arch.append((hl, None))
        for name, members in (("abs", [("/etc/evil", b"x")]), ("dotdot", [("snapshot/../../evil", b"x")]),
                              ("linkout", [("snapshot/sys", (tarfile.SYMTYPE, "../../../..")),
                                           ("snapshot/sys/evil", b"x")]),
                              ("devnode", [("snapshot/proc/cmdline", (tarfile.CHRTYPE, ""))])):
            p = base / f"tar-{name}.tar.gz"
            tar_of(p, members)
            arch.append((p, None))
        for path, term in arch:
            before_tmp = set(child_tmp.glob("kdumptool-*"))

            def left(r: Result, b: set = before_tmp) -> Optional[str]:
                now = set(child_tmp.glob("kdumptool-*")) - b
                return f"temporary tree left: {sorted(now)}" if now else None

            go("snapshot archives", ["triage", "--root", str(path)], left, sigterm_after=term)

        # 5. writers
        link = base / "out-link.tar.gz"
        link.symlink_to(base / "created-by-link.tar.gz")
        go("output writers", ["collect", "--root", str(SNAP), "-o", str(link), "--no-lspci"],
           lambda r: "the link's target was created" if (base / "created-by-link.tar.gz").exists() else None)
        exist = base / "exists.tar.gz"
        exist.write_bytes(b"precious")
        go("output writers", ["collect", "--root", str(SNAP), "-o", str(exist), "--no-lspci"],
           lambda r: "overwritten without --force" if exist.read_bytes() != b"precious" else None)
        for planted in ("kdumptool-record.json", "kdumptool-record.txt", "kdumptool-snapshot.tar.gz"):
            rec = base / f"rec-{planted}"
            rec.mkdir()
            victim2 = base / f"victim-{planted}"
            victim2.write_text("precious\n")
            (rec / planted).symlink_to(victim2)
            go("output writers", ["record", "--root", str(SNAP), "--out", str(rec)],
               lambda r, v=victim2: "write through a planted link" if v.read_text() != "precious\n" else None)
        go("output writers", ["collect", "--root", str(SNAP), "-o", "/proc/kdumptool-attack.tar.gz"])

        # 6. terminal escapes
        evil_log = base / "evil.log"
        evil_log.write_text("[    0.000000] Linux version 6.8.0 (x) #1 SMP\n"
                            f"[    1.000000] DMAR: [DMA Read NO_PASID] Request device [03:01.0] fault addr 0x1000 "
                            f"[fault reason 0x06] {EVIL}\n[    5.000000] Kernel panic - not syncing: {EVIL}\n")
        for fmt in ("text", "rich"):
            go("terminal escapes", ["log", str(evil_log), "-f", fmt, "--no-system"], no_raw_escape)
        go("terminal escapes", ["log", str(base / f"missing{EVIL}.log")], no_raw_escape)
        snap = copy_snap(base, "evil-driver")
        dev = (snap / "sys/bus/pci/devices/0000:03:01.0").resolve()
        drv = snap / "sys/bus/pci/drivers" / f"e1000{EVIL}"
        drv.mkdir(parents=True)
        replace(dev / "driver")
        (dev / "driver").symlink_to(os.path.relpath(drv, dev))
        for c in (["pci", "-f", "text"], ["pci", "-f", "rich"], ["triage", "-f", "text"], ["quiesce", "--plan"]):
            go("terminal escapes", [*c, "--root", str(snap)], no_raw_escape)

        # 7. wrong answers
        empty = base / "empty"
        empty.mkdir()
        junk = base / "junk"
        (junk / "etc").mkdir(parents=True)
        (junk / "notes.txt").write_text("hello\n")
        for d in (empty, junk):
            go("wrong answers", ["triage", "--root", str(d)],
               lambda r: "NOTHING TO TRIAGE / exit 0 on an empty tree" if r.code == 0 else None)
        go("wrong answers", ["pci", "--from-lspci", str(SNAP / "_kdumptool/lspci_xxxx.txt")],
           lambda r: "RISK for unknown drivers" if "RISK" in r.out else None)
        off = REPO / "fixtures/snapshots/kdump_legacy_off/_kdumptool/dmesg.txt"
        go("wrong answers", ["log", str(off), "--no-system", "--fail-on", "warning"],
           lambda r: "OK verdict with intel_iommu=off in kdump" if r.code != 3 else None)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(results, opts)
    return 0


def _tar_leak(path: Path) -> Optional[str]:
    with tarfile.open(path) as tar:
        for m in tar:
            if m.isfile():
                f = tar.extractfile(m)
                if f is not None and MARKER.encode() in f.read():
                    return f"host file copied into {m.name}"
    return None


def report(results: List[Result], opts: argparse.Namespace) -> None:
    order: List[str] = []
    for r in results:
        if r.cls not in order:
            order.append(r.cls)
    print(f"{len(results)} runs, timeout {opts.timeout:g} s, address-space cap {opts.cap_mb} MiB\n")
    print("| attack class | runs | clean errors | partial results labelled | other exit 0 | hangs | tracebacks "
          "| failed checks | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cls in order:
        rs = [r for r in results if r.cls == cls]
        ce = sum(clean_error(r) for r in rs)
        lab = sum(labelled(r) and not clean_error(r) for r in rs)
        hung = sum(r.hung for r in rs)
        tb = sum(traceback(r) for r in rs)
        other = len(rs) - ce - lab - hung - tb
        bad = sum(r.check is not None for r in rs)
        rss = max(r.rss_kb for r in rs) / 1024
        print(f"| {cls} | {len(rs)} | {ce} | {lab} | {other} | {hung} | {tb} | {bad} | {rss:.0f} MiB |")
    print()
    for r in results:
        if r.hung or traceback(r) or r.check:
            why = "hang" if r.hung else (r.check or "traceback")
            print(f"FAIL {r.cls}: {' '.join(r.args)}: {why}: {r.err.strip()[-300:]!r}")
    slow = max(results, key=lambda r: r.seconds)
    print(f"slowest run: {slow.seconds:.1f} s ({' '.join(slow.args)})")
    big = max(results, key=lambda r: r.rss_kb)
    print(f"largest peak RSS: {big.rss_kb / 1024:.0f} MiB ({' '.join(big.args)})")


if __name__ == "__main__":
    sys.exit(main())
