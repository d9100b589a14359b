"""The kept evidence of two real kdump-utils runs in the QEMU lab
(fixtures/distro/kdump-utils-lab/, see its PROVENANCE.md: kdump_utils_quiesce and
kdump_utils_noquiesce), checked as the lab tier checks a fresh run: kdump.sh's events in
order, the record beside the vmcore, setpci/lspci after the hooks, and the COMMAND
registers after kdumptool's shutdown hook differing between the two runs on exactly the
planned functions."""

from __future__ import annotations

from tests.conftest import FIXTURES
from tests.distro.kdump_utils_checks import after_shutdown, compare_on_off, event_lines
from tests.dracut.e2e_checks import check_quiesced, check_record, check_untouched, crash_dir, record

EVID = FIXTURES / "distro/kdump-utils-lab"


def _serial(name: str) -> str:
    return (EVID / name / "serial-kdump.log").read_text(errors="replace")


def test_events_in_order_both_runs():
    for name in ("kdump_utils_quiesce", "kdump_utils_noquiesce"):
        ev = event_lines(_serial(name))
        assert [w for w, _ in ev][0] == "kdump_pre (kdump.sh starts)"


def test_quiesce_on_run():
    d = crash_dir(EVID / "kdump_utils_quiesce")
    check_record(d)
    assert check_quiesced(d, _serial("kdump_utils_quiesce")) == 5
    # the shutdown hook ran after kdump.sh's final action and found nothing left
    s = _serial("kdump_utils_quiesce")
    assert s.index("kdumptool: quiesce apply: 0 to clear") > s.index("Executing final action systemctl reboot -f")


def test_quiesce_off_run():
    d = crash_dir(EVID / "kdump_utils_noquiesce")
    check_record(d)
    assert check_untouched(d, _serial("kdump_utils_noquiesce")) == 5


def test_registers_after_shutdown_differ_exactly_as_planned():
    plan = record(crash_dir(EVID / "kdump_utils_quiesce"))["quiesce_plan"]
    on = after_shutdown(_serial("kdump_utils_quiesce"))
    off = after_shutdown(_serial("kdump_utils_noquiesce"))
    assert compare_on_off(plan, on, off) == ["0000:00:02.0", "0000:00:03.0", "0000:00:1f.2", "0000:02:00.0",
                                             "0000:03:01.0"]
