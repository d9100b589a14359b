"""The one module of kdumptool that writes hardware: the PCI COMMAND register.

What it changes: the 16-bit COMMAND register at config-space offset 0x04 (PCI Local Bus
Specification 3.0, section 6.2.2; the kernel's ``PCI_COMMAND``), and only its Bus Master
Enable bit (``PCI_COMMAND_MASTER``, bit 2). It writes through sysfs
(``/sys/bus/pci/devices/<bdf>/config``), which the kernel turns into a config-space word
write (``pci_write_config`` in drivers/pci/pci-sysfs.c), so no /dev/mem or port I/O.

Safety rules, checked before every write:

- dry run unless ``apply=True`` (setpci's ``-D``, inverted);
- the device must answer: a Vendor ID of 0xffff means it is gone (surprise removal, a
  bridge above it with its secondary bus reset, or a link down), so nothing is written;
- the Vendor ID, Device ID and Header Type (offsets 0x00, 0x02, 0x0e) must match what the
  plan saw, so a renumbered bus never gets a write meant for another device;
- the new value may differ from the current one in ``PCI_COMMAND_MASTER`` only;
- after the write the register is read back and must hold the new value;
- every change is logged as ``0000:03:01.0 COMMAND 0x0107 -> 0x0103`` to the console
  (stderr and, on a live host, /dev/kmsg) and to an optional journal file;
- writing is idempotent: a device whose bit is already clear is left alone;
- a write refused by the kernel (EPERM under lockdown, EACCES without root) raises
  :class:`PermissionDenied` naming the cause.

All paths go through a :class:`~kdumptool.sources.root.Root`, so tests run this code on a
temporary copy of a snapshot tree, where ``config`` is a plain file.

Two methods clear Bus Master Enable (chosen by the planner, :func:`choose_method`):

- ``config`` (the default): the 2-byte write of COMMAND above;
- ``sysfs-enable`` (kernel-mediated, for a kernel locked down to ``integrity`` or
  ``confidentiality``, where ``pci_write_config`` refuses config writes with EPERM): write
  ``1`` then ``0`` to ``/sys/bus/pci/devices/<bdf>/enable``. ``enable_store``
  (drivers/pci/pci-sysfs.c) needs CAP_SYS_ADMIN, returns EBUSY while a driver is bound and
  EIO for ``0`` on a device that is not enabled, hence ``1`` first. ``1`` is
  ``pci_enable_device`` (drivers/pci/pci.c: device to D0, I/O and memory decode for its
  BARs, INTx un-masked, and ``pci_enable_bridge`` on every bridge above it, which enables
  those bridges AND sets their Bus Master); ``0`` is ``pci_disable_device`` ->
  ``do_pci_disable_device``, which clears ``PCI_COMMAND_MASTER`` only. Reads of config
  space stay allowed under lockdown, so the identity checks and the read-back of COMMAND
  are the same as for ``config``. See docs/lockdown.md.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from typing import IO, Callable, List, Optional, Tuple

from kdumptool.errors import ActionRefused, PermissionDenied, SourceMissing
from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.sources.devmem import lockdown_mode
from kdumptool.sources.root import Root

# Config-space offsets and bits, spelled as in include/uapi/linux/pci_regs.h.
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_HEADER_TYPE = 0x0E
PCI_COMMAND_MASTER = 0x4
PCI_HEADER_TYPE_MASK = 0x7F

#: What the kernel returns for a config read of a device that does not answer.
ABSENT_ID = 0xFFFF


METHOD_CONFIG = "config"
METHOD_SYSFS_ENABLE = "sysfs-enable"
METHODS = (METHOD_CONFIG, METHOD_SYSFS_ENABLE)

#: COMMAND bits ``pci_enable_device`` may change besides Bus Master (which ``0`` clears):
#: I/O and memory decode set for the BARs (pci_enable_resources), INTx Disable cleared
#: (do_pci_enable_device). Anything else changing is reported as unplanned.
PCI_COMMAND_IO = 0x1
PCI_COMMAND_MEMORY = 0x2
PCI_COMMAND_INTX_DISABLE = 0x400
SYSFS_ENABLE_SIDE_BITS = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE

#: What the plan says the kernel-mediated method does besides clearing Bus Master.
SYSFS_ENABLE_SIDE_EFFECTS = (
    "pci_enable_device puts the device in D0",
    "sets I/O and memory decode for its BARs and clears INTx Disable",
    "pci_enable_bridge enables every bridge above it and sets THEIR Bus Master",
)


def config_path(bdf: str) -> str:
    return f"/sys/bus/pci/devices/{bdf}/config"


def enable_path(bdf: str) -> str:
    return f"/sys/bus/pci/devices/{bdf}/enable"


@dataclass(frozen=True)
class DeviceIdentity:
    """What the plan saw of a device; checked again right before writing."""

    vendor_id: int
    device_id: int
    header_type: int  # layout only (bits 6:0); the multi-function bit is ignored


@dataclass(frozen=True)
class WriteResult:
    """What happened to one device's COMMAND register."""

    bdf: str
    before: int
    after: int
    #: ``changed`` (written and verified), ``unchanged`` (bit already clear),
    #: ``dry-run`` (would change; nothing written).
    status: str

    def line(self) -> str:
        return f"{self.bdf} COMMAND 0x{self.before:04x} -> 0x{self.after:04x}"

    def as_json(self) -> dict:
        return {"bdf": self.bdf, "before": self.before, "after": self.after, "status": self.status}


