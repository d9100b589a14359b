"""``kdumptool install-integration`` into a temporary prefix."""

from __future__ import annotations

import stat

from kdumptool.cli.main import main
from tests.conftest import REPO


def run(capsys, *args):
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    return code, *capsys.readouterr()


def test_install_and_dry_run(capsys, tmp_path):
    code, out, _ = run(capsys, "install-integration", "--prefix", str(tmp_path), "--dry-run")
    assert code == 0 and "would write" in out and not any(tmp_path.iterdir())
    code, out, _ = run(capsys, "install-integration", "--prefix", str(tmp_path), "--python", "/usr/bin/python3")
    assert code == 0
    mod = tmp_path / "usr/lib/dracut/modules.d/99kdumptool"
    for name in ("module-setup.sh", "kdumptool-stage.py", "kdumptool-pre.sh", "kdumptool-post.sh"):
        assert (mod / name).read_bytes() == (REPO / "dracut/99kdumptool" / name).read_bytes()
    assert (mod / "module-setup.sh").stat().st_mode & stat.S_IXUSR
    hook = tmp_path / "usr/lib/systemd/system-shutdown/kdumptool.shutdown"
    assert hook.stat().st_mode & stat.S_IXUSR
    assert (tmp_path / "usr/lib/systemd/system/kdumptool-boot-record.service").is_file()
    assert (tmp_path / "etc/kdumptool/python").read_text() == "/usr/bin/python3\n"
    conf = tmp_path / "etc/kdumptool/kdumptool.conf"
    conf.write_text("quiesce=1\n")
    code, out, _ = run(capsys, "install-integration", "--prefix", str(tmp_path))
    assert conf.read_text() == "quiesce=1\n" and "kept" in out  # an admin's config survives
    assert "dracut_args --add kdumptool" in out


def test_wrong_source_falls_back_to_this_checkout(capsys, tmp_path):
    code, out, err = run(capsys, "install-integration", "--prefix", str(tmp_path), "--source", str(tmp_path))
    # the checkout this runs from is found anyway; a wrong --source alone does not break it
    assert code == 0
