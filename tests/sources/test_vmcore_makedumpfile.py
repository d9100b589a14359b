"""makedumpfile as the producer: our ELF of a full lab crash is turned by makedumpfile
into an LZO kdump-compressed dump and an ELF (-E); every page we read from those equals
the lab's zlib dump, and ``vmcore iommu`` of the -E dump is the lab's independent decode
of the same crash (roottable_check_zlib.txt). Corpus tier (needs ../shared and the
makedumpfile binary)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from kdumptool.formats.printk import decode_printk
from kdumptool.sources.vmcore import KdumpDump, open_dump
from tests.cliutil import run
from tests.dumpwriter import DumpSpec, write_elf
from tests.vtd_oracle import parse_roottable_check


@pytest.mark.corpus
def test_makedumpfile_lzo_and_elf_of_the_same_crash(shared, tmp_path, capsys):
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
    # The VT-d tables read from makedumpfile's -E output: the independent decode's root,
    # DIDs and mapped page counts, device for device.
    oracle = parse_roottable_check((shared / "lab-captures" / "kdump" / "legacy_on" / "roottable_check_zlib.txt").read_text())
    code, out, err = run(capsys, "vmcore", "iommu", str(out_e), "--saved",
                         str(shared / "lab-captures" / "live" / "legacy_on" / "drhd_regs.txt"), "-f", "json")
    obj = json.loads(out)
    assert (obj["root_table"]["address"], obj["root_table"]["mode"]) == (oracle.root, oracle.mode)
    assert len(obj["devices"]) == len(oracle.devices)
    for d in obj["devices"]:
        od = oracle.devices[d["bdf"].split(":", 1)[1]]
        assert (d["domain_id"], d["mapped_4k_pages"], d["mapped_large_pages"]) == (
            od.fields["DID"], od.mapped_4k, od.mapped_large), d["bdf"]
    # makedumpfile -E leaves out long runs of excluded pages, zero pages among them, where
    # the kdump format keeps every zero page (pointing at one shared zero page). In this
    # crash one level-1 page table of 00:03.0 is such an empty page: the -E dump does not
    # hold it, and vmcore iommu says so (filtered; exit 3) instead of reading zeros.
    gaps = [u for d in obj["devices"] for u in d["unreadable_tables"]] + obj["unreadable_tables"]
    assert (code == 3) == bool(gaps) and code in (0, 3), err
    with open_dump(str(src)) as ref:
        for u in gaps:
            assert u["why"] == "filtered" and ref.read(u["paddr"], ps) == bytes(ps), u
