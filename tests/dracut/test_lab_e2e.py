"""End to end in the QEMU lab (``pytest -m lab``): a kdump initramfs built by the real
dracut with 99kdumptool (scenarios in dracut/lab-scenarios/) boots after a real panic;
``record`` writes its report beside the vmcore; ``quiesce --apply`` clears Bus Master
Enable on the driverless devices, checked in the guest by setpci and lspci after the
hooks; with ``kdumptool.quiesce=0`` they are left as they were. Checks in e2e_checks.py."""

from __future__ import annotations

import pytest

from tests.dracut.e2e_checks import check_quiesced, check_record, check_untouched, crash_dir
from tests.labscenario import run_kdump_scenario, serial

pytestmark = pytest.mark.lab



def _run(name: str):
    return run_kdump_scenario(name, "the capture did not finish")


@pytest.mark.parametrize("name", ["dracut_quiesce", "dracut_noquiesce"])
def test_record_beside_vmcore(name):
    r = _run(name)
    d = crash_dir(r.guest)
    assert (d / "vmcore").is_file(), f"{name}: makedumpfile wrote no vmcore ({d})"
    assert (d / "kdumptool/kdumptool-snapshot.tar.gz").is_file()
    check_record(d)


def test_quiesce_cleared_bus_master_before_reboot():
    r = _run("dracut_quiesce")
    assert check_quiesced(crash_dir(r.guest), serial(r)) >= 4


def test_quiesce_off_leaves_masters_untouched():
    r = _run("dracut_noquiesce")
    assert check_untouched(crash_dir(r.guest), serial(r)) >= 4
