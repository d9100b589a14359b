"""Every real dump legacy_on's kdump kernel wrote, read by a plain install (issue 13).

``python3 -m venv X && X/bin/pip install COPY`` (no -e, no extras; COPY is the checkout's
tracked files, so nothing of the checkout is importable from X), once per session. For
every dump of every legacy_on run (zlib, lzo, zstd and snappy when makedumpfile has them,
makedumpfile -E, the raw copy of /proc/vmcore): ``vmcore log``, ``vmcore iommu --saved``
(the live kernel's RTADDR) and ``vmcore scan`` print the same from the plain install as
from this checkout (the tier's other tests check those against makedumpfile, the spec
decode and the live kernel), and the same for every format: log and iommu byte for byte,
scan the same root table and valid candidates (its page counts describe the file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from tests.lab.conftest import get_run
from tests.lab.labrun import NAMES, REPO, Run, kdumptool
from tests.lab.test_vmcore import written_dumps

pytestmark = pytest.mark.lab

LEGACY_ON = [k for k in NAMES if k.partition("@")[0] == "legacy_on"]


@pytest.fixture(scope="session")
def plain_kdumptool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kdumptool of a clean venv with a plain ``pip install`` of this checkout."""
    t0 = time.monotonic()
    base = tmp_path_factory.mktemp("plain")
    copy = base / "kdumptool"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        src = REPO / rel
        if rel and src.is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / rel)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(copy)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"pip install {copy}: {r.stdout[-1500:]}{r.stderr[-1500:]}"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import kdumptool; print(kdumptool.__file__)"],
                           capture_output=True, text=True, cwd=base, env=_env(), check=True).stdout.strip()
    assert where.startswith(str(venv)), f"plain install imports kdumptool from {where}"
    print(f"plain install: venv + pip install in {time.monotonic() - t0:.1f}s")
    return venv / "bin" / "kdumptool"


def _env() -> Dict[str, str]:
    """The environment without this checkout on the import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(COLUMNS="200", TERM="dumb")
    return env


def _plain(kt: Path, *args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([str(kt), *args], capture_output=True, text=True, env=_env(),
                          cwd=kt.parent.parent.parent, timeout=600)


def _scan_roots(text: str) -> List[str]:
    """The picked root table and the valid candidates' rows of ``vmcore scan``."""
    return [ln for ln in text.splitlines() if ln.startswith("root table:") or re.search(r"\s(legacy|scalable)\s+yes\s", ln)]


def _iommu_view(doc: Dict[str, Any]) -> Tuple[Any, List[Tuple[Any, ...]], List[Tuple[int, str]]]:
    """(root table, every device's decode, the table pages it could not read)."""
    devs = [(d["bdf"], d.get("present"), d.get("translation_type"), d.get("domain_id"), d.get("pt_root"),
             d.get("mapped_4k_pages"), d.get("mapped_large_pages"), json.dumps(d.get("extents"), sort_keys=True))
            for d in doc["devices"]]
    gaps = [(u["paddr"], u["why"]) for d in doc["devices"] for u in d.get("unreadable_tables", [])]
    gaps += [(u["paddr"], u["why"]) for u in doc.get("unreadable_tables", [])]
    return doc["root_table"], devs, sorted(gaps)


@pytest.mark.parametrize("key", LEGACY_ON)
def test_plain_install_reads_every_dump_alike(key: str, plain_kdumptool: Path) -> None:
    """Plain install = checkout, byte for byte, for every dump and command; across formats
    the same log, the same VT-d decode and the same root tables found by the scan. One
    difference is allowed, and checked: makedumpfile -E leaves out long runs of excluded
    pages, zero pages among them, which the kdump format keeps (each pointing at one
    shared zero page): a page-table page that was all zeros is then not in the -E dump,
    and vmcore iommu names it (filtered, exit 3) where the zlib dump reads an empty table."""
    run: Run = get_run(key)
    saved = str(run.path("live", "drhd_regs_final.txt"))
    t0 = time.monotonic()
    outs: Dict[Tuple[str, str], str] = {}
    codes: Dict[str, int] = {}
    views = {}
    paths = {}
    for d in written_dumps(run):
        fmt, path = d["format"], str(run.path("kdump", d["file"]))
        paths[fmt] = path
        for cmd, extra in (("log", []), ("iommu", ["--saved", saved]), ("scan", [])):
            args = ["vmcore", cmd, path, *extra, "-f", "text"]
            plain, here = _plain(plain_kdumptool, *args), kdumptool(*args)
            assert plain.returncode in ((0, 3) if cmd == "iommu" else (0,)), \
                f"{key} ({fmt}): plain install: vmcore {cmd}: rc={plain.returncode} {plain.stderr[-800:]}"
            assert (plain.stdout, plain.stderr, plain.returncode) == (here.stdout, here.stderr, here.returncode), \
                f"{key} ({fmt}): vmcore {cmd}: the plain install's output differs from the checkout's"
            outs[fmt, cmd] = plain.stdout.replace(path, "DUMP")
            if cmd == "iommu":
                codes[fmt] = plain.returncode
                views[fmt] = _iommu_view(json.loads(_plain(plain_kdumptool, *args[:-1], "json").stdout))
    fmts = sorted(paths)
    assert {"elfd31", "elf", "zlib"} <= set(fmts), f"{key}: dumps {fmts}"
    ref = "zlib"
    assert not views[ref][2] and codes[ref] == 0, f"{key}: the zlib dump lacks VT-d table pages: {views[ref][2]}"
    from kdumptool.sources.vmcore import open_dump

    for fmt in fmts:
        assert outs[fmt, "log"] == outs[ref, "log"], f"{key}: vmcore log of the {fmt} dump differs from the zlib dump's"
        assert _scan_roots(outs[fmt, "scan"]) == _scan_roots(outs[ref, "scan"]), \
            f"{key}: vmcore scan of the {fmt} dump finds other root tables than the zlib dump's"
        assert views[fmt][:2] == views[ref][:2], f"{key}: vmcore iommu of the {fmt} dump decodes other devices"
        gaps = views[fmt][2]
        if not gaps:
            assert outs[fmt, "iommu"] == outs[ref, "iommu"] and codes[fmt] == 0, \
                f"{key}: vmcore iommu of the {fmt} dump differs from the zlib dump's"
            continue
        assert fmt == "elfd31" and codes[fmt] == 3, f"{key} ({fmt}): table pages not read: {gaps}"
        with open_dump(paths[ref]) as z:
            for paddr, why in gaps:
                assert why == "filtered" and z.read(paddr, 4096) == bytes(4096), \
                    f"{key}: -E lacks table page {paddr:#x} ({why}), which is not a zero page in the zlib dump"
    assert _scan_roots(outs[ref, "scan"]), f"{key}: the scan found no valid root table"
    print(f"{key}: {len(fmts)} dumps ({', '.join(fmts)}) x 3 commands, plain = checkout, "
          f"same decode across formats, in {time.monotonic() - t0:.1f}s")
