"""The crashkernel range and RAM map a dump gives the HTML report's memory map
(:mod:`kdumptool.sources.memmap`), on every lab cut: the range read from the crashed
kernel's log in the dump must be the one makedumpfile --dump-dmesg (an independent reader
of the same ring) printed, in both the 6.1 wording and the 6.12 one, and it must be exactly
the hole the kdump kernel's /proc/vmcore left in the dump's RAM map."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdumptool.sources.memmap import crashkernel_from_log, read_dump_layout
from kdumptool.sources.vmcore import open_dump

LAB = Path(__file__).resolve().parents[2] / "fixtures" / "lab"
CUTS = sorted(p for p in LAB.iterdir() if (p / "vmcore.trim.kdump").exists())
_MB = 1 << 20


def _oracle(run: Path) -> tuple:
    text = (run / "makedumpfile_dmesg.txt").read_text()
    m = re.search(r"Reserving (\d+)MB of memory at (\d+)MB for crashkernel", text)
    if m:
        return int(m.group(2)) * _MB, (int(m.group(2)) + int(m.group(1))) * _MB
    m = re.search(r"crashkernel reserved: 0x([0-9a-f]+) - 0x([0-9a-f]+)", text)
    assert m, f"{run.name}: no crashkernel line in makedumpfile's reading of the log"
    return int(m.group(1), 16), int(m.group(2), 16)


@pytest.mark.parametrize("run", CUTS, ids=[p.name for p in CUTS])
def test_crashkernel_from_the_dumps_own_log(run: Path) -> None:
    with open_dump(str(run / "vmcore.trim.kdump")) as dump:
        layout = read_dump_layout(dump, run.name)
    assert layout.crashkernel == (_oracle(run),)
    assert layout.ram is not None
    start, end = layout.crashkernel[0]
    # /proc/vmcore leaves the reservation out: it is a hole between two RAM runs
    assert any(a[1] == start and b[0] == end for a, b in zip(layout.ram, layout.ram[1:])), layout.ram
    assert not any(s < end and e > start for s, e in layout.ram)
    assert layout.dumped and all(any(rs <= s and e <= re_ for rs, re_ in layout.ram) for s, e in layout.dumped)


def test_both_wordings_and_no_false_match() -> None:
    assert crashkernel_from_log(["[    0.000000] crashkernel reserved: 0x0000000013000000 - 0x000000001f000000 (192 MB)"]) \
        == (0x13000000, 0x1F000000, "crashkernel reserved: 0x0000000013000000 - 0x000000001f000000 (192 MB)")
    assert crashkernel_from_log(["[    0.021344] kexec: Reserving the low 1M of memory for crashkernel"]) is None
    assert crashkernel_from_log([]) is None


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=120),
    st.builds(lambda a, b: f"Reserving {a}MB of memory at {b}MB for crashkernel", st.text(max_size=12), st.text(max_size=12)),
    st.builds(lambda a, b: f"crashkernel reserved: 0x{a} - 0x{b} (1 MB)", st.text("0123456789abcdefx", max_size=20),
              st.text("0123456789abcdefx", max_size=20)),
), max_size=6))
def test_fuzz_crashkernel_line(lines: list) -> None:
    found = crashkernel_from_log(lines)
    assert found is None or found[0] < found[1]
