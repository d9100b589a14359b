#!/usr/bin/env python3
"""Attack run, dumps and decoders (issue 14): hostile vmcores, VT-d tables and kernel logs,
each run through the real CLI in a child process under a wall-clock timeout and an
address-space cap, with its exit code, stderr and peak RSS recorded.

    PYTHONPATH=. python3 bench/attack_dumps.py [--timeout 60] [--as-mb 2048] [--md FILE]

Every input is generated here (tests/hostile/dumpgen.py, tests/hostile/vtdgen.py,
tests/dumpwriter.py): nothing is downloaded. Outcomes per run:

- ``clean``: exit 0, nothing said about damage (the input was valid after all);
- ``labelled``: a partial result whose damage is said (exit 3, or exit 0 with a warning,
  ``truncated`` or ``incomplete`` in the output);
- ``error``: exit 1 with one ``error:`` line naming the input;
- ``hang``: killed at the timeout; ``traceback``: a Python traceback or ``internal error``;
  ``crash``: killed by a signal (a native abort, the address-space cap);
- ``other``: anything else (counted as a failure).

Prints one markdown table (attack class, inputs, runs, outcome counts, max wall, peak RSS)
and the runs that were not clean/labelled/error.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dumpwriter import DumpSpec, write_elf, write_kdump  # noqa: E402
from tests.hostile import dumpgen, vtdgen  # noqa: E402

Run = Tuple[str, str, List[str]]   # (attack class, input label, kdumptool arguments)


def _kdump_from_mem(mem, path: Path, compression: str = "zlib") -> None:  # type: ignore[no-untyped-def]
    pages = {p >> 12: bytes(b) for p, b in mem.pages.items()}
    path.write_bytes(write_kdump(DumpSpec(pages=pages, vmcoreinfo=b"OSRELEASE=6.1.0-hostile\n"), compression))


def _patch_page(path: Path, pfn: int, data: bytes, flags: int) -> None:
    """Point pfn's page descriptor at ``data`` (appended to the file) with ``flags``."""
    from kdumptool.sources.vmcore import open_dump

    with open_dump(str(path)) as dump:
        at = dump.desc_offset + (dump._rank(pfn) - dump._rank_base) * 24   # type: ignore[attr-defined]
    with open(path, "r+b") as f:
        end = f.seek(0, 2)
        f.write(data)
        f.seek(at)
        f.write(struct.pack("<qIIQ", end, len(data), flags, 0))


