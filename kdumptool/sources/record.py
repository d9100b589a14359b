"""Records ``kdumptool record`` left on a system: the boot-time record of the crashed
system, found from inside the kdump kernel (its root file system mounted at /sysroot, the
dump target under /kdumproot, or any mount)."""

from __future__ import annotations

import json
from typing import Optional

from kdumptool.model.record import BOOT_DIR, RECORD_JSON, BootRecordRef, RecordFile
from kdumptool.sources.dumptarget import read_mounts
from kdumptool.sources.root import Root


def find_boot_record(r: Root) -> Optional[BootRecordRef]:
    """The boot-time record of the crashed system, if a mounted file system holds one."""
    cands = [BOOT_DIR, "/sysroot" + BOOT_DIR, "/kdumproot" + BOOT_DIR]
    cands += [m.mountpoint.rstrip("/") + BOOT_DIR for m in read_mounts(r)]
    for c in cands:
        text = r.read_optional(f"{c}/{RECORD_JSON}")
        if text:
            try:
                rec = RecordFile.from_json(json.loads(text))
            except ValueError:
                continue
            if rec is not None:
                return BootRecordRef(c, dict(rec.rtaddr), rec.time or None, rec.kernel)
    return None


def read_release(r: Root) -> Optional[str]:
    """The running kernel's release: /proc/sys/kernel/osrelease, else the third word of a
    snapshot's saved ``uname -a``."""
    rel = r.read_optional("/proc/sys/kernel/osrelease")
    if rel:
        return rel
    try:
        words = r.extra("uname.txt").read_text(errors="replace").split()
    except OSError:
        return None
    return words[2] if len(words) > 2 else None
