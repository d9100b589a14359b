"""``kdumptool install-integration`` per kdump stack, on a root holding the files Debian's
kdump-tools 1:1.8.1 package installs (fixtures/distro/kdump-tools-1.8.1) or kdump-utils
1.0.61 (fixtures/distro/kdump-utils-1.0.61, upstream's tag): what it detects, every file and line
``--dry-run`` shows, the real kdumptool path in the units, and systemd's own parser
(``systemd-analyze verify --root``) on the units as installed, Debian's dump unit included
with kdumptool's drop-in merged."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kdumptool.actions import integration
from kdumptool.errors import SourceMissing
from kdumptool.sources import kdumpstack
from tests.cliutil import run
from tests.conftest import FIXTURES, REPO

KT = FIXTURES / "distro/kdump-tools-1.8.1"
KU = REPO / "fixtures/distro/kdump-utils-1.0.61"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _debian_root(tmp: Path) -> Path:
    root = tmp / "root"
    shutil.copytree(KT, root, ignore=shutil.ignore_patterns("PROVENANCE.md"))
    exe = root / "opt/venv/bin/kdumptool"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/opt/venv/bin/python3\nfrom kdumptool.cli.main import main\nmain()\n")
    exe.chmod(0o755)
    return root


def _kdump_utils_root(tmp: Path) -> Path:
    """kdump-utils' files where its Makefile installs them (the parts detection reads)."""
    root = tmp / "root"
    shutil.copytree(KU / "dracut/99kdumpbase", root / "usr/lib/dracut/modules.d/99kdumpbase")
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy2(KU / "kdumpctl", root / "usr/bin/kdumpctl")
    return root


def test_kdump_tools_dry_run_shows_every_line_and_writes_nothing(capsys, tmp_path):
    root = _debian_root(tmp_path)
    before = sorted(p for p in root.rglob("*"))
    code, out, err = run(capsys, "install-integration", "--prefix", str(root), "--dry-run",
                         "--kdumptool", "/opt/venv/bin/kdumptool", "--python", "/usr/bin/python3", "-f", "text")
    assert code == 0, err
    assert sorted(p for p in root.rglob("*")) == before  # nothing written
    assert out.startswith("stacks:    kdump-tools (found: kdump-tools (")
    assert str(root / "usr/sbin/kdump-config") in out.splitlines()[0]
    plan = integration.plan_install(REPO, root, ["kdump-tools"], "/opt/venv/bin/kdumptool", "/usr/bin/python3")
    lines = out.splitlines()
    for p in plan:
        head = next(i for i, ln in enumerate(lines) if ln.startswith(f"would write {p.dest} "))
        body = p.content.decode().splitlines()
        assert lines[head + 1: head + 1 + len(body)] == [f"    | {ln}" for ln in body], p.dest
    # the kdump-tools hooks, not the dracut module (Debian's kdump initramfs is initramfs-tools')
    assert "kdump-tools-dump.service.d/50-kdumptool.conf" in out
    assert "modules.d/99kdumptool" not in out
    code_lines = [ln[6:] for ln in lines if ln.startswith("    | ") and not ln[6:].lstrip().startswith("#")]
    assert not [ln for ln in code_lines if "/usr/bin/kdumptool" in ln]
    assert "ExecStart=/opt/venv/bin/kdumptool record --if-enabled" in out
    assert 'kdumptool="/opt/venv/bin/kdumptool"' in out  # the hooks' command
    steps = out.split("\nnext steps:\n")[1]
    assert "# kdump-tools (Debian/Ubuntu)" in steps and "kdumpctl" not in steps


