"""``vmcore info`` says when the kernel crashed (VMCOREINFO CRASHTIME as a UTC date) and
why (the panic line of its own printk buffer), as crash's ``sys`` does. Oracle for the
panic line: makedumpfile --dump-dmesg's reading of the same dump (fixtures/vmcore)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from kdumptool.analysis.panic import find_panic
from tests.cliutil import run
from tests.conftest import FIXTURES

V = FIXTURES / "vmcore"
CASES = [(V / f"{n}.trim.kdump", V / f"{n}.makedumpfile_dmesg.txt") for n in ("legacy_on", "sm_mismatch_vmcore")]


@pytest.mark.parametrize("dump,oracle", CASES, ids=[c[0].name for c in CASES])
def test_date_and_panic(capsys: pytest.CaptureFixture, dump: Path, oracle: Path) -> None:
    code, out, _ = run(capsys, "vmcore", "info", str(dump), "-f", "json")
    doc = json.loads(out)
    epoch = doc["vmcoreinfo"]["crashtime"]
    want = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert doc["crash_date"] == want
    panic_lines = [ln for ln in oracle.read_text(errors="replace").splitlines() if "Kernel panic - not syncing:" in ln]
    assert panic_lines and doc["panic"]["message"] in panic_lines[-1]
    assert doc["panic"]["message"].startswith("Kernel panic - not syncing: ")
    _, text, _ = run(capsys, "vmcore", "info", str(dump), "-f", "text")
    assert f"  crash date: {want}\n" in text and f"  panic: {doc['panic']['message']}" in text


def test_find_panic_order() -> None:
    lines = [(1.0, "sysrq: Trigger a crash"), (1.1, "Kernel panic - not syncing: sysrq triggered crash"),
             (2.0, "BUG: kernel NULL pointer dereference, address: 0000000000000000")]
    assert find_panic(lines) == ("panic", 1.1, "Kernel panic - not syncing: sysrq triggered crash")
    assert find_panic(lines[2:]) == ("oops", 2.0, "BUG: kernel NULL pointer dereference, address: 0000000000000000")
    assert find_panic([(0.0, "all quiet")]) is None
