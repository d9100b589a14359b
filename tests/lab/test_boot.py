"""Each scenario booted, panicked and reached the end of its kdump script."""

from __future__ import annotations

import re

import pytest

from tests.lab.labrun import Run

pytestmark = pytest.mark.lab


def test_live_kernel_reached_the_panic(run: Run) -> None:
    assert not run.result.get("unexpected_panic"), f"{run.name}: a kernel panicked before/after the sysrq crash (see {run.dir}/serial.log)"
    assert run.result["live_ok"], f"{run.name}: the live kernel did not reach the panic (see {run.dir}/serial.log)"
    assert "loaded=1" in run.text("live", "kexec.txt"), \
        f"{run.name}: kexec -p did not load the capture kernel: {run.text('live', 'kexec.txt')}"


def test_kdump_kernel_finished(run: Run) -> None:
    assert run.result["kdump_ok"], f"{run.name}: the kdump kernel did not finish its script (see {run.dir}/serial.log)"
    assert run.result["qemu_rc"] == 0, f"{run.name}: qemu exited {run.result['qemu_rc']}"
    serial = (run.dir / "serial.log").read_text(errors="replace")
    assert "Kernel panic - not syncing: sysrq triggered crash" in serial, f"{run.name}: no panic on the console"


def test_command_lines(run: Run) -> None:
    sc = run.result["scenario"]
    live = run.text("live", "cmdline.txt").split()
    kdump = run.text("kdump", "cmdline.txt").split()
    assert f"intel_iommu={sc['live_iommu']}" in live, f"{run.name}: live cmdline {live}"
    assert f"intel_iommu={sc['kdump_iommu']}" in kdump, f"{run.name}: kdump cmdline {kdump}"
    assert any(w.startswith("elfcorehdr=") for w in kdump), f"{run.name}: kdump cmdline lacks elfcorehdr= {kdump}"
    assert "reset_devices" in kdump and "nr_cpus=1" in kdump


def test_timing_recorded(run: Run) -> None:
    marks = run.result["marks"]
    for key in ("live_init", "panic", "kdump_banner", "kdump_init", "kdump_done"):
        assert key in marks, f"{run.name}: serial console never showed the {key} mark: {marks}"
    assert marks["live_init"] < marks["panic"] < marks["kdump_banner"] < marks["kdump_init"] < marks["kdump_done"]


def test_kdump_kernel_is_the_same_build(run: Run) -> None:
    live = run.text("live", "uname.txt").strip()
    assert live == run.text("kdump", "uname.txt").strip() == run.result["kver"], f"{run.name}: {live}"
    # The kernel of the run's series (lab/lablib/ingredients.py KERNELS): 6.1.0-N-amd64,
    # 5.10.0-N-amd64, 6.12.N+deb12-amd64 ...
    from lablib.ingredients import KERNELS
    from lablib.scenarios import split_key

    pattern = KERNELS[split_key(run.name)[1]].pattern
    assert re.fullmatch(pattern, "linux-image-" + live), f"{run.name}: kernel {live} is not {pattern}"
