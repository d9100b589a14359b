"""Distribution kdump configuration files, decoded with their line numbers.

Three families, three files (each decoded by a pure function, ``str -> KdumpConfFile``):

- ``/etc/kdump.conf`` (RHEL, Fedora, CentOS; kexec-tools' ``kdump.conf(5)``): one directive
  per line, ``directive value...``; ``#`` starts a comment. Directives we interpret:
  ``raw``, ``nfs``, ``ssh``, ``path``, a file-system type (``ext4``/``xfs``/...) naming the
  dump device, ``core_collector`` (``makedumpfile ... -d N``), ``extra_modules``,
  ``kdump_pre``/``kdump_post``, ``dracut_args``, ``failure_action``/``default``.
- ``/etc/sysconfig/kdump`` (RHEL: ``KDUMP_COMMANDLINE``, ``KDUMP_COMMANDLINE_APPEND``,
  ``KDUMP_COMMANDLINE_REMOVE``; SUSE: ``KDUMP_COMMANDLINE``/``KDUMP_CMDLINE``,
  ``..._APPEND``, ``KDUMP_DUMPLEVEL``, ``KDUMP_SAVEDIR``): shell variable assignments.
- ``/etc/default/kdump-tools`` (Debian, Ubuntu; ``kdump-tools(5)``): shell assignments,
  ``USE_KDUMP``, ``KDUMP_CMDLINE``, ``KDUMP_CMDLINE_APPEND``, ``KDUMP_COREDIR``,
  ``MAKEDUMP_ARGS``.

Every value keeps its file line (``ConfLine.line``) so a finding can cite it, and a
remedy can be written in the same file's own language.
"""

from __future__ import annotations

import re
import shlex
from typing import Dict, List, Optional, Tuple

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up

#: kdump.conf directives that name a local file system holding the dump target.
FS_TYPES = ("ext2", "ext3", "ext4", "xfs", "btrfs", "minix", "virtiofs", "vfat")

#: Families and the file each uses.
KDUMP_CONF = "kdump.conf"
SYSCONFIG = "sysconfig"
KDUMP_TOOLS = "kdump-tools"


@dataclass(frozen=True)
class ConfLine:
    """One setting: ``key`` (directive or variable name), its ``value`` (shell quotes
    removed for shell files), the 1-based ``line`` and the ``raw`` line text."""

    key: str
    value: str
    line: int
    raw: str


@dataclass(frozen=True)
class KdumpConfFile:
    path: str
    kind: str
    entries: Tuple[ConfLine, ...]
    warnings: Tuple[str, ...] = ()

    def get(self, *keys: str) -> Optional[ConfLine]:
        """The last setting of any of ``keys`` (the one that takes effect)."""
        found: Optional[ConfLine] = None
        for e in self.entries:
            if e.key in keys:
                found = e
        return found

    def get_all(self, key: str) -> List[ConfLine]:
        return [e for e in self.entries if e.key == key]

    def cite(self, entry: ConfLine) -> str:
        return f"{self.path}:{entry.line}: {entry.raw.strip()}"


