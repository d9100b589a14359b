"""Host-side post-mortem of the dumps each scenario's kdump kernel wrote (makedumpfile -d 31
with zlib/lzo, -E, and a raw copy of /proc/vmcore), against what was read live before
the crash: the RTADDR (busybox devmem), the IOMMU groups (sysfs) and the kernel's log.

The VT-d tables are also decoded here by a few lines written from the VT-d spec (rev 4.1,
9.1-9.4: root, context and scalable-mode entries), used only as a cross-check of
``kdumptool vmcore iommu``."""

from __future__ import annotations

import json
import re
import struct
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.lab.expect import expect
from tests.lab.labrun import Run, has_command, kdumptool
from tests.vtd_spec import spec_contexts

pytestmark = pytest.mark.lab


def written_dumps(run: Run) -> List[Dict[str, Any]]:
    dumps = [d for d in run.dumps() if d.get("rc") == "0" and int(d.get("size", "0")) > 0]
    assert dumps, f"{run.name}: the kdump kernel wrote no dump: {run.text('kdump', 'dumps.txt')}"
    return dumps


def dump_paths(run: Run) -> Iterator[Tuple[str, str]]:
    for d in written_dumps(run):
        yield d["format"], str(run.path("kdump", d["file"]))


def live_rtaddr(run: Run) -> int:
    """The crashed kernel's RTADDR; skips the test when it had translation off (no tables)."""
    if not expect(run.name)["live_vtd"]:
        pytest.skip(f"{run.name}: the crashed kernel ran intel_iommu=off: no VT-d tables in the dump")
    return run.regs("live", "drhd_regs_final.txt")["RTADDR"]


def raw_read(run: Run, paddr: int, size: int) -> bytes:
    """Physical memory from the raw copy of /proc/vmcore (ELF64 program headers parsed
    here, independently of kdumptool); from kdumptool's reader of the zlib dump when the
    scenario kept no raw copy."""
    path = run.path("kdump", "vmcore.elf")
    if not path.is_file():
        from kdumptool.sources.vmcore import open_dump

        other = next(p for f, p in dump_paths(run))
        with open_dump(other) as d:
            return d.read(paddr, size)
    with open(path, "rb") as f:
        eh = f.read(64)
        assert eh[:4] == b"\x7fELF" and eh[4] == 2, f"{run.name}: vmcore.elf is not ELF64"
        phoff, phentsize, phnum = struct.unpack_from("<Q", eh, 32)[0], *struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, _flags, off, _vaddr, paddr0, filesz, _memsz, _align = struct.unpack_from("<IIQQQQQQ", ph, i * phentsize)
            # PT_LOAD of RAM (the kernel-text PT_LOAD overlaps RAM and holds the same bytes).
            if p_type == 1 and paddr0 <= paddr and paddr + size <= paddr0 + filesz:
                f.seek(off + paddr - paddr0)
                return f.read(size)
    raise AssertionError(f"{run.name}: {paddr:#x} is in no PT_LOAD of vmcore.elf")


# The independent decode of the root/context tables (spec 9.1-9.4): tests/vtd_spec.py


def live_group_devices(run: Run) -> List[str]:
    out: List[str] = []
    for ln in run.text("live", "iommu_groups.txt").splitlines():
        m = re.match(r"group \d+ type=\S* devices=(.*)", ln)
        if m:
            out += m.group(1).split()
    return sorted(out)


def _kdt_json(*args: str) -> Any:
    r = kdumptool(*args, "-f", "json")
    assert r.returncode == 0, f"kdumptool {' '.join(args)}: rc={r.returncode} {r.stderr[-2000:]}"
    return json.loads(r.stdout)


def _find(obj: Any, key: str) -> List[Any]:
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.lower() == key:
                found.append(v)
            found += _find(v, key)
    elif isinstance(obj, list):
        for v in obj:
            found += _find(v, key)
    return found


# -- the dumps themselves ---------------------------------------------------------------------

