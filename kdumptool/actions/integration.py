"""``kdumptool install-integration`` (the work; cli/integration.py parses options): put kdumptool's hooks in place for the kdump stack(s)
found below ``--prefix`` (default ``/``):

- kdump-utils (RHEL, Fedora; dracut): the dracut module ``99kdumptool`` (its
  ``/etc/kdump/pre.d`` and ``post.d`` hooks run inside the kdump initramfs);
- kdump-tools (Debian, Ubuntu; initramfs-tools): the kdump kernel boots the system's own
  root, so the hooks are systemd units there: a record before ``kdump-tools-dump.service``,
  a path unit that copies it into the crash folder ``kdump-config savecore`` creates, and
  an LSB init-functions hook that runs the quiesce in kdump-tools' init script after
  savecore, just before its ``reboot -f``;
- any other dracut-built capture initramfs: the dracut module;
- every stack: the boot-time record unit, the system-shutdown hook (quiesce after the dump,
  on the final ``reboot -f``), the switches file.

Units and scripts are templates: ``@KDUMPTOOL@`` becomes the real command of the
installed kdumptool (the console script next to the running interpreter, else one on
PATH that is not a pyenv shim, else ``PYTHON -m kdumptool``; ``--kdumptool`` overrides),
so a pip install works, not only a package that puts it in /usr/bin. ``--dry-run``
prints every file with every line it would write. Nothing is enabled or rebuilt here:
the command prints the commands that do that, per stack.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

DRACUT_MODULE = "99kdumptool"
STACKS = ("kdump-utils", "kdump-tools", "dracut")
LIBEXEC = "/usr/libexec/kdumptool"
UNITDIR = "usr/lib/systemd/system"
#: sourced by every LSB init script (Debian's /lib/lsb/init-functions), kdump-tools' included
LSB_HOOK = "lib/lsb/init-functions.d/50-kdumptool"


@dataclass
class PlannedFile:
    """One file install-integration writes."""

    dest: Path
    mode: int
    content: bytes
    #: an existing file is replaced (False: an admin's file is kept)
    overwrite: bool = True
    #: which stacks need it ("all" for every stack)
    stacks: List[str] = field(default_factory=lambda: ["all"])
    what: str = ""


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


def _is_shim(p: Path) -> bool:
    """A pyenv shim: it picks the interpreter per caller's environment."""
    try:
        head = p.read_bytes()[:4096].decode("utf-8", "replace")
    except OSError:
        return False
    return "PYENV_ROOT" in head or "libexec/pyenv" in head


def _is_console_script(p: Path) -> bool:
    """A pip/setuptools entry point script for kdumptool (not a pyenv shim or a wrapper
    that depends on the caller's environment)."""
    try:
        if not (p.is_file() and os.access(p, os.X_OK)):
            return False
        head = p.read_bytes()[:4096].decode("utf-8", "replace")
    except OSError:
        return False
    first = head.splitlines()[0] if head else ""
    return first.startswith("#!") and "python" in first and "kdumptool" in head and not _is_shim(p)


