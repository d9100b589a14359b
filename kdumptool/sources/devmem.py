"""Read-only access to a VT-d unit's register page through ``/dev/mem``.

The VT-d specification (section 10.2, "Register Access") asks for 32-bit registers to be
read with aligned 32-bit accesses and 64-bit registers with aligned 64-bit (or two 32-bit)
accesses. We map the 4 KiB page read-only (``PROT_READ``, ``MAP_SHARED``) and read each
register as one naturally aligned element of a ``memoryview`` cast to ``I`` or ``Q``, which
CPython loads with a single fixed-size copy. Nothing is ever written.

When the kernel refuses, :class:`PermissionDenied` says which refusal it was:
- not root (``/dev/mem`` is 0640 root:kmem, and opening it needs CAP_SYS_RAWIO);
- kernel lockdown (``/sys/kernel/security/lockdown`` shows integrity or confidentiality:
  ``/dev/mem`` cannot be opened at all);
- ``CONFIG_STRICT_DEVMEM``/``CONFIG_IO_STRICT_DEVMEM``: the DRHD page is claimed by the
  ``dmar`` driver, so mapping it is refused (``EPERM``) unless the kernel was booted with
  ``iomem=relaxed`` (what made the lab captures work on Debian's kernel).
Callers carry on without registers.
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any, Dict, List, Optional

from kdumptool.errors import PermissionDenied, SourceMissing
from kdumptool.formats.vtd_regs import REGISTERS, Cap
from kdumptool.sources.root import Root

PAGE = 4096
DEV_MEM = "/dev/mem"


def lockdown_mode(root: Root) -> Optional[str]:
    """The active lockdown mode (``none``, ``integrity``, ``confidentiality``) or None."""
    text = root.read_optional("/sys/kernel/security/lockdown")
    if not text:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


def _refusal(exc: OSError, stage: str, root: Root, what: str = "VT-d registers",
             page: str = "DRHD page") -> PermissionDenied:
    mode = lockdown_mode(root)
    if stage == "open":
        if os.geteuid() != 0:
            return PermissionDenied(f"{DEV_MEM}: not root (reading {what} needs root)")
        if mode in ("integrity", "confidentiality"):
            return PermissionDenied(f"{DEV_MEM}: refused by kernel lockdown ({mode})")
        return PermissionDenied(f"{DEV_MEM}: open refused: {exc.strerror}")
    if mode in ("integrity", "confidentiality"):
        return PermissionDenied(f"{DEV_MEM}: mapping refused by kernel lockdown ({mode})")
    return PermissionDenied(
        f"{DEV_MEM}: mapping the {page} refused ({exc.strerror}): "
        "CONFIG_STRICT_DEVMEM/IO_STRICT_DEVMEM; boot with iomem=relaxed to allow it"
    )


class DevMemPage:
    """One read-only mapped page of physical address space."""

    def __init__(self, address: int, root: Optional[Root] = None, path: str = DEV_MEM,
                 what: str = "VT-d registers", page: str = "DRHD page") -> None:
        if address % PAGE:
            raise SourceMissing(f"{path}: address {address:#x} is not page aligned")
        root = root or Root("/")
        self.address = address
        try:
            fd = os.open(path, os.O_RDONLY | os.O_SYNC)
        except FileNotFoundError:
            raise SourceMissing(f"{path}: no such device (kernel without /dev/mem)") from None
        except PermissionError as exc:
            raise _refusal(exc, "open", root, what, page) from None
        try:
            self._map = mmap.mmap(fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ, offset=address)
        except PermissionError as exc:
            raise _refusal(exc, "mmap", root, what, page) from None
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise _refusal(exc, "mmap", root, what, page) from None
            raise SourceMissing(f"{path}: cannot map {address:#x}: {exc.strerror}") from None
        finally:
            os.close(fd)
        self._view = memoryview(self._map)

    def read32(self, off: int) -> int:
        if off % 4 or not 0 <= off <= PAGE - 4:
            raise ValueError(f"unaligned 32-bit read at {off:#x}")
        return int(self._view.cast("I")[off // 4])

    def read64(self, off: int) -> int:
        if off % 8 or not 0 <= off <= PAGE - 8:
            raise ValueError(f"unaligned 64-bit read at {off:#x}")
        return int(self._view.cast("Q")[off // 8])

    def close(self) -> None:
        self._view.release()
        self._map.close()

    def __enter__(self) -> DevMemPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_vtd_page(
    address: int, root: Optional[Root] = None, max_frcd: int = 256, path: str = DEV_MEM
) -> Dict[str, Any]:
    """The registers of the unit at ``address`` as a mapping for
    :func:`kdumptool.formats.vtd_regs.decode_vtd_registers` (the snapshot JSON shape)."""
    with DevMemPage(address, root, path) as page:
        values: Dict[str, Any] = {}
        for name, (off, width) in REGISTERS.items():
            values[name] = page.read64(off) if width == 64 else page.read32(off)
        cap = Cap(values["CAP"])
        frcd: List[List[int]] = []
        for i in range(min(cap.nfr, max_frcd)):
            off = cap.fro + 16 * i
            if off + 16 > PAGE:
                break
            frcd.append([page.read64(off), page.read64(off + 8)])
        values["FRCD"] = frcd
    return values
