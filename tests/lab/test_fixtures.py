"""Default tier (no QEMU): kdumptool on small real dumps cut from lab runs
(fixtures/lab/<scenario>/, made by lab/make-fixtures), against the oracle files the
guest captured in the same run (busybox devmem RTADDR, /sys/kernel/iommu_groups, dmesg)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[2]
CASES = sorted(p for p in (REPO / "fixtures" / "lab").glob("*") if (p / "vmcore.trim.kdump").is_file())


def kdt(capsys: pytest.CaptureFixture, *args: str) -> Any:  # type: ignore[type-arg]
    """kdumptool's real entry point, in this process (a subprocess per call costs seconds)."""
    from kdumptool.cli.main import main

    capsys.readouterr()
    try:
        main([*args, "-f", "json"])
        rc = 0
    except SystemExit as ex:
        rc = ex.code if isinstance(ex.code, int) else 1
    out, err = capsys.readouterr()
    assert rc == 0, f"kdumptool {' '.join(args)}: rc={rc} {err[-1500:]}"
    return json.loads(out)


def regs(path: Path) -> Dict[str, int]:
    out = {}
    for ln in path.read_text().splitlines():
        w = ln.split()
        if len(w) >= 4 and w[1].startswith("off=") and w[2].startswith("w="):
            out[w[0]] = int(w[3], 16)
    return out


def groups(path: Path) -> List[str]:
    out: List[str] = []
    for ln in path.read_text().splitlines():
        m = re.match(r"group \d+ type=\S* devices=(.*)", ln)
        if m:
            out += m.group(1).split()
    return sorted(out)


@pytest.fixture(params=CASES, ids=[p.name for p in CASES])
def case(request: pytest.FixtureRequest) -> Path:
    return request.param  # type: ignore[no-any-return]


def test_fixtures_present() -> None:
    assert CASES, "fixtures/lab has no cut dumps (lab/make-fixtures)"
    size = sum(f.stat().st_size for f in (REPO / "fixtures" / "lab").rglob("*") if f.is_file())
    assert size < 1 << 20, f"fixtures/lab is {size} bytes"


def test_iommu_tables_vs_live_groups(case: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    rt = regs(case / "live_drhd_regs_final.txt")["RTADDR"]
    doc = kdt(capsys, "vmcore", "iommu", str(case / "vmcore.trim.kdump"), "--rtaddr", f"{rt:#x}")
    assert doc["root_table"]["address"] == rt & ~0xFFF
    assert doc["root_table"]["mode"] == ("scalable" if (rt >> 10) & 3 == 1 else "legacy")
    present = {d["bdf"] for d in doc["devices"] if d.get("present")}
    live = set(groups(case / "live_iommu_groups.txt"))
    assert live <= present, f"{case.name}: no context entry for {sorted(live - present)}"
    assert all(b.endswith(":00.0") for b in present - live), f"{case.name}: extra {sorted(present - live)}"
    nic = next(d for d in doc["devices"] if d["bdf"] == "0000:00:02.0")
    types = {t for t in re.findall(r"type=(\S+)", (case / "live_iommu_groups.txt").read_text())}
    if types == {"identity"}:
        # iommu=pt: identity domains are pass-through context entries, no page table at all.
        assert nic["translation_type"] == "pass-through", f"{case.name}: {nic}"
        assert nic["mapped_4k_pages"] + nic["mapped_large_pages"] == 0, f"{case.name}: {nic}"
    else:
        assert nic["mapped_4k_pages"] + nic["mapped_large_pages"] > 0, f"{case.name}: the e1000e maps nothing"
    assert not doc["unreadable_tables"], f"{case.name}: the cut lost table pages {doc['unreadable_tables'][:3]}"


def test_log_is_the_crashed_kernels(case: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    doc = kdt(capsys, "vmcore", "log", str(case / "vmcore.trim.kdump"))
    text = json.dumps(doc)
    assert "sysrq: Trigger a crash" in text, f"{case.name}: no sysrq line in the log read from the dump"
    tail = [re.sub(r"^\[\s*\d+\.\d+\]\s?", "", ln) for ln in
            (case / "live_dmesg_final.txt").read_text().splitlines() if ln.startswith("[")][-20:]
    missing = [ln for ln in tail if json.dumps(ln)[1:-1] not in text]
    assert not missing, f"{case.name}: live dmesg lines not in the dump's log: {missing[:3]}"


def test_log_equals_makedumpfile(case: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """`vmcore log` = `makedumpfile --dump-dmesg` (Debian 12's 1.7.2) on the same run's
    dump, line for line (escapes and continuation-line indents included)."""
    ref = case / "makedumpfile_dmesg.txt"
    assert ref.is_file(), f"{case.name}: every lab cut keeps makedumpfile's --dump-dmesg output as its oracle"
    from kdumptool.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as ex:
        main(["vmcore", "log", str(case / "vmcore.trim.kdump"), "-f", "text"])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    assert ex.value.code in (0, None), err
    assert err == "", f"{case.name}: vmcore log warned: {err}"
    assert out.splitlines() == ref.read_text(errors="surrogateescape").splitlines()


def test_info_is_the_live_kernel(case: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    doc = kdt(capsys, "vmcore", "info", str(case / "vmcore.trim.kdump"))
    uname = (case / "live_uname.txt").read_text().strip()
    assert uname in json.dumps(doc), f"{case.name}: vmcore info does not name {uname}"


@pytest.mark.parametrize("cmd", ["info", "log", "iommu"])
def test_no_undeserved_warnings(case: Path, cmd: str, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    """Every kernel's dump (5.10, 6.1, 6.12) reads without a warning: 6.12 writes some
    NUMBER() values in hex (NUMBER(VMALLOC_START)=0x...), which are values, not damage."""
    from kdumptool.cli.main import main

    capsys.readouterr()
    try:
        main(["vmcore", cmd, str(case / "vmcore.trim.kdump"), "-f", "text"])
        rc = 0
    except SystemExit as ex:
        rc = ex.code if isinstance(ex.code, int) else 0
    out, err = capsys.readouterr()
    assert rc == 0 and out, f"{case.name}: vmcore {cmd} rc={rc}: {err[-500:]}"
    assert err == "", f"{case.name}: vmcore {cmd} warned: {err[-500:]}"
