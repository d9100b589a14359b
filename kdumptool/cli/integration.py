"""``kdumptool install-integration``: put the dracut module, the systemd units, the
system-shutdown hook and the config file in place (under ``--prefix``, default ``/``).

Sources are the ``dracut/`` and ``systemd/`` folders of the kdumptool checkout this
package runs from, else the copies a wheel installs under ``<prefix>/share/kdumptool``
(or ``--source``). The systemd units and the shutdown hook are written with the path of
the kdumptool that runs this (``/usr/local/bin/kdumptool`` from install.sh, a venv's
``bin/kdumptool``...), not a fixed ``/usr/bin/kdumptool``. Nothing is enabled or rebuilt
here: the command prints the few commands that do that, since they differ between
distributions.
"""

# No ``from __future__ import annotations``: typer reads the annotations of the command
# defined inside register() (see cli/quiesce.py).
import os
import shutil
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

DRACUT_MODULE = "99kdumptool"


def _source_dir(source: Optional[Path]) -> Path:
    from kdumptool.errors import SourceMissing

    cands = [source] if source else []
    import kdumptool

    cands.append(Path(kdumptool.__file__).resolve().parent.parent)
    # where a wheel's data files land: pip install into a venv or the system, --user
    import site

    cands.append(Path(sys.prefix) / "share" / "kdumptool")
    cands.append(Path(site.getuserbase()) / "share" / "kdumptool")
    for c in cands:
        if c is not None and (c / "dracut" / DRACUT_MODULE / "module-setup.sh").is_file():
            return c
    raise SourceMissing(
        "cannot find the dracut/ and systemd/ folders of kdumptool (give --source CHECKOUT)"
    )


def installed_kdumptool() -> str:
    """The absolute path of the ``kdumptool`` command running now: the script or link it
    was started as (``/usr/local/bin/kdumptool``), else the one beside this interpreter (a
    venv's ``bin/``), else the one on PATH, else /usr/bin/kdumptool."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "kdumptool" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    beside = Path(sys.executable).parent / "kdumptool"
    if beside.is_file():
        return str(beside)
    return shutil.which("kdumptool") or "/usr/bin/kdumptool"


def plan_install(src: Path, prefix: Path) -> List[Tuple[Path, Path, int, bool]]:
    """(source, destination, mode, overwrite) for every file to put in place."""
    out: List[Tuple[Path, Path, int, bool]] = []
    mod = src / "dracut" / DRACUT_MODULE
    for f in sorted(mod.iterdir()):
        if f.is_file():
            mode = 0o755 if f.suffix == ".sh" else 0o644
            out.append((f, prefix / "usr/lib/dracut/modules.d" / DRACUT_MODULE / f.name, mode, True))
    sd = src / "systemd"
    for name in ("kdumptool-boot-record.service", "kdumptool-quiesce.service"):
        out.append((sd / name, prefix / "usr/lib/systemd/system" / name, 0o644, True))
    out.append((sd / "kdumptool.shutdown", prefix / "usr/lib/systemd/system-shutdown/kdumptool.shutdown", 0o755, True))
    out.append((sd / "kdumptool.conf", prefix / "etc/kdumptool/kdumptool.conf", 0o644, False))
    return out


def _check_writable(paths: List[Path]) -> None:
    """Refuse before writing anything: the nearest existing folder of each destination
    must be a writable directory (not root, a --prefix that is a file...)."""
    from kdumptool.errors import PermissionDenied, SourceMissing

    for d in paths:
        p = d.parent
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            raise SourceMissing(f"{p}: not a directory (cannot install {d})")
        if not os.access(p, os.W_OK | os.X_OK):
            raise PermissionDenied(f"{p}: permission denied (cannot install {d}; run as root?)")


def run_install(prefix: Path, dry_run: bool, source: Optional[Path], python: Optional[str],
                records: Optional[List[dict]] = None) -> str:
    from kdumptool.errors import KdumptoolError

    src = _source_dir(source)
    lines: List[str] = []
    rec: List[dict] = [] if records is None else records
    verb = "would install" if dry_run else "installed"
    plan = plan_install(src, prefix)
    exe = installed_kdumptool()
    lines.append(f"units run {exe}")
    pyfile = prefix / "etc/kdumptool/python"
    if not dry_run:
        _check_writable([d for _, d, _, _ in plan] + [pyfile])
    try:
        for s, d, mode, overwrite in plan:
            if d.exists() and not overwrite:
                lines.append(f"kept      {d} (exists)")
                rec.append({"action": "keep", "path": str(d)})
                continue
            lines.append(f"{verb} {d}")
            rec.append({"action": "install", "path": str(d), "mode": mode})
            if not dry_run:
                from kdumptool.actions.integration import put_file

                put_file(s, d, mode, exe)
        # A venv's own python (not the interpreter it links to): only it imports kdumptool.
        in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
        py = python or (os.path.abspath(sys.executable) if in_venv else os.path.realpath(sys.executable))
        lines.append(f"{verb} {pyfile} ({py}: the interpreter the dracut module ships)")
        rec.append({"action": "install", "path": str(pyfile), "mode": 0o644, "python": py})
        if not dry_run:
            pyfile.parent.mkdir(parents=True, exist_ok=True)
            pyfile.write_text(py + "\n")
    except OSError as exc:
        raise KdumptoolError(f"{exc.filename or prefix}: {exc.strerror or exc}") from None
    lines += [
        "",
        "next steps:",
        "  systemctl daemon-reload",
        "  systemctl enable --now kdumptool-boot-record.service   # RTADDR, PCI state at boot",
        "  # kdump-utils (RHEL/Fedora): add the module to the kdump initramfs, opt in, rebuild",
        "  echo 'dracut_args --add kdumptool' >> /etc/kdump.conf",
        "  sed -i 's/^quiesce=0/quiesce=1/' /etc/kdumptool/kdumptool.conf   # or kdumptool.quiesce=1",
        "  kdumpctl rebuild && kdumpctl restart",
        "  # any other dracut-built capture initramfs:",
        "  dracut --force --add kdumptool /boot/initramfs-$(uname -r)kdump.img $(uname -r)",
        "  # outside kdump (a systemd-managed capture system):",
        "  systemctl enable kdumptool-quiesce.service",
    ]
    return "\n".join(lines) + "\n"


def register(app: Any) -> None:
    import typer

    from kdumptool.cli.common import FormatOpt

    @app.command("install-integration")
    def install_integration(
        prefix: Path = typer.Option(Path("/"), "--prefix", help="Install below this root (a package build root)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be installed."),
        source: Optional[Path] = typer.Option(None, "--source", help="A kdumptool checkout (default: this one)."),
        python: Optional[str] = typer.Option(
            None, "--python", help="Interpreter for the initramfs (default: the one running this)."
        ),
        fmt: FormatOpt = "auto",
    ) -> None:
        """Put the dracut module, systemd units and shutdown hook in place."""
        from kdumptool.cli.common import check_format
        from kdumptool.render.output import emit

        fmt = check_format(fmt)
        records: List[dict] = []
        text = run_install(prefix, dry_run, source, python, records)
        emit(fmt, json_obj=lambda: {"prefix": str(prefix), "dry_run": dry_run, "files": records},
             text=lambda: text.rstrip("\n"))
