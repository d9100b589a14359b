"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` package)
loads the sm_mismatch lab crash's triage page from a file, and the DOM *it* built is
checked for the verdict, every finding, the risky devices and their bridges, and the
memory map's rows; a screenshot must come out as a PNG of the window's size.

CI installs chromium (.ci/run) and sets KDUMPTOOL_CI=1: there a missing browser FAILS this
test. Elsewhere it is skipped with the reason (apt-get install chromium to run it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import List

import pytest

from tests.htmldom import parse
from tests.render.test_html import SM_ARGS, check_self_contained, check_triage_dom

_TIMEOUT = 120


def _chromium() -> str:
    for name in (os.environ.get("KDUMPTOOL_CHROMIUM") or "", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    msg = "no headless Chromium (Debian: apt-get install chromium)"
    if os.environ.get("KDUMPTOOL_CI") == "1":
        pytest.fail(msg + ": CI must run the browser test (.ci/run installs it)")
    pytest.skip(msg)


def _browser(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd: List[str] = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                      "--disable-extensions", "--disable-background-networking", f"--user-data-dir={tmp / 'profile'}",
                      *args]
    env = dict(os.environ, HOME=str(tmp))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, env=env, cwd=tmp, check=False)


def _main(*args: str) -> str:
    from kdumptool.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main(list(args))
        except SystemExit:
            pass
    return buf.getvalue()


def test_chromium_renders_the_sm_mismatch_report(tmp_path: Path) -> None:
    page = _main(*SM_ARGS, "-f", "html")
    check_self_contained(page)
    report = json.loads(_main(*SM_ARGS, "-f", "json"))
    html_file = tmp_path / "sm_mismatch.html"
    html_file.write_text(page)
    url = html_file.as_uri()

    dom = _browser(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    doc = parse(dom.stdout)
    # the browser's DOM, not our text: it parsed the page into these elements
    assert doc.find_all("html") and doc.find_all("body")
    check_triage_dom(doc, report)
    assert not doc.find_all("script")
    svg = doc.find_all("svg", id="memory-svg")[0]
    assert len(svg.find_all("rect", cls="seg")) >= 10

    png = tmp_path / "shot.png"
    shot = _browser(tmp_path, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={png}", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1600)
    assert len(data) > 50_000  # a page of text and colour, not a blank window
