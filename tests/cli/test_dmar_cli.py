"""``kdumptool dmar``: golden text and JSON on real tables, the JSON contract, exit codes
and one-line errors. Regenerate goldens with KDUMPTOOL_REGEN_GOLDEN=1 (then read the diff)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import List, Tuple

import pytest

from kdumptool.cli.main import main
from tests.cliutil import check_golden, run
from tests.conftest import FIXTURES

D = FIXTURES / "dmar"
GOLDEN = D / "golden"
X01 = D / "tables" / "X01_Server_Supermicro_SMCI-MB_SkylakeSP-2S_from-dsl.dat"




def golden(name: str, text: str) -> None:
    check_golden(GOLDEN, name, text)


GOLDEN_CASES = [
    ("X01_server", X01),
    ("lab_qemu", D / "lab_DMAR.bin"),
    ("andd", next((D / "tables").glob("005_*.dat"))),
    ("satc_sidp", next((D / "tables").glob("015_*.dat"))),
    ("multihop_server", next((D / "tables").glob("264_*.dat"))),
]


@pytest.mark.parametrize("name,path", GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden_text_and_json(capsys: pytest.CaptureFixture, name: str, path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
    code, out, err = run(capsys, "dmar", path.name, "-f", "text")
    assert code == 0 and err == ""
    golden(f"{name}.txt", out)
    code, out, err = run(capsys, "dmar", path.name, "--format", "json")
    assert code == 0
    golden(f"{name}.json", out)


def test_json_contract(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "dmar", str(X01), "-f", "json")
    assert code == 0
    doc = json.loads(out)
    for key in ("signature", "length", "revision", "checksum_valid", "oem_id", "oem_table_id",
                "host_address_width", "flags", "structures", "findings"):
        assert key in doc
    assert doc["signature"] == "DMAR" and doc["length"] == 640
    assert doc["host_address_width"] == 46 and doc["checksum_valid"] is True
    assert doc["flags"] == {"raw": 1, "intr_remap": True, "x2apic_opt_out": False,
                            "dma_ctrl_platform_opt_in": False}
    types = [s["type"] for s in doc["structures"]]
    assert types.count("DRHD") == 10 and types.count("RHSA") == 10
    drhd = doc["structures"][0]
    for key in ("type", "type_id", "offset", "length", "flags", "include_pci_all", "segment",
                "register_base_address", "size", "device_scopes"):
        assert key in drhd
    assert drhd["register_base_address"] == 0xD0FFC000 and drhd["offset"] == 0x30
    sc = drhd["device_scopes"][0]
    assert sc == {"offset": 0x40, "type": "PCI_ENDPOINT", "type_id": 1, "length": 8,
                  "flags": 0, "enumeration_id": 0, "start_bus": 0x80, "path": [[1, 0]]}
    rmrr = next(s for s in doc["structures"] if s["type"] == "RMRR")
    assert rmrr["base_address"] == 0x6CEC5000 and rmrr["end_address"] == 0x6CEE8FFF
    atsr = next(s for s in doc["structures"] if s["type"] == "ATSR")
    assert atsr["all_ports"] is False
    rhsa = next(s for s in doc["structures"] if s["type"] == "RHSA")
    assert "proximity_domain" in rhsa
    assert all({"id", "severity", "title", "evidence", "remedy", "devices", "offset"} <= set(f)
               for f in doc["findings"])


def test_json_other_types(capsys: pytest.CaptureFixture) -> None:
    _, out, _ = run(capsys, "dmar", str(next((D / "tables").glob("015_*.dat"))), "-f", "json")
    doc = json.loads(out)
    satc = next(s for s in doc["structures"] if s["type"] == "SATC")
    assert satc["atc_required"] is True and satc["type_id"] == 5
    sidp = next(s for s in doc["structures"] if s["type"] == "SIDP")
    assert [sc["flags"] for sc in sidp["device_scopes"]] == [0x1F, 0x1F, 0x1C]
    _, out, _ = run(capsys, "dmar", str(next((D / "tables").glob("005_*.dat"))), "-f", "json")
    andd = [s for s in json.loads(out)["structures"] if s["type"] == "ANDD"]
    assert [(a["acpi_device_number"], a["acpi_object_name"]) for a in andd] == [
        (1, "\\_SB.PCI0.I2C0"), (2, "\\_SB.PCI0.I2C1")]


def test_acpidump_text_input(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "dmar", str(D / "text" / "X01_acpidump.txt"), "-f", "json")
    assert code == 0
    code2, out2, _ = run(capsys, "dmar", str(X01), "-f", "json")
    a, b = json.loads(out), json.loads(out2)
    assert a.pop("source") != b.pop("source")
    assert a == b


def test_root_snapshot_with_pci_check(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "dmar", "--root", str(D / "lab_root"), "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["structures"][0]["register_base_address"] == 0xFED90000
    assert doc["findings"] == []
    # Remove the e1000e from a copy of the tree: the scope check notices.
    root = tmp_path / "root"
    shutil.copytree(D / "lab_root", root)
    shutil.rmtree(root / "sys/bus/pci/devices/0000:00:02.0")
    code, out, _ = run(capsys, "dmar", "--root", str(root), "-f", "text")
    assert code == 0
    assert "scope-device-absent @0x58: DRHD PCI_ENDPOINT 0000:00:02.0" in out
    code, out, _ = run(capsys, "dmar", "--root", str(root), "--no-pci", "-f", "text")
    assert "scope-device-absent" not in out


def test_rich_output(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "dmar", str(X01), "-f", "rich")
    assert code == 0
    assert "0xd0ffc000" in out and "drhd-no-devices" in out and "46 bits" in out


def err_line(capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, List[str]]:
    code, out, err = run(capsys, *args)
    return code, err.splitlines()


def test_ivrs_one_line_exit_1(capsys: pytest.CaptureFixture) -> None:
    for p in sorted((D / "ivrs").glob("*.dat")) + [D / "text" / "ivrs_acpidump.txt"]:
        code, lines = err_line(capsys, "dmar", str(p))
        assert code == 1
        assert lines == [f"error: {p}: AMD IOMMU (IVRS): not an Intel VT-d table; "
                         "decode it with `kdumptool ivrs`"]


def test_no_dmar_in_root(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    (tmp_path / "sys/firmware/acpi/tables").mkdir(parents=True)
    code, lines = err_line(capsys, "dmar", "--root", str(tmp_path))
    assert code == 1 and len(lines) == 1
    assert "no DMAR table: the firmware reports no Intel VT-d IOMMU" in lines[0]
    (tmp_path / "sys/firmware/acpi/tables/IVRS").write_bytes(
        next((D / "ivrs").glob("*.dat")).read_bytes())
    code, lines = err_line(capsys, "dmar", "--root", str(tmp_path))
    assert code == 1 and "AMD IOMMU (IVRS table)" in lines[0]


def test_malformed_file_errors(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"XXXX\x00\x01")
    code, lines = err_line(capsys, "dmar", str(bad))
    assert code == 1
    assert lines == [f"error: {bad}: offset 0x0: signature 'XXXX': not an ACPI DMAR table"]
    short = tmp_path / "short.bin"
    short.write_bytes((D / "lab_DMAR.bin").read_bytes()[:40])
    code, lines = err_line(capsys, "dmar", str(short))
    assert code == 1 and len(lines) == 1 and "DMAR header needs 48" in lines[0]
    missing = tmp_path / "nope.bin"
    code, lines = err_line(capsys, "dmar", str(missing))
    assert code == 1 and lines == [f"error: {missing}: no such file"]
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    code, lines = err_line(capsys, "dmar", str(empty))
    assert code == 1 and lines == [f"error: {empty}: offset 0x0: empty file"]


def test_truncated_file_decodes_partially(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(X01.read_bytes()[:0x100])
    code, out, _ = run(capsys, "dmar", str(cut), "-f", "text")
    assert code == 0
    assert "table-truncated" in out and "malformed-structure" in out
    assert "base 0xbbbfc000" in out  # structures before the cut are all there


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "dmar", str(X01), "-f", "yaml")
    assert code == 2 and "--format" in err
    code, _, _ = run(capsys, "dmar", "--bogus")
    assert code == 2


def test_version(capsys: pytest.CaptureFixture) -> None:
    from kdumptool import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"kdumptool {__version__}\n"


def test_annotations_resolved_for_python39() -> None:
    """On Python < 3.10 typer reads string annotations unevaluated; main resolves them so
    ``FormatOpt``/``RootOpt`` (and ``Annotated[Optional[...], ...] = None``) keep their
    typer metadata. Exercised here on any Python."""
    import typing

    import typer

    from kdumptool.cli import dmar as dmar_cli
    from kdumptool.cli.main import _resolve_annotations, _strip_implicit_optional

    app = typer.Typer()
    dmar_cli.register(app)
    cb = app.registered_commands[0].callback
    saved = dict(cb.__annotations__)
    try:
        # As ``from __future__ import annotations`` leaves them (before any resolution).
        cb.__annotations__ = {"file": "Optional[Path]", "root": "RootOpt",
                              "fmt": "FormatOpt", "no_pci": "bool", "return": "None"}
        _resolve_annotations(app)
        for name in ("root", "fmt"):
            ann = cb.__annotations__[name]
            assert typing.get_origin(ann) is typing.Annotated, (name, ann)
    finally:
        cb.__annotations__ = saved
    opt = typing.Optional[typing.Annotated[typing.Optional[str], "meta"]]
    assert typing.get_origin(_strip_implicit_optional(opt)) is typing.Annotated
    assert _strip_implicit_optional(typing.Optional[int]) == typing.Optional[int]


def test_stdin(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    raw = (D / "text" / "lab_acpidump.txt").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, out, _ = run(capsys, "dmar", "-", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["source"] == "<stdin>"
    assert doc["structures"][0]["register_base_address"] == 0xFED90000
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, lines = err_line(capsys, "dmar", "-")
    assert code == 1 and lines == ["error: <stdin>: offset 0x0: empty input"]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from kdumptool.errors import SourceMissing

    with pytest.raises(SourceMissing):
        main(["--debug", "dmar", str(tmp_path / "nope.bin")])


def test_internal_error_is_one_line(capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import kdumptool.formats.dmar as fd

    def boom(*a: object, **k: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(fd, "parse_dmar", boom)
    code, lines = err_line(capsys, "dmar", str(X01))
    assert code == 1
    assert lines == ["error: internal error: ZeroDivisionError: simulated bug "
                     "(run with --debug for the traceback)"]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "dmar", str(X01)])


def test_rich_does_not_read_firmware_strings_as_markup(capsys: pytest.CaptureFixture,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.formats import dmar_builder as B

    monkeypatch.setenv("COLUMNS", "250")
    tbl = B.table([B.drhd(0xFED90000, [B.scope(3, 0xF0, [(0x1F, 0)])], flags=1),
                   B.andd(7, "[bold]\\_SB.X[/bold]")])
    p = tmp_path / "t.bin"
    p.write_bytes(tbl)
    code, out, _ = run(capsys, "dmar", str(p), "-f", "rich")
    assert code == 0
    lines = [ln for ln in out.splitlines() if "andd-unreferenced" in ln]
    assert len(lines) == 1 and "[bold]\\_SB.X[/bold]" in lines[0]


def test_fail_on(capsys: pytest.CaptureFixture) -> None:
    x02 = next((D / "tables").glob("X02_*.dat"))  # 2 errors, 1 warning
    assert run(capsys, "dmar", str(x02), "-f", "json", "--fail-on", "error")[0] == 3
    assert run(capsys, "dmar", str(X01), "-f", "json", "--fail-on", "warning")[0] == 0  # info only
    assert run(capsys, "dmar", str(X01), "-f", "json", "--fail-on", "info")[0] == 3
    assert run(capsys, "dmar", str(X01), "--fail-on", "bogus")[0] == 2


def test_bare_group_is_a_usage_error() -> None:
    """``kdumptool GROUP`` without its subcommand exits 2 on every click version."""
    import typer

    from kdumptool.cli.main import _bare_group

    app = typer.Typer()
    sub = typer.Typer(name="grp", no_args_is_help=True)

    @sub.command("x")
    def _x() -> None:
        pass

    app.add_typer(sub, name="grp")
    assert _bare_group(app, ["grp"]) and _bare_group(app, ["--debug", "grp"])
    assert not _bare_group(app, ["grp", "x"]) and not _bare_group(app, ["dmar"])
