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

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

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


@pytest.mark.parametrize("key", LEGACY_ON)
def test_plain_install_reads_every_dump_alike(key: str, plain_kdumptool: Path) -> None:
    run: Run = get_run(key)
    saved = str(run.path("live", "drhd_regs_final.txt"))
    t0 = time.monotonic()
    outs: Dict[Tuple[str, str], str] = {}
    for d in written_dumps(run):
        fmt, path = d["format"], str(run.path("kdump", d["file"]))
        for cmd, extra in (("log", []), ("iommu", ["--saved", saved]), ("scan", [])):
            args = ["vmcore", cmd, path, *extra, "-f", "text"]
            plain, here = _plain(plain_kdumptool, *args), kdumptool(*args)
            assert plain.returncode == 0 and plain.stderr == "", \
                f"{key} ({fmt}): plain install: vmcore {cmd}: rc={plain.returncode} {plain.stderr[-800:]}"
            assert (plain.stdout, plain.stderr, plain.returncode) == (here.stdout, here.stderr, here.returncode), \
                f"{key} ({fmt}): vmcore {cmd}: the plain install's output differs from the checkout's"
            outs[fmt, cmd] = plain.stdout.replace(path, "DUMP")
    fmts = sorted({f for f, _ in outs})
    assert "elfd31" in fmts and "elf" in fmts and "zlib" in fmts, f"{key}: dumps {fmts}"
    ref = fmts[0]
    for fmt in fmts[1:]:
        for cmd in ("log", "iommu"):
            assert outs[fmt, cmd] == outs[ref, cmd], f"{key}: vmcore {cmd} of the {fmt} dump differs from the {ref} dump's"
        assert _scan_roots(outs[fmt, "scan"]) == _scan_roots(outs[ref, "scan"]), \
            f"{key}: vmcore scan of the {fmt} dump finds other root tables than the {ref} dump's"
    assert _scan_roots(outs[ref, "scan"]), f"{key}: the scan found no valid root table"
    print(f"{key}: {len(fmts)} dumps ({', '.join(fmts)}) x 3 commands, plain = checkout, "
          f"identical across formats, in {time.monotonic() - t0:.1f}s")