def build(d: Path) -> List[Run]:
    runs: List[Run] = []
    good = dumpgen.ring_pages(dumpgen.texts(12))
    vi = dumpgen.VMCOREINFO

    # 1. VMCOREINFO PAGESIZE
    for v in ("-409", "0", "4095", "12288", str(1 << 40), "x"):
        p = d / f"pagesize_{v}.elf"
        p.write_bytes(dumpgen.write_dump(good, vi.replace("PAGESIZE=4096", f"PAGESIZE={v}"), "elf"))
        for cmd in (["vmcore", "log"], ["vmcore", "info"], ["vmcore", "scan"],
                    ["vmcore", "iommu", "--rtaddr", "0x2000"], ["vmcore", "exposure", "--rtaddr", "0x2000"]):
            runs.append(("VMCOREINFO PAGESIZE", f"PAGESIZE={v}", cmd[:2] + [str(p)] + cmd[2:]))

    # 2. VMCOREINFO struct sizes and offsets
    for label, old, new in (
            ("SIZE(prb_desc)=4000000", "SIZE(prb_desc)=24", "SIZE(prb_desc)=4000000"),
            ("SIZE(prb_desc)=2^40", "SIZE(prb_desc)=24", f"SIZE(prb_desc)={1 << 40}"),
            ("SIZE(prb_desc)=-24", "SIZE(prb_desc)=24", "SIZE(prb_desc)=-24"),
            ("SIZE(printk_info)=8", "SIZE(printk_info)=88", "SIZE(printk_info)=8"),
            ("SIZE(printk_info)=0", "SIZE(printk_info)=88", "SIZE(printk_info)=0"),
            ("OFFSET(printk_info.caller_id)=86", "OFFSET(printk_info.caller_id)=20",
             "OFFSET(printk_info.caller_id)=86"),
            ("OFFSET(prb_desc.text_blk_lpos)=9999", "OFFSET(prb_desc.text_blk_lpos)=8",
             "OFFSET(prb_desc.text_blk_lpos)=9999")):
        for kind in ("kdump", "elf"):
            p = d / f"vi_{len(runs)}.{kind}"
            p.write_bytes(dumpgen.write_dump(good, vi.replace(old, new), kind))
            runs.append(("VMCOREINFO SIZE/OFFSET vs struct", label, ["vmcore", "log", str(p)]))

    # 3. printk ring records
    n = 16
    big = dumpgen.ring_pages([b"x" * 100] * n, text_len=[0xFFFF] * n, lpos=[(0, 4088)] * n)
    big[dumpgen.DATA_P >> 12] = struct.pack("<Q", dumpgen.FIRST_ID) + b"A" * 4088
    cases = {
        "16 records sharing one block, text_len 65535": big,
        "block ids not the descriptors'": dumpgen.ring_pages(dumpgen.texts(12), block_ids=[999] * 12),
        "every descriptor holds a foreign id": dumpgen.ring_pages(dumpgen.texts(12), state_ids=[7] * 12),
        "lpos past the data ring": dumpgen.ring_pages(dumpgen.texts(4), lpos=[(1 << 40, (1 << 40) + 64)] * 4),
        "text_len 65535 in one block": dumpgen.ring_pages(dumpgen.texts(4), text_len=[0xFFFF] * 4),
    }
    for label, pages in cases.items():
        p = d / f"ring_{len(runs)}.kdump"
        p.write_bytes(dumpgen.write_dump(pages))
        for fmt in ("text", "json"):
            runs.append(("printk ring records", label, ["vmcore", "log", str(p), "-f", fmt]))

    # 4. declared decompressed sizes (the ring's data page replaced by a hostile one)
    import zlib

    import zstandard

    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    pages_bad = {
        "snappy preamble 4 GiB": (bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) + bytes(64), 0x4),
        "zstd frame declaring 300 MB": (zstandard.ZstdCompressor().compress(bytes(300 << 20)), 0x20),
        "zstd frame of 64 MB, no size": (cobj.compress(bytes(64 << 20)) + cobj.flush(), 0x20),
        "zlib bomb 64 MB": (zlib.compress(bytes(64 << 20), 9), 0x1),
        "lzo garbage": (b"\x11\x00\x00" + bytes(100), 0x2),
    }
    for label, (blob, flags) in pages_bad.items():
        p = d / f"page_{len(runs)}.kdump"
        p.write_bytes(dumpgen.write_dump(good))
        _patch_page(p, dumpgen.DATA_P >> 12, blob, flags)
        for cmd in (["vmcore", "log"], ["vmcore", "scan"]):
            runs.append(("compressed page declared size", label, cmd + [str(p)]))

    # 5. ELF notes and program headers, sparse files
    blob = bytearray(write_elf(DumpSpec(pages=good, vmcoreinfo=vi.encode())))
    for label, size in (("PT_NOTE 1.5 GB (sparse)", 1536 << 20), ("PT_NOTE 40 MB", 40 << 20)):
        p = d / f"note_{len(runs)}.elf"
        b = bytearray(blob)
        struct.pack_into("<QQ", b, 64 + 32, size, size)
        with open(p, "wb") as f:
            f.write(b)
            f.truncate(len(b) + size)
        for cmd in (["vmcore", "info"], ["vmcore", "log"]):
            runs.append(("ELF PT_NOTE / phnum", label, cmd + [str(p)]))
    p = d / "xnum.elf"
    b = bytearray(blob)
    struct.pack_into("<H", b, 0x38, 0xFFFF)
    struct.pack_into("<Q", b, 0x28, 0x80)
    struct.pack_into("<I", b, 0x80 + 0x2C, 0x7FFFFFFF)
    with open(p, "wb") as f:
        f.write(b)
        f.truncate(1 << 37)
    runs.append(("ELF PT_NOTE / phnum", "PN_XNUM 2^31-1 headers (128 GB sparse)", ["vmcore", "info", str(p)]))

    # 6. truncated kdump files
    whole = dumpgen.write_dump(good)
    from kdumptool.sources.vmcore import open_dump

    (d / "whole.kdump").write_bytes(whole)
    with open_dump(str(d / "whole.kdump")) as dump:
        desc = dump.desc_offset
    for label, end in (("cut 1 byte short", len(whole) - 1), ("cut in the page data", len(whole) - 300),
                       ("cut in the descriptors", desc + 30), ("cut in the bitmaps", desc - 100),
                       ("cut in the header", 200)):
        p = d / f"cut_{end}.kdump"
        p.write_bytes(whole[:end])
        for cmd in (["vmcore", "info"], ["vmcore", "scan"], ["vmcore", "log"]):
            runs.append(("truncated kdump file", label, cmd + [str(p)]))

    # 7-11. VT-d tables
    mem, root = vtdgen.shared_leaves(16, 512)
    p = d / "shared.kdump"
    _kdump_from_mem(mem, p)
    for cmd in (["vmcore", "iommu", str(p), "--rtaddr", hex(root), "-f", "json"],
                ["vmcore", "iommu", str(p), "--rtaddr", hex(root)],
                ["vmcore", "exposure", str(p), "--rtaddr", hex(root)]):
        runs.append(("VT-d shared / fanned-out tables", "16 domains sharing 512 leaf tables", cmd))
    for levels in (3, 4):
        mem, root = vtdgen.fanned_out(levels)
        p = d / f"fan{levels}.kdump"
        _kdump_from_mem(mem, p)
        for cmd in (["vmcore", "iommu", str(p), "--rtaddr", hex(root), "-f", "json"],
                    ["vmcore", "exposure", str(p), "--rtaddr", hex(root)]):
            runs.append(("VT-d shared / fanned-out tables", f"one fully fanned-out {levels}-level domain", cmd))
    mem, root = vtdgen.wide_pasid_directory(16384)
    p = d / "pasid.kdump"
    _kdump_from_mem(mem, p)
    for cmd in (["vmcore", "iommu", str(p), "--rtaddr", hex(root), "--mode", "scalable", "-f", "json"],
                ["vmcore", "exposure", str(p), "--rtaddr", hex(root), "--mode", "scalable"]):
        runs.append(("VT-d PASID directory", "16,384 distinct PASID tables", cmd))
    mem, root, top = vtdgen.self_referencing()
    p = d / "selfref.kdump"
    _kdump_from_mem(mem, p)
    for cmd in (["vmcore", "exposure", str(p), "--rtaddr", hex(root), "-f", "json"],
                ["vmcore", "iommu", str(p), "--rtaddr", hex(root), "--device", "00:01.0", "--iova", "0x0"]):
        runs.append(("VT-d self-referencing table", "top entry 0 -> the top table", cmd))
    mem, root = vtdgen.root_like_pages(256, 64)
    p = d / "rootlike.kdump"
    _kdump_from_mem(mem, p)
    runs.append(("VT-d scan candidates", "256 root-like copies x 64 context tables", ["vmcore", "scan", str(p)]))
    for comp in ("zlib", "zstd", "snappy", "lzo"):
        mem, root = vtdgen.root_like_pages(1, 4)
        p = d / f"rt_{comp}.kdump"
        _kdump_from_mem(mem, p, comp)
        runs.append(("VT-d scan candidates", f"root table in a {comp} dump, no hint",
                     ["vmcore", "iommu", str(p), "-f", "json"]))

    # 12. kernel log: distinct faults
    p = d / "faults.txt"
    with open(p, "w") as f:
        for i in range(262_144):
            reason, rest = divmod(i, 65536)
            bus, df = divmod(rest, 256)
            f.write(f"[{i // 1000:5d}.{i % 1000:03d}000] DMAR: [DMA Read NO_PASID] Request device "
                    f"[{bus:02x}:{df >> 3:02x}.{df & 7}] fault addr 0x{i:x}000 [fault reason "
                    f"0x{1 + reason:02x}] PTE Read access is not set\n")
    for fmt in ("text", "json"):
        runs.append(("kernel log fault groups", "262,144 distinct (device, reason) faults", ["log", str(p), "-f", fmt]))
    mem, root, top = vtdgen.self_referencing()
    dump = d / "faults.kdump"
    _kdump_from_mem(mem, dump)
    runs.append(("kernel log fault groups", "the same faults looked up in a dump's tables",
                 ["vmcore", "iommu", str(dump), "--rtaddr", hex(root), "--faults", str(p), "-f", "json"]))
    return runs


