"""The log scanner on real kernel logs from many kernel eras (../shared/corpus/dmesg):
every fault record line a plain grep finds, with its line number, and nothing else.
The grep asks for the device and the address/index on one line, not for the ``DMAR: [..]``
prefix: mail clients wrap that prefix onto the line before, and those records count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdumptool.model.log import scan_log_text

GREP_START = re.compile(r"Request device \[\[?(?:0x)?[0-9a-f]{2}:(?:0x)?[0-9a-f]{2}\.[0-7]\]")
GREP_KIND = re.compile(r"fault (addr|index)")
#: AMD-Vi: an IO_PAGE_FAULT event line that names its device (dev_err prefix or device=)
#: and an address; interrupt-request faults (flag I, 0x008) are not DMA.
GREP_AMD = re.compile(r"(?:[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]: AMD-Vi: Event logged \[IO_PAGE_FAULT|"
                      r"AMD-Vi: Event logged \[IO_PAGE_FAULT device=[0-9a-f:.]+)[^\]]*address=0x[0-9a-f]+"
                      r"(?: flags=0x(?P<flags>[0-9a-f]+))?")


def _amd_fault(line: str) -> bool:
    m = GREP_AMD.search(line)
    return bool(m) and not (m.group("flags") and int(m.group("flags"), 16) & 0x008)


@pytest.mark.corpus
def test_fault_lines_of_every_corpus_log(shared: Path):
    base = shared / "corpus" / "dmesg"
    files = [p for sub in ("full", "excerpts", "web_excerpts") for p in sorted((base / sub).iterdir())
             if p.suffix != ".tsv"]
    assert len(files) > 100
    total = 0
    for p in files:
        data = p.read_bytes()
        lines = data.decode("utf-8", "replace").split("\n")
        want = [i + 1 for i, line in enumerate(lines)
                if (GREP_START.search(line) and GREP_KIND.search(line)) or _amd_fault(line)]
        markers = scan_log_text(data, p.name).all("fault")
        assert [m.evidence.line for m in markers] == want, p.name
        for m in markers:
            assert re.fullmatch(r"(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", m.get("bdf")), (p.name, m.get("bdf"))
        total += len(want)
    assert total > 50


@pytest.mark.corpus
def test_kdump_markers_in_corpus_logs(shared: Path):
    """The corpus' catalogue of kdump-related line formats (verbatim examples from real
    logs): the copy markers are found where grep finds them."""
    seen = 0
    for p in [shared / "corpus" / "dmesg" / "FAULT_LINES.txt"]:
        data = p.read_bytes()
        text = data.decode("utf-8", "replace")
        m = scan_log_text(data, p.name)
        for kind, needle in (("pre_enabled", "Translation already enabled"),
                             ("copied", "Copied translation tables from previous kernel"),
                             ("copy_failed", "Failed to copy translation tables from previous kernel")):
            want = [i + 1 for i, line in enumerate(text.split("\n")) if needle in line]
            assert [x.evidence.line for x in m.all(kind)] == want, (p.name, kind)
            seen += len(want)
    assert seen > 0
