"""The demanding user's end-to-end pass: every command and subcommand of ``kdumptool
--help``, run in-process on the fixtures (text and JSON) and on hostile inputs made here.

For every run: the exit code is one the project documents (0, 1 our error, 2 usage, 3/4
findings), no traceback and no ``internal error`` reaches the user, an ``error:`` line
names the input it is about, JSON output parses, and commands that write (``collect -o``,
``record --out``) leave nothing behind when they fail.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import shutil
import tarfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.cliutil import run
from tests.conftest import FIXTURES

SNAP = FIXTURES / "snapshots"
VMC = FIXTURES / "vmcore"
DMAR = FIXTURES / "dmar"
DMESG = FIXTURES / "dmesg"
LEG_KDUMP = VMC / "legacy_on.trim.kdump"
LEG_ELF = VMC / "legacy_on.trim.elf"
VTD_KDUMP = VMC / "vtd" / "legacy_on.trim.kdump"
LAB_DMAR = DMAR / "lab_DMAR.bin"
IVRS = next((DMAR / "ivrs").glob("*.dat"))
LIVE_SNAP = SNAP / "live_legacy_on"
KDUMP_SNAP = SNAP / "kdump_legacy_on"
DMESG_FILE = DMESG / "lab" / "kdump_sm_mismatch.txt"
LSPCI_DUMP = LIVE_SNAP / "_kdumptool" / "lspci_xxxx.txt"

OK_CODES = {0, 1, 3, 4}




def check(code: int, out: str, err: str, args: List[str], names: Tuple[str, ...] = ()) -> None:
    """The invariants every run must keep; ``names``: one of them must appear in an error."""
    where = " ".join(args)
    assert code in OK_CODES, f"{where}: exit {code}\n{err}"
    assert "Traceback" not in out + err, f"{where}: traceback\n{err}"
    assert "internal error" not in err, f"{where}: {err}"
    if code == 1:
        lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert lines, f"{where}: exit 1 without an error: line\n{err}"
        if names:
            assert any(n in lines[-1] for n in names), f"{where}: error does not name {names}: {lines[-1]}"
    if "json" in args and code in (0, 3, 4):
        json.loads(out)


# --- the command list, from --help itself --------------------------------------------


def help_commands(capsys: pytest.CaptureFixture, *prefix: str) -> List[str]:
    code, out, _ = run(capsys, *prefix, "--help")
    assert code == 0
    body = out.split("Commands", 1)[1] if "Commands" in out else ""
    return re.findall(r"^\W*([a-z][a-z-]+)\s{2,}", body, flags=re.M)


# How each command runs on good input. Every command in --help must have an entry: a new
# command fails test_every_command_is_covered until it is added here.
def good_runs(tmp: Path) -> Dict[str, List[List[str]]]:
    return {
        "dmar": [["dmar", str(LAB_DMAR)], ["dmar", "--root", str(LIVE_SNAP)]]
        + [["dmar", str(p)] for p in sorted((DMAR / "tables").glob("*.dat"))[:3]],
        "ivrs": [["ivrs", str(p)] for p in sorted((FIXTURES / "ivrs").glob("*.dat"))[:3]],
        "pci": [["pci", "--root", str(LIVE_SNAP)], ["pci", "-v", "--root", str(KDUMP_SNAP)],
                ["pci", "--from-lspci", str(LSPCI_DUMP)]],
        "iommu": [["iommu", "--root", str(LIVE_SNAP)], ["iommu", "--root", str(SNAP / "kdump_sm_mismatch")]],
        "collect": [["collect", "--root", str(LIVE_SNAP), "--no-lspci", "-o", str(tmp / "c.tar.gz")]],
        "log": [["log", str(DMESG_FILE)], ["log", "--root", str(KDUMP_SNAP)]],
        "vmcore info": [["vmcore", "info", str(LEG_KDUMP)], ["vmcore", "info", str(LEG_ELF)]],
        "vmcore log": [["vmcore", "log", str(LEG_KDUMP)]],
        "vmcore iommu": [["vmcore", "iommu", str(VTD_KDUMP), "--saved", str(VMC / "vtd" / "legacy_on")],
                         ["vmcore", "iommu", str(VMC / "vtd" / "sm_mismatch_vmcore.trim.elf"), "--rtaddr",
                          "0x2411400", "--device", "00:02.0", "--iova", "0xffffc000"]],
        "vmcore exposure": [["vmcore", "exposure", str(VTD_KDUMP), "--saved", str(VMC / "vtd" / "legacy_on")]],
        "vmcore scan": [["vmcore", "scan", str(VMC / "vtd" / "legacy_on.trim.kdump")]],
        "triage": [["triage", "--root", str(LIVE_SNAP)], ["triage", "--root", str(SNAP / "kdump_sm_mismatch")]],
        "quiesce": [["quiesce", "--plan", "--root", str(KDUMP_SNAP)]],
        "record": [["record", "--root", str(KDUMP_SNAP), "--out", str(tmp / "rec")]],
        "install-integration": [["install-integration", "--dry-run", "--prefix", str(tmp / "prefix")]],
    }


def all_commands(capsys: pytest.CaptureFixture) -> List[str]:
    cmds = []
    for c in help_commands(capsys):
        subs = help_commands(capsys, c)
        cmds.extend(f"{c} {s}" for s in subs) if subs else cmds.append(c)
    return cmds


def test_every_command_is_covered(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    cmds = all_commands(capsys)
    assert "dmar" in cmds and "vmcore scan" in cmds, cmds
    missing = [c for c in cmds if c not in good_runs(tmp_path)]
    assert not missing, f"commands with no run in test_every_command.py: {missing}"


def has_format(capsys: pytest.CaptureFixture, cmd: str) -> bool:
    code, out, _ = run(capsys, *cmd.split(), "--help")
    return "--format" in out


def test_every_command_has_format(capsys: pytest.CaptureFixture) -> None:
    lacking = [c for c in all_commands(capsys) if not has_format(capsys, c)]
    assert not lacking, f"commands without --format: {lacking}"


@pytest.mark.parametrize("fmt", ["text", "json", "rich"])
def test_fixtures_every_command(capsys: pytest.CaptureFixture, tmp_path: Path, fmt: str) -> None:
    for cmd, runs in good_runs(tmp_path).items():
        extra = ["-f", fmt] if has_format(capsys, cmd) else []
        for i, args in enumerate(runs):
            args = [a.replace(str(tmp_path), str(tmp_path / f"{fmt}{i}")) for a in args] + extra
            code, out, err = run(capsys, *args)
            check(code, out, err, args)
            assert code != 1, f"{' '.join(args)}: fails on a fixture: {err}"
            if cmd != "install-integration":
                assert out.strip(), f"{' '.join(args)}: no output"


# --- hostile files --------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    rnd = random.Random(1234)
    files = {
        "empty": b"",
        "random": bytes(rnd.getrandbits(8) for _ in range(4096)),
        "trunc_dmar": LAB_DMAR.read_bytes()[:60],
        "trunc_kdump": LEG_KDUMP.read_bytes()[:5000],
        "trunc_elf": LEG_ELF.read_bytes()[:3000],
        "trunc_kdump_half": LEG_KDUMP.read_bytes()[: LEG_KDUMP.stat().st_size // 2],
        "trunc_lspci": LSPCI_DUMP.read_bytes()[:777],
        "ivrs": IVRS.read_bytes(),
        "dmesg": DMESG_FILE.read_bytes(),
        "vmcore": LEG_KDUMP.read_bytes(),
        "nul_text": b"\x00" * 100 + b"\n\xff\xfe garbage \x80\n",
        "gzip_garbage": gzip.compress(b"not a tar"),
    }
    out = {}
    for name, data in files.items():
        p = d / name
        p.write_bytes(data)
        out[name] = p
    out["dir"] = d / "a_dir"
    out["dir"].mkdir()
    out["missing"] = d / "no_such_file"
    return out


FILE_COMMANDS = [
    ["dmar", "{}"],
    ["ivrs", "{}"],
    ["log", "{}"],
    ["pci", "--from-lspci", "{}"],
    ["vmcore", "info", "{}"],
    ["vmcore", "log", "{}"],
    ["vmcore", "iommu", "{}"],
    ["vmcore", "exposure", "{}"],
    ["vmcore", "scan", "{}"],
    ["vmcore", "iommu", str(LEG_KDUMP), "--saved", "{}"],
    ["vmcore", "iommu", str(LEG_KDUMP), "--rtaddr", "0x25d5000", "--faults", "{}"],
    ["triage", "--offline", "--root", str(KDUMP_SNAP), "--vmcore", "{}"],
    ["triage", "--offline", "--root", str(KDUMP_SNAP), "--saved", "{}"],
    ["log", str(DMESG_FILE), "--system-root", "{}"],
]

HOSTILE_FILES = ["empty", "dir", "missing", "random", "trunc_dmar", "trunc_kdump", "trunc_elf",
                 "trunc_kdump_half", "trunc_lspci", "ivrs", "dmesg", "vmcore", "nul_text"]


@pytest.mark.parametrize("cmd", FILE_COMMANDS, ids=lambda c: "-".join(a for a in c if "/" not in a))
def test_hostile_files(capsys: pytest.CaptureFixture, hostile: Dict[str, Path], cmd: List[str]) -> None:
    for i, kind in enumerate(HOSTILE_FILES):
        path = hostile[kind]
        for fmt in ("text", "json", "rich")[i % 3:][:1] if kind not in ("empty", "random") else ("text", "json"):
            args = [a.replace("{}", str(path)) for a in cmd] + ["-f", fmt]
            code, out, err = run(capsys, *args)
            check(code, out, err, args, names=(str(path), path.name))


def test_wrong_kind_is_an_error(capsys: pytest.CaptureFixture, hostile: Dict[str, Path]) -> None:
    """A file of the wrong kind is refused in one line (never decoded as if it were right)."""
    cases = [
        (["dmar", str(hostile["ivrs"])], "IVRS"),
        (["ivrs", str(LAB_DMAR)], "kdumptool dmar"),
        (["dmar", str(hostile["dmesg"])], ""),
        (["vmcore", "info", str(hostile["ivrs"])], ""),
        (["vmcore", "info", str(hostile["dmesg"])], ""),
        (["vmcore", "info", str(LAB_DMAR)], ""),
        (["vmcore", "log", str(hostile["random"])], ""),
    ]
    for args, word in cases:
        code, out, err = run(capsys, *args)
        check(code, out, err, args, names=(args[-1],))
        assert code == 1, f"{args}: exit {code}"
        assert word in err


def test_vmcore_to_log(capsys: pytest.CaptureFixture, hostile: Dict[str, Path]) -> None:
    """A binary vmcore given to ``log`` is not silently read as an empty log."""
    args = ["log", str(hostile["vmcore"])]
    code, out, err = run(capsys, *args)
    check(code, out, err, args, names=(str(hostile["vmcore"]),))
    assert code == 1 or "warning" in (out + err).lower(), (code, out, err)


# --- hostile snapshot roots -----------------------------------------------------------


def _tar(path: Path, members: List[Tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(str(path), "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str, data: bytes = b"x") -> Tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


def _link(name: str, target: str) -> Tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    return ti, b""


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, hostile: Dict[str, Path]) -> Dict[str, Path]:
    d = tmp_path_factory.mktemp("roots")
    out = {"missing": d / "nope", "file": hostile["random"], "empty_dir": d / "empty",
           "gzip_garbage": hostile["gzip_garbage"]}
    out["empty_dir"].mkdir()

    def copy(name: str, src: Path = KDUMP_SNAP) -> Path:
        dst = d / name
        shutil.copytree(src, dst, symlinks=True)
        return dst

    snap = copy("trunc_config")
    for cfg in sorted((snap / "sys" / "devices").rglob("config"))[:3]:
        cfg.write_bytes(cfg.read_bytes()[:7])
    snap = copy("missing_files")
    for rel in ("proc/cmdline", "sys/firmware/acpi/tables/DMAR", "_kdumptool/dmesg.txt",
                "_kdumptool/vtd_registers.json"):
        (snap / rel).unlink(missing_ok=True)
    for vendor in sorted((snap / "sys" / "devices").rglob("vendor"))[:2]:
        vendor.unlink()
    for name, data in [("garbage_json", b"{not json"), ("json_list", b"[1, 2]"),
                       ("json_units_int", b'{"units": 5}'),
                       ("json_regs_str", b'{"units": [{"name": "dmar0", "address": "x", "registers": "x"}]}'),
                       ("json_regs_neg", b'{"units": [{"name": "dmar0", "address": -1, '
                                         b'"registers": {"CAP": -5, "GSTS": "1", "FRCD": [[1]]}}]}'),
                       ("json_binary", bytes(range(256)))]:
        snap = copy(name)
        (snap / "_kdumptool" / "vtd_registers.json").write_bytes(data)
    snap = copy("garbage_text")
    (snap / "_kdumptool" / "dmesg.txt").write_bytes(hostile["nul_text"].read_bytes())
    (snap / "_kdumptool" / "collect.json").write_bytes(b"\xff\xfe{")
    (snap / "proc" / "cmdline").write_bytes(b"\xff\x00intel_iommu=\xfe")
    dmar_file = snap / "sys" / "firmware" / "acpi" / "tables" / "DMAR"
    if dmar_file.exists():
        dmar_file.write_bytes(dmar_file.read_bytes()[:50])
    # archives
    whole = d / "good.tar.gz"
    with tarfile.open(str(whole), "w:gz") as tar:
        tar.add(str(KDUMP_SNAP), arcname="snap")
    out["trunc_tar"] = d / "trunc.tar.gz"
    out["trunc_tar"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out["dotdot_tar"] = _tar(d / "dotdot.tar.gz", [_file("sys/x"), _file("../escaped")])
    out["abs_tar"] = _tar(d / "abs.tar.gz", [_file("/tmp/kdumptool-qa-abs")])
    out["symlink_escape_tar"] = _tar(
        d / "symlink.tar.gz", [_file("sys/x"), _link("sys/evil", "../../../.."),
                              _file("sys/evil/kdumptool-qa-escaped", b"pwned")])
    for p in d.iterdir():
        if p.is_dir() and p.name not in out:
            out[p.name] = p
    return out


ROOT_COMMANDS = [
    ["dmar"],
    ["pci"],
    ["pci", "-v"],
    ["iommu"],
    ["log"],
    ["triage"],
    ["quiesce", "--plan"],
]


@pytest.mark.parametrize("cmd", ROOT_COMMANDS, ids="-".join)
def test_hostile_roots(capsys: pytest.CaptureFixture, roots: Dict[str, Path], cmd: List[str]) -> None:
    for i, (kind, root) in enumerate(roots.items()):
        for fmt in ("text", "json", "rich")[i % 3:][:1]:  # one format each, in turn (time)
            args = cmd + ["--root", str(root), "-f", fmt]
            code, out, err = run(capsys, *args)
            check(code, out, err, args, names=(root.name,) if kind in ("missing", "file") else ())
            if kind in ("missing", "file", "dotdot_tar", "abs_tar", "trunc_tar", "gzip_garbage",
                        "symlink_escape_tar"):
                assert code == 1, f"{args}: exit {code}"


def test_tar_members_cannot_escape(capsys: pytest.CaptureFixture, roots: Dict[str, Path]) -> None:
    """A snapshot archive may not write outside its own temporary tree."""
    import tempfile

    base = Path(tempfile.gettempdir())
    for kind in ("dotdot_tar", "abs_tar", "symlink_escape_tar"):
        args = ["pci", "--root", str(roots[kind])]
        code, out, err = run(capsys, *args)
        assert code == 1 and "error:" in err, (kind, code, err)
    assert not (base / "kdumptool-qa-escaped").exists()
    assert not (base / "kdumptool-qa-abs").exists()
    assert not (roots["dotdot_tar"].parent.parent / "escaped").exists()


@pytest.mark.parametrize("writer", ["collect", "record"])
def test_nothing_written_on_error(capsys: pytest.CaptureFixture, tmp_path: Path,
                                  roots: Dict[str, Path], writer: str) -> None:
    for kind in ("missing", "file", "dotdot_tar", "trunc_tar", "empty_dir", "garbage_json",
                 "trunc_config", "missing_files", "json_regs_neg"):
        out_path = tmp_path / f"{writer}-{kind}" / ("snap.tar.gz" if writer == "collect" else "rec")
        out_path.parent.mkdir()
        if writer == "collect":
            args = ["collect", "--root", str(roots[kind]), "--no-lspci", "-o", str(out_path)]
        else:
            args = ["record", "--root", str(roots[kind]), "--out", str(out_path)]
        code, out, err = run(capsys, *args, "-f", "json")
        check(code, out, err, args)
        if code == 1:
            assert not out_path.exists(), f"{args}: wrote {out_path} although it failed"
        if kind in ("missing", "file", "dotdot_tar", "trunc_tar"):
            assert code == 1, f"{args}: exit {code}"


def test_collect_refuses_existing_output(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """collect never overwrites: an existing file or non-empty directory is an error."""
    target = tmp_path / "keep.tar.gz"
    target.write_bytes(b"precious")
    args = ["collect", "--root", str(LIVE_SNAP), "--no-lspci", "-o", str(target)]
    code, out, err = run(capsys, *args)
    check(code, out, err, args, names=(str(target),))
    assert target.read_bytes() == b"precious"


# --- usage errors ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["nosuchcommand"], ["dmar", "--format", "yaml"], ["vmcore"], ["vmcore", "iommu"],
    ["vmcore", "iommu", str(LEG_KDUMP), "--rtaddr", "zz"], ["vmcore", "iommu", str(LEG_KDUMP), "--mode", "x"],
    ["vmcore", "iommu", str(LEG_KDUMP), "--rtaddr", "0x25d5000", "--device", "nonsense"],
    ["vmcore", "iommu", str(LEG_KDUMP), "--rtaddr", "0x25d5000", "--iova", "0x1000"],
    ["pci", "--slot", "zz:zz", "--root", str(LIVE_SNAP)], ["log", "--fail-on", "bogus", str(DMESG_FILE)],
    ["collect"], ["dmar", "--bogus-option"],
])
def test_usage_errors(capsys: pytest.CaptureFixture, args: List[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code in (1, 2), f"{args}: exit {code}"
    assert "Traceback" not in out + err and "internal error" not in err, err


# --- regressions: one per bug this pass found -----------------------------------------


def test_tar_link_chain_cannot_escape(tmp_path: Path) -> None:
    """A link that is harmless alone may leave the tree through a later one (a -> b/..,
    then b -> ..): every member is checked against what is already extracted."""
    from kdumptool.errors import DecodeError
    from kdumptool.sources.root import open_root

    arc = _tar(tmp_path / "chain.tar.gz", [_file("sys/x"), _link("sys/a", "b/.."), _link("sys/b", ".."),
                                           _file("sys/a/kdumptool-qa-chain", b"pwned")])
    with pytest.raises(DecodeError, match="unsafe"):
        open_root(arc)
    import tempfile

    assert not (Path(tempfile.gettempdir()) / "kdumptool-qa-chain").exists()
    # sysfs-style links that stay inside the tree still work
    good = _tar(tmp_path / "good.tar.gz", [_file("sys/devices/pci0000:00/0000:00:02.0/vendor", b"0x8086\n"),
                                           _link("sys/bus/pci/devices/0000:00:02.0",
                                                 "../../../devices/pci0000:00/0000:00:02.0")])
    with open_root(good) as root:
        assert root.read_text("/sys/bus/pci/devices/0000:00:02.0/vendor").strip() == "0x8086"


def test_binary_registers_json(capsys: pytest.CaptureFixture, roots: Dict[str, Path], hostile: Dict[str, Path]) -> None:
    """Non-UTF-8 bytes in vtd_registers.json / a --saved file: a decode error naming it."""
    args = ["iommu", "--root", str(roots["json_binary"])]
    code, out, err = run(capsys, *args)
    check(code, out, err, args)
    assert "vtd_registers.json" in out + err
    args = ["vmcore", "iommu", str(VTD_KDUMP), "--saved", str(hostile["random"])]
    code, out, err = run(capsys, *args)
    check(code, out, err, args, names=(str(hostile["random"]),))
    assert code == 1


def test_pci_slot(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "pci", "--root", str(LIVE_SNAP), "-s", "99:00.0")
    assert code == 1 and "no PCI device 99:00.0" in err
    code, out, err = run(capsys, "pci", "--root", str(LIVE_SNAP), "-s", "zz:zz")
    assert code == 2
    code, out, err = run(capsys, "pci", "--root", str(LIVE_SNAP), "-s", "00:02.0")
    assert code == 0 and out.startswith("00:02.0 Ethernet controller: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]")
    code, out, err = run(capsys, "pci", "--root", str(LIVE_SNAP), "-s", "00:02.0", "-n")
    assert code == 0 and out.startswith("00:02.0 0200: 8086:10d3  PCIe Root Complex Integrated Endpoint")


def test_big_table_file_is_bounded(capsys: pytest.CaptureFixture) -> None:
    """dmar /dev/zero once read forever; now it stops at 64 MiB with one line."""
    code, out, err = run(capsys, "dmar", "/dev/zero")
    assert code == 1 and "/dev/zero" in err and "larger than 64 MiB" in err


def test_collect_output_errors(capsys: pytest.CaptureFixture, tmp_path: Path, hostile: Dict[str, Path]) -> None:
    for out_path in (hostile["random"] / "x", Path("/proc/kdumptool-qa.tar.gz"), Path("/proc/kdumptool-qa")):
        args = ["collect", "--root", str(KDUMP_SNAP), "--no-lspci", "-o", str(out_path)]
        code, out, err = run(capsys, *args)
        check(code, out, err, args, names=(str(out_path),))
        assert code == 1


def test_vmcore_address_options(capsys: pytest.CaptureFixture) -> None:
    for opt in (["--iova", "-5"], ["--iova", "0x1" + "0" * 16], ["--rtaddr", "-1"]):
        args = ["vmcore", "iommu", str(VTD_KDUMP), "--rtaddr", "0x25d5000", "--device", "00:02.0"] + opt
        code, out, err = run(capsys, *args)
        assert code == 2 and "64-bit" in out + err, (args, code, err)


def test_install_integration(capsys: pytest.CaptureFixture, tmp_path: Path, hostile: Dict[str, Path]) -> None:
    code, out, err = run(capsys, "install-integration", "--dry-run", "--prefix", str(tmp_path), "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["dry_run"] is True and any(f["path"].endswith("module-setup.sh") for f in doc["files"])
    assert list(tmp_path.iterdir()) == []
    args = ["install-integration", "--prefix", str(hostile["random"])]
    code, out, err = run(capsys, *args)
    check(code, out, err, args, names=(str(hostile["random"]),))
    assert code == 1


def test_triage_says_when_it_read_no_log(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """A VT-d snapshot without its kernel log: the report says the log was not read."""
    snap = tmp_path / "snap"
    shutil.copytree(LIVE_SNAP, snap, symlinks=True)
    (snap / "_kdumptool" / "dmesg.txt").unlink()
    code, out, err = run(capsys, "triage", "--root", str(snap), "-f", "json")
    check(code, out, err, ["triage", "json"])
    titles = [f["title"] for f in json.loads(out)["findings"]]
    assert any(t.startswith("No kernel log read") for t in titles), titles


def test_record_text_shows_warnings(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """What record could not read is in its text report too, not only in the JSON."""
    snap = tmp_path / "snap"
    shutil.copytree(KDUMP_SNAP, snap, symlinks=True)
    cfg = sorted((snap / "sys" / "devices").rglob("config"))[0]
    cfg.write_bytes(cfg.read_bytes()[:7])
    code, out, err = run(capsys, "record", "--root", str(snap), "--out", str(tmp_path / "rec"), "-f", "text")
    check(code, out, err, ["record"])
    doc = json.loads((tmp_path / "rec" / "kdumptool-record.json").read_text())
    assert doc["warnings"]
    assert f"warning: {doc['warnings'][0]}" in out


def test_symlink_loop_in_snapshot(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """A config file that is a symlink loop: a warning naming it, the rest of the tree shown;
    a looping directory: one error line naming it (never an internal error)."""
    snap = tmp_path / "snap"
    shutil.copytree(KDUMP_SNAP, snap, symlinks=True)
    cfg = snap / "sys" / "devices" / "pci0000:00" / "0000:00:02.0" / "config"
    cfg.unlink()
    cfg.symlink_to("config")
    for cmd, says in ((["pci"], "symbolic links"), (["triage"], "symbolic links"),
                      (["quiesce", "--plan"], "config unreadable")):
        args = cmd + ["--root", str(snap), "-f", "json"]
        code, out, err = run(capsys, *args)
        check(code, out, err, args)
        assert code != 1 and says in out + err, (args, code, err)
    groups = snap / "sys" / "kernel" / "iommu_groups"
    loop = sorted(groups.iterdir())[0] / "devices"
    shutil.rmtree(loop)
    loop.symlink_to("devices")
    args = ["iommu", "--root", str(snap)]
    code, out, err = run(capsys, *args)
    check(code, out, err, args, names=(str(loop),))


def test_damaged_release_files(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """The kernel release goes into paths (/lib/modules/<release>): a binary uname.txt or
    an osrelease with NUL or .. is ignored, never an internal error or a path outside."""
    from kdumptool.sources.initramfs import running_release
    from kdumptool.sources.root import open_root

    snap = tmp_path / "snap"
    shutil.copytree(KDUMP_SNAP, snap, symlinks=True)
    (snap / "_kdumptool" / "uname.txt").write_bytes(b"Linux vm \xff\xfe\x00 #1 SMP")
    osrel = snap / "proc" / "sys" / "kernel" / "osrelease"
    osrel.parent.mkdir(parents=True, exist_ok=True)
    for bad in (b"6.1\x00evil", b"../../../../etc", b""):
        osrel.write_bytes(bad)
        with open_root(snap) as root:
            assert running_release(root) is None
        for cmd in (["triage"], ["record", "--out", str(tmp_path / f"rec{len(bad)}")]):
            code, out, err = run(capsys, *cmd, "--root", str(snap), "-f", "json")
            check(code, out, err, cmd)
    osrel.write_bytes(b"6.1.0-56-amd64\n")
    with open_root(snap) as root:
        assert running_release(root) == "6.1.0-56-amd64"


def test_record_out_errors(capsys: pytest.CaptureFixture, hostile: Dict[str, Path]) -> None:
    """record --out a file, below a file, or in /proc: one error line naming it."""
    for out_path in (hostile["random"], hostile["random"] / "x", Path("/proc/kdumptool-qa-rec")):
        args = ["record", "--root", str(KDUMP_SNAP), "--out", str(out_path)]
        code, out, err = run(capsys, *args)
        check(code, out, err, args, names=(str(out_path),))
        assert code == 1


def test_initramfs_entry_point(capsys: pytest.CaptureFixture, tmp_path: Path, roots: Dict[str, Path]) -> None:
    """The argparse entry point of the kdump initramfs (python3 -S -m kdumptool.cli.initrd)
    keeps the same rules on the same hostile roots."""
    from kdumptool.cli.initrd import main as initrd_main

    for i, (kind, root) in enumerate(roots.items()):
        out_path = tmp_path / f"rec-{kind}"
        for args in (["record", "--root", str(root), "--out", str(out_path), "-f", "json"],
                     ["quiesce", "--plan", "--root", str(root), "-f", ("text", "json")[i % 2]]):
            code = initrd_main(args)
            out, err = capsys.readouterr()
            check(code, out, err, args)
            if code == 1:
                assert not out_path.exists(), f"{args}: wrote {out_path} although it failed"


def test_missing_dependency(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interpreter without typer (a user's /usr/bin/python3): say which module is missing."""
    import sys

    from kdumptool.cli import main as cli_main

    monkeypatch.setitem(cli_main._state, "app", None)
    monkeypatch.setitem(sys.modules, "typer", None)
    code, out, err = run(capsys, "pci")
    assert code == 1 and "missing Python module 'typer'" in err and "internal error" not in err
    monkeypatch.undo()
    code, out, err = run(capsys, "--version")
    assert code == 0 and out.startswith("kdumptool ")


