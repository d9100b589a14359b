"""``pci -vv`` from the corpus's ``lspci -vvv -x...`` mails (../shared/corpus/lspci/hex)
against the lspci text printed beside the hex, on the fields that depend on config space
only: MSI/MSI-X state and addresses, DevSta, AER UESta.

Left out, with the reason: BARs and the expansion ROM (on a live host lspci prints the
kernel's resource addresses from sysfs, which differ from the config-space BARs behind
translating host bridges, e.g. arm64 N1SDP, and shows shadow ROMs as ``[virtual]``);
CESta/UEMsk (their words changed between pciutils versions). Older pciutils spelled DevSta
``UncorrErr``/``UnsuppReq``: translated before comparing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import pytest

from kdumptool.render.names import NUMERIC
from kdumptool.render.pci import render_config_lines
from kdumptool.sources.system import read_system_from_lspci
from tests.render.test_pci_vv_lspci import norm

FIELDS = re.compile(r"^(Capabilities: \[[0-9a-f]+\] MSI(-X)?:|Address:|Vector table:|PBA:|DevSta:|UESta:)")
OLD = (("UncorrErr", "NonFatalErr"), ("UnsuppReq", "UnsupReq"))


def blocks(path: Path) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    cur = None
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^([0-9a-f]{4}:)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ", line)
        if m:
            cur = out.setdefault((m.group(1) or "0000:") + m.group(2), [])
        elif cur is not None and line.startswith("\t"):
            cur.append(line)
    return out


def modern(line: str) -> str:
    for a, b in OLD:
        line = line.replace(a, b)
    return line


@pytest.mark.corpus
def test_vv_fields_equal_lspci_on_corpus(shared: Path) -> None:
    files = sorted((shared / "corpus/lspci/hex").glob("*.txt"))
    assert files
    compared = 0
    for f in files:
        system = read_system_from_lspci(f)
        text = blocks(f)
        for d in system.devices.values():
            if d.config is None or d.vendor_id == 0xFFFF:
                continue
            theirs = {modern(norm(x)) for x in text.get(d.bdf, []) if FIELDS.match(norm(x))
                      and (d.config.size > 256 or not norm(x).startswith("UESta:"))}  # -xxx: no AER bytes
            if not theirs:
                continue
            # only the fields the dump holds bytes for (a -x dump has no capabilities)
            ours = {norm(x) for x in render_config_lines(d, NUMERIC, 2) if FIELDS.match(norm(x))}
            assert ours == theirs, (f.name, d.short_bdf)
            compared += len(ours)
    assert compared > 100
