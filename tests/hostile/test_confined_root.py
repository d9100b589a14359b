"""Issue 14, security: every read under --root stays inside the tree, reads only regular
files, never blocks on a FIFO and is size-capped; collect and quiesce go through the same
resolver. Trees are generated from a lab snapshot with links and nodes planted in them."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from kdumptool.errors import KdumptoolError, SourceMissing
from kdumptool.sources import root as root_mod
from kdumptool.sources.root import Root, open_root
from tests.cliutil import run
from tests.hostile.util import deadline, escape_to, plant_link, snapshot_copy

MARKER = "HOST-SECRET-4f1c"
BDF = "0000:03:01.0"


@pytest.fixture
def snap(tmp_path):
    return snapshot_copy("kdump_legacy_on", tmp_path / "in")


@pytest.fixture
def outside(tmp_path):
    p = tmp_path / "host" / "secret"
    p.parent.mkdir()
    p.write_text(MARKER + "\n")
    return p


def test_relative_link_out_of_the_tree_reads_inside_it(snap, outside):
    at = snap / "proc/cmdline"
    plant_link(at, escape_to(at, outside))
    text = Root(snap).read_optional("/proc/cmdline")
    assert text is None or MARKER not in text


def test_absolute_link_reads_inside_the_tree(snap, outside):
    plant_link(snap / "proc/cmdline", str(outside))
    assert Root(snap).read_optional("/proc/cmdline") is None  # the snapshot has no such file


def test_41_absolute_links_do_not_escape(snap, outside):
    # proc/cmdline and a chain of 40 absolute links (41: past the 40-hop limit), the
    # last one naming a host path
    chain = snap / "chain"
    chain.mkdir()
    for i in range(40):
        nxt = f"/chain/l{i + 1}" if i < 39 else str(outside)
        (chain / f"l{i}").symlink_to(nxt)
    plant_link(snap / "proc/cmdline", "/chain/l0")
    text = Root(snap).read_optional("/proc/cmdline")
    assert text is None or MARKER not in text


def test_dotdot_is_clamped_at_the_root(snap):
    r = Root(snap)
    assert r.p("/../../../../proc/cmdline") == snap / "proc/cmdline"
    assert r.read_text("/../../proc/../../proc/cmdline") == (snap / "proc/cmdline").read_text()


def test_triage_json_never_shows_host_files(snap, outside, capsys):
    for rel in ("proc/cmdline", "proc/iomem", "_kdumptool/dmesg.txt"):
        at = snap / rel
        plant_link(at, escape_to(at, outside))
    code, out, err = run(capsys, "triage", "--root", str(snap), "-f", "json")
    assert MARKER not in out + err


def test_fifo_in_tree_does_not_hang(snap):
    for rel in ("proc/cmdline", "proc/iomem", "sys/firmware/acpi/tables/DMAR",
                "_kdumptool/vtd_registers.json", f"sys/bus/pci/devices/{BDF}/config",
                "_kdumptool/dmesg.txt"):
        p = snap / rel
        if p.is_symlink() or p.exists():
            p.unlink()
        os.mkfifo(p)
    r = Root(snap)
    with deadline(10):
        assert r.read_optional("/proc/cmdline") is None
        with pytest.raises(SourceMissing, match="not a regular file"):
            r.read_bytes("/proc/iomem")


def test_fifo_in_tree_cli_commands_end(snap, capsys):
    cfg = (snap / "sys/bus/pci/devices" / BDF / "config").resolve()
    for rel in ("proc/cmdline", "proc/iomem", "sys/firmware/acpi/tables/DMAR",
                "_kdumptool/vtd_registers.json", str(cfg.relative_to(snap)), "_kdumptool/dmesg.txt"):
        p = snap / rel
        if p.is_symlink() or p.exists():
            p.unlink()
        os.mkfifo(p)
    with deadline(20):
        for cmd in (["triage"], ["pci"], ["iommu"], ["log"], ["dmar"], ["quiesce", "--plan"]):
            code, out, err = run(capsys, *cmd, "--root", str(snap))
            assert "internal error" not in err and "Traceback" not in err, (cmd, err)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_device_node_in_tree_is_not_read(snap):
    p = snap / "proc/iomem"
    p.unlink()
    os.mknod(p, 0o20644, os.makedev(1, 5))  # a /dev/zero
    with deadline(10):
        with pytest.raises(SourceMissing, match="character device"):
            Root(snap).read_bytes("/proc/iomem")


def test_huge_file_in_tree_is_capped(snap):
    p = snap / "proc/iomem"
    p.unlink()
    with open(p, "wb") as fh:
        fh.truncate(root_mod.MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(root_mod.TooLarge, match="MAX_FILE_BYTES"):
        Root(snap).read_bytes("/proc/iomem")


def test_collect_copies_extra_files_through_the_root(snap, outside, tmp_path, capsys):
    at = snap / "_kdumptool/evil.txt"
    plant_link(at, escape_to(at, outside))
    out = tmp_path / "out.tar.gz"
    code, _, err = run(capsys, "collect", "--root", str(snap), "-o", str(out))
    assert code == 0, err
    with tarfile.open(out) as tar:
        for m in tar:
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None and MARKER.encode() not in f.read(), m.name


def test_quiesce_apply_never_writes_outside_the_tree(snap, tmp_path, capsys):
    victim = tmp_path / "victim_config"
    real = snap / "sys/bus/pci/devices" / BDF / "config"
    data = real.resolve().read_bytes()
    victim.write_bytes(data)
    cfg = real.resolve()
    plant_link(cfg, escape_to(cfg, victim))
    run(capsys, "quiesce", "--apply", "--root", str(snap))
    assert victim.read_bytes() == data


def test_quiesce_apply_on_a_tarball_is_refused(snap, tmp_path, capsys):
    tgz = tmp_path / "snap.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(str(snap), arcname="snapshot")
    code, out, err = run(capsys, "quiesce", "--apply", "--root", str(tgz))
    assert code != 0
    assert "changed" not in out and "tar snapshot" in err


def _tar(path, members):
    """A tar.gz built from (name, bytes | ('hardlink', target)) pairs."""
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, body in members:
            ti = tarfile.TarInfo(name)
            if isinstance(body, tuple):
                ti.type, ti.linkname = tarfile.LNKTYPE, body[1]
                tar.addfile(ti)
            else:
                ti.size = len(body)
                tar.addfile(ti, io.BytesIO(body))


def test_tar_expanding_past_the_byte_limit_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(root_mod, "MAX_SNAPSHOT_BYTES", 1 << 20)
    tgz = tmp_path / "bomb.tar.gz"
    _tar(tgz, [("snapshot/proc/cmdline", b"x"), ("snapshot/big", bytes(2 << 20))])
    assert tgz.stat().st_size < 64 << 10
    tempfile_dir = tmp_path / "tmp"
    tempfile_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tempfile_dir))
    with pytest.raises(KdumptoolError, match="MAX_SNAPSHOT_BYTES"):
        open_root(tgz)
    assert os.listdir(tempfile_dir) == []


def test_tar_with_too_many_members_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(root_mod, "MAX_SNAPSHOT_MEMBERS", 50)
    tgz = tmp_path / "many.tar.gz"
    _tar(tgz, [(f"snapshot/f{i}", b"") for i in range(60)])
    with pytest.raises(KdumptoolError, match="MAX_SNAPSHOT_MEMBERS"):
        open_root(tgz)


def test_tar_hardlink_to_missing_member_is_a_clean_error(tmp_path, capsys):
    tgz = tmp_path / "hl.tar.gz"
    _tar(tgz, [("snapshot/proc/cmdline", b"x"), ("snapshot/proc/iomem", ("hardlink", "snapshot/nowhere"))])
    with pytest.raises(KdumptoolError):
        open_root(tgz)
    code, out, err = run(capsys, "triage", "--root", str(tgz))
    assert code == 1 and err.startswith("error: ") and "internal error" not in err


def test_sigterm_during_extraction_removes_the_temp_tree(tmp_path, monkeypatch):
    import signal

    from kdumptool.cli.main import install_sigterm_exit

    tgz = tmp_path / "s.tar.gz"
    _tar(tgz, [(f"snapshot/f{i}", b"data") for i in range(20)])
    tempfile_dir = tmp_path / "tmp"
    tempfile_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tempfile_dir))
    real = tarfile.TarFile.next
    seen = []

    def next_and_kill(self):
        seen.append(1)
        if len(seen) == 10:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(tarfile.TarFile, "next", next_and_kill)
    previous = install_sigterm_exit()
    try:
        with pytest.raises(SystemExit) as exc:
            open_root(tgz)
        assert exc.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.listdir(tempfile_dir) == []


def test_collect_json_records_a_refused_extra_file(snap, tmp_path, capsys):
    os.mkfifo(snap / "_kdumptool/fifo.txt")
    out = tmp_path / "o"
    with deadline(20):
        code, _, err = run(capsys, "collect", "--root", str(snap), "-o", str(out))
    assert code == 0, err
    meta = json.loads((out / "_kdumptool/collect.json").read_text())
    assert "/_kdumptool/fifo.txt" in meta["unreadable"]