def _imports_cleanly(python: str) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        r = subprocess.run([python, "-c", "import kdumptool.cli.main"], env=env, cwd="/",
                           capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def resolve_kdumptool(explicit: Optional[str]) -> Tuple[str, str]:
    """(command, how it was found): the absolute command that runs the installed kdumptool
    from a unit or a script, without the caller's PATH or PYTHONPATH."""
    from kdumptool.errors import BadArgument, SourceMissing

    if explicit:
        words = explicit.split()
        if not words or not os.path.isabs(words[0]):
            raise BadArgument(f"--kdumptool {explicit!r}: give an absolute path")
        return " ".join(words), "given with --kdumptool"
    # the command running now, as started (/usr/local/bin/kdumptool, a venv's bin/kdumptool)
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "kdumptool" and os.path.isfile(argv0) and not _is_shim(Path(argv0)):
        return os.path.abspath(argv0), "the kdumptool running this"
    here = Path(sys.executable).parent / "kdumptool"  # not resolved: a venv's bin/
    if _is_console_script(here):
        return str(here), f"the console script beside {sys.executable}"
    found = shutil.which("kdumptool")
    if found and _is_console_script(Path(found)):
        return os.path.abspath(found), "the console script on PATH"
    # a venv's own python (the interpreter it links to does not import kdumptool)
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    py = os.path.abspath(sys.executable) if in_venv else os.path.realpath(sys.executable)
    if _imports_cleanly(py):
        return f"{py} -m kdumptool", f"{py} imports kdumptool without PYTHONPATH"
    raise SourceMissing(
        "cannot find an installed kdumptool that units can run (no console script beside "
        f"{sys.executable} or on PATH, and {py} cannot import kdumptool without PYTHONPATH): "
        "install it (pip install .) or give --kdumptool /ABSOLUTE/PATH"
    )


# --- the plan -------------------------------------------------------------------------

def _template(src: Path, subst: Dict[str, str]) -> bytes:
    text = src.read_text()
    for k, v in subst.items():
        text = text.replace(k, v)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        from kdumptool.errors import KdumptoolError

        raise KdumptoolError(f"{src}: template placeholders left unreplaced: {', '.join(left)}")
    return text.encode()


def plan_install(src: Path, prefix: Path, stacks: List[str], kdumptool_cmd: str, python: str,
                 coredir: str = "/var/crash") -> List[PlannedFile]:
    """Every file to write for ``stacks`` (a subset of :data:`STACKS`)."""
    subst = {"@KDUMPTOOL@": kdumptool_cmd, "@LIBEXECDIR@": LIBEXEC, "@KDUMP_COREDIR@": coredir}
    sd = src / "systemd"
    mod = src / "dracut" / DRACUT_MODULE
    out: List[PlannedFile] = []
    dracut_stacks = [s for s in stacks if s in ("kdump-utils", "dracut")]
    if dracut_stacks:
        for f in sorted(mod.iterdir()):
            if f.is_file():
                # copied as is: module-setup.sh puts the initramfs launcher into the hooks
                out.append(PlannedFile(prefix / "usr/lib/dracut/modules.d" / DRACUT_MODULE / f.name,
                                       0o755 if f.suffix == ".sh" else 0o644, f.read_bytes(),
                                       stacks=dracut_stacks, what="dracut module"))
        out.append(PlannedFile(prefix / UNITDIR / "kdumptool-quiesce.service", 0o644,
                               _template(sd / "kdumptool-quiesce.service", subst), stacks=dracut_stacks,
                               what="quiesce at an orderly shutdown (capture systems outside kdump)"))
    out.append(PlannedFile(prefix / UNITDIR / "kdumptool-boot-record.service", 0o644,
                           _template(sd / "kdumptool-boot-record.service", subst),
                           what="record at boot: RTADDR, PCI and IOMMU state"))
    out.append(PlannedFile(prefix / "usr/lib/systemd/system-shutdown/kdumptool.shutdown", 0o755,
                           _template(sd / "kdumptool.shutdown", subst),
                           what="quiesce in the kdump kernel after the dump, at systemd-shutdown (kdump-utils)"))
    if "kdump-tools" in stacks:
        kt = ["kdump-tools"]
        lib = prefix / LIBEXEC.lstrip("/")
        out += [
            PlannedFile(lib / "kdump-pre", 0o755, _template(mod / "kdumptool-pre.sh", subst), stacks=kt,
                        what="record before the dump, into /run/kdumptool/record"),
            PlannedFile(lib / "kdump-tools-publish", 0o755, _template(sd / "kdump-tools-publish.sh", subst),
                        stacks=kt, what="copy the record into the crash folder"),
            PlannedFile(lib / "kdump-tools-after-dump", 0o755, _template(sd / "kdump-tools-after-dump.sh", subst),
                        stacks=kt, what="after kdump-config savecore, before the reboot: record beside the dump, quiesce"),
            PlannedFile(prefix / LSB_HOOK, 0o644, _template(sd / "kdumptool-lsb-hook.sh", subst), stacks=kt,
                        what="runs kdump-tools-after-dump in kdump-tools' init script just before its reboot -f"),
            PlannedFile(prefix / UNITDIR / "kdump-tools-dump.service.d/50-kdumptool.conf", 0o644,
                        _template(sd / "kdumptool-kdump-tools-dump.conf", subst), stacks=kt,
                        what="pulls the two units below into kdump-tools' dump service"),
        ]
        for name, what in (("kdumptool-kdump-tools-record.service", "record before kdump-config savecore"),
                           ("kdumptool-kdump-tools-publish.path", f"watch {coredir}"),
                           ("kdumptool-kdump-tools-publish.service", "run kdump-tools-publish")):
            out.append(PlannedFile(prefix / UNITDIR / name, 0o644, _template(sd / name, subst), stacks=kt, what=what))
    out.append(PlannedFile(prefix / "etc/kdumptool/kdumptool.conf", 0o644, (sd / "kdumptool.conf").read_bytes(),
                           overwrite=False, what="the switches (an existing file is kept)"))
    out.append(PlannedFile(prefix / "etc/kdumptool/python", 0o644, (python + "\n").encode(),
                           what="the interpreter the dracut module ships"))
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


def choose_stacks(stack: str, found: Dict[str, List[str]]) -> Tuple[List[str], str]:
    """(stacks to install for, why)."""
    from kdumptool.errors import BadArgument

    if stack == "all":
        return list(STACKS), "all stacks (--stack all)"
    if stack in STACKS:
        return [stack], f"--stack {stack}"
    if stack != "auto":
        raise BadArgument(f"--stack {stack!r}: one of auto, all, {', '.join(STACKS)}")
    got = [s for s in STACKS if s in found]
    if "dracut" in got and ("kdump-utils" in got or "suse-kdump" in found):
        # kdump-utils' dracut covers it; SUSE's kdump initramfs carries its own `kdumptool`
        # binary, which kdumptool's module must not meet (docs/initramfs.md)
        got.remove("dracut")
    if not got and "suse-kdump" in found:
        return [], "SUSE's kdump found: the boot-record unit and the shutdown hook only (docs/initramfs.md)"
    if not got:
        return list(STACKS), "no kdump stack found below the prefix (a package build root?): all stacks"
    return got, "found: " + "; ".join(f"{s} ({', '.join(found[s])})" for s in got)


NEXT_STEPS = {
    "common": [
        "systemctl daemon-reload",
        "systemctl enable --now kdumptool-boot-record.service   # RTADDR, PCI state at boot",
    ],
    "kdump-utils": [
        "# kdump-utils (RHEL/Fedora): add the module to the kdump initramfs, opt in, rebuild",
        "# (on the dracut_args line if there is one: kdump-utils reads --mount from the last one only)",
        "grep -q '^dracut_args' /etc/kdump.conf && sed -i '/^dracut_args/ s/$/ --add kdumptool/' /etc/kdump.conf \\",
        "    || echo 'dracut_args --add kdumptool' >> /etc/kdump.conf",
        "sed -i 's/^quiesce=0/quiesce=1/' /etc/kdumptool/kdumptool.conf   # or kdumptool.quiesce=1 in KDUMP_COMMANDLINE_APPEND",
        "kdumpctl rebuild && kdumpctl restart",
    ],
    "kdump-tools": [
        "# kdump-tools (Debian/Ubuntu): the kdump kernel boots this root file system, so the units",
        "# above run there; nothing goes into its initramfs and nothing needs rebuilding",
        "sed -i 's/^quiesce=0/quiesce=1/' /etc/kdumptool/kdumptool.conf   # opt in",
        "kdump-config show   # kdump-tools itself: 'current state: ready to kdump'",
    ],
    "dracut": [
        "# any other dracut-built capture initramfs:",
        "dracut --force --add kdumptool /boot/initramfs-$(uname -r)kdump.img $(uname -r)",
        "# a capture system booted with systemd outside kdump-utils:",
        "systemctl enable kdumptool-quiesce.service",
    ],
}


def run_install(prefix: Path, dry_run: bool, source: Optional[Path], python: Optional[str],
                records: Optional[List[dict]] = None, stack: str = "auto",
                kdumptool_cmd: Optional[str] = None, meta: Optional[dict] = None) -> str:
    from kdumptool.errors import BadArgument, KdumptoolError

    src = _source_dir(source)
    rec: List[dict] = [] if records is None else records
    from kdumptool.sources.kdumpstack import detect_stacks, kdump_tools_coredir

    found = detect_stacks(prefix)
    stacks, why = choose_stacks(stack, found)
    cmd, how = resolve_kdumptool(kdumptool_cmd)
    if any(c.isspace() for c in cmd.split(" ")[0]):
        raise BadArgument(f"{cmd}: a path with white space cannot go into a unit's ExecStart=")
    # a venv's own python (not the interpreter it links to): only it imports kdumptool
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    py = python or (os.path.abspath(sys.executable) if in_venv else os.path.realpath(sys.executable))
    coredir = kdump_tools_coredir(prefix)
    plan = plan_install(src, prefix, stacks, cmd, py, coredir)
    if meta is not None:
        meta.update({"stacks": stacks, "detected": found, "why": why, "kdumptool": cmd,
                     "kdumptool_found": how, "python": py, "kdump_coredir": coredir})
    lines = [f"stacks:    {', '.join(stacks)} ({why})",
             f"units run {cmd} ({how})"]
    if "suse-kdump" in found:
        lines.append("note:      SUSE's kdump found (dracut module 'kdump'): not installed for; "
                     "see docs/initramfs.md")
    lines.append("")
    if not dry_run:
        _check_writable([p.dest for p in plan])
    verb = "would write" if dry_run else "installed"
    try:
        for p in plan:
            if p.dest.exists() and not p.overwrite:
                lines.append(f"kept        {p.dest} (exists)")
                rec.append({"action": "keep", "path": str(p.dest)})
                continue
            lines.append(f"{verb} {p.dest} ({p.mode:04o}; {', '.join(p.stacks)}: {p.what})")
            entry: Dict[str, Any] = {"action": "install", "path": str(p.dest), "mode": p.mode,
                                     "stacks": p.stacks, "what": p.what}
            if dry_run:
                text = p.content.decode("utf-8", "replace")
                lines += [f"    | {ln}" for ln in text.splitlines()]
                entry["content"] = text
            else:
                p.dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = p.dest.with_name(f".{p.dest.name}.kdumptool-new")
                tmp.write_bytes(p.content)
                os.chmod(tmp, p.mode)
                os.replace(tmp, p.dest)
            rec.append(entry)
    except OSError as exc:
        raise KdumptoolError(f"{exc.filename or prefix}: {exc.strerror or exc}") from None
    lines += ["", "next steps:"]
    for key in ["common"] + stacks:
        lines += [f"  {ln}" for ln in NEXT_STEPS[key]]
    return "\n".join(lines) + "\n"

