"""The flattened dump (``makedumpfile -F -c -d 31 /proc/vmcore | compress > dump-incomplete``,
kdump-config's savecore) that Debian's kdump-tools wrote in the QEMU lab, read in place:
``kdumptool vmcore info`` names it, the image we reassemble is byte-identical to what the
host's ``makedumpfile -R`` rebuilds, and ``vmcore log`` of the stream prints what
``makedumpfile --dump-dmesg`` prints of the rebuilt file. ``pytest -m lab``; shares the
scenario run of tests/distro/test_lab_debian_kdump_tools.py (no extra boot)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import need_tool
from tests.distro.test_lab_debian_kdump_tools import _run, _stamp_dir

pytestmark = pytest.mark.lab


def test_kdump_tools_flat_dump_is_read_in_place(tmp_path):
    from tests.lab.labrun import kdumptool

    d = _stamp_dir(_run())
    dump = d / f"dump.{d.name}"
    info = kdumptool("vmcore", "info", str(dump), "-f", "json")
    assert info.returncode == 0, info.stderr[-2000:]
    obj = json.loads(info.stdout)
    assert obj["format"] == "kdump-compressed" and obj["dump_level"] == 31 and obj["compression"] == ["zlib"]
    fl = obj["flattened"]
    assert fl["end_marker"] is not None and not fl["truncated"] and fl["blocks"] > 100, fl
    need_tool("makedumpfile", "the oracle")
    rebuilt = tmp_path / "vmcore"
    with open(dump, "rb") as src:
        p = subprocess.run(["makedumpfile", "-R", str(rebuilt)], stdin=src, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    from kdumptool.sources.flat import FlatImage

    fd = os.open(dump, os.O_RDONLY)
    try:
        im = FlatImage(str(dump), fd)
        assert im.size == rebuilt.stat().st_size == fl["image_size"]
        with open(rebuilt, "rb") as ref:
            for pos in range(0, im.size, 4 << 20):
                assert im.pread(4 << 20, pos) == ref.read(4 << 20), hex(pos)
    finally:
        os.close(fd)
    out = tmp_path / "dmesg.txt"
    p = subprocess.run(["makedumpfile", "--dump-dmesg", str(rebuilt), str(out)], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    log = kdumptool("vmcore", "log", str(dump), "-f", "text")
    assert log.returncode == 0, log.stderr[-2000:]
    assert log.stdout == out.read_text(errors="surrogateescape")
    assert "sysrq: Trigger a crash" in log.stdout