def test_log_overlong_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """A line of megabytes (binary junk, /dev/zero) is cut at 1 MiB, not held whole, and
    the line numbers of the events after it stay right."""
    code, out, _ = run(capsys, "log", str(DMESG_FILE), "-f", "json")
    plain = [e["line"] for e in json.loads(out)["events"]]
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"\x00" * (3 << 20) + b"\n" + DMESG_FILE.read_bytes())
    code, out, err = run(capsys, "log", str(junk), "-f", "json")
    check(code, out, err, ["log", "json"])
    assert plain and [e["line"] for e in json.loads(out)["events"]] == [n + 1 for n in plain]


def test_triage_saved_folder_with_damaged_vmcore(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                 hostile: Dict[str, Path]) -> None:
    """A --saved folder whose vmcore is damaged: triage goes on with the vmcore-dmesg.txt
    beside it and says the vmcore was not read; an explicit --vmcore stays an error."""
    saved = tmp_path / "crash"
    saved.mkdir()
    shutil.copyfile(hostile["random"], saved / "vmcore")
    shutil.copyfile(VMC / "legacy_on.makedumpfile_dmesg.txt", saved / "vmcore-dmesg.txt")
    args = ["triage", "--offline", "--root", str(KDUMP_SNAP), "--saved", str(saved), "-f", "json"]
    code, out, err = run(capsys, *args)
    check(code, out, err, args)
    assert code in (0, 3, 4)
    titles = [f["title"] for f in json.loads(out)["findings"]]
    assert any(t.startswith("the vmcore was not read") and str(saved / "vmcore") in t for t in titles), titles
    args = ["triage", "--offline", "--root", str(KDUMP_SNAP), "--vmcore", str(saved / "vmcore")]
    code, out, err = run(capsys, *args)
    check(code, out, err, args, names=(str(saved / "vmcore"),))
    assert code == 1


