"""The kept evidence of real dracut kdump runs in the QEMU lab (fixtures/quiesce-lab/, see
its PROVENANCE.md), checked as the lab tier checks a fresh run: setpci and lspci in the
guest after the hooks agree with the plan record wrote before the dump."""

from __future__ import annotations

from tests.conftest import FIXTURES
from tests.dracut.e2e_checks import check_quiesced, check_record, check_untouched

EVID = FIXTURES / "quiesce-lab"


def _serial(name: str) -> str:
    return (EVID / name / "serial-kdump.log").read_text(errors="replace")


def test_quiesce_run():
    d = EVID / "dracut_quiesce/crash"
    rec = check_record(d)
    assert check_quiesced(d, _serial("dracut_quiesce")) == 5
    assert [s["bdf"] for s in rec["quiesce_plan"]["steps"]] == [
        "0000:03:01.0", "0000:02:00.0", "0000:00:02.0", "0000:00:03.0", "0000:00:1f.2",
    ]
    serial = _serial("dracut_quiesce")
    # the shutdown hook ran after `systemctl reboot -f` and found nothing left to clear
    assert serial.index("kdumptool: quiesce apply: 0 to clear") > serial.index("systemctl reboot -f")


def test_noquiesce_run():
    d = EVID / "dracut_noquiesce/crash"
    check_record(d)
    assert check_untouched(d, _serial("dracut_noquiesce")) == 5