def test_dumps_written(run: Run) -> None:
    """Every format asked for was written, or skipped because makedumpfile -v says it was
    built without it; the raw copy is exactly /proc/vmcore's size."""
    version = run.text("kdump", "makedumpfile_v.txt")
    for d in run.dumps():
        if "skipped:" in d["line"]:
            assert re.search(rf"^{d['format']}\s+disabled", version, re.M), f"{run.name}: {d['line']}"
            continue
        assert d.get("rc") == "0", f"{run.name}: dump {d['line']}"
        if d["format"] == "elf":
            size = int(run.text("kdump", "vmcore_ls.txt").split()[4])
            assert int(d["size"]) == size, f"{run.name}: raw copy {d['size']} bytes, /proc/vmcore {size}"
    written_dumps(run)


def test_dump_reads_like_the_raw_vmcore(dump: Tuple[Run, str, str]) -> None:
    """kdumptool's reader gives, for the crashed kernel's root table and every context table
    it points to, the bytes of /proc/vmcore itself (the raw copy, read by the few lines of
    ELF program-header code in raw_read(), or, without a raw copy, the zlib dump)."""
    from kdumptool.sources.vmcore import open_dump

    run, fmt, path = dump
    rt = live_rtaddr(run)
    pages = [rt & ~0xFFF]
    root = raw_read(run, pages[0], 4096)
    for i in range(0, 4096, 8):
        e = int.from_bytes(root[i:i + 8], "little")
        if e & 1:
            pages.append(e & ~0xFFF & ((1 << 52) - 1))
    with open_dump(path) as d:
        for p in pages:
            assert d.is_dumped(p), f"{run.name} ({fmt}): VT-d table page {p:#x} not in the dump"
            assert d.read(p, 4096) == raw_read(run, p, 4096), f"{run.name} ({fmt}): page {p:#x} differs from /proc/vmcore"
    assert any(root), f"{run.name}: the root table page is all zeros"


def test_vmcore_info_matches_live_kernel(dump: Tuple[Run, str, str]) -> None:
    run, fmt, path = dump
    if not has_command("vmcore", "info"):
        pytest.skip("kdumptool vmcore info is not in this tree")
    uname = run.text("live", "uname.txt").strip()
    doc = _kdt_json("vmcore", "info", path)
    rel = [v for v in _find(doc, "osrelease") if isinstance(v, str)]
    assert uname in rel, f"{run.name} ({fmt}): vmcore info osrelease {rel} != live uname {uname}"


def _c_escape(line: str) -> str:
    return "".join(c if 0x20 <= ord(c) < 0x7F or c in "\t\v\f\r" else
                   "".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape")) for c in line)


def test_vmcore_log_is_the_crashed_kernels(dump: Tuple[Run, str, str]) -> None:
    """The log read from the dump ends with the panic, and contains the last lines the live
    kernel printed before it (busybox dmesg, read just before the sysrq)."""
    run, fmt, path = dump
    if not has_command("vmcore", "log"):
        pytest.skip("kdumptool vmcore log is not in this tree")
    before = [ln for ln in run.text("live", "dmesg_final.txt").splitlines() if ln.startswith("[")][-25:]
    r = kdumptool("vmcore", "log", path, "-f", "text")
    assert r.returncode == 0, f"{run.name} ({fmt}): vmcore log rc={r.returncode} {r.stderr[-1500:]}"
    text = r.stdout
    assert "sysrq: Trigger a crash" in text, f"{run.name} ({fmt}): no sysrq line in the vmcore log"
    assert "Kernel panic - not syncing: sysrq triggered crash" in text, f"{run.name} ({fmt}): no panic line"
    lines = set(text.splitlines())
    # busybox dmesg prints the ring's bytes raw; makedumpfile (and vmcore log) print a
    # byte that is neither printable ASCII nor whitespace as \\xNN (C-locale isprint/
    # isspace): the live kernel's "Invalid ELF header magic: != \\x7fELF" line.
    missing = [ln for ln in before if ln not in lines and _c_escape(ln) not in lines]
    assert not missing, f"{run.name} ({fmt}): live dmesg lines missing from the vmcore log: {missing[:5]}"


def test_vmcore_log_equals_makedumpfile(dump: Tuple[Run, str, str]) -> None:
    """`kdumptool vmcore log` = `makedumpfile --dump-dmesg /proc/vmcore` run in the kdump
    kernel (Debian 12's makedumpfile 1.7.2), line for line, with no warning: escapes
    (\\x7f) and continuation-line indents included, on every kernel of the axis."""
    run, fmt, path = dump
    ref = run.path("kdump", "makedumpfile_dmesg.txt")
    if not ref.is_file():
        pytest.skip(f"{run.name}: the guest kept no makedumpfile --dump-dmesg output")
    r = kdumptool("vmcore", "log", path, "-f", "text")
    assert r.returncode == 0 and r.stderr == "", f"{run.name} ({fmt}): rc={r.returncode} {r.stderr[-800:]}"
    want = ref.read_bytes().decode("utf-8", "surrogateescape").splitlines()
    got = r.stdout.splitlines()
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(got, want)) if a != b][:3]
    assert len(got) == len(want) and not diff, f"{run.name} ({fmt}): {len(got)} vs {len(want)} lines; first differences {diff}"


