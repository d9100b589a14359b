"""Which kdump stack a root file system carries (kdump-utils, Debian's kdump-tools, SUSE's
kdump, plain dracut), from the files each installs, and the settings of those stacks that
kdumptool's integration needs (kdump-tools' KDUMP_COREDIR)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Dict, List


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
