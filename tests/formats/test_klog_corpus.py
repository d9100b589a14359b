"""klog over real logs: every ``Request device`` line is exactly one fault event.

Default tier: the curated copies in fixtures/dmesg/corpus (expected values typed from
reading each raw line). Corpus tier: the same sweep over all of ../shared/corpus/dmesg.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from kdumptool.formats.klog import LogEvent, parse_log
from tests.conftest import FIXTURES

CORPUS = FIXTURES / "dmesg" / "corpus"

# (file prefix, first line, last line, kind, bus:dev.fn, access, address or IRTE index,
#  reason code, pasid, reason as printed)
Row = Tuple[str, int, int, str, str, Optional[str], Optional[str], Optional[int], Optional[int], Optional[str]]
PTE_R, PTE_W = "PTE Read access is not set", "PTE Write access is not set"
CTX, ROOT = "Present bit in context entry is clear", "Present bit in root entry is clear"
NZ_PTE, COMPAT = "non-zero reserved fields in PTE", "Blocked a compatibility format interrupt request"
EXPECTED: List[Row] = [
    ("014", 7, 7, "ir", "00:00.5", None, None, None, None, None),  # quoted, cut short in the mail
    ("014", 8, 8, "ir", "00:00.5", None, None, None, None, None),
    ("017", 158, 159, "dma", "00:02.0", "write", "0x0", 0x02, None, CTX),
    ("022", 14, 14, "dma", "00:02.0", "read", "0x8900a000", 0x05, None, PTE_W),
    ("026", 232, 232, "dma", "02:00.0", "read", "0xbdf83000", 0x06, None, PTE_R),
    ("026", 233, 233, "dma", "01:00.2", "read", "0xf4000", 0x06, None, PTE_R),
    ("028", 7, 9, "dma", "41:00.0", "read", "0x7ecdcd000", 0x81, 1,
     "SM: U/S set 0 for first-level translation with user privilege"),
    ("030", 13, 13, "dma", "00:16.7", "read", "0x9cdff000", 0x02, None, CTX),
    ("030", 15, 15, "dma", "00:16.7", "read", "0x9cdff000", 0x02, None, CTX),
    ("030", 17, 17, "dma", "00:16.7", "write", "0x9cdff000", 0x02, None, CTX),
    ("033", 7, 8, "dma", "00:05.0", "read", "0x76406000", 0x06, None, PTE_R),
    ("035", 19, 20, "dma", "09:00.1", "read", "0xfff00000", 0x02, None, CTX),
    ("038", 61, 62, "dma", "05:00.0", "read", "0xffe00000", 0x0C, None, NZ_PTE),
    ("038", 64, 65, "dma", "05:00.0", "read", "0xffe00000", 0x0C, None, NZ_PTE),
    ("046", 25, 25, "ir", "42:00.2", None, "0x1600", 0x25, None, COMPAT),
    ("046", 31, 31, "ir", "42:00.2", None, "0x1600", 0x25, None, COMPAT),
    ("050", 14, 15, "dma", "00:02.0", "write", "0x108a000", 0x17, None, "Unknown"),
    ("052", 11, 11, "dma", "02:00.0", "read", "0x791dd000", 0x02, None, CTX),
    ("052", 15, 15, "dma", "07:00.0", "read", "0x791dd000", 0x02, None, CTX),
    ("052", 17, 17, "dma", "07:00.0", "read", "0x791dd000", 0x02, None, CTX),
    ("059", 6, 6, "dma", "03:00.0", "read", "0xfffd3000", 0x06, None, PTE_R),
    ("069", 14, 14, "dma", "03:00.1", "write", "0xfffc0000", 0x02, None, CTX),
    ("069", 16, 16, "dma", "03:00.1", "read", "0xfffc0000", 0x02, None, CTX),
    ("071", 10, 10, "dma", "00:16.7", "read", "0xdceff000", 0x06, None, PTE_R),
    ("071", 12, 12, "dma", "00:16.7", "write", "0xdceff000", 0x05, None, PTE_W),
    ("071", 14, 14, "dma", "00:16.7", "write", "0xdceff000", 0x05, None, PTE_W),
    ("072", 10, 10, "dma", "00:16.7", "read", "0xdceff000", 0x06, None, PTE_R),
    ("072", 12, 12, "dma", "00:16.7", "write", "0xdceff000", 0x05, None, PTE_W),
    ("072", 14, 14, "dma", "00:16.7", "write", "0xdceff000", 0x05, None, PTE_W),
    ("078", 10, 10, "dma", "05:00.0", "write", "0x69974000", 0x05, None, PTE_W),
    ("078", 11, 11, "dma", "05:00.0", "write", "0x69974000", 0x05, None, PTE_W),
    ("078", 12, 12, "dma", "05:00.0", "write", "0x69974000", 0x05, None, PTE_W),
    ("078", 13, 13, "dma", "05:00.0", "write", "0x69974000", 0x05, None, PTE_W),
    ("101", 29, 30, "ir", "e2:00.0", None, "0xa00", 0x25, None, COMPAT),  # "> > > " quoted, wrapped
    ("101", 37, 37, "ir", "e2:00.0", None, "0xa00", 0x25, None, COMPAT),
    ("109", 46, 47, "dma", "00:14.0", "write", "0xffcda000", 0x05, None, PTE_W),
    ("109", 49, 50, "dma", "00:14.0", "write", "0xffee8000", 0x05, None, PTE_W),
    ("109", 54, 55, "dma", "00:14.0", "write", "0xfff8b000", 0x05, None, PTE_W),
    ("117", 10, 10, "dma", "01:00.0", "write", "0xf2e69000", 0x05, None, PTE_W),
    ("123", 14, 15, "dma", "07:00.0", "write", "0x69935000", 0x05, None, PTE_W),
    ("123", 17, 18, "dma", "07:00.0", "write", "0x69935000", 0x05, None, PTE_W),
    ("123", 20, 21, "dma", "07:00.0", "write", "0x69935000", 0x05, None, PTE_W),
    ("123", 23, 24, "dma", "07:00.0", "write", "0x69935000", 0x05, None, PTE_W),
    ("125", 10, 10, "dma", "04:00.0", "write", "0x69974000", 0x05, None, PTE_W),
    ("126", 150, 151, "ir", "3d:00.0", None, "0x8200", 0x25, None, COMPAT),
    ("127", 16, 17, "ir", "01:00.0", None, "0x8080", 0x25, None, COMPAT),
    ("132", 197, 198, "dma", "04:00.0", "read", "0xffffb000", 0x06, None, PTE_R),
    ("132", 212, 213, "dma", "04:00.0", "read", "0xffffe000", 0x06, None, PTE_R),
    ("135", 84, 86, "dma", "80:14.0", "read", "0x1001680000", 0x39, None, "SM: Present bit in Root Entry is clear"),
    ("140", 43, 45, "dma", "80:14.0", "read", "0x1075140000", 0x39, None, "SM: Present bit in Root Entry is clear"),
    ("157", 68, 69, "ir", "f0:1f.0", None, "0x0", 0x25, None, COMPAT),
    ("160", 75, 76, "dma", "00:14.0", "write", "0xffe20000", 0x05, None, PTE_W),
    ("160", 89, 90, "dma", "00:14.0", "write", "0xffcf8000", 0x05, None, PTE_W),
    ("172", 18, 20, "dma", "04:00.0", "read", "0xffffe000", 0x0C, None, NZ_PTE),
    ("173", 27, 29, "dma", "55:00.0", "read", "0xffffb000", 0x06, None, PTE_R),
    ("173", 47, 49, "dma", "56:00.0", "read", "0xffffb000", 0x0C, None, NZ_PTE),
    ("173", 64, 66, "dma", "57:00.0", "read", "0xffffb000", 0x06, None, PTE_R),
    ("191", 53, 54, "dma", "04:00.0", "read", "0xfffca000", 0x06, None, PTE_R),
    ("049", 215, 215, "dma", "00:02.0", "read", "0x6c800000", 0x06, None, PTE_R),
    ("060", 1827, 1827, "dma", "00:02.0", "write", "0x0", 0x01, None, ROOT),
    ("133", 1577, 1577, "ir", "f0:1f.0", None, "0x0", 0x25, None, COMPAT),
    ("133", 1699, 1699, "ir", "f0:1f.0", None, "0x0", 0x25, None, COMPAT),
    ("197", 265, 265, "ir", "f0:1f.0", None, "0x0", 0x25, None, COMPAT),
    ("W01", 1, 1, "dma", "00:12.0", "write", "0x0", 0x05, None, PTE_W),
    ("W01", 3, 3, "dma", "00:12.0", "write", "0x0", 0x05, None, PTE_W),
    ("W01", 5, 5, "dma", "00:12.0", "write", "0x0", 0x05, None, PTE_W),
    ("W03", 2, 2, "dma", "00:02.0", "write", "0x0", 0x02, None, CTX),
    ("W03", 4, 4, "dma", "00:02.0", "read", "0xb4000000", 0x06, None, PTE_R),
    ("W03", 6, 6, "dma", "00:02.0", "read", "0xb403d000", 0x06, None, PTE_R),
    ("W07", 5, 5, "dma", "99:00.0", "write", "0x0", 0x05, None, PTE_W),
    ("W07", 9, 9, "dma", "99:00.0", "write", "0x0", 0x05, None, PTE_W),
    ("W08", 1, 2, "dma", "00:02.0", "read", "0x1a45aa9000", 0x0C, None, NZ_PTE),
    ("W09", 2, 3, "dma", "01:00.0", "read", "0x41a6aa000", 0x01, None, ROOT),
    ("W10", 2, 2, "dma", "00:1e.0", "read", "0xdf63e000", 0x06, None, PTE_R),
]

# A log line that prints "Request device": on one line with its "[", or wrapped right
# after it. Lines holding a printf format (%02x: C source quoted in patches) print nothing.
_REQ_RE = re.compile(r"Request device( \[|\s*$)")


def request_lines(lines: List[str]) -> List[int]:
    return [i + 1 for i, ln in enumerate(lines) if _REQ_RE.search(ln) and "%" not in ln]


def _row(path: Path, e: LogEvent) -> Row:
    where = e.address if e.kind == "dma_fault" else e.fault_index
    return (
        path.name[:3], e.line, e.end_line, e.kind.split("_")[0], e.bdf[5:] if e.bdf else "?",
        e.access, None if where is None else f"0x{where:x}", e.reason_code, e.pasid, e.reason,
    )


def _files(top: Path) -> List[Path]:
    return sorted(p for p in top.glob("*/*") if p.suffix != ".tsv" and p.is_file())


def _faults(path: Path) -> Tuple[List[str], List[LogEvent]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines, [e for e in parse_log(lines) if e.kind in ("dma_fault", "ir_fault")]


def _check_one_event_per_request_line(lines: List[str], evs: List[LogEvent], name: str) -> int:
    req = request_lines(lines)
    assert len(req) == len(evs), f"{name}: {len(req)} Request device lines, {len(evs)} events"
    for e in evs:
        inside = [r for r in req if e.line <= r <= e.end_line]
        assert len(inside) == 1, f"{name}: event at line {e.line} covers {inside}"
    return len(req)


def test_fixture_faults_match_hand_read_values() -> None:
    got: List[Row] = []
    for path in _files(CORPUS):
        got += [_row(path, e) for e in _faults(path)[1]]
    assert sorted(got) == sorted(EXPECTED)


def _check_reason_text_agrees(evs: List[LogEvent], name: str) -> int:
    """The kernel printed its own table's text next to the code: the decoded code (decimal
    or hex by format) must give that text back. Returns how many were checked."""
    n = 0
    for e in evs:
        if e.reason_code is None:
            continue
        assert e.reason and e.reason_table, f"{name}:{e.line}"
        assert e.reason_table.lower().startswith(e.reason.lower()), f"{name}:{e.line}: {e.reason!r} vs {e.reason_table!r}"
        assert not e.warnings, f"{name}:{e.line}: {e.warnings}"
        n += 1
    return n


def test_fixture_every_request_device_line_is_one_event() -> None:
    total = checked = 0
    for path in _files(CORPUS):
        lines, evs = _faults(path)
        total += _check_one_event_per_request_line(lines, evs, path.name)
        checked += _check_reason_text_agrees(evs, path.name)
    assert total == len(EXPECTED) == 74
    assert checked == 72  # the two cut-short quotes in excerpts/014 carry no reason


@pytest.mark.corpus
def test_corpus_every_request_device_line_is_one_event(shared: Path) -> None:
    total = 0
    files = _files(shared / "corpus" / "dmesg")
    assert len(files) >= 130
    checked = 0
    for path in files:
        lines, evs = _faults(path)
        total += _check_one_event_per_request_line(lines, evs, path.name)
        checked += _check_reason_text_agrees(evs, path.name)
    assert total == 74 and checked == 72


def _kinds(path: Path) -> List[Tuple[int, str]]:
    return [(e.line, e.kind) for e in parse_log(path.read_text().splitlines())]


def test_kexec_logs_markers() -> None:
    k19 = _kinds(CORPUS / "full" / "019_iommu_a8e4ad6bf4_p2_furoncles-linux-5.10.70-dmesg-initcall_debug-kexec.txt")
    assert [ln for ln, k in k19 if k == "ir_not_kdump"] == list(range(275, 283))
    k60 = _kinds(CORPUS / "full" / "060_kexec_3c955ceb2d_p1_body.log")
    assert [ln for ln, k in k60 if k == "translation_not_kdump"] == [1823, 1825]
    assert [ln for ln, k in k60 if k == "ir_not_kdump"] == [1368, 1369]
    k32 = _kinds(CORPUS / "excerpts" / "032_iommu_24f759011b_p1_body.log")
    assert [ln for ln, k in k32 if k == "ir_copied"] == [65, 66]
    w01 = list(parse_log((CORPUS / "web_excerpts" / "W01_OpenNetworkLinux-PR897_as4630_54te.log").read_text().splitlines()))
    assert [(e.line, e.value) for e in w01 if e.kind == "suppressed"] == [(7, 2474)]


# The corpus's SOURCES.tsv counts kdump/kexec lines per file (column n_kdump_kexec_lines),
# counted by the corpus builder independently of this parser: an oracle for the markers.
KDUMP_KINDS = {"translation_preenabled", "tables_copied", "copy_failed", "translation_not_kdump",
               "ir_copied", "ir_copy_failed", "ir_not_kdump"}


def _kdump_agreement(top: Path) -> Tuple[int, List[str]]:
    import csv

    rows = list(csv.DictReader((top / "SOURCES.tsv").open(), delimiter="\t"))
    bad = []
    for r in rows:
        path = top / r["file"]
        n = sum(e.kind in KDUMP_KINDS for e in parse_log(path.read_text(errors="replace").splitlines()))
        if n != int(r["n_kdump_kexec_lines"]):
            bad.append(f"{r['file']}: {n} != {r['n_kdump_kexec_lines']}")
    return len(rows), bad


def test_fixture_kdump_lines_agree_with_sources_tsv() -> None:
    n, bad = _kdump_agreement(CORPUS)
    assert n == 42 and bad == []


@pytest.mark.corpus
def test_corpus_kdump_lines_agree_with_sources_tsv(shared: Path) -> None:
    n, bad = _kdump_agreement(shared / "corpus" / "dmesg")
    assert n == 125 and bad == []