def test_kdump_tools_install_real_paths_and_modes(capsys, tmp_path):
    root = _debian_root(tmp_path)
    code, out, err = run(capsys, "install-integration", "--prefix", str(root),
                         "--kdumptool", "/opt/venv/bin/kdumptool", "-f", "json")
    assert code == 0, err
    import json

    doc = json.loads(out)
    assert doc["stacks"] == ["kdump-tools"] and doc["kdumptool"] == "/opt/venv/bin/kdumptool"
    assert doc["kdump_coredir"] == "/var/crash"
    for f in doc["files"]:
        p = Path(f["path"])
        text = p.read_text()
        assert not re.search(r"@[A-Z_]+@", text), p  # every placeholder replaced
        assert not [ln for ln in text.splitlines() if "/usr/bin/kdumptool" in ln and not ln.startswith("#")], p
        assert stat.S_IMODE(p.stat().st_mode) == f["mode"], p
    hook = root / "usr/lib/systemd/system-shutdown/kdumptool.shutdown"
    assert 'kdumptool="/opt/venv/bin/kdumptool"' in hook.read_text() and os.access(hook, os.X_OK)
    pub = (root / "usr/lib/systemd/system/kdumptool-kdump-tools-publish.service").read_text()
    assert "ExecStart=/usr/libexec/kdumptool/kdump-tools-publish /var/crash" in pub
    # an admin's switches survive a second run
    conf = root / "etc/kdumptool/kdumptool.conf"
    conf.write_text("quiesce=1\n")
    code, out, _ = run(capsys, "install-integration", "--prefix", str(root), "--kdumptool",
                       "/opt/venv/bin/kdumptool", "-f", "text")
    assert code == 0 and conf.read_text() == "quiesce=1\n" and f"kept        {conf} (exists)" in out


def test_kdump_coredir_from_debian_config(capsys, tmp_path):
    root = _debian_root(tmp_path)
    cfg = root / "etc/default/kdump-tools"
    cfg.write_text(cfg.read_text().replace('KDUMP_COREDIR="/var/crash"', 'KDUMP_COREDIR="/srv/crash"  # big disk'))
    assert kdumpstack.kdump_tools_coredir(root) == "/srv/crash"
    code, out, err = run(capsys, "install-integration", "--prefix", str(root), "--kdumptool",
                         "/opt/venv/bin/kdumptool", "--dry-run", "-f", "text")
    assert code == 0, err
    assert "    | PathChanged=/srv/crash" in out
    assert "    | ExecStart=/usr/libexec/kdumptool/kdump-tools-publish /srv/crash" in out
    # kdump-config's own default when the file says nothing
    cfg.write_text("USE_KDUMP=1\n")
    assert kdumpstack.kdump_tools_coredir(root) == "/var/crash"


@needs_analyze
def test_systemd_verifies_installed_units_and_debian_dump_unit_with_dropin(capsys, tmp_path):
    root = _debian_root(tmp_path)
    code, _, err = run(capsys, "install-integration", "--prefix", str(root), "--stack", "all",
                       "--kdumptool", "/opt/venv/bin/kdumptool", "-f", "text")
    assert code == 0, err
    # what the units need from the system: its targets, /bin/true, Debian's merged /lib
    unitdir = root / "usr/lib/systemd/system"
    for t in Path("/usr/lib/systemd/system").glob("*.target"):
        if not (unitdir / t.name).exists():
            shutil.copy2(t, unitdir / t.name)
    for kt_unit in (root / "lib/systemd/system").glob("*.service"):
        shutil.copy2(kt_unit, unitdir / kt_unit.name)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2("/bin/true", root / "bin/true")
    units = ["kdumptool-boot-record.service", "kdumptool-quiesce.service", "kdumptool-kdump-tools-record.service",
             "kdumptool-kdump-tools-publish.path", "kdumptool-kdump-tools-publish.service"]
    for u in units + ["kdump-tools-dump.service"]:
        r = subprocess.run(["systemd-analyze", "verify", f"--root={root}", u], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and r.stderr.strip() == "", (u, r.stderr[-2000:])  # no warning at all
        if u == "kdump-tools-dump.service":
            # at debug level verify dumps the loaded unit
            r = subprocess.run(["systemd-analyze", "verify", f"--root={root}", u], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, SYSTEMD_LOG_LEVEL="debug"))
            dump = r.stdout + r.stderr
            # systemd merged the drop-in: Debian's unit now wants and is ordered after ours
            assert f"DropIn Path: {unitdir}/kdump-tools-dump.service.d/50-kdumptool.conf" in dump
            for dep in ("Wants: kdumptool-kdump-tools-record.service", "Wants: kdumptool-kdump-tools-publish.path",
                        "After: kdumptool-kdump-tools-record.service", "After: kdumptool-kdump-tools-publish.path"):
                assert dep in dump, dep
            assert "ExecStart" in dump and "/etc/init.d/kdump-tools" in dump  # its own command kept