def parse_kdump_conf(text: str, path: str = "/etc/kdump.conf") -> KdumpConfFile:
    """Decode ``/etc/kdump.conf``: ``directive value`` per line, ``#`` comments."""
    entries: List[ConfLine] = []
    warnings: List[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # kdumpctl strips trailing comments too (``path /var/crash # where``).
        body = re.sub(r"\s+#.*$", "", line)
        parts = body.split(None, 1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            warnings.append(f"{path}: line {n}: not a directive: {line[:60]!r}")
            continue
        if value == "" and key not in ("force_rebuild", "force_no_rebuild"):
            warnings.append(f"{path}: line {n}: directive {key!r} has no value")
        entries.append(ConfLine(key, value, n, raw))
    return KdumpConfFile(path, KDUMP_CONF, tuple(entries), tuple(warnings))


_ASSIGN = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_shell_vars(text: str, path: str, kind: str) -> KdumpConfFile:
    """Decode shell-style ``NAME="value"`` files (sysconfig, default/kdump-tools).

    Quoted values may span lines (SUSE writes long ``KDUMP_COMMANDLINE_APPEND`` values
    so); the setting keeps the line where it starts. Lines we cannot read as an
    assignment are reported, not fatal.
    """
    entries: List[ConfLine] = []
    warnings: List[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        i += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ASSIGN.match(line)
        if not m:
            warnings.append(f"{path}: line {start}: not an assignment: {line[:60]!r}")
            continue
        name, rhs = m.group(1), m.group(2)
        full = rhs
        value: Optional[str] = None
        while True:
            try:
                toks = shlex.split(full, comments=True, posix=True)
                value = " ".join(toks)
                break
            except ValueError:
                # Unterminated quote: continue onto the next line.
                if i >= len(lines):
                    warnings.append(f"{path}: line {start}: unterminated quote in {name}")
                    value = full.strip().strip("\"'")
                    break
                full += "\n" + lines[i]
                raw += "\n" + lines[i]
                i += 1
        entries.append(ConfLine(name, value if value is not None else "", start, raw))
    return KdumpConfFile(path, kind, tuple(entries), tuple(warnings))


def parse_sysconfig_kdump(text: str, path: str = "/etc/sysconfig/kdump") -> KdumpConfFile:
    return parse_shell_vars(text, path, SYSCONFIG)


def parse_kdump_tools(text: str, path: str = "/etc/default/kdump-tools") -> KdumpConfFile:
    return parse_shell_vars(text, path, KDUMP_TOOLS)


# --------------------------------------------------------------------------------------
# Derived settings


@dataclass(frozen=True)
class Setting:
    """A derived value and where it came from (``None`` source: a built-in default)."""

    value: object
    file: Optional[str] = None
    entry: Optional[ConfLine] = None

    def cite(self) -> str:
        if self.entry is None or self.file is None:
            return "(default)"
        return f"{self.file}:{self.entry.line}: {self.entry.raw.strip()}"


@dataclass(frozen=True)
class DumpTarget:
    kind: str  # local | raw | nfs | ssh | fs
    location: str  # path, device, host:path
    path: str  # directory on the target
    source: Setting


@dataclass(frozen=True)
class KdumpSettings:
    """What the configuration files mean, independent of distribution."""

    family: str  # rhel | suse | debian | unknown
    files: Tuple[KdumpConfFile, ...]
    target: Optional[DumpTarget]
    dump_level: Optional[Setting]  # int
    extra_modules: Tuple[Tuple[str, Setting], ...]
    cmdline_replace: Optional[Setting]  # str: replaces /proc/cmdline
    cmdline_append: Optional[Setting]
    cmdline_remove: Optional[Setting]
    enabled: Optional[Setting]  # Debian USE_KDUMP
    hooks: Tuple[Tuple[str, Setting], ...] = ()
    warnings: Tuple[str, ...] = ()
    #: The file and variable a remedy should edit to change the kdump command line.
    append_var: Optional[Tuple[str, str]] = None


_DUMPLEVEL = re.compile(r"(?:^|\s)-d\s*(\d+)|--dump-level[= ](\d+)")


def dump_level_of(args: str) -> Optional[int]:
    """The ``-d N`` of a makedumpfile command line (None when absent or not a number)."""
    matches = list(_DUMPLEVEL.finditer(args))
    if not matches:
        return None
    m = matches[-1]
    level = int(m.group(1) or m.group(2))
    return level if 0 <= level <= 31 else None


def settings_of(family: str, files: List[KdumpConfFile]) -> KdumpSettings:
    """Combine the decoded files of one distribution family into :class:`KdumpSettings`."""
    by_kind: Dict[str, KdumpConfFile] = {f.kind: f for f in files}
    warnings: List[str] = []
    for f in files:
        warnings.extend(f.warnings)
    target: Optional[DumpTarget] = None
    dump_level: Optional[Setting] = None
    extra: List[Tuple[str, Setting]] = []
    hooks: List[Tuple[str, Setting]] = []
    replace = append = remove = enabled = None
    append_var: Optional[Tuple[str, str]] = None

    def st(f: KdumpConfFile, e: Optional[ConfLine], value: object = None) -> Optional[Setting]:
        if e is None:
            return None
        return Setting(e.value if value is None else value, f.path, e)

    kc = by_kind.get(KDUMP_CONF)
    if kc is not None:
        path_e = kc.get("path")
        path = path_e.value if path_e else "/var/crash"
        for e in kc.entries:
            if e.key in ("raw", "nfs", "ssh") or e.key in FS_TYPES:
                kind = e.key if e.key in ("raw", "nfs", "ssh") else "fs"
                target = DumpTarget(kind, e.value, path, Setting(e.value, kc.path, e))
        if target is None:
            src = Setting(path, kc.path, path_e) if path_e else Setting(path)
            target = DumpTarget("local", path, path, src)
        cc = kc.get("core_collector")
        if cc is not None:
            lvl = dump_level_of(cc.value)
            if lvl is not None:
                dump_level = Setting(lvl, kc.path, cc)
            elif _DUMPLEVEL.search(cc.value):
                warnings.append(f"{kc.path}: line {cc.line}: makedumpfile dump level is not 0-31: {cc.value!r}")
            elif "makedumpfile" in cc.value:
                dump_level = Setting(0, kc.path, cc)  # makedumpfile's own default: every page
        for e in kc.get_all("extra_modules"):
            for mod in e.value.split():
                extra.append((mod, Setting(mod, kc.path, e)))
        for key in ("kdump_pre", "kdump_post"):
            for e in kc.get_all(key):
                hooks.append((key, Setting(e.value, kc.path, e)))
        for e in kc.get_all("dracut_args"):
            for m in re.finditer(r"--add-drivers\s+[\"']?([^\"'-][^\"']*)[\"']?", e.value):
                for mod in m.group(1).split():
                    extra.append((mod, Setting(mod, kc.path, e)))

    sc = by_kind.get(SYSCONFIG)
    if sc is not None:
        replace = st(sc, sc.get("KDUMP_COMMANDLINE", "KDUMP_CMDLINE"))
        append = st(sc, sc.get("KDUMP_COMMANDLINE_APPEND", "KDUMP_CMDLINE_APPEND"))
        remove = st(sc, sc.get("KDUMP_COMMANDLINE_REMOVE"))
        var = "KDUMP_COMMANDLINE_APPEND"
        if sc.get("KDUMP_CMDLINE_APPEND") and not sc.get("KDUMP_COMMANDLINE_APPEND"):
            var = "KDUMP_CMDLINE_APPEND"
        append_var = (sc.path, var)
        lvl_e = sc.get("KDUMP_DUMPLEVEL")
        if lvl_e is not None:
            if lvl_e.value.isdigit() and int(lvl_e.value) <= 31:
                dump_level = Setting(int(lvl_e.value), sc.path, lvl_e)
            else:
                warnings.append(f"{sc.path}: line {lvl_e.line}: KDUMP_DUMPLEVEL {lvl_e.value!r} is not 0-31")
        save = sc.get("KDUMP_SAVEDIR")
        if save is not None and target is None:
            loc = save.value
            kind = "local"
            um = re.match(r"^(file|nfs|ssh|sftp|ftp|cifs|smb)://(.*)$", loc)
            if um:
                kind = {"file": "local", "sftp": "ssh", "ftp": "ftp", "smb": "cifs"}.get(um.group(1), um.group(1))
                loc = um.group(2) if um.group(1) == "file" else loc
            target = DumpTarget(kind, loc, loc if kind == "local" else "", Setting(save.value, sc.path, save))
        kmods = sc.get("KDUMP_EXTRA_MODULES")  # not a SUSE name, but harmless to honour
        if kmods is not None:
            for mod in kmods.value.split():
                extra.append((mod, Setting(mod, sc.path, kmods)))

    kt = by_kind.get(KDUMP_TOOLS)
    if kt is not None:
        replace = st(kt, kt.get("KDUMP_CMDLINE"))
        append = st(kt, kt.get("KDUMP_CMDLINE_APPEND"))
        append_var = (kt.path, "KDUMP_CMDLINE_APPEND")
        enabled = st(kt, kt.get("USE_KDUMP"))
        cd = kt.get("KDUMP_COREDIR")
        coredir = cd.value if cd else "/var/crash"
        target = DumpTarget("local", coredir, coredir, Setting(coredir, kt.path, cd) if cd else Setting(coredir))
        ssh = kt.get("SSH")
        nfs = kt.get("NFS")
        if ssh is not None and ssh.value:
            target = DumpTarget("ssh", ssh.value, coredir, Setting(ssh.value, kt.path, ssh))
        elif nfs is not None and nfs.value:
            target = DumpTarget("nfs", nfs.value, coredir, Setting(nfs.value, kt.path, nfs))
        ma = kt.get("MAKEDUMP_ARGS")
        if ma is not None:
            lvl = dump_level_of(ma.value)
            if lvl is not None:
                dump_level = Setting(lvl, kt.path, ma)

    if dump_level is None and files:
        # kdumpctl's core_collector, SUSE's KDUMP_DUMPLEVEL and kdump-config's
        # MAKEDUMP_ARGS all default to dump level 31.
        dump_level = Setting(31)
    return KdumpSettings(
        family=family,
        files=tuple(files),
        target=target,
        dump_level=dump_level,
        extra_modules=tuple(extra),
        cmdline_replace=replace,
        cmdline_append=append,
        cmdline_remove=remove,
        enabled=enabled,
        hooks=tuple(hooks),
        warnings=tuple(warnings),
        append_var=append_var,
    )


# --------------------------------------------------------------------------------------
# The kdump kernel command line each distribution's tool builds

#: Parameters every tool drops from the first kernel's command line before reuse
#: (kdumpctl ``prepare_cmdline``; kdump-config ``kdump_create_symlinks``/``kdump_load``).
ALWAYS_REMOVED = ("crashkernel", "BOOT_IMAGE", "initrd", "kexec_jump_back_entry")


def cmdline_args(cmdline: str) -> List[str]:
    try:
        return shlex.split(cmdline)
    except ValueError:
        return cmdline.split()


def _argname(arg: str) -> str:
    return arg.split("=", 1)[0]


def build_kdump_cmdline(settings: KdumpSettings, first_cmdline: str) -> Tuple[str, List[str]]:
    """The command line the distribution's tool gives the kdump kernel.

    Start from ``KDUMP_COMMANDLINE``/``KDUMP_CMDLINE`` when set, otherwise from the first
    kernel's ``/proc/cmdline``; drop ``crashkernel=``, ``BOOT_IMAGE=`` and every name in
    ``KDUMP_COMMANDLINE_REMOVE``; add ``..._APPEND``. Returns the line and a list of the
    steps taken, each citing its configuration line.
    """
    steps: List[str] = []
    if settings.cmdline_replace is not None and str(settings.cmdline_replace.value).strip():
        base = str(settings.cmdline_replace.value)
        steps.append(f"base from {settings.cmdline_replace.cite()}")
    else:
        base = first_cmdline
        steps.append("base: the first kernel's /proc/cmdline")
    remove = set(ALWAYS_REMOVED)
    if settings.cmdline_remove is not None:
        names = {_argname(a) for a in str(settings.cmdline_remove.value).split()}
        remove |= names
        steps.append(f"removed {' '.join(sorted(names))} ({settings.cmdline_remove.cite()})")
    args = [a for a in cmdline_args(base) if _argname(a) not in remove]
    if settings.cmdline_append is not None and str(settings.cmdline_append.value).strip():
        args.extend(cmdline_args(str(settings.cmdline_append.value)))
        steps.append(f"appended {settings.cmdline_append.value} ({settings.cmdline_append.cite()})")
    return " ".join(args), steps
