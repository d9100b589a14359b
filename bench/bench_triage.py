#!/usr/bin/env python3
"""Triage of a large synthetic server snapshot: 8 DRHD units, 600 PCI devices, a
200,000-line kernel log. Prints wall time and peak memory (target: < 1 s, < 80 MB).

The snapshot is built from real bytes of the QEMU lab (fixtures/snapshots/live_legacy_on:
config spaces of an e1000e endpoint and a PCIe root port, the lab's kernel log lines),
replicated: per DRHD one root bus with 9 root ports, each with a multi-function endpoint
of 8 functions below it (e1000e/nvme/unknown drivers, some unbound), DMAR faults sprinkled
through the log. It holds /etc/kdump.conf and a kdump initramfs (fixtures/initramfs).

    python3 bench/bench_triage.py [--keep DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "fixtures" / "snapshots" / "live_legacy_on"
UNITS = 8
PORTS = 9
FUNCS = 8
LOG_LINES = 200_000


def _checksum(b: bytearray) -> None:
    b[9] = 0
    b[9] = (-sum(b)) & 0xFF


def build_dmar(roots: list) -> bytes:
    """ACPI DMAR with one DRHD per root bus (a PCI_BRIDGE scope per root port), the last
    unit INCLUDE_PCI_ALL. VT-d spec 8.1 / 8.3 layout."""
    body = bytearray()
    for k, (seg_bus, base) in enumerate(roots):
        last = k == len(roots) - 1
        scopes = bytearray()
        if not last:
            for p in range(PORTS):
                # type 2 (PCI sub-hierarchy), length 8, enum id 0, start bus, path (dev, fn)
                scopes += struct.pack("<BBHBB", 2, 8, 0, 0, seg_bus) + bytes([p + 1, 0])
        drhd = struct.pack("<HHBBHQ", 0, 16 + len(scopes), 1 if last else 0, 0, 0, base) + scopes
        body += drhd
    hdr = bytearray(b"DMAR" + struct.pack("<I", 48 + len(body)) + bytes([1, 0]) + b"BENCH " + b"SYNTHSRV" + struct.pack("<I", 1) + b"KDTL" + struct.pack("<I", 1))
    hdr += bytes([38, 0]) + bytes(10)
    table = hdr + body
    _checksum(table)
    return bytes(table)


def build(dest: Path) -> dict:
    ep_cfg = bytearray((LAB / "sys/devices/pci0000:00/0000:00:02.0/config").read_bytes())
    rp_cfg = bytearray((LAB / "sys/devices/pci0000:00/0000:00:04.0/config").read_bytes())
    lab_log = (LAB / "_kdumptool/dmesg.txt").read_text().splitlines()
    regs = json.loads((LAB / "_kdumptool/vtd_registers.json").read_text())["units"][0]
    (dest / "_kdumptool").mkdir(parents=True)
    (dest / "proc").mkdir()
    (dest / "sys/bus/pci/devices").mkdir(parents=True)
    (dest / "sys/kernel").mkdir(parents=True)
    (dest / "sys/firmware/acpi/tables").mkdir(parents=True)
    (dest / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on crashkernel=512M\n")
    (dest / "sys/kernel/kexec_crash_loaded").write_text("1\n")
    (dest / "sys/kernel/kexec_crash_size").write_text(str(512 << 20) + "\n")
    (dest / "etc").mkdir()
    (dest / "etc/kdump.conf").write_text("path /var/crash\ncore_collector makedumpfile -l --message-level 1 -d 31\nextra_modules nvme\n")
    (dest / "etc/os-release").write_text('ID="rhel"\n')
    (dest / "boot").mkdir()
    shutil.copy(REPO / "fixtures/initramfs/initrd-early-xz.img", dest / "boot/initramfs-6.1.0-56-amd64kdump.img")
    (dest / "proc/sys/kernel").mkdir(parents=True)
    (dest / "proc/sys/kernel/osrelease").write_text("6.1.0-56-amd64\n")
    roots = []
    units = []
    ndev = 0
    drivers = ["e1000e", "nvme", None, "ixgbe"]
    fault_bdfs = []
    for k in range(UNITS):
        bus = k * 0x20
        base = 0xFED90000 + k * 0x1000 if k < 4 else 0xC5FFC000 + (k - 4) * 0x2000
        roots.append((bus, base))
        r = dict(regs)
        r["name"] = f"dmar{k}"
        r["address"] = base
        units.append(r)
        top = dest / f"sys/devices/pci0000:{bus:02x}"
        hb = top / f"0000:{bus:02x}:00.0"
        hb.mkdir(parents=True)
        (hb / "config").write_bytes(bytes(rp_cfg[:0x0A]) + b"\x00\x06" + bytes(256 - 12))
        (hb / "class").write_text("0x060000\n")
        (dest / f"sys/bus/pci/devices/0000:{bus:02x}:00.0").symlink_to(f"../../../devices/pci0000:{bus:02x}/0000:{bus:02x}:00.0")
        ndev += 1
        for p in range(PORTS):
            if ndev >= 600:
                break
            sec = bus + 1 + p
            cfg = bytearray(rp_cfg)
            cfg[0x18], cfg[0x19], cfg[0x1A] = bus, sec, sec
            pdir = top / f"0000:{bus:02x}:{p + 1:02x}.0"
            pdir.mkdir()
            (pdir / "config").write_bytes(bytes(cfg))
            (pdir / "class").write_text("0x060400\n")
            (pdir / "driver").symlink_to("../../../bus/pci/drivers/pcieport")
            rel = f"pci0000:{bus:02x}/0000:{bus:02x}:{p + 1:02x}.0"
            (dest / f"sys/bus/pci/devices/0000:{bus:02x}:{p + 1:02x}.0").symlink_to(f"../../../devices/{rel}")
            ndev += 1
            for f in range(FUNCS):
                if ndev >= 600:
                    break
                cfg = bytearray(ep_cfg)
                cfg[0x0E] = 0x80  # multi-function
                bdf = f"0000:{sec:02x}:00.{f}"
                edir = pdir / bdf
                edir.mkdir()
                (edir / "config").write_bytes(bytes(cfg))
                (edir / "class").write_text("0x020000\n")
                drv = drivers[(k + p + f) % len(drivers)]
                if drv:
                    (edir / "driver").symlink_to(f"../../../../bus/pci/drivers/{drv}")
                (dest / f"sys/bus/pci/devices/{bdf}").symlink_to(f"../../../devices/{rel}/{bdf}")
                if f == 3:
                    fault_bdfs.append(bdf[5:])
                ndev += 1
    (dest / "sys/firmware/acpi/tables/DMAR").write_bytes(build_dmar(roots))
    (dest / "_kdumptool/vtd_registers.json").write_text(json.dumps({"units": units}))
    with open(dest / "_kdumptool/dmesg.txt", "w") as fh:
        n = 0
        i = 0
        while n < LOG_LINES:
            line = lab_log[i % len(lab_log)]
            if i % 150 == 75:
                b = fault_bdfs[(i // 150) % len(fault_bdfs)]
                line = f"[{n / 1000:12.6f}] DMAR: [DMA Read NO_PASID] Request device [{b}] fault addr 0xffffc000 [fault reason 0x06] PTE Read access is not set"
            fh.write(line + "\n")
            n += 1
            i += 1
    return {"devices": ndev, "units": UNITS, "log_lines": LOG_LINES}


def measure(root: Path) -> None:
    """Run in a fresh interpreter: wall time of gather + triage + both renderings."""
    import tracemalloc

    sys.path.insert(0, str(REPO))
    trace = os.environ.get("KDT_TRACEMALLOC") == "1"
    t0 = time.perf_counter()
    if trace:
        tracemalloc.start()
    from kdumptool.analysis.triage import triage
    from kdumptool.render.triage import render_triage_json, render_triage_text
    from kdumptool.sources.root import Root
    from kdumptool.sources.triage import read_triage_input

    t1 = time.perf_counter()
    inp = read_triage_input(Root(root), use_tools=False)
    t2 = time.perf_counter()
    report = triage(inp)
    text = render_triage_text(report)
    js = json.dumps(render_triage_json(report))
    t3 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = ru.ru_maxrss * 1024
    cpu = ru.ru_utime + ru.ru_stime
    print(json.dumps({
        "import_s": round(t1 - t0, 3), "gather_s": round(t2 - t1, 3), "analyse_render_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3), "cpu_s": round(cpu, 3), "python_peak_mb": round(peak / 2**20, 1), "max_rss_mb": round(rss / 2**20, 1),
        "devices": len(inp.system.devices), "units": len(inp.system.units), "findings": len(report.findings),
        "verdict": report.verdict, "text_lines": text.count("\n"), "json_bytes": len(js),
    }))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, help="build the snapshot here and keep it")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        measure(a.measure)
        return
    tmp = None
    if a.keep:
        root = a.keep
        if root.exists():
            shutil.rmtree(root)
    else:
        tmp = tempfile.mkdtemp(prefix="kdt-bench-")
        root = Path(tmp) / "server"
    try:
        t = time.perf_counter()
        info = build(root)
        print(f"built {root}: {info['units']} DRHD, {info['devices']} PCI devices, {info['log_lines']} log lines "
              f"in {time.perf_counter() - t:.1f} s")
        results = []
        for _ in range(a.runs):
            out = subprocess.run([sys.executable, __file__, "--measure", str(root)], capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout))
        best = min(results, key=lambda r: r["total_s"])
        # tracemalloc slows Python down several times: a separate run for the heap peak.
        env = dict(os.environ, KDT_TRACEMALLOC="1")
        out = subprocess.run([sys.executable, __file__, "--measure", str(root)], capture_output=True, text=True, check=True, env=env)
        best["python_peak_mb"] = json.loads(out.stdout)["python_peak_mb"]
        for r in results:
            print(json.dumps(r))
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"triage wall time (best of {a.runs}): {best['total_s']:.3f} s, CPU {best['cpu_s']:.3f} s "
              f"(imports {best['import_s']:.3f}, gather {best['gather_s']:.3f}, analyse+render {best['analyse_render_s']:.3f}); "
              f"peak Python heap {best['python_peak_mb']} MB, max RSS {best['max_rss_mb']} MB; "
              f"{best['devices']} devices, {best['units']} units, {best['findings']} findings, verdict {best['verdict']}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
