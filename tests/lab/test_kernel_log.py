"""Kernel-log events: the kernel's own lines (the oracle) and kdumptool's reading of them.

The oracle is the kdump kernel's ``dmesg`` (busybox) taken at the end of the kdump
script. kdumptool reads the same text on the host (``kdumptool log FILE -f json``) and,
inside the guest, from /dev/kmsg (``kdumptool log -f json`` run by guest/lib.sh).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Dict, Tuple

import pytest

from tests.lab.expect import expect
from tests.lab.labrun import Run, has_command, kdumptool

pytestmark = pytest.mark.lab

#: The fault line of every kernel the lab boots: 6.1/6.12 print ``[DMA Read NO_PASID] ...
#: [fault reason 0x0b]`` (hex, since 5.14), 5.10 prints ``[DMA Read] ... PASID ffffffff
#: fault addr ffffc000 [fault reason 11]`` (decimal, 5.3-5.13 format).
FAULT_RE = re.compile(r"DMAR: \[(DMA Read|DMA Write|INTR-REMAP)[^\]]*\] Request device \[([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\]"
                      r".*?fault reason (0x[0-9a-f]+|[0-9]+)\]")


def oracle_faults(text: str) -> Counter:  # type: ignore[type-arg]
    """(bdf, reason) -> count of the kernel's own fault lines."""
    c: Counter = Counter()  # type: ignore[type-arg]
    for m in FAULT_RE.finditer(text):
        c[(m.group(2), int(m.group(3), 0) if m.group(3).startswith("0x") else int(m.group(3), 10))] += 1
    return c


def test_kdump_log_shows_the_scenario(run: Run) -> None:
    """Precondition for everything else: the kdump kernel did what the scenario is about."""
    exp = expect(run.name)
    text = run.text("kdump", "dmesg_final.txt")
    for line in exp["kdump_lines"]:
        assert line in text, f"{run.name}: kdump kernel log lacks {line!r}"
    for line in exp["kdump_absent"]:
        assert line not in text, f"{run.name}: kdump kernel log has {line!r}"


def test_kdump_faults_oracle(run: Run) -> None:
    exp = expect(run.name)
    faults = oracle_faults(run.text("kdump", "dmesg_final.txt"))
    if exp["fault_device"]:
        assert any(bdf == exp["fault_device"] for bdf, _ in faults), \
            f"{run.name}: no DMAR fault from {exp['fault_device']} in the kdump log: {dict(faults)}"
    else:
        assert not faults, f"{run.name}: unexpected DMAR faults in the kdump log: {dict(faults)}"


def _kdt_log(path: str) -> Dict[str, Any]:
    if not has_command("log"):
        pytest.skip("kdumptool log is not in this tree")
    r = kdumptool("log", path, "--no-system", "-f", "json")
    assert r.returncode == 0, f"kdumptool log {path} failed: {r.stderr[-2000:]}"
    doc = json.loads(r.stdout)
    return doc.get("summary", doc)  # type: ignore[no-any-return]


def _kdt_faults(summary: Dict[str, Any]) -> Dict[Tuple[str, int], int]:
    out: Dict[Tuple[str, int], int] = {}
    for g in summary.get("faults", []):
        if g.get("bdf") and g.get("reason_code"):
            key = (g["bdf"][-7:], int(g["reason_code"], 16))
            out[key] = out.get(key, 0) + int(g["count"])
    return out


def test_kdumptool_log_faults_match_kernel_lines(run: Run) -> None:
    """kdumptool's fault groups (device, reason, count) equal the kernel's own fault lines."""
    path = str(run.path("kdump", "dmesg_final.txt"))
    summary = _kdt_log(path)
    want = dict(oracle_faults(run.text("kdump", "dmesg_final.txt")))
    got = _kdt_faults(summary)
    assert got == want, f"{run.name}: kdumptool log faults {got} != kernel's fault lines {want}"


def test_kdumptool_log_markers(run: Run) -> None:
    """Each DMAR line that says what happened to the old tables is a kdumptool marker."""
    exp = expect(run.name)
    summary = _kdt_log(str(run.path("kdump", "dmesg_final.txt")))
    texts = " | ".join(m.get("text", "") for m in summary.get("markers", []))
    for line in exp["kdump_lines"]:
        if "handling fault" in line or "Virtualization Technology" in line:
            continue
        key = line.split("DMAR: ", 1)[-1]
        assert key in texts, f"{run.name}: kdumptool log has no marker for {key!r}; markers: {texts[:1500]}"
    assert summary.get("in_kdump_kernel") in (True, None), f"{run.name}: kdump log not recognised as a kdump kernel's"


def test_kdumptool_log_in_guest(run: Run) -> None:
    """The same command inside the kdump kernel (reading /dev/kmsg) found the same faults."""
    res = run.kdt("kdump", "log")
    if res is None:
        pytest.skip("kdumptool log is not in this tree")
    rc, out, err = res
    assert rc == 0, f"{run.name}: kdumptool log in the kdump kernel: rc={rc} {err[-1500:]}"
    doc = json.loads(out)
    got = _kdt_faults(doc.get("summary", doc))
    # The guest ran it before the end-of-script dmesg: its faults are a subset.
    final = dict(oracle_faults(run.text("kdump", "dmesg_final.txt")))
    for key, n in got.items():
        assert key in final and n <= final[key], f"{run.name}: guest kdumptool log fault {key} x{n} not in the kernel log {final}"
    if expect(run.name)["fault_device"]:
        assert got, f"{run.name}: kdumptool log in the kdump kernel saw no fault"
