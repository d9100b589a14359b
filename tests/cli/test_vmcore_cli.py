"""``kdumptool vmcore info|log``: goldens, the kernel-log Must-show through the CLI, JSON,
exit codes and one-line errors. Regenerate goldens with KDUMPTOOL_REGEN_GOLDEN=1."""

from __future__ import annotations

import json
import struct

import pytest

from kdumptool.sources.vmcore import open_dump
from tests.cliutil import check_golden, run
from tests.conftest import FIXTURES
from tests.dumpwriter import DumpSpec, need, write_elf, write_kdump

V = FIXTURES / "vmcore"
GOLDEN = V / "golden"
RUNS = ("legacy_on", "sm_mismatch_vmcore")




def golden(name: str, text: str) -> None:
    check_golden(GOLDEN, name, text)


def _small_spec() -> DumpSpec:
    """A few pages and the real VMCOREINFO/CPU notes: a stable dump for the info golden."""
    with open_dump(str(V / "legacy_on.trim.kdump")) as dump:
        vi = dump.vmcoreinfo.raw.encode()
        cpus = [(p.pid, dict(p.registers)) for p in dump.prstatus]
    pages = {pfn: bytes([pfn & 0xFF]) * 4096 for pfn in (1, 2, 3, 8, 9, 0x100)}
    return DumpSpec(pages=pages, filtered={4, 5, 10}, vmcoreinfo=vi, prstatus=cpus,
                    max_mapnr=0x200, phys_base=-140509184, release="6.1.0-56-amd64",
                    timestamp=1795247327, nr_cpus=2)


@pytest.mark.parametrize("kind", ["kdump", "elf"])
def test_info_golden(capsys, tmp_path, monkeypatch, kind):
    need("zstd")
    spec = _small_spec()
    monkeypatch.chdir(tmp_path)
    name = f"small.{kind}"
    (tmp_path / name).write_bytes(write_kdump(spec, "zstd") if kind == "kdump" else write_elf(spec))
    code, out, err = run(capsys, "vmcore", "info", "-f", "text", name)
    assert code == 0 and err == ""
    golden(f"info_small_{kind}.txt", out)
    code, out, err = run(capsys, "vmcore", "info", "-f", "json", name)
    data = json.loads(out)
    assert data["dumped_ranges"] == [{"start": 0x1000, "end": 0x4000},
                                     {"start": 0x8000, "end": 0xA000},
                                     {"start": 0x100000, "end": 0x101000}]
    assert data["vmcoreinfo"]["symbols"]["prb"] == 0xFFFFFFFFB6C643E0
    assert [c["pid"] for c in data["cpus"]] == [104, 29]
    code, out, _ = run(capsys, "vmcore", "info", "-f", "text", "--vmcoreinfo", name)
    assert "  SYMBOL(prb)=ffffffffb6c643e0" in out.splitlines()


@pytest.mark.parametrize("run_name", RUNS)
def test_log_golden_and_live_dmesg(capsys, run_name):
    code, out, err = run(capsys, "vmcore", "log", "-f", "text", str(V / f"{run_name}.trim.kdump"))
    assert code == 0 and err == ""
    golden(f"log_{run_name}.txt", out)
    # makedumpfile --dump-dmesg on the same dump (Debian's 1.7.2), line for line: the
    # continuation lines of a multi-line record indented, not stamped again.
    mdf = (V / f"{run_name}.makedumpfile_dmesg.txt").read_text()
    assert out.splitlines() == mdf.splitlines()
    # busybox dmesg in the live kernel stamps every line of a record: compare the records'
    # first lines.
    live = (V / f"{run_name}.live_dmesg.txt").read_text().splitlines()
    have = set(out.splitlines())
    missing = [ln for ln in live if ln not in have]
    assert missing and all(ln[15:] in {o[15:] for o in out.splitlines()} for ln in missing)
    code, out2, _ = run(capsys, "vmcore", "log", "-f", "text", str(V / f"{run_name}.trim.elf"))
    assert out2 == out


@pytest.mark.corpus
@pytest.mark.parametrize("run_name", RUNS)
def test_log_full_lab_dump(capsys, shared, run_name):
    path = shared / "lab-captures" / "kdump" / run_name / "vmcore.d31.zlib.kdump"
    code, out, err = run(capsys, "vmcore", "log", "-f", "text", str(path))
    assert code == 0 and err == ""
    live = (shared / "lab-captures" / "live" / run_name / "dmesg.txt").read_text().splitlines()
    have = set(out.splitlines())
    # busybox dmesg stamps every line of a multi-line record; makedumpfile (and vmcore
    # log) indent the continuation lines: those compare without their prefix.
    bodies = {o[15:] for o in out.splitlines()}
    assert [ln for ln in live if ln not in have and ln[15:] not in bodies] == []
    assert out == (GOLDEN / f"log_{run_name}.txt").read_text()


def test_log_json(capsys):
    code, out, _ = run(capsys, "vmcore", "log", "-f", "json", str(V / "legacy_on.trim.kdump"))
    data = json.loads(out)
    assert code == 0 and data["kind"] == "lockless" and len(data["records"]) == 559
    panic = [r for r in data["records"] if r["text"].startswith("Kernel panic")]
    assert len(panic) == 1 and panic[0]["level"] == 0      # KERN_EMERG, as panic() prints


def test_log_analyse(capsys):
    pytest.importorskip("kdumptool.analysis.log")
    code, out, _ = run(capsys, "vmcore", "log", "--analyse", "-f", "json",
                       str(V / "sm_mismatch_vmcore.trim.kdump"))
    assert code == 0
    assert "sysrq triggered crash" in out


def test_errors_are_one_line(capsys, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a dump at all")
    code, out, err = run(capsys, "vmcore", "log", str(junk))
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    flat = tmp_path / "vmcore.flat"
    flat.write_bytes(b"makedumpfile" + bytes(4084))
    code, out, err = run(capsys, "vmcore", "info", str(flat))
    assert code == 1 and "flat header type 0, not TYPE_FLAT_HEADER" in err and err.count("\n") == 1
    code, out, err = run(capsys, "vmcore", "info", str(tmp_path / "missing"))
    assert code == 1 and "no such file" in err


def test_log_with_the_ring_past_the_truncated_end(capsys, tmp_path):
    """Every descriptor points past the end: the log command says where and why."""
    blob = bytearray((V / "legacy_on.trim.kdump").read_bytes())
    sub_blocks, bitmap_blocks = struct.unpack_from("<iI", blob, 0x1B0)
    pos = (1 + sub_blocks + bitmap_blocks) * 4096
    with open_dump(str(V / "legacy_on.trim.kdump")) as dump:
        n = dump.dumped_pages
    for i in range(n):
        struct.pack_into("<q", blob, pos + 24 * i, len(blob) + 4096 * (i + 1))
    bad = tmp_path / "bad.kdump"
    bad.write_bytes(bytes(blob))
    code, out, err = run(capsys, "vmcore", "log", str(bad))
    assert code == 1 and out == ""
    assert err.startswith("error: ") and "past the truncated end" in err and "prb" in err