@needs_analyze
def test_verify_catches_the_pip_path_problem(capsys, tmp_path):
    """The check above can fail: a unit that runs /usr/bin/kdumptool (the old hard-coded
    path) on a root where pip put kdumptool elsewhere is 'not executable'."""
    root = _debian_root(tmp_path)
    unitdir = root / "usr/lib/systemd/system"
    unitdir.mkdir(parents=True)
    for t in Path("/usr/lib/systemd/system").glob("*.target"):
        shutil.copy2(t, unitdir / t.name)
    unit = unitdir / "kdumptool-boot-record.service"
    unit.write_text((REPO / "systemd/kdumptool-boot-record.service").read_text().replace("@KDUMPTOOL@", "/usr/bin/kdumptool"))
    r = subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit.name], capture_output=True, text=True,
                       timeout=60)
    assert "is not executable" in r.stderr


def test_kdump_utils_root_gets_the_dracut_module(capsys, tmp_path):
    root = _kdump_utils_root(tmp_path)
    code, out, err = run(capsys, "install-integration", "--prefix", str(root), "--kdumptool",
                         "/usr/local/bin/kdumptool", "--python", "/usr/bin/python3", "-f", "text")
    assert code == 0, err
    assert out.startswith("stacks:    kdump-utils (found: kdump-utils (")
    mod = root / "usr/lib/dracut/modules.d/99kdumptool"
    for f in (REPO / "dracut/99kdumptool").iterdir():
        assert (mod / f.name).read_bytes() == f.read_bytes()  # the module goes in as is
    assert os.access(mod / "module-setup.sh", os.X_OK)
    assert not (root / "usr/lib/systemd/system/kdumptool-kdump-tools-record.service").exists()
    assert (root / "etc/kdumptool/python").read_text() == "/usr/bin/python3\n"
    assert "kdumpctl rebuild && kdumpctl restart" in out and "dracut_args --add kdumptool" in out


def test_no_stack_installs_all_and_says_why(capsys, tmp_path):
    code, out, err = run(capsys, "install-integration", "--prefix", str(tmp_path), "--dry-run",
                         "--kdumptool", "/usr/local/bin/kdumptool", "-f", "text")
    assert code == 0, err
    assert "no kdump stack found below the prefix" in out.splitlines()[0]
    for part in ("modules.d/99kdumptool/module-setup.sh", "kdumptool-kdump-tools-record.service"):
        assert part in out


def test_bad_arguments_one_line_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "install-integration", "--prefix", str(tmp_path), "--kdumptool", "kdumptool")
    assert code == 2 and "give an absolute path" in err and "Traceback" not in err
    code, out, err = run(capsys, "install-integration", "--prefix", str(tmp_path), "--stack", "suse")
    assert code == 2 and "--stack 'suse'" in err


def test_resolve_prefers_console_script_and_skips_pyenv_shims(tmp_path, monkeypatch):
    venv = tmp_path / "venv/bin"
    venv.mkdir(parents=True)
    (venv / "python3").symlink_to(os.path.realpath(sys.executable))
    script = venv / "kdumptool"
    script.write_text(f"#!{venv}/python3\nimport sys\nfrom kdumptool.cli.main import main\nsys.exit(main())\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python3"))
    assert integration.resolve_kdumptool(None) == (str(script), f"the console script beside {venv}/python3")
    # a pyenv shim on PATH resolves the interpreter per caller: never written into a unit
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "kdumptool"
    shim.write_text('#!/usr/bin/env bash\nexport PYENV_ROOT="/root/.pyenv"\nexec "/root/.pyenv/libexec/pyenv" exec '
                    '"kdumptool" "$@"\n')
    shim.chmod(0o755)
    script.unlink()
    monkeypatch.setenv("PATH", f"{shims}:/usr/bin:/bin")
    try:
        cmd, how = integration.resolve_kdumptool(None)
    except SourceMissing as exc:  # this interpreter does not import kdumptool on its own
        assert "give --kdumptool" in str(exc)
    else:
        assert cmd != str(shim) and "shims" not in cmd


def test_suse_kdump_gets_no_dracut_module(capsys, tmp_path):
    """SUSE's kdump module puts its own binary called kdumptool into the kdump initramfs:
    install-integration leaves the dracut module out there."""
    root = tmp_path / "root"
    (root / "usr/lib/dracut/modules.d/99kdump").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/dracut").write_text("#!/bin/sh\n")
    code, out, err = run(capsys, "install-integration", "--prefix", str(root), "--dry-run",
                         "--kdumptool", "/usr/bin/kdumptool", "-f", "text")
    assert code == 0, err
    assert "SUSE's kdump found" in out.splitlines()[0]
    assert "99kdumptool" not in out and "kdumptool-boot-record.service" in out and "kdumptool.shutdown" in out
