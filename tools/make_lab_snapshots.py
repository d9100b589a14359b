#!/usr/bin/env python3
"""Build snapshot trees (the layout ``kdumptool collect`` writes, see docs/system.md) from
the QEMU lab captures in ../shared/lab-captures, one per run, into fixtures/snapshots/.

    python3 tools/make_lab_snapshots.py [--shared DIR] [--out DIR]

Every live/<run> and kdump/<run> becomes fixtures/snapshots/<live|kdump>_<run>/:
- pci/<bdf>.config + pci/index.txt -> sys/devices/pci0000:00/.../<bdf>/{config,vendor,
  device,class} with ``driver`` and ``iommu_group`` links, and sys/bus/pci/devices/<bdf>
  links to them (the sysfs shape: parents from lspci_tree.txt's bridges via config space);
- iommu_groups.txt -> sys/kernel/iommu_groups/N/{type,reserved_regions,devices/<bdf>};
- drhd_regs.txt -> _kdumptool/vtd_registers.json (and ``sysfs`` lines of it ->
  sys/class/iommu/dmarN/intel-iommu/*); drhd_regs_early.txt -> vtd_registers_early.json;
- DMAR.bin and acpi/* -> sys/firmware/acpi/tables/; cmdline.txt -> proc/cmdline;
  iomem.txt -> proc/iomem; kexec_sysfs.txt -> sys/kernel/kexec_*; an empty proc/vmcore
  for kdump runs; dmesg.txt -> _kdumptool/dmesg.txt (dmesg_early.txt too);
- lspci_{xxxx,vvv,tree,nn}.txt and iommu_groups.txt -> _kdumptool/ (oracles for tests).
The vmcores are not copied (too big); tests that need them use ../shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kdumptool.formats.pciconfig import parse_pci_config  # noqa: E402
from kdumptool.formats.vtd_regs import parse_devmem_dump  # noqa: E402

EXTRA_FILES = ("lspci_xxxx.txt", "lspci_vvv.txt", "lspci_tree.txt", "lspci_nn.txt", "iommu_groups.txt", "uname.txt")


def _write(path: Path, data, mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as fh:
        fh.write(data)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target, link.parent)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(rel, link)


def _index(run: Path) -> Dict[str, Dict[str, str]]:
    out = {}
    for line in (run / "pci" / "index.txt").read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        out[parts[0]] = dict(p.split("=", 1) for p in parts[1:])
    return out


def _parents(run: Path, bdfs: List[str]) -> Dict[str, Optional[str]]:
    """Each device's parent bridge, from the bridges' secondary/subordinate buses."""
    bridges = []
    for b in bdfs:
        cfg = parse_pci_config((run / "pci" / f"{b}.config").read_bytes(), b)
        if cfg.is_bridge and cfg.secondary_bus:
            bridges.append((b, cfg.secondary_bus))
    out: Dict[str, Optional[str]] = {}
    for b in bdfs:
        bus = int(b[5:7], 16)
        out[b] = next((br for br, sec in bridges if sec == bus), None)
    return out


def _groups(text: str):
    groups = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "group":
            groups.append({"n": int(parts[1]), "type": parts[2].split("=", 1)[1], "devices": [], "reserved": []})
        elif parts[0] == "device":
            groups[-1]["devices"].append(parts[1])
        elif parts[0] == "reserved":
            groups[-1]["reserved"].append(" ".join(parts[1:4]))
    return groups


def build(run: Path, out: Path, kind: str) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    extra = out / "_kdumptool"
    idx = _index(run)
    bdfs = sorted(idx)
    parents = _parents(run, bdfs)
    groups = _groups((run / "iommu_groups.txt").read_text()) if (run / "iommu_groups.txt").exists() else []
    group_dirs = {g["n"]: out / "sys/kernel/iommu_groups" / str(g["n"]) for g in groups}

    # Root bus directory name: pciSSSS:BB of the root bus (bus of the top of the chain).
    def devdir2(b: str) -> Path:
        chain = [b]
        while parents[chain[-1]] is not None:
            chain.append(parents[chain[-1]])  # type: ignore[arg-type]
        top = chain[-1]
        return out / "sys/devices" / f"pci{top[:4]}:{top[5:7]}" / "/".join(reversed(chain))

    for b in bdfs:
        info = idx[b]
        d = devdir2(b)
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "pci" / f"{b}.config", d / "config")
        for attr in ("vendor", "device", "class"):
            _write(d / attr, info[attr] + "\n")
        if info.get("driver"):
            drv = out / "sys/bus/pci/drivers" / info["driver"]
            drv.mkdir(parents=True, exist_ok=True)
            _link(d / "driver", drv)
        if info.get("iommu_group", "") != "" and int(info["iommu_group"]) in group_dirs:
            _link(d / "iommu_group", group_dirs[int(info["iommu_group"])])
        _link(out / "sys/bus/pci/devices" / b, d)

    for g in groups:
        gd = group_dirs[g["n"]]
        gd.mkdir(parents=True, exist_ok=True)
        (gd / "devices").mkdir(exist_ok=True)
        _write(gd / "type", g["type"] + "\n")
        _write(gd / "reserved_regions", "".join(r + "\n" for r in g["reserved"]))
        for b in g["devices"]:
            _link(gd / "devices" / b, devdir2(b))

    # VT-d registers and the intel-iommu sysfs attributes of the unit.
    units = []
    regs_text = (run / "drhd_regs.txt").read_text()
    for name, base, regs in parse_devmem_dump(regs_text, str(run / "drhd_regs.txt")):
        units.append({"name": name, "address": base, "read_error": None, "registers": regs})
    _write(extra / "vtd_registers.json", json.dumps({"units": units}, indent=2) + "\n")
    # Other moments of the same run (kdump: early in the kdump kernel, after drivers).
    for other in sorted(run.glob("drhd_regs_*.txt")):
        tag = other.stem[len("drhd_regs_") :]
        if tag == "final":
            continue  # the live runs' end-of-script re-read, identical moment to drhd_regs.txt
        units_other = [
            {"name": n, "address": a, "read_error": None, "registers": r}
            for n, a, r in parse_devmem_dump(other.read_text(), str(other))
        ]
        _write(extra / f"vtd_registers_{tag}.json", json.dumps({"units": units_other}, indent=2) + "\n")
    sysfs = {}
    for line in regs_text.splitlines():
        if line.startswith("sysfs "):
            k, _, v = line[6:].partition("=")
            sysfs[k] = v
    if sysfs and units:
        name = units[0]["name"]
        ud = out / "sys/devices/virtual/iommu" / name
        for k, v in sysfs.items():
            _write(ud / "intel-iommu" / k, v + "\n")
        (ud / "devices").mkdir(parents=True, exist_ok=True)
        _link(out / "sys/class/iommu" / name, ud)
        # Every device in an IOMMU group sits under the unit in sysfs (one unit here).
        for g in groups:
            for b in g["devices"]:
                _link(ud / "devices" / b, devdir2(b))

    tables = out / "sys/firmware/acpi/tables"
    tables.mkdir(parents=True, exist_ok=True)
    if (run / "acpi").is_dir():
        for t in sorted((run / "acpi").iterdir()):
            shutil.copyfile(t, tables / t.name)
    shutil.copyfile(run / "DMAR.bin", tables / "DMAR")

    _write(out / "proc/cmdline", (run / "cmdline.txt").read_text().strip() + "\n")
    shutil.copyfile(run / "iomem.txt", out / "proc/iomem")
    if kind == "kdump":
        _write(out / "proc/vmcore", "")
    kx = {}
    for line in (run / "kexec_sysfs.txt").read_text().splitlines():
        k, _, v = line.partition("=")
        kx[k.strip()] = v.strip()
    after = run / "kexec_crash_loaded_after.txt"
    if after.exists() and after.read_text().strip():
        # The live capture ran before `kexec -p`; the state at the crash is the later one.
        kx["kexec_crash_loaded"] = after.read_text().strip()
    for k, v in kx.items():
        _write(out / "sys/kernel" / k, v + "\n")

    shutil.copyfile(run / "dmesg.txt", extra / "dmesg.txt")
    for other in sorted(run.glob("dmesg_*.txt")):
        shutil.copyfile(other, extra / other.name)
    for other in sorted(run.glob("iommu_groups_*.txt")):
        if other.name != "iommu_groups_ls.txt":
            shutil.copyfile(other, extra / other.name)
    for f in EXTRA_FILES:
        if (run / f).exists():
            shutil.copyfile(run / f, extra / f)
    meta = {
        "kdumptool": "tools/make_lab_snapshots.py",
        "source": f"lab-captures/{kind}/{run.name}",
        "host": "QEMU q35 lab guest (Debian 12, linux 6.1.0-56-amd64)",
        "unreadable": {},
    }
    _write(extra / "collect.json", json.dumps(meta, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = os.environ.get("KDUMPTOOL_SHARED") or str(REPO.parent / "shared")
    ap.add_argument("--shared", default=default)
    ap.add_argument("--out", default=str(REPO / "fixtures" / "snapshots"))
    args = ap.parse_args()
    lab = Path(args.shared) / "lab-captures"
    n = 0
    for kind in ("live", "kdump"):
        for run in sorted((lab / kind).iterdir()):
            if (run / "pci" / "index.txt").exists():
                build(run, Path(args.out) / f"{kind}_{run.name}", kind)
                n += 1
    # iasl -d of the DMAR table (the same bytes in every run): the coverage tests' oracle.
    shutil.copyfile(lab / "dsl" / "DMAR.dsl", Path(args.out) / "DMAR.dsl")
    print(f"{n} snapshots written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
