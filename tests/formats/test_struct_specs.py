"""The kdump and ELF headers are decoded with ``struct`` (importing construct costs ~40 ms
of every `vmcore log`); their construct specs stay the documented layouts. Both must agree
field by field, on the real dumps in fixtures/ and on random bytes."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.formats import diskdump as dd
from kdumptool.formats import elf
from tests.conftest import FIXTURES, REPO

KDUMPS = sorted(FIXTURES.glob("vmcore/**/*.kdump")) + sorted(FIXTURES.glob("lab/*/*.kdump"))
ELFS = sorted(FIXTURES.glob("vmcore/**/*.elf")) + [FIXTURES / "vmcore/lab_legacy_on.proc_vmcore.head"]


def _same(spec, fmt, fields, data):
    c = spec.parse(data[:fmt.size])
    values = dict(zip(fields, fmt.unpack_from(data)))
    for name, v in values.items():
        if name.startswith("ei_") and name not in ("ei_mag", "ei_rest"):
            v = bytes([v])  # construct gives Bytes(1)
        assert c[name] == v, name
    return values


def test_kdump_headers_of_every_fixture():
    assert len(KDUMPS) >= 6
    for p in KDUMPS:
        data = p.read_bytes()[:8192]
        h = _same(dd.DiskDumpHeaderStruct, dd.DISK_DUMP_HEADER, dd._DISK_DUMP_HEADER_FIELDS, data)
        sub = data[h["block_size"]:h["block_size"] + dd.KDUMP_SUB_HEADER_SIZE]
        _same(dd.KdumpSubHeaderStruct, dd.KDUMP_SUB_HEADER, dd._KDUMP_SUB_HEADER_FIELDS, sub)


def test_elf_headers_of_every_fixture():
    assert len(ELFS) >= 3
    for p in ELFS:
        h = _same(elf.Elf64EhdrStruct, elf._EHDR, elf._EHDR_FIELDS, p.read_bytes()[:64])
        assert h["e_type"] == elf.ET_CORE and h["e_machine"] == elf.EM_X86_64


@settings(deadline=None, max_examples=200)
@given(st.binary(min_size=dd.DISK_DUMP_HEADER_SIZE - 8, max_size=dd.DISK_DUMP_HEADER_SIZE - 8),
       st.binary(min_size=dd.KDUMP_SUB_HEADER_SIZE, max_size=dd.KDUMP_SUB_HEADER_SIZE),
       st.binary(min_size=elf.EHDR_SIZE - 4, max_size=elf.EHDR_SIZE - 4))
def test_random_headers(head, sub, ehdr):
    _same(dd.DiskDumpHeaderStruct, dd.DISK_DUMP_HEADER, dd._DISK_DUMP_HEADER_FIELDS, dd.KDUMP_SIGNATURE + head)
    _same(dd.KdumpSubHeaderStruct, dd.KDUMP_SUB_HEADER, dd._KDUMP_SUB_HEADER_FIELDS, sub)
    _same(elf.Elf64EhdrStruct, elf._EHDR, elf._EHDR_FIELDS, elf.ELFMAG + ehdr)


def test_reading_a_dump_does_not_import_construct():
    code = ("import sys; from kdumptool.sources.vmcore import open_dump\n"
            "from kdumptool.formats.printk import decode_printk\n"
            "d = open_dump(sys.argv[1]); decode_printk(d.vmcoreinfo, d.read_virt)\n"
            "print('construct' in sys.modules)")
    for p in (FIXTURES / "vmcore/legacy_on.trim.kdump", FIXTURES / "vmcore/legacy_on.trim.elf"):
        r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True,
                           cwd=REPO, timeout=60)
        assert r.stdout.strip() == "False", r.stderr[-500:]
