"""triage reports kdumptool's own kdump integration: installed or not for the stack found,
in the kdump initramfs or not, quiesce enabled or not, a unit naming a kdumptool that is
gone, and an initramfs older than its configuration (with the command that rebuilds it).
On a real snapshot of the lab's live kernel (fixtures/snapshots/live_legacy_on) with
Debian's kdump-tools files or kdump-utils' added and ``install-integration`` run into it."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from kdumptool.sources.kdumpstack import read_integration
from kdumptool.sources.root import Root
from tests.cliutil import run
from tests.conftest import FIXTURES
from tests.distro.test_install_integration import KT, KU

SNAP = FIXTURES / "snapshots/live_legacy_on"
EXE = "/opt/venv/bin/kdumptool"


def _root(tmp: Path, stack: str) -> Path:
    root = tmp / "snap"
    shutil.copytree(SNAP, root, symlinks=True)
    if stack == "kdump-tools":
        shutil.copytree(KT, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("PROVENANCE.md"))
    else:
        shutil.copytree(KU / "dracut/99kdumpbase", root / "usr/lib/dracut/modules.d/99kdumpbase")
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(KU / "kdumpctl", root / "usr/bin/kdumpctl")
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/kdump.conf").write_text("path /var/crash\ncore_collector makedumpfile -l -d 31\n")
    exe = root / EXE.lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/opt/venv/bin/python3\nfrom kdumptool.cli.main import main\nmain()\n")
    exe.chmod(0o755)
    return root


def _findings(capsys, root: Path) -> dict:
    code, out, err = run(capsys, "triage", "--root", str(root), "-f", "json")
    assert out, err
    return {f["id"]: f for f in json.loads(out)["findings"]}


def test_kdump_tools_not_installed_then_installed_then_broken(capsys, tmp_path):
    root = _root(tmp_path, "kdump-tools")
    f = _findings(capsys, root)["kdumptool-integration"]
    assert f["title"].startswith("kdumptool integration for kdump-tools: not installed; runs from the root file system")
    assert "install-integration" in f["remedy"]
    assert any(e["source"] == "/usr/sbin/kdump-config" for e in f["evidence"])

    code, _, err = run(capsys, "install-integration", "--prefix", str(root), "--kdumptool", EXE, "-f", "text")
    assert code == 0, err
    (root / "etc/kdumptool/kdumptool.conf").write_text("quiesce=1\n")
    fs = _findings(capsys, root)
    f = fs["kdumptool-integration"]
    assert f["title"] == ("kdumptool integration for kdump-tools: installed; runs from the root file system the "
                          "kdump kernel boots (no initramfs part); quiesce enabled")
    assert f["remedy"] is None and "kdumptool-integration-broken" not in fs
    ig = read_integration(Root(root))
    assert ig.stack == "kdump-tools" and ig.missing == () and ig.command == EXE and ig.command_ok is True
    # without the LSB hook, kdump-tools' init script reboots straight after the dump: no quiesce
    (root / "lib/lsb/init-functions.d/50-kdumptool").unlink()
    f = _findings(capsys, root)["kdumptool-integration"]
    assert "partly installed" in f["title"] and f["title"].endswith("quiesce disabled"), f["title"]
    assert any(e["source"] == "/lib/lsb/init-functions.d/50-kdumptool" and "absent" in e["text"]
               for e in f["evidence"]), f["evidence"]
    run(capsys, "install-integration", "--prefix", str(root), "--kdumptool", EXE, "-f", "text")

    (root / EXE.lstrip("/")).unlink()  # pip uninstall, or a venv moved away
    fs = _findings(capsys, root)
    assert fs["kdumptool-integration"]["title"].endswith("quiesce disabled")
    b = fs["kdumptool-integration-broken"]
    assert b["severity"] == "warning" and EXE in b["title"] and "install-integration" in b["remedy"]


def test_kdump_utils_initramfs_older_than_config(capsys, tmp_path):
    root = _root(tmp_path, "kdump-utils")
    code, _, err = run(capsys, "install-integration", "--prefix", str(root), "--kdumptool", EXE, "-f", "text")
    assert code == 0, err
    img = root / "boot/initramfs-6.1.0-lab-amd64kdump.img"
    img.parent.mkdir(parents=True, exist_ok=True)
    img.write_bytes(b"")  # an image kdumpctl built (its content is not read here)
    past = time.time() - 3600
    os.utime(img, (past, past))
    ig = read_integration(Root(root), f"/boot/{img.name}")
    assert ig.stack == "kdump-utils" and ig.missing == ()
    # install-integration and kdump.conf changed after the image was built
    assert "etc/kdump.conf" in ig.newer_than_initrd and "etc/kdumptool/kdumptool.conf" in ig.newer_than_initrd
    assert ig.rebuild == "kdumpctl rebuild && kdumpctl restart"
    for f in ig.newer_than_initrd:
        os.utime(root / f, (past - 60, past - 60))
    os.utime(root / "usr/lib/dracut/modules.d/99kdumptool/module-setup.sh", (past - 60, past - 60))
    assert read_integration(Root(root), f"/boot/{img.name}").newer_than_initrd == ()


def test_no_stack_no_finding(capsys, tmp_path):
    root = tmp_path / "snap"
    shutil.copytree(SNAP, root, symlinks=True)
    assert "kdumptool-integration" not in _findings(capsys, root)
    assert read_integration(Root(root)).stack is None
