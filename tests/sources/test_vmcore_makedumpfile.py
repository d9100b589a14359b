"""makedumpfile as the producer: our ELF of a full lab crash is turned by makedumpfile
into an LZO kdump-compressed dump and an ELF (-E); every page we read from those equals
the lab's zlib dump. Corpus tier (needs ../shared and the makedumpfile binary)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kdumptool.formats.printk import decode_printk
from kdumptool.sources.vmcore import KdumpDump, open_dump
from tests.dumpwriter import DumpSpec, write_elf


@pytest.mark.corpus
def test_makedumpfile_lzo_and_elf_of_the_same_crash(shared, tmp_path):
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed")
    pytest.importorskip("lzokay")
    src = shared / "lab-captures" / "kdump" / "legacy_on" / "vmcore.d31.zlib.kdump"
    with open_dump(str(src)) as dump:
        assert isinstance(dump, KdumpDump)
        ps = dump.page_size
        pages = {}
        for s, e in dump.iter_dumped_ranges():
            for pfn in range(s // ps, e // ps):
                pages[pfn] = dump.read(pfn * ps, ps)
        spec = DumpSpec(pages=pages, vmcoreinfo=dump.vmcoreinfo.raw.encode(),
                        prstatus=[(p.pid, dict(p.registers)) for p in dump.prstatus],
                        max_mapnr=dump.max_mapnr)
        ref_log = decode_printk(dump.vmcoreinfo, dump.read_virt).records
        # Laid out like /proc/vmcore: the kernel image (live iomem: Kernel code .. bss)
        # also as a kernel-text PT_LOAD at SYMBOL(_stext).
        iomem = (shared / "lab-captures" / "live" / "legacy_on" / "iomem.txt").read_text()
        spans = {ln.split(" : ")[1]: [int(x, 16) for x in ln.strip().split(" : ")[0].split("-")]
                 for ln in iomem.splitlines() if " : Kernel " in ln}
        lo, hi = spans["Kernel code"][0], spans["Kernel bss"][1] + 1
        stext = dump.vmcoreinfo.symbol("_stext")
        assert stext is not None and dump.virt_to_phys(stext) == lo
    elf = tmp_path / "crash.elf"
    elf.write_bytes(write_elf(spec, filtered_in_memsz=False, kernel_text=(stext, lo, hi - lo)))
    del spec, pages
    lzo = tmp_path / "crash.lzo.kdump"
    out_e = tmp_path / "crash.E.elf"
    for args, out in ((["-l"], lzo), (["-E"], out_e)):
        r = subprocess.run(["makedumpfile", *args, "-d", "31", str(elf), str(out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-500:] + r.stderr[-500:]
    with open_dump(str(elf)) as ours:
        assert len(ours.describe()["kernel_text_aliases"]) == 1
    with open_dump(str(src)) as ref, open_dump(str(lzo)) as a, open_dump(str(out_e)) as b:
        assert a.header.compression == ("lzo",)
        compared_a = compared_b = filtered_zero = 0
        for s, e in ref.iter_dumped_ranges():
            for addr in range(s, e, ps):
                page = ref.read(addr, ps)
                assert a.read(addr, ps) == page
                compared_a += 1
                if b.is_dumped(addr):
                    assert b.read(addr, ps) == page
                    compared_b += 1
                else:
                    # makedumpfile -E left it out (p_memsz past p_filesz): a zero page.
                    assert not any(page)
                    filtered_zero += 1
        assert compared_a == ref.dumped_pages == 29070
        assert compared_b > 20000 and compared_b + filtered_zero == compared_a
        assert decode_printk(a.vmcoreinfo, a.read_virt).records == ref_log
        assert decode_printk(b.vmcoreinfo, b.read_virt).records == ref_log
