"""Which kdump stack a root file system carries (kdump-utils, Debian's kdump-tools, SUSE's
kdump, plain dracut), from the files each installs, the settings of those stacks that
kdumptool's integration needs (kdump-tools' KDUMP_COREDIR), and the state of that
integration (:func:`read_integration`, for triage)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from kdumptool.model.triage import KdumptoolIntegration

if TYPE_CHECKING:
    from kdumptool.sources.root import Root


def detect_stacks(root: Path) -> Dict[str, List[str]]:
    """Kdump stacks found below ``root``: name -> the files that show it (only found ones)."""

    def have(*rels: str) -> List[str]:
        return [str(root / r) for r in rels if (root / r).exists()]

    out: Dict[str, List[str]] = {}
    ku = have("usr/bin/kdumpctl", "usr/sbin/kdumpctl", "usr/lib/dracut/modules.d/99kdumpbase")
    if ku:
        out["kdump-utils"] = ku
    kt = have("usr/sbin/kdump-config", "sbin/kdump-config", "etc/default/kdump-tools",
              "lib/systemd/system/kdump-tools-dump.service", "usr/lib/systemd/system/kdump-tools-dump.service")
    if kt:
        out["kdump-tools"] = kt
    # SUSE's kdump: its own dracut module "kdump" and /etc/sysconfig/kdump (KDUMP_SAVEDIR);
    # described in docs/initramfs.md, not installed for (never run here)
    suse = have("usr/lib/dracut/modules.d/99kdump")
    if suse:
        out["suse-kdump"] = suse
    dr = have("usr/bin/dracut", "usr/sbin/dracut")
    if dr:
        out["dracut"] = dr
    return out


def kdump_tools_coredir(root: Path) -> str:
    """KDUMP_COREDIR of /etc/default/kdump-tools (a shell file; the last assignment wins),
    else kdump-config's default /var/crash."""
    val = "/var/crash"
    try:
        text = (root / "etc/default/kdump-tools").read_text(errors="replace")
    except OSError:
        return val
    for line in text.splitlines():
        m = re.match(r"\s*(?:export\s+)?KDUMP_COREDIR=(.*)$", line)
        if m:
            try:
                words = shlex.split(m.group(1), comments=True)
            except ValueError:
                continue
            if words and words[0].startswith("/"):
                val = words[0]
    return val


#: What install-integration puts in place per stack (relative to the root), the files that
#: make the integration work at kdump time.
STACK_FILES: Dict[str, Tuple[str, ...]] = {
    "kdump-utils": ("usr/lib/dracut/modules.d/99kdumptool/module-setup.sh",
                    "usr/lib/systemd/system-shutdown/kdumptool.shutdown"),
    "dracut": ("usr/lib/dracut/modules.d/99kdumptool/module-setup.sh",
               "usr/lib/systemd/system-shutdown/kdumptool.shutdown"),
    "kdump-tools": ("usr/lib/systemd/system/kdump-tools-dump.service.d/50-kdumptool.conf",
                    "usr/lib/systemd/system/kdumptool-kdump-tools-record.service",
                    "usr/lib/systemd/system/kdumptool-kdump-tools-publish.path",
                    "usr/libexec/kdumptool/kdump-pre",
                    "usr/libexec/kdumptool/kdump-tools-publish",
                    "usr/libexec/kdumptool/kdump-tools-after-dump",
                    "lib/lsb/init-functions.d/50-kdumptool",
                    "usr/lib/systemd/system-shutdown/kdumptool.shutdown"),
}
#: Files whose change needs a rebuilt kdump initramfs when kdumptool rides in it (dracut).
REBUILD_INPUTS = ("etc/kdump.conf", "etc/kdumptool/kdumptool.conf", "etc/kdumptool/python",
                  "usr/lib/dracut/modules.d/99kdumptool/module-setup.sh")
REBUILD_COMMAND = {"kdump-utils": "kdumpctl rebuild && kdumpctl restart",
                   "dracut": "dracut --force --add kdumptool <the kdump initramfs> <release>"}


def _mtime(root: Root, rel: str) -> Optional[float]:
    try:
        return os.stat(root.p(rel)).st_mtime
    except (OSError, ValueError):
        return None


def read_integration(root: Root, initrd_path: Optional[str] = None) -> KdumptoolIntegration:
    """kdumptool's kdump integration on ``root``: the stack, which of the files
    install-integration writes for it are there, the kdumptool command the boot-record unit
    runs and whether it is an executable file there, and (dracut stacks) the configuration
    files newer than the kdump initramfs ``initrd_path``."""
    found = detect_stacks(Path(root.p("/")))
    stack = next((s for s in ("kdump-utils", "kdump-tools", "suse-kdump", "dracut") if s in found), None)
    want = STACK_FILES.get(stack or "", ())
    have = tuple(f for f in want if root.exists(f))
    missing = tuple(f for f in want if f not in have)
    command = None
    command_ok = None
    for unit in ("usr/lib/systemd/system/kdumptool-boot-record.service",
                 "lib/systemd/system/kdumptool-boot-record.service"):
        text = root.read_optional(unit)
        if text is None:
            continue
        m = re.search(r"^ExecStart=(\S+)", text, re.M)
        if m:
            command = m.group(1)
            exe = command.lstrip("-@:+!")
            try:
                p = root.p(exe)
                command_ok = p.is_file() and (not root.is_live or os.access(p, os.X_OK))
            except (OSError, ValueError):
                command_ok = False
        break
    stale: Tuple[str, ...] = ()
    if stack in ("kdump-utils", "dracut") and initrd_path:
        built = _mtime(root, initrd_path)
        if built is not None:
            stale = tuple(f for f in REBUILD_INPUTS if (_mtime(root, f) or 0) > built)
    shown = tuple("/" + os.path.relpath(f, root.path) for f in found.get(stack or "", ()))
    return KdumptoolIntegration(stack, shown, have, missing, command, command_ok,
                                initrd_path, stale, REBUILD_COMMAND.get(stack or ""))
