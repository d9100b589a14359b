"""The switches of the kdump integration: kernel command line, then a config file.

``kdumptool.quiesce=0|1`` and ``kdumptool.record=0|1`` on the kernel command line
(``/proc/cmdline``: for the kdump kernel, set them with ``KDUMP_COMMANDLINE_APPEND`` in
/etc/sysconfig/kdump or kdump-tools' ``KDUMP_CMDLINE_APPEND``) win over
``/etc/kdumptool/kdumptool.conf`` (``quiesce=1``, ``record=0``; ``#`` comments).
Quiesce is opt-in (off unless a knob turns it on); record is on unless turned off.
"""

from __future__ import annotations

from typing import Dict, Tuple

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.sources.root import Root

CONFIG_FILE = "/etc/kdumptool/kdumptool.conf"
DEFAULTS: Dict[str, bool] = {"quiesce": False, "record": True}
_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off")


@dataclass(frozen=True)
class Knob:
    name: str
    value: bool
    source: str  # "kernel command line", the config file path, or "default"


def _parse_bool(text: str):  # -> Optional[bool]
    t = text.strip().strip("\"'").lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def parse_config(text: str) -> Dict[str, bool]:
    out: Dict[str, bool] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        key, _, val = line.partition("=")
        key = key.strip()
        if key.startswith("kdumptool."):
            key = key[len("kdumptool."):]
        b = _parse_bool(val)
        if key in DEFAULTS and b is not None:
            out[key] = b
    return out


def parse_cmdline(text: str) -> Dict[str, bool]:
    out: Dict[str, bool] = {}
    for word in text.split():
        if not word.startswith("kdumptool.") or "=" not in word:
            continue
        key, _, val = word[len("kdumptool."):].partition("=")
        b = _parse_bool(val)
        if key in DEFAULTS and b is not None:
            out[key] = b  # the last one wins, as for the kernel's own parameters
    return out


def read_knob(root: Root, name: str) -> Knob:
    cmdline = parse_cmdline(root.read_optional("/proc/cmdline") or "")
    if name in cmdline:
        return Knob(name, cmdline[name], "kernel command line")
    conf_text = root.read_optional(CONFIG_FILE)
    if conf_text is not None:
        conf = parse_config(conf_text)
        if name in conf:
            return Knob(name, conf[name], CONFIG_FILE)
    return Knob(name, DEFAULTS[name], "default")


def read_knobs(root: Root) -> Tuple[Knob, ...]:
    return tuple(read_knob(root, n) for n in sorted(DEFAULTS))