def test_vmcore_info_and_iommu_warn_nothing(dump: Tuple[Run, str, str]) -> None:
    """No warning the dump does not deserve (6.12's hex NUMBER() values are values)."""
    run, fmt, path = dump
    r = kdumptool("vmcore", "info", path, "-f", "text")
    assert r.returncode == 0 and r.stderr == "", f"{run.name} ({fmt}): vmcore info: {r.stderr[-800:]}"
    if expect(run.name)["live_vtd"]:
        r = kdumptool("vmcore", "iommu", path, "--rtaddr", f"{live_rtaddr(run):#x}", "-f", "text")
        assert r.returncode == 0 and r.stderr == "", f"{run.name} ({fmt}): vmcore iommu: {r.stderr[-800:]}"


def test_vmcore_log_in_guest(run: Run) -> None:
    """The kdump kernel's own kdumptool read /proc/vmcore's log (library probe)."""
    vm = run.probe_part("kdump", "vmcore")
    assert vm["osrelease"] == run.text("live", "uname.txt").strip(), f"{run.name}: {vm['osrelease']}"
    assert any("sysrq: Trigger a crash" in ln for ln in vm["log_tail"]), f"{run.name}: {vm['log_tail'][-5:]}"


def _iommu(run: Run, path: str) -> Dict[str, Any]:
    if not has_command("vmcore", "iommu"):
        pytest.skip("kdumptool vmcore iommu is not in this tree")
    return _kdt_json("vmcore", "iommu", path, "--rtaddr", f"{live_rtaddr(run):#x}")  # type: ignore[no-any-return]


def test_vmcore_iommu_mode_and_root(dump: Tuple[Run, str, str]) -> None:
    run, fmt, path = dump
    exp = expect(run.name)
    rt = live_rtaddr(run)
    doc = _iommu(run, path)
    assert doc["root_table"]["address"] == rt & ~0xFFF, f"{run.name} ({fmt}): root {doc['root_table']}"
    assert doc["root_table"]["mode"] == ("scalable" if exp["live_sm"] else "legacy"), f"{run.name} ({fmt}): {doc['root_table']}"


def test_vmcore_iommu_vs_spec_decode(dump: Tuple[Run, str, str]) -> None:
    """kdumptool's present context entries (and legacy DIDs) equal the spec decode above."""
    run, fmt, path = dump
    rt = live_rtaddr(run)
    want = spec_contexts(lambda a, n: raw_read(run, a, n), rt)
    doc = _iommu(run, path)
    got = {dev["bdf"]: dev.get("domain_id") for dev in doc["devices"] if dev.get("present")}
    assert sorted(got) == sorted(want), f"{run.name} ({fmt}): kdumptool contexts {sorted(got)} != spec decode {sorted(want)}"
    for bdf, did in want.items():
        if did is not None:
            assert got[bdf] == did, f"{run.name} ({fmt}) {bdf}: DID {got[bdf]} != {did}"


