"""Run one scenario: boot the live kernel under QEMU (TCG), let it panic into kdump, collect.

Network: QEMU user networking with ``restrict=on`` (the guest reaches nothing); one
``hostfwd`` UDP port bound to 127.0.0.1 so the host can send the e1000e traffic to DMA
at the moment of the crash. Nothing else leaves the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from .ingredients import CACHE, LAB, REPO, TREE, log
from .initrd import build_initrd
from .scenarios import LIVE_DRIVERS, Scenario

OUT = LAB / "out"

#: Serial-console lines whose first host time is kept in result.json["marks"].
MARKS = [
    ("live_banner", "Linux version"), ("live_init", "init mode=live"),
    ("panic", "sysrq: Trigger a crash"), ("kdump_banner", "Linux version"),
    ("kdump_init", "init mode=kdump"), ("kdump_done", "kdump done"),
]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _disk(name: str, size_mb: int = 64) -> Path:
    p = CACHE / "img" / name
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            f.truncate(size_mb << 20)
    return p


def qemu_command(qemu: str, sc: Scenario, kernel: Path, initrd: Path, cfg: Path,
                 out: Path, port: int) -> List[str]:
    iommu = "intel-iommu,intremap=on" + (",x-scalable-mode=on" if sc.scalable else "")
    #: amd-iommu (QEMU 7.2: options intremap, pt, device-iotlb; no dma-remap/xtsup yet)
    #: adds its own PCI function at the first free slot, 00:01.0, where the intel runs
    #: have the output share: that share moves to 00:08.0 on AMD runs.
    #: Its translation of virtio-blk with iommu_platform=on never completes the disk's
    #: first read (the guest waits in the partition scan after "virtio_blk virtio3: [vda]
    #: 131072 512-byte logical blocks", QEMU idle, nothing on stderr): on AMD runs the
    #: virtio disk goes without it (e1000e and nvme DMA through the IOMMU as before).
    out_addr, vblk_iommu = "0x1", "on"
    if sc.vendor == "amd":
        iommu, out_addr, vblk_iommu = "amd-iommu,intremap=on", "0x8", "off"
    return [
        qemu, "-accel", "tcg", "-machine", "q35,kernel-irqchip=split", "-smp", "2",
        "-m", str(sc.memory_mb), "-nodefaults", "-vga", "none", "-display", "none",
        "-no-reboot", "-serial", "stdio", "-monitor", "none",
        "-device", iommu,
        "-netdev", f"user,id=n0,restrict=on,hostfwd=udp:127.0.0.1:{port}-10.0.2.15:5555",
        "-device", "e1000e,netdev=n0,addr=0x2,mac=52:54:00:12:34:56",
        "-drive", f"file={_disk('nvme.img')},if=none,format=raw,id=nvm0",
        "-device", "nvme,drive=nvm0,serial=lab0001,addr=0x3",
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1,addr=0x4",
        "-drive", f"file={_disk('vblk.img')},if=none,format=raw,id=vd0",
        "-device", f"virtio-blk-pci,drive=vd0,bus=rp1,iommu_platform={vblk_iommu},disable-legacy=on",
        "-device", "pcie-root-port,id=rp2,chassis=2,slot=2,addr=0x5",
        "-device", "pcie-pci-bridge,id=pb1,bus=rp2",
        "-netdev", "user,id=n1,restrict=on",
        "-device", "e1000,netdev=n1,bus=pb1,addr=0x1,mac=52:54:00:12:34:57",
        "-fsdev", f"local,id=fs_sys,path={TREE},security_model=none,readonly=on",
        "-device", "virtio-9p-pci,fsdev=fs_sys,mount_tag=sys,addr=0x6",
        "-fsdev", f"local,id=fs_cfg,path={cfg},security_model=none,readonly=on",
        "-device", "virtio-9p-pci,fsdev=fs_cfg,mount_tag=cfg,addr=0x7",
        "-fsdev", f"local,id=fs_out,path={out},security_model=none",
        "-device", f"virtio-9p-pci,fsdev=fs_out,mount_tag=out,addr={out_addr}",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", sc.live_append(),
    ]


class Traffic(threading.Thread):
    """UDP packets to the guest's e1000e through the loopback hostfwd, so the NIC is
    DMA-ing into its receive ring when the live kernel panics. Bounded in count and time.

    Paused from the panic until the kdump kernel has set up its IOMMU: nobody refills the
    crashed kernel's receive ring (256 descriptors), and at 20 packets/s a slow kdump boot
    (20 s on a loaded host) would find it full, with no DMA left to fault on. Resumed, the
    NIC's next receive is the DMA that sm_mismatch's kdump kernel must fault on."""

    def __init__(self, port: int, interval_s: float = 0.05, max_packets: int = 50000,
                 max_s: float = 900.0) -> None:
        super().__init__(daemon=True)
        self.port, self.interval_s, self.max_packets, self.max_s = port, interval_s, max_packets, max_s
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.sent = 0

    def run(self) -> None:
        t0 = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            payload = b"kdumptool-lab " * 40
            while (not self.stop.is_set() and self.sent < self.max_packets
                   and time.monotonic() - t0 < self.max_s):
                if not self.paused.is_set():
                    try:
                        s.sendto(payload, ("127.0.0.1", self.port))
                        self.sent += 1
                    except OSError:
                        pass
                self.stop.wait(self.interval_s)


def kdump_initrd(sc: Scenario, facts: Dict[str, str], default_initrd: Path, dest: Path) -> Dict[str, object]:
    """The kdump kernel's initrd: the lab's own, or what the scenario's builder writes."""
    if not sc.kdump_initrd_builder:
        shutil.copyfile(default_initrd, dest)
        return {"builder": None, "size": dest.stat().st_size}
    builder = REPO / sc.kdump_initrd_builder
    env = dict(os.environ)
    env.update({
        "LAB_SCENARIO": sc.name, "LAB_KVER": facts["kver"], "LAB_TREE": str(TREE),
        "LAB_MODULES_DIR": str(TREE / "lib" / "modules" / facts["kver"]),
        "LAB_REPO": str(REPO), "LAB_DEFAULT_INITRD": str(default_initrd),
        "LAB_GUEST_DIR": str(LAB / "guest"), "LAB_KDUMP_APPEND": sc.kdump_append(),
    })
    t0 = time.monotonic()
    r = subprocess.run([str(builder), str(dest)], cwd=REPO, env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0 or not dest.is_file():
        raise SystemExit(f"lab: {sc.name}: kdump initrd builder {sc.kdump_initrd_builder} failed "
                         f"(rc={r.returncode}): {r.stderr.strip()[-2000:]}")
    return {"builder": sc.kdump_initrd_builder, "size": dest.stat().st_size,
            "build_s": round(took, 2), "builder_stdout": r.stdout[-4000:]}


#: Lines that mean the guest itself is wedged (TCG on a loaded host can lose a vCPU's timer
#: interrupt: "rcu_preempt kthread timer wakeup didn't happen", then hung tasks): such a run
#: proves nothing about kdumptool, so it is killed at once and the scenario booted again.
STALL_NEEDLES = ("blocked for more than", "kthread timer wakeup didn't happen")
#: The live kernel reaches /init in about 6 s on an idle machine; past this the boot is stuck.
BOOT_LIMIT_S = 300
#: Boots per scenario when the guest wedges (never retried for anything else).
ATTEMPTS = 3


def run_scenario(sc: Scenario, facts: Dict[str, str], qemu: str,
                 timeout_s: Optional[int] = None, key: Optional[str] = None) -> Dict[str, object]:
    """Boot a scenario; boot it again (up to ATTEMPTS times) only when the guest wedged
    (STALL_NEEDLES, or no /init within BOOT_LIMIT_S), which says nothing about kdumptool.
    Every attempt's reason is kept in result.json ``attempts``."""
    attempts: List[str] = []
    for n in range(1, ATTEMPTS + 1):
        result = _run_once(sc, facts, qemu, timeout_s, key or sc.name)
        stall = result.get("stalled")
        if not stall:
            break
        attempts.append(f"attempt {n}: guest wedged: {stall}")
        log(f"{sc.name}: attempt {n} wedged ({stall}); " +
            ("booting again" if n < ATTEMPTS else "giving up"))
    result["attempts"] = attempts
    (OUT / (key or sc.name) / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _run_once(sc: Scenario, facts: Dict[str, str], qemu: str,
              timeout_s: Optional[int], key: str) -> Dict[str, object]:
    out = OUT / key
    if out.exists():
        shutil.rmtree(out)
    guest = out / "guest"
    guest.mkdir(parents=True)
    os.chmod(guest, 0o777)
    cfg = CACHE / "cfg" / key
    if cfg.exists():
        shutil.rmtree(cfg)
    cfg.mkdir(parents=True)

    t_build = time.monotonic()
    initrd = CACHE / f"initrd-{facts['kver']}.img"
    initrd_size = build_initrd(initrd, TREE, facts["kver"])
    kinfo = kdump_initrd(sc, facts, initrd, cfg / "kdump-initrd.img")
    env = {
        "RUN": sc.name, "KVER": facts["kver"], "KDUMP_APPEND": sc.kdump_append(),
        "KDUMP_INITRD": "/cfg/kdump-initrd.img", "LIVE_DRIVERS": " ".join(LIVE_DRIVERS),
        "KDUMP_DRIVERS": " ".join(sc.kdump_drivers), "DUMPS": " ".join(sc.dumps),
        "DRHD_BASE": "0xfed90000", "VENDOR": sc.vendor,
    }
    (cfg / "scenario.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    build_s = time.monotonic() - t_build

    port = _free_udp_port()
    cmd = qemu_command(qemu, sc, TREE / facts["vmlinuz"], initrd, cfg, guest, port)
    (out / "qemu-cmdline.txt").write_text(
        " ".join(shlex.quote(c) for c in cmd) + "\n"
        f"LIVE_APPEND={sc.live_append()}\nKDUMP_APPEND={sc.kdump_append()}\n")
    limit = timeout_s or sc.timeout_s
    log(f"{key}: booting {facts['kver']} ({sc.description})")
    t0 = time.monotonic()
    traffic = Traffic(port, max_s=limit)
    serial = open(out / "serial.log", "w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=open(out / "qemu-stderr.txt", "w"))
    marks: Dict[str, float] = {}
    stalled: Dict[str, str] = {}

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            now = time.monotonic() - t0
            serial.write(f"{now:8.2f} {line}\n")
            serial.flush()
            if "sysrq: Trigger a crash" in line:
                traffic.paused.set()
            elif "DMAR: Intel(R) Virtualization Technology" in line and "panic" in marks:
                traffic.paused.clear()
            elif "init mode=kdump" in line:  # intel_iommu=off: no such line
                traffic.paused.clear()
            if "Kernel panic - not syncing" in line and "sysrq triggered crash" not in line:
                marks.setdefault("unexpected_panic", round(now, 2))
            for needle in STALL_NEEDLES:
                if needle in line:
                    stalled.setdefault("why", f"{needle!r} at {now:.0f} s")
            for key, needle in MARKS:
                if needle in line and key not in marks:
                    if key == "kdump_banner" and "panic" not in marks:
                        continue
                    marks[key] = round(now, 2)

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    traffic.start()
    timed_out = False
    try:
        while True:
            try:
                rc = proc.wait(timeout=1)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - t0
            if "live_init" not in marks and elapsed > BOOT_LIMIT_S:
                stalled.setdefault("why", f"no /init after {BOOT_LIMIT_S} s")
            if stalled or elapsed > limit:
                timed_out = not stalled
                proc.kill()
                rc = proc.wait()
                break
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C, SIGTERM): never leave QEMU behind
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    traffic.stop.set()
    rt.join(timeout=10)
    serial.close()
    result: Dict[str, object] = {
        "scenario": sc.to_json(), "qemu_rc": rc, "timed_out": timed_out,
        "wall_s": round(wall, 2), "prepare_s": round(build_s, 2), "marks": marks,
        "udp_packets_sent": traffic.sent, "initrd_size": initrd_size, "kdump_initrd": kinfo,
        "kernel_package": facts["kernel_package"], "kver": facts["kver"], "key": key,
        "series": facts.get("series", ""),
        "unexpected_panic": "unexpected_panic" in marks,
        "live_ok": (guest / "live" / "panic_at.txt").exists(),
        "kdump_ok": (guest / "kdump" / "done.txt").exists(),
        "stalled": stalled.get("why"),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    log(f"{key}: qemu rc={rc} wall={wall:.1f}s live_ok={result['live_ok']} "
        f"kdump_ok={result['kdump_ok']}{' TIMED OUT' if timed_out else ''}")
    return result
