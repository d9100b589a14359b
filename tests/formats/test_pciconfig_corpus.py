"""The config decoder against lspci -vvv on every hex dump in ../shared/corpus/lspci/hex.

Files are listed in SOURCES.tsv; a hex file whose ``content`` is ``hex+vvv`` carries the
-vvv text of the same devices (lspci -vvvxxx, or both outputs pasted in one mail); hex-only
files must still decode. Fields compared: command and status bits, capability IDs/names
and offsets, extended capability offsets, PCIe port type, AER and ACS flag lines, and the
ATS, PASID, PRI and SR-IOV fields lspci prints (one 4096-byte dump in the corpus has all)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from kdumptool.formats.lspci_dump import parse_lspci_dump
from kdumptool.formats.pciconfig import parse_pci_config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sources"))
sys.path.insert(0, str(HERE))
from lspci_oracle import parse_vvv  # noqa: E402
from pci_agreement import disagreements  # noqa: E402


@pytest.mark.corpus
def test_every_corpus_hex_dump_agrees_with_lspci(shared):
    base = shared / "corpus" / "lspci"
    with open(base / "SOURCES.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["subdir"] == "hex"]
    assert rows
    compared = 0
    ext_values = 0
    problems = []
    for row in rows:
        text = (base / "hex" / row["file"]).read_text(errors="replace")
        devs = parse_lspci_dump(text, row["file"])
        assert devs, row["file"]
        whole = parse_vvv(text, quoted=True)
        counts: dict = {}
        for d in devs:
            counts[d.bdf] = counts.get(d.bdf, 0) + 1
        for d in devs:
            if len(d.data) < 64:
                continue
            parse_pci_config(d.data)  # every dump decodes
            o = parse_vvv(d.bdf[5:] + " x\n" + "\n".join(d.text)).get(d.bdf)
            if (o is None or not o.control) and counts[d.bdf] == 1 and d.bdf in whole:
                o = whole[d.bdf]
            if o is None or not o.control:
                continue
            compared += 1
            if len(d.data) >= 4096:
                ext_values += len(o.ext_values)
            for p in disagreements(d.data, o):
                problems.append(f"{row['file']} {d.bdf}: {p}")
    print(f"corpus: {len(rows)} hex files, {compared} devices compared with lspci -vvv, "
          f"{ext_values} ATS/PASID/PRI/SR-IOV fields")
    assert compared >= len(rows) // 2
    assert ext_values > 0  # the i915 dump in 038 carries all four
    assert problems == []
