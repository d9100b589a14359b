#!/usr/bin/env python3
"""Run by .ci/wheel-smoke with the python of a clean venv holding only the built wheel:
every dump format in fixtures/ decodes to the same pages and the same `vmcore log` and
`vmcore iommu` output as the zlib dump (makedumpfile -E: as the zlib dump of its own crash,
`vmcore scan` too), and every lab cut's `vmcore log` is what makedumpfile --dump-dmesg
printed for it, with the compiled decompressors and (``--pure``)
with the pure-Python fallbacks. Imports kdumptool from the venv, never from the checkout.

    VENV/bin/python tools/check_plain_install.py REPO [--pure]
"""

from __future__ import annotations

import importlib.util
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path


def main() -> int:
    repo = Path(sys.argv[1]).resolve()
    pure = "--pure" in sys.argv
    if pure:  # as on a Python without the compiled LZO and snappy modules
        sys.modules["lzokay"] = None  # type: ignore[assignment]
        sys.modules["cramjam"] = None  # type: ignore[assignment]
    import kdumptool
    from kdumptool.cli.main import main as cli
    from kdumptool.sources.vmcore import open_dump

    where = Path(kdumptool.__file__).resolve()
    assert repo not in where.parents, f"kdumptool imported from the checkout: {where}"
    spec = importlib.util.spec_from_file_location("dumpwriter", repo / "tests" / "dumpwriter.py")
    assert spec is not None and spec.loader is not None
    dw = importlib.util.module_from_spec(spec)
    sys.modules["dumpwriter"] = dw
    spec.loader.exec_module(dw)

    fx = repo / "fixtures" / "vmcore"
    zlib_dump = fx / "vtd" / "legacy_on.trim.kdump"
    saved = fx / "vtd" / "legacy_on"

    def pages(path: Path) -> dict:
        with open_dump(str(path)) as d:
            ps = d.page_size
            return {a // ps: d.read(a, ps) for s, e in d.iter_dumped_ranges() for a in range(s, e, ps)}

    def output(*args: str) -> str:
        buf = io.StringIO()
        with redirect_stdout(buf):
            try:
                cli(list(args))
            except SystemExit as e:
                assert not e.code, f"kdumptool {' '.join(args)}: exit {e.code}"
        return buf.getvalue()

    def outputs(path: Path) -> str:
        return "".join(output(*a).replace(str(path), "DUMP") for a in (
            ["vmcore", "log", str(path), "-f", "text"],
            ["vmcore", "iommu", str(path), "--saved", str(saved), "-f", "text"]))

    ref_pages, ref_out = pages(zlib_dump), outputs(zlib_dump)
    dumps = {"zlib": zlib_dump, "lzo (makedumpfile -l)": fx / "lzo" / "legacy_on.lzo.trim.kdump",
             "raw ELF": fx / "vtd" / "legacy_on.trim.elf"}
    with open_dump(str(zlib_dump)) as d:
        ps = d.page_size
        ram = {a // ps for s, e in d.iter_ram_ranges() for a in range(s, e, ps)}
        spec_ = dw.DumpSpec(pages=ref_pages, filtered=ram - set(ref_pages),
                            vmcoreinfo=d.vmcoreinfo.raw.encode(),
                            prstatus=[(p.pid, dict(p.registers)) for p in d.prstatus],
                            max_mapnr=d.max_mapnr, phys_base=d.phys_base or 0)
    tmp = Path(sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("-") else "/tmp")
    if pure:  # building needs the compressors: write first, then hide them again
        del sys.modules["cramjam"]
    for method in ("snappy", "zstd"):
        p = tmp / f"plain-install.{method}.kdump"
        p.write_bytes(dw.write_kdump(spec_, method))
        dumps[f"{method} (built in code)"] = p
    if pure:
        sys.modules["cramjam"] = None  # type: ignore[assignment]
    for name, path in dumps.items():
        got = pages(path)
        assert got == ref_pages if "ELF" not in name else all(got[p] == ref_pages[p] for p in ref_pages), name
        assert outputs(path) == ref_out, f"{name}: vmcore log/iommu output differs from the zlib dump's"
        print(f"  {name:24} {len(ref_pages)} pages, vmcore log + iommu identical to zlib")
    # makedumpfile -E (ELF, -d 31) of another lab crash, restored from its sparse cut
    # (makedumpfile's headers and page offsets): the same output as that crash's zlib dump
    # (scan: but for the page counts of its first line, which describe the file).
    spec = importlib.util.spec_from_file_location("sparsecut", repo / "tests" / "sparsecut.py")
    assert spec is not None and spec.loader is not None
    sc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sc)
    ed = fx / "elfd31"
    e_dump = tmp / "plain-install.d31.elf"
    sc.restore_cut(ed / "legacy_on.d31.elf.cut", e_dump)
    e_ref = ed / "legacy_on.d31.zlib.trim.kdump"
    for args in (["vmcore", "log"], ["vmcore", "iommu", "--saved", str(ed / "legacy_on")], ["vmcore", "scan"]):
        got, want = (output(*args[:2], str(p), *args[2:], "-f", "text").replace(str(p), "DUMP")
                     for p in (e_dump, e_ref))
        if args[1] == "scan":
            got, want = got.split("\n", 1)[1], want.split("\n", 1)[1]
        assert got == want, f"makedumpfile -E: vmcore {args[1]} differs from the zlib dump's"
    print(f"  {'makedumpfile -E (cut)':24} {e_dump.stat().st_size:,} bytes, vmcore log + iommu + scan "
          "identical to its zlib dump")
    # Every other dump in fixtures/ (the lab's cuts from 5.10, 6.1 and 6.12 kernels, ELF
    # and kdump): `vmcore log` line for line what makedumpfile --dump-dmesg printed for
    # the same dump (the oracle kept beside each cut).
    oracles = [(c / "vmcore.trim.kdump", c / "makedumpfile_dmesg.txt")
               for c in sorted((repo / "fixtures" / "lab").iterdir()) if c.is_dir()]
    for run in ("legacy_on", "sm_mismatch_vmcore"):
        for ext in ("kdump", "elf"):
            oracles.append((fx / f"{run}.trim.{ext}", fx / f"{run}.makedumpfile_dmesg.txt"))
    oracles.append((fx / "lzo" / "legacy_on.lzo.trim.kdump", fx / "legacy_on.makedumpfile_dmesg.txt"))
    oracles.append((e_dump, ed / "legacy_on" / "makedumpfile_dmesg.txt"))
    # makedumpfile -F -l (kdump-utils' ssh/raw target), read as the stream, not rebuilt
    oracles.append((fx / "flat" / "legacy_on.lzo.cut.flat", fx / "legacy_on.makedumpfile_dmesg.txt"))
    for dump, oracle in oracles:
        assert dump.is_file() and oracle.is_file(), f"{dump} or {oracle} missing"
        got = output("vmcore", "log", str(dump), "-f", "text").splitlines()
        assert got == oracle.read_text(errors="surrogateescape").splitlines(), \
            f"{dump}: vmcore log differs from makedumpfile --dump-dmesg ({oracle})"
    print(f"  {len(oracles)} lab/fixture dumps: vmcore log = makedumpfile --dump-dmesg, line for line")
    print(f"plain install OK ({'pure-Python LZO/snappy' if pure else 'compiled decompressors'}), "
          f"Python {sys.version.split()[0]}, kdumptool from {where.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