def test_unreadable_config_is_not_busmaster_off(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """pci shows BusMaster? (not BusMaster-) for a device whose COMMAND register was not read."""
    snap = tmp_path / "snap"
    shutil.copytree(KDUMP_SNAP, snap, symlinks=True)
    (snap / "sys" / "devices" / "pci0000:00" / "0000:00:02.0" / "config").write_bytes(b"")
    code, out, err = run(capsys, "pci", "--root", str(snap), "-f", "text")
    check(code, out, err, ["pci"])
    line = next(ln for ln in out.splitlines() if "00:02.0" in ln)
    assert "BusMaster?" in line, line
    assert "BusMaster+" in next(ln for ln in out.splitlines() if "00:03.0" in ln)


def test_absolute_link_in_directory_snapshot(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """An absolute link in a snapshot folder resolves below the snapshot, never to the
    host's own file (it printed this host's /etc/hostname as the kdump cmdline)."""
    from kdumptool.sources.root import open_root

    snap = tmp_path / "snap"
    shutil.copytree(KDUMP_SNAP, snap, symlinks=True)
    (snap / "etc").mkdir(exist_ok=True)
    (snap / "etc" / "qa-cmdline").write_text("from-the-snapshot\n")
    (snap / "proc" / "cmdline").unlink()
    (snap / "proc" / "cmdline").symlink_to("/etc/qa-cmdline")
    (snap / "proc" / "version").symlink_to("/etc/hostname")  # absent below the snapshot
    with open_root(snap) as root:
        assert root.read_text("/proc/cmdline").strip() == "from-the-snapshot"
        assert root.readlink("/proc/cmdline") == "/etc/qa-cmdline"
        assert root.exists("/proc/version") and root.read_optional("/proc/version") is None
        # relative sysfs links still resolve as before
        assert root.link_name("/sys/bus/pci/devices/0000:00:02.0") == "0000:00:02.0"
    code, out, err = run(capsys, "triage", "--root", str(snap), "-f", "json")
    check(code, out, err, ["triage"])
    assert "from-the-snapshot" in out


def test_vmcore_default_outside_kdump(capsys: pytest.CaptureFixture) -> None:
    """vmcore info/log default to /proc/vmcore: outside a kdump kernel, say so plainly."""
    import os

    if os.path.exists("/proc/vmcore"):
        pytest.skip("running in a kdump kernel")
    for sub in ("info", "log"):
        code, out, err = run(capsys, "vmcore", sub)
        assert code == 1 and "/proc/vmcore: no such file (this is not a kdump kernel" in err, err
