"""Helpers of the lab tier (``pytest -m lab``): boots real kernels under QEMU through a real panic.

Each scenario is run once per session by ``lab/run SCENARIO`` (serially: the first test
that needs it pays for it), unless ``LAB_REUSE=1`` and ``lab/out/SCENARIO/result.json``
exists (to iterate on the tests without rebooting). ``LAB_SCENARIOS=a,b`` narrows the set.

Test ids carry the scenario (``test_rtaddr_root_table[sm_mismatch]``) and every assertion
message starts with it, so a failure says which scenario and which assertion.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab"
sys.path.insert(0, str(LAB))

from lablib.ingredients import DEFAULT_KERNEL, KERNELS  # noqa: E402
from lablib.scenarios import all_scenarios, run_key, split_key  # noqa: E402

SCENARIOS = all_scenarios()
_only = [w for w in os.environ.get("LAB_SCENARIOS", "").split(",") if w]


def selected_runs(kernels: str, only: List[str]) -> List[str]:
    """Run keys (``sm_on``, ``sm_on@5.10``) of the scenarios these tests assert on.

    ``kernels`` (``$LAB_KERNELS``, default the default kernel): comma list of kernel
    series, each optionally ``=scen+scen`` to limit its scenarios
    (``6.1,5.10=sm_mismatch+sm_on+legacy_on``). ``only`` (``$LAB_SCENARIOS``) narrows
    further by scenario name or run key. An ``opt_in`` scenario is listed only when named
    in one of the two. Only scenarios that boot the lab's own kdump
    initrd are listed (a scenario with its own ``kdump_initrd_builder``, e.g. dracut's,
    writes other files: its stream's tests run it with ``run_scenario(name)``)."""
    keys: List[str] = []
    for item in kernels.split(","):
        series, _, names = item.strip().partition("=")
        if not series:
            continue
        if series not in KERNELS:
            raise ValueError(f"LAB_KERNELS: unknown kernel {series!r}; known: {', '.join(KERNELS)}")
        allowed = set(names.split("+")) if names else None
        for n, s in SCENARIOS.items():
            key = run_key(n, series)
            if s.kdump_initrd_builder is not None or (allowed is not None and n not in allowed):
                continue
            if s.opt_in and allowed is None and n not in only and key not in only:
                continue  # not yet in the default selection: only when named
            if only and n not in only and key not in only:
                continue
            keys.append(key)
    return keys


_SELECTED: List[str] = selected_runs(os.environ.get("LAB_KERNELS", DEFAULT_KERNEL), _only)
#: The VT-d runs (the ``run`` fixture: every test written for intel-iommu).
NAMES: List[str] = [k for k in _SELECTED if SCENARIOS[split_key(k)[0]].vendor == "intel"]
#: The AMD-Vi runs (QEMU amd-iommu; tests/lab/test_amdvi.py).
AMD_NAMES: List[str] = [k for k in _SELECTED if SCENARIOS[split_key(k)[0]].vendor == "amd"]
#: (run key, dump format) for every dump a run asks its kdump kernel to write.
DUMP_CASES: List[Tuple[str, str]] = [(n, f) for n in NAMES for f in SCENARIOS[split_key(n)[0]].dumps]


def parse_regs(text: str) -> Dict[str, int]:
    """guest/lib.sh's drhd_regs lines (the format of ../shared/lab-captures):
    ``NAME off=0xOFF w=WIDTH 0xVALUE`` and ``FRCDn off=0xOFF lo=0x.. hi=0x..``."""
    out: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or line.startswith("#") or not parts[1].startswith("off="):
            continue
        if parts[2].startswith("lo=") and "ERR" not in line:
            out[parts[0]] = int(parts[2][3:], 16)
            out[parts[0] + "_HI"] = int(parts[3][3:], 16)
        elif parts[2].startswith("w=") and parts[3] != "ERR":
            out[parts[0]] = int(parts[3], 16)
    return out


@dataclass
class Run:
    name: str
    dir: Path
    result: Dict[str, Any]
    _cache: Dict[str, Any] = field(default_factory=dict)

    @property
    def guest(self) -> Path:
        return self.dir / "guest"

    def path(self, mode: str, rel: str) -> Path:
        return self.guest / mode / rel

    def text(self, mode: str, rel: str) -> str:
        p = self.path(mode, rel)
        assert p.is_file(), f"{self.name}: the guest wrote no {mode}/{rel} (see {self.dir}/serial.log)"
        return p.read_text(errors="replace")

    def regs(self, mode: str, rel: str = "drhd_regs.txt") -> Dict[str, int]:
        regs = parse_regs(self.text(mode, rel))
        assert "RTADDR" in regs, f"{self.name}: {mode}/{rel}: devmem read no RTADDR:\n{self.text(mode, rel)[:500]}"
        return regs

    def probe(self, mode: str) -> Dict[str, Any]:
        data = json.loads(self.text(mode, "kdt/probe.json"))
        return data  # type: ignore[no-any-return]

    def probe_part(self, mode: str, part: str) -> Any:
        pr = self.probe(mode).get(part)
        assert pr is not None, f"{self.name}: {mode} probe has no part {part}"
        assert "error" not in pr, f"{self.name}: kdumptool ({part}, {mode} kernel) raised {pr['error']}\n{pr.get('traceback')}"
        return pr["result"]

    def kdt(self, mode: str, name: str) -> Optional[Tuple[int, str, str]]:
        """(rc, stdout, stderr) of a kdumptool command run in the guest; None when the
        command does not exist in this tree (then the test skips)."""
        rc_file = self.path(mode, f"kdt/{name}.rc")
        assert rc_file.is_file(), f"{self.name}: kdumptool {name} was not run in the {mode} kernel"
        rc = rc_file.read_text().strip()
        if rc == "absent":
            return None
        return (int(rc), self.text(mode, f"kdt/{name}.out"), self.text(mode, f"kdt/{name}.err"))

    def dumps(self) -> List[Dict[str, Any]]:
        """dumps.txt: one dict per dump written by the kdump kernel."""
        out = []
        for line in self.text("kdump", "dumps.txt").splitlines():
            words = line.split()
            d: Dict[str, Any] = {"format": words[0], "line": line}
            for w in words[1:]:
                if "=" in w:
                    k, v = w.split("=", 1)
                    d[k] = v
            out.append(d)
        return out


def run_scenario(name: str) -> Run:
    """Run (or with LAB_REUSE=1 reuse) one run key: ``sm_on`` or ``sm_on@5.10``."""
    out = LAB / "out" / name
    res = out / "result.json"
    if not (os.environ.get("LAB_REUSE") == "1" and res.is_file()):
        r = subprocess.run([sys.executable, str(LAB / "run"), name], cwd=REPO)
        assert res.is_file(), f"{name}: lab/run wrote no result.json (rc={r.returncode})"
    return Run(name, out, json.loads(res.read_text()))


def kdumptool(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """Run this tree's kdumptool on the host."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "kdumptool", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=REPO)


@functools.cache
def has_command(*words: str) -> bool:
    """Does this tree's kdumptool have ``words`` (``vmcore``, ``info``)?"""
    r = kdumptool(*words, "--help", timeout=120)
    return r.returncode == 0


def dmesg_lines(text: str) -> List[str]:
    """Lines of a dmesg text without the timestamp."""
    return [re.sub(r"^\[\s*\d+\.\d+\]\s?", "", ln) for ln in text.splitlines()]