def test_vmcore_iommu_vs_live_groups(run: Run) -> None:
    """Every device the live kernel had in an IOMMU group has a present context entry in the
    crashed kernel's tables; extra entries are only DMA aliases (devfn 0 on the secondary
    bus of the PCIe-to-PCI bridge, as pci_for_each_dma_alias() gives for 03:01.0)."""
    groups = set(live_group_devices(run))
    fmt, path = next(dump_paths(run))
    doc = _iommu(run, path)
    present = {dev["bdf"] for dev in doc["devices"] if dev.get("present")}
    assert groups <= present, f"{run.name} ({fmt}): no context entry for {sorted(groups - present)}"
    extra = present - groups
    assert all(b.endswith(":00.0") for b in extra), f"{run.name} ({fmt}): unexpected context entries {sorted(extra)}"


def test_vmcore_iommu_e1000e_receive_mappings(run: Run) -> None:
    """The e1000e received UDP up to the crash: its domain maps pages; in a fault scenario
    the faulting address the kdump kernel logged is one of those IOVAs."""
    exp = expect(run.name)
    fmt, path = next(dump_paths(run))
    doc = _iommu(run, path)
    nic = next((d for d in doc["devices"] if d["bdf"] == "0000:00:02.0"), None)
    assert nic and nic.get("present"), f"{run.name} ({fmt}): no context entry for the e1000e"
    if exp.get("passthrough"):
        # iommu=pt: the live kernel's groups are identity: the entry is pass-through, with
        # no page table to count pages in (live_group types are the oracle).
        types = set(re.findall(r"type=(\S+)", run.text("live", "iommu_groups.txt")))
        assert types == {"identity"}, f"{run.name}: live IOMMU group types {types}"
        assert nic["translation_type"] == "pass-through", f"{run.name} ({fmt}): e1000e {nic['translation_type']}"
        return
    assert nic.get("mapped_4k_pages", 0) + nic.get("mapped_large_pages", 0) > 0, f"{run.name} ({fmt}): e1000e maps nothing"
    if exp["fault_device"]:
        # 6.x: "fault addr 0xffffc000"; 5.10: "PASID ffffffff fault addr ffffc000".
        addrs = [int(a, 16) for a in re.findall(r"Request device \[00:02\.0\] (?:PASID [0-9a-f]+ )?fault addr (?:0x)?([0-9a-f]+)",
                                                 run.text("kdump", "dmesg_final.txt"))]
        assert addrs, f"{run.name}: no e1000e fault address in the kdump log"
        for a in addrs:
            hit = [e for e in nic["extents"] if e["iova"] <= a < e["iova"] + e["size"]]
            assert hit, f"{run.name} ({fmt}): fault addr {a:#x} is not mapped for 00:02.0 in the crashed kernel's tables"


def test_vmcore_commands_in_the_kdump_kernel(run: Run) -> None:
    """The kdump kernel's own kdumptool on /proc/vmcore (RTADDR from the live kernel's
    drhd_regs.txt via --saved) finds the same context entries as the host's analysis of the
    raw copy, the crashed kernel's release and its panic."""
    res = run.kdt("kdump", "vmcore_iommu")
    if res is None:
        pytest.skip("kdumptool vmcore is not in this tree")
    live_rtaddr(run)  # skips when the crashed kernel had no tables
    rc, out, err = res
    assert rc == 0, f"{run.name}: vmcore iommu /proc/vmcore in the kdump kernel: rc={rc} {err[-1500:]}"
    guest = json.loads(out)
    assert guest["root_table"]["address"] == live_rtaddr(run) & ~0xFFF, f"{run.name}: {guest['root_table']}"
    fmt, path = next(dump_paths(run))
    host = _iommu(run, path)
    g = {d["bdf"]: d.get("domain_id") for d in guest["devices"] if d.get("present")}
    h = {d["bdf"]: d.get("domain_id") for d in host["devices"] if d.get("present")}
    assert g == h, f"{run.name}: in the kdump kernel {g} != on the host ({fmt}) {h}"
    rc, out, err = run.kdt("kdump", "vmcore_info") or (0, "{}", "")
    assert rc == 0, f"{run.name}: vmcore info /proc/vmcore: {err[-800:]}"
    assert run.text("live", "uname.txt").strip() in out, f"{run.name}: vmcore info in the kdump kernel lacks the release"
    rc, out, err = run.kdt("kdump", "vmcore_log") or (0, "", "")
    assert rc == 0 and "sysrq: Trigger a crash" in out, f"{run.name}: vmcore log /proc/vmcore: rc={rc} {err[-800:]}"