class ChangeLog:
    """Where every hardware change is reported: the console and a journal file.

    ``console`` defaults to stderr; ``kmsg`` is the kernel log device (written only when
    given, and a failure to write it is ignored: the console line is already out);
    ``journal`` is appended with one timestamped line per change.
    """

    def __init__(
        self,
        console: Optional[IO[str]] = None,
        kmsg: Optional[str] = None,
        journal: Optional[str] = None,
    ) -> None:
        self.console = console if console is not None else sys.stderr
        self.kmsg = kmsg
        self.journal = journal
        self.lines: List[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)
        try:
            self.console.write(f"kdumptool: {line}\n")
            self.console.flush()
        except (OSError, ValueError):
            pass
        if self.kmsg:
            try:
                fd = os.open(self.kmsg, os.O_WRONLY | os.O_NOCTTY)
                try:
                    # <5> is KERN_NOTICE: shown on a console at the default loglevel 7.
                    os.write(fd, f"<5>kdumptool: {line}\n".encode())
                finally:
                    os.close(fd)
            except OSError:
                pass
        if self.journal:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            try:
                with open(self.journal, "a", encoding="utf-8") as fh:
                    fh.write(f"{stamp} {line}\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                self.journal = None
                self.write(f"journal {exc.filename}: {exc.strerror}; console only from now on")


def lockdown_state(root: Root) -> Optional[str]:
    """The active lockdown mode (``integrity``/``confidentiality``), or None (``[none]``,
    or no /sys/kernel/security/lockdown: securityfs not mounted or no lockdown LSM)."""
    mode = lockdown_mode(root)
    return None if mode in (None, "none") else mode


def choose_method(root: Root, asked: Optional[str] = None) -> Tuple[str, str]:
    """(method, why): ``asked`` when given (and not ``auto``), else ``sysfs-enable`` when the
    kernel is locked down (config writes would be refused), else ``config``."""
    if asked and asked != "auto":
        if asked not in METHODS:
            raise ActionRefused(f"unknown quiesce method {asked!r} (one of auto, {', '.join(METHODS)})")
        return asked, "asked for"
    mode = lockdown_state(root)
    if mode in ("integrity", "confidentiality"):
        return METHOD_SYSFS_ENABLE, (f"kernel locked down ({mode}): config-space writes are refused, "
                                     "the kernel's own enable/disable is not")
    return METHOD_CONFIG, "default"


def _denied(root: Root, bdf: str, exc: OSError, doing: str) -> PermissionDenied:
    mode = lockdown_state(root)
    if exc.errno == errno.EPERM and mode:
        why = f"the kernel is locked down ({mode}): config-space writes are refused"
    elif exc.errno == errno.EPERM:
        why = "EPERM (kernel lockdown, or a security module refuses config-space writes)"
    elif root.is_live and os.geteuid() != 0:
        why = "permission denied: run as root"
    else:
        why = f"{exc.strerror}"
    return PermissionDenied(f"{bdf}: {doing} {config_path(bdf)}: {why}")


def read_config_word(root: Root, bdf: str, offset: int) -> int:
    """A little-endian 16-bit config-space word."""
    data = _read_config(root, bdf, offset, 2)
    return int.from_bytes(data, "little")


def open_config(root: Root, bdf: str, write: bool = False) -> int:
    """One descriptor on ``bdf``'s config file, used for every read and the write of one
    change (a device swapped under the path after the identity check is never written).

    The path is resolved inside the root (a snapshot's ``config`` linking out of the tree
    resolves to the snapshot's own file, never the host's), opened with O_NOFOLLOW and
    must be a regular file (sysfs's ``config`` is one)."""
    mode = os.O_RDWR if write else os.O_RDONLY
    return _open_device_file(root, bdf, config_path(bdf), mode, "no such device",
                             lambda exc: _denied(root, bdf, exc, "opening for write" if write else "reading"))


def _open_device_file(root: Root, bdf: str, rel: str, mode: int, absent: str,
                      denied: Callable[[OSError], Exception]) -> int:
    """One descriptor on a device's sysfs file (``config``, ``enable``): resolved inside the
    root, O_NOFOLLOW, a regular file, blocking once open. ``absent`` names a missing file,
    ``denied`` makes the error for a refused open."""
    path = root.p(rel)
    if not root.is_live and not root.contains(path):
        raise ActionRefused(f"{bdf}: {path} lies outside the tree {root.path}; not touched")
    flags = mode | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SourceMissing(f"{bdf}: {rel}: {absent}") from None
    except PermissionError as exc:
        raise denied(exc) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ActionRefused(f"{bdf}: {path} is a symbolic link; not touched") from None
        raise SourceMissing(f"{bdf}: {rel}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ActionRefused(f"{bdf}: {path} is not a regular file; not touched")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pread(fd: int, bdf: str, size: int, offset: int) -> bytes:
    try:
        data = os.pread(fd, size, offset)
    except OSError as exc:
        raise SourceMissing(f"{bdf}: {config_path(bdf)}: read at 0x{offset:x}: {exc.strerror}") from None
    if len(data) != size:
        raise SourceMissing(f"{bdf}: {config_path(bdf)}: short read at 0x{offset:x} ({len(data)} of {size} bytes)")
    return data


def _read_config(root: Root, bdf: str, offset: int, size: int) -> bytes:
    fd = open_config(root, bdf)
    try:
        return _pread(fd, bdf, size, offset)
    finally:
        os.close(fd)


def _identity(head: bytes) -> DeviceIdentity:
    return DeviceIdentity(
        vendor_id=int.from_bytes(head[0:2], "little"),
        device_id=int.from_bytes(head[2:4], "little"),
        header_type=head[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK,
    )


def read_identity(root: Root, bdf: str) -> DeviceIdentity:
    return _identity(_read_config(root, bdf, 0, 16))


def check_identity(bdf: str, seen: DeviceIdentity, expected: Optional[DeviceIdentity]) -> None:
    """Refuse an absent device or one that is not the device the plan saw."""
    if seen.vendor_id == ABSENT_ID:
        raise ActionRefused(f"{bdf}: reads back as absent (Vendor ID 0xffff); not writing")
    if expected is None:
        return
    if (seen.vendor_id, seen.device_id) != (expected.vendor_id, expected.device_id):
        raise ActionRefused(
            f"{bdf}: is now {seen.vendor_id:04x}:{seen.device_id:04x}, the plan saw "
            f"{expected.vendor_id:04x}:{expected.device_id:04x}; not writing"
        )
    if seen.header_type != (expected.header_type & PCI_HEADER_TYPE_MASK):
        raise ActionRefused(
            f"{bdf}: header type is now {seen.header_type}, the plan saw "
            f"{expected.header_type & PCI_HEADER_TYPE_MASK}; not writing"
        )


def check_change(bdf: str, before: int, after: int) -> None:
    """Only ``PCI_COMMAND_MASTER`` may change, and only from set to clear."""
    if not (0 <= before <= 0xFFFF and 0 <= after <= 0xFFFF):
        raise ActionRefused(f"{bdf}: COMMAND 0x{before:x} -> 0x{after:x} is not a 16-bit value")
    diff = before ^ after
    if diff & ~PCI_COMMAND_MASTER:
        raise ActionRefused(
            f"{bdf}: COMMAND 0x{before:04x} -> 0x{after:04x} changes bits 0x{diff & ~PCI_COMMAND_MASTER:04x}"
            " other than PCI_COMMAND_MASTER; refused"
        )
    if after & PCI_COMMAND_MASTER and not before & PCI_COMMAND_MASTER:
        raise ActionRefused(f"{bdf}: COMMAND 0x{before:04x} -> 0x{after:04x} would set Bus Master Enable; refused")


def write_command(
    root: Root,
    bdf: str,
    before: int,
    after: int,
    *,
    apply: bool = False,
    expected: Optional[DeviceIdentity] = None,
    log: Optional[ChangeLog] = None,
) -> WriteResult:
    """Change ``bdf``'s COMMAND register from ``before`` to ``after`` (dry run unless ``apply``).

    ``before`` is the value the caller planned from; the register is read again here, and a
    current value that differs from it in any bit other than ``PCI_COMMAND_MASTER`` is
    refused (someone else changed the device since the plan).
    """
    log = log if log is not None else ChangeLog()
    check_change(bdf, before, after)
    if root.from_archive and apply:
        raise ActionRefused(f"{bdf}: the root is a tar snapshot unpacked to a temporary copy: --apply "
                            "would change nothing that lasts; unpack it and pass the directory")
    if apply and root.is_live and os.geteuid() != 0:
        raise PermissionDenied(f"{bdf}: writing {config_path(bdf)} needs root")
    # One descriptor for the whole change: a device swapped under the path after the
    # identity check is never written (read-only for a dry run).
    fd = open_config(root, bdf, write=apply)
    try:
        seen, current = _checked_state(fd, bdf, expected, before)
        target = (current & ~PCI_COMMAND_MASTER) | (after & PCI_COMMAND_MASTER)
        if target == current:
            return WriteResult(bdf, current, current, "unchanged")
        if not apply:
            log.write(f"{bdf} COMMAND 0x{current:04x} -> 0x{target:04x} (dry run: not written)")
            return WriteResult(bdf, current, target, "dry-run")
        readback = _apply_on_fd(root, fd, bdf, seen, expected, current, target, log)
    finally:
        os.close(fd)
    result = WriteResult(bdf, current, readback, "changed")
    log.write(result.line())
    return result


def _checked_state(fd: int, bdf: str, expected: Optional[DeviceIdentity], planned: int) -> Tuple[DeviceIdentity, int]:
    """Identity and COMMAND read on the device's one descriptor, refused unless the identity
    is the plan's, the device answers, and COMMAND differs from the plan in Bus Master only."""
    head = _pread(fd, bdf, 16, 0)
    seen = _identity(head)
    check_identity(bdf, seen, expected)
    current = int.from_bytes(head[PCI_COMMAND:PCI_COMMAND + 2], "little")
    if current == ABSENT_ID:
        raise ActionRefused(f"{bdf}: COMMAND reads 0xffff (device absent); not writing")
    if (current ^ planned) & ~PCI_COMMAND_MASTER:
        raise ActionRefused(
            f"{bdf}: COMMAND is now 0x{current:04x}, the plan saw 0x{planned:04x}; not writing"
        )
    return seen, current


def _apply_on_fd(root: Root, fd: int, bdf: str, seen: DeviceIdentity, expected: Optional[DeviceIdentity],
                 current: int, target: int, log: ChangeLog) -> int:
    """On one descriptor: identity, COMMAND, 2-byte write, read-back, identity again.
    Any change of the identity, or of a COMMAND bit other than Bus Master Enable, between
    the plan's read and the write aborts (someone else is changing the device)."""
    now = _identity(_pread(fd, bdf, 16, 0))
    if now != seen:
        raise ActionRefused(f"{bdf}: identity changed between check and write "
                            f"({seen.vendor_id:04x}:{seen.device_id:04x} -> {now.vendor_id:04x}:{now.device_id:04x}); "
                            "not writing")
    check_identity(bdf, now, expected)
    cmd = int.from_bytes(_pread(fd, bdf, 2, PCI_COMMAND), "little")
    if cmd != current:
        raise ActionRefused(f"{bdf}: COMMAND changed from 0x{current:04x} to 0x{cmd:04x} since it was read; "
                            "not writing")
    try:
        written = os.pwrite(fd, target.to_bytes(2, "little"), PCI_COMMAND)
    except PermissionError as exc:
        raise _denied(root, bdf, exc, "writing") from None
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise _denied(root, bdf, exc, "writing") from None
        raise ActionRefused(f"{bdf}: writing COMMAND failed: {exc.strerror}") from None
    if written != 2:
        raise ActionRefused(f"{bdf}: short write of COMMAND ({written} of 2 bytes)")
    readback = int.from_bytes(_pread(fd, bdf, 2, PCI_COMMAND), "little")
    if readback != target:
        log.write(f"{bdf} COMMAND 0x{current:04x} -> 0x{target:04x} FAILED: reads back 0x{readback:04x}")
        raise ActionRefused(
            f"{bdf}: wrote COMMAND 0x{target:04x} but it reads back 0x{readback:04x}"
        )
    after = _identity(_pread(fd, bdf, 16, 0))
    if after != seen:
        log.write(f"{bdf} COMMAND 0x{current:04x} -> 0x{target:04x}: identity changed during the write")
        raise ActionRefused(f"{bdf}: identity changed during the write "
                            f"({after.vendor_id:04x}:{after.device_id:04x})")
    return readback


def clear_bus_master(
    root: Root,
    bdf: str,
    planned_command: int,
    *,
    apply: bool = False,
    expected: Optional[DeviceIdentity] = None,
    log: Optional[ChangeLog] = None,
) -> WriteResult:
    """Clear Bus Master Enable of ``bdf`` (the one change quiesce makes)."""
    return write_command(
        root,
        bdf,
        planned_command,
        planned_command & ~PCI_COMMAND_MASTER,
        apply=apply,
        expected=expected,
        log=log,
    )


def read_enable_count(root: Root, bdf: str) -> int:
    """The kernel's enable count of ``bdf`` (``enable_show`` prints ``enable_cnt``)."""
    text = root.read_optional(enable_path(bdf))
    if text is None:
        raise SourceMissing(f"{bdf}: {enable_path(bdf)}: unreadable or absent; the kernel-mediated method "
                            "needs it")
    try:
        count = int(text.split()[0]) if text.split() else -1
    except ValueError:
        count = -1
    if count < 0:
        raise SourceMissing(f"{bdf}: {enable_path(bdf)}: {text[:20]!r} is not an enable count")
    return count


#: The one call that stores into a sysfs attribute (a seam for the tests' kernel fake).
_store = os.write


def _write_enable(root: Root, bdf: str, value: str) -> None:
    """Write ``value`` (``1`` or ``0``) to ``bdf``'s sysfs ``enable``, one write on one
    descriptor (sysfs takes a store in one write). Kernel errors are named."""
    def denied(exc: OSError) -> Exception:
        why = "run as root" if root.is_live and os.geteuid() != 0 else exc.strerror
        return PermissionDenied(f"{bdf}: opening {enable_path(bdf)} for write: {why}")

    fd = _open_device_file(root, bdf, enable_path(bdf), os.O_WRONLY, "no such file", denied)
    try:
        try:
            _store(fd, value.encode())
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise ActionRefused(f"{bdf}: {enable_path(bdf)}: EBUSY, a driver is bound; not touched") from None
            if exc.errno == errno.EIO and value == "0":
                raise ActionRefused(f"{bdf}: {enable_path(bdf)}: EIO, the kernel does not count the device "
                                    "as enabled, so it did not disable it") from None
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise PermissionDenied(f"{bdf}: writing {value} to {enable_path(bdf)}: {exc.strerror} "
                                       "(needs CAP_SYS_ADMIN)") from None
            raise ActionRefused(f"{bdf}: writing {value} to {enable_path(bdf)}: {exc.strerror}") from None
    finally:
        os.close(fd)


def clear_bus_master_sysfs(
    root: Root,
    bdf: str,
    planned_command: int,
    *,
    apply: bool = False,
    expected: Optional[DeviceIdentity] = None,
    log: Optional[ChangeLog] = None,
) -> WriteResult:
    """Clear Bus Master Enable of ``bdf`` through the kernel: ``1`` then ``0`` to its sysfs
    ``enable`` (dry run unless ``apply``).

    Same checks as :func:`write_command` before the write (identity, COMMAND unchanged
    since the plan but for Bus Master, no driver bound), COMMAND read back through config
    afterwards: Bus Master must be clear and only the bits ``pci_enable_device`` may set
    (:data:`SYSFS_ENABLE_SIDE_BITS`) may differ, else the write is reported as refused.
    """
    log = log if log is not None else ChangeLog()
    after = planned_command & ~PCI_COMMAND_MASTER
    check_change(bdf, planned_command, after)
    if root.from_archive and apply:
        raise ActionRefused(f"{bdf}: the root is a tar snapshot unpacked to a temporary copy: --apply "
                            "would change nothing that lasts; unpack it and pass the directory")
    if apply and root.is_live and os.geteuid() != 0:
        raise PermissionDenied(f"{bdf}: writing {enable_path(bdf)} needs root")
    fd = open_config(root, bdf)
    try:
        seen, current = _checked_state(fd, bdf, expected, planned_command)
        if not current & PCI_COMMAND_MASTER:
            return WriteResult(bdf, current, current, "unchanged")
        target = current & ~PCI_COMMAND_MASTER
        if root.exists(f"/sys/bus/pci/devices/{bdf}/driver"):
            raise ActionRefused(f"{bdf}: a driver is bound (the kernel would answer EBUSY); not touched")
        count = read_enable_count(root, bdf)
        if count > 1:
            raise ActionRefused(f"{bdf}: {enable_path(bdf)} reads {count}: enabled by others as well, so one "
                                "pci_disable_device would not clear Bus Master; not touched")
        # enable_cnt 0: pci_enable_device first ("0" alone is EIO); 1 (a driverless bridge
        # enabled by pci_enable_bridge for a device below it): "0" alone brings it to 0.
        writes = ("1", "0") if count == 0 else ("0",)
        how = "via sysfs enable " + ",".join(writes)
        if not apply:
            log.write(f"{bdf} COMMAND 0x{current:04x} -> 0x{target:04x} {how} (dry run: not written)")
            return WriteResult(bdf, current, target, "dry-run")
        for value in writes:
            _write_enable(root, bdf, value)
        readback = int.from_bytes(_pread(fd, bdf, 2, PCI_COMMAND), "little")
        now = _identity(_pread(fd, bdf, 16, 0))
    finally:
        os.close(fd)
    if now != seen:
        log.write(f"{bdf} {how}: identity changed during the write")
        raise ActionRefused(f"{bdf}: identity changed during the write "
                            f"({now.vendor_id:04x}:{now.device_id:04x})")
    if readback & PCI_COMMAND_MASTER:
        log.write(f"{bdf} COMMAND 0x{current:04x} -> 0x{target:04x} {how} FAILED: "
                  f"reads back 0x{readback:04x}")
        raise ActionRefused(f"{bdf}: wrote {','.join(writes)} to {enable_path(bdf)} but COMMAND reads back "
                            f"0x{readback:04x} (Bus Master still set)")
    other = (readback ^ target) & ~SYSFS_ENABLE_SIDE_BITS
    if other:
        log.write(f"{bdf} COMMAND 0x{current:04x} -> 0x{readback:04x} {how}: "
                  f"bits 0x{other:04x} changed that the plan did not name")
        raise ActionRefused(f"{bdf}: COMMAND 0x{current:04x} -> 0x{readback:04x}: bits 0x{other:04x} "
                            "changed beyond Bus Master and pci_enable_device's decode/INTx bits")
    result = WriteResult(bdf, current, readback, "changed")
    log.write(f"{result.line()} {how}")
    return result


def clear_bus_master_by(
    method: str,
    root: Root,
    bdf: str,
    planned_command: int,
    *,
    apply: bool = False,
    expected: Optional[DeviceIdentity] = None,
    log: Optional[ChangeLog] = None,
) -> WriteResult:
    """Clear Bus Master Enable of ``bdf`` by ``method`` (:data:`METHODS`)."""
    if method == METHOD_SYSFS_ENABLE:
        return clear_bus_master_sysfs(root, bdf, planned_command, apply=apply, expected=expected, log=log)
    if method != METHOD_CONFIG:
        raise ActionRefused(f"unknown quiesce method {method!r}")
    return clear_bus_master(root, bdf, planned_command, apply=apply, expected=expected, log=log)