def run_one(args: List[str], timeout: float, as_bytes: int, tmp: Path) -> Dict[str, object]:
    out, err = tmp / "out", tmp / "err"

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))

    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="120")
    t0 = time.monotonic()
    with open(out, "wb") as fo, open(err, "wb") as fe:
        import subprocess

        p = subprocess.Popen([sys.executable, "-m", "kdumptool"] + args, stdout=fo, stderr=fe,
                             stdin=subprocess.DEVNULL, preexec_fn=limits, env=env)
        hung = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                p.send_signal(signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                hung = True
                break
            time.sleep(0.02)
        p.returncode = 0   # reaped by wait4 above
    wall = time.monotonic() - t0
    so = out.read_bytes().decode("utf-8", "replace")
    se = err.read_bytes().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    text = (so + se).lower()
    if hung:
        outcome = "hang"
    elif "traceback" in text or "internal error" in text:
        outcome = "traceback"
    elif code < 0:
        outcome = "crash"
    elif code == 3 or (code == 0 and any(w in text for w in ("warning", "truncated", "incomplete"))):
        outcome = "labelled"
    elif code == 0:
        outcome = "clean"
    elif code == 1 and se.count("error:") == 1 and "error:" in se.splitlines()[-1]:
        outcome = "error"
    else:
        outcome = "other"
    return {"outcome": outcome, "code": code, "wall": wall, "rss_mb": ru.ru_maxrss / 1024,
            "stderr": se.strip().splitlines()[-1:] if se.strip() else []}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--as-mb", type=int, default=2048)
    ap.add_argument("--md", help="also write the table to this file")
    ap.add_argument("-k", help="only attack classes containing this text")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kdt-attack-") as tmpd:
        tmp = Path(tmpd)
        runs = build(tmp)
        if a.k:
            runs = [r for r in runs if a.k.lower() in r[0].lower()]
        rows: Dict[str, Dict[str, object]] = {}
        bad: List[str] = []
        t_all = time.monotonic()
        for cls, label, args in runs:
            r = run_one(args, a.timeout, a.as_mb << 20, tmp)
            row = rows.setdefault(cls, {"inputs": [], "runs": 0, "wall": 0.0, "rss": 0.0,
                                        **{k: 0 for k in ("clean", "labelled", "error", "hang", "traceback",
                                                          "crash", "other")}})
            if label not in row["inputs"]:  # type: ignore[operator]
                row["inputs"].append(label)  # type: ignore[union-attr]
            row["runs"] += 1  # type: ignore[operator]
            row[r["outcome"]] += 1  # type: ignore[index,operator]
            row["wall"] = max(row["wall"], r["wall"])  # type: ignore[call-overload]
            row["rss"] = max(row["rss"], r["rss_mb"])  # type: ignore[call-overload]
            if r["outcome"] in ("hang", "traceback", "crash", "other"):
                bad.append(f"{r['outcome']}: {' '.join(args[:2])} [{cls}: {label}] exit {r['code']} {r['stderr']}")
            print(f"{r['outcome']:<10} exit {r['code']:<3} {r['wall']:6.2f} s {r['rss_mb']:7.1f} MB  "
                  f"{cls}: {label}: {' '.join(x if '/' not in x else Path(x).name for x in args)}",
                  file=sys.stderr)
        total = time.monotonic() - t_all
    lines = [f"Measured by `bench/attack_dumps.py` (timeout {a.timeout:.0f} s, address space "
             f"{a.as_mb} MB per run): {len(runs)} runs in {total:.0f} s.", "",
             "| attack class | inputs tried | runs | clean errors | partial results labelled | complete (exit 0) "
             "| hangs | tracebacks | crashes | max wall | peak RSS |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cls, row in rows.items():
        lines.append(f"| {cls} | {'; '.join(row['inputs'])} | {row['runs']} | {row['error']} | {row['labelled']} "  # type: ignore[arg-type]
                     f"| {row['clean']} | {row['hang']} | {row['traceback']} | {row['crash'] + row['other']} "  # type: ignore[operator]
                     f"| {row['wall']:.1f} s | {row['rss']:.0f} MB |")
    table = "\n".join(lines) + "\n"
    print(table)
    for b in bad:
        print(b)
    if a.md:
        Path(a.md).write_text(table)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
