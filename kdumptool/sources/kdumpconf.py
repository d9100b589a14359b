"""Read the distribution's kdump configuration from a :class:`Root`.

Which files are read depends on the distribution family, told by ``/etc/os-release``
(``ID``/``ID_LIKE``) and, failing that, by which files exist:

- rhel (RHEL, Fedora, CentOS, Alma, Rocky...): ``/etc/kdump.conf`` + ``/etc/sysconfig/kdump``
- suse (SLES, openSUSE): ``/etc/sysconfig/kdump``
- debian (Debian, Ubuntu): ``/etc/default/kdump-tools``
"""

from __future__ import annotations

from typing import Dict, List, Optional

from kdumptool.errors import PermissionDenied, SourceMissing
from kdumptool.formats.kdumpconf import (
    KdumpConfFile,
    KdumpSettings,
    parse_kdump_conf,
    parse_kdump_tools,
    parse_sysconfig_kdump,
    settings_of,
)
from kdumptool.sources.root import Root

KDUMP_CONF_PATH = "/etc/kdump.conf"
SYSCONFIG_PATH = "/etc/sysconfig/kdump"
KDUMP_TOOLS_PATH = "/etc/default/kdump-tools"


def read_os_release(root: Root) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = root.read_optional(path)
        if text is None:
            continue
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip().strip("\"'")
        break
    return out


def family_of(os_release: Dict[str, str], have: Dict[str, bool]) -> str:
    ids = (os_release.get("ID", "") + " " + os_release.get("ID_LIKE", "")).lower().split()
    if any(i in ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn") for i in ids):
        return "rhel"
    if any(i.startswith(("suse", "sles", "opensuse")) for i in ids):
        return "suse"
    if any(i in ("debian", "ubuntu") for i in ids):
        return "debian"
    if have.get(KDUMP_CONF_PATH):
        return "rhel"
    if have.get(KDUMP_TOOLS_PATH):
        return "debian"
    if have.get(SYSCONFIG_PATH):
        return "suse"
    return "unknown"


def _read(root: Root, path: str) -> Optional[str]:
    try:
        return root.read_text(path)
    except (SourceMissing, PermissionDenied):
        return None


def read_kdump_settings(root: Root) -> Optional[KdumpSettings]:
    """The kdump configuration of the system under ``root``, or None when it has none."""
    texts = {p: _read(root, p) for p in (KDUMP_CONF_PATH, SYSCONFIG_PATH, KDUMP_TOOLS_PATH)}
    have = {p: t is not None for p, t in texts.items()}
    if not any(have.values()):
        return None
    family = family_of(read_os_release(root), have)
    files: List[KdumpConfFile] = []
    kc, sc, kt = texts[KDUMP_CONF_PATH], texts[SYSCONFIG_PATH], texts[KDUMP_TOOLS_PATH]
    if family in ("rhel", "unknown") and kc is not None:
        files.append(parse_kdump_conf(kc, KDUMP_CONF_PATH))
    if family in ("rhel", "suse", "unknown") and sc is not None:
        files.append(parse_sysconfig_kdump(sc, SYSCONFIG_PATH))
    if family in ("debian", "unknown") and kt is not None:
        files.append(parse_kdump_tools(kt, KDUMP_TOOLS_PATH))
    if not files:
        # The family's own file is absent but another one exists: read what there is.
        if kc is not None:
            files.append(parse_kdump_conf(kc, KDUMP_CONF_PATH))
        if sc is not None:
            files.append(parse_sysconfig_kdump(sc, SYSCONFIG_PATH))
        if kt is not None:
            files.append(parse_kdump_tools(kt, KDUMP_TOOLS_PATH))
    return settings_of(family, files)
