"""Compare our config-space decode with lspci -vvv's text for one device (test helper)."""

from __future__ import annotations

from typing import List

from kdumptool.formats.pciconfig import (
    ACS_BITS,
    AER_COR_BITS,
    AER_UNCOR_BITS,
    COMMAND_BITS,
    STATUS_BITS,
    PciConfig,
    parse_pci_config,
)


def disagreements(data: bytes, o) -> List[str]:  # o: lspci_oracle.VvvDevice
    """Fields both sides show that differ (empty: agreement)."""
    c: PciConfig = parse_pci_config(data)
    out = []
    for bit, name in COMMAND_BITS:
        if name in o.control and o.control[name] != bool(c.command & bit):
            out.append(f"Control {name}")
    for bit, name in STATUS_BITS:
        if name in o.status and o.status[name] != bool(c.status & bit):
            out.append(f"Status {name}")
    if len(data) >= 256 and o.caps is not None:
        ours = [(cap.offset, cap.name) for cap in c.capabilities]
        theirs = [off for off, _ in o.caps]
        if [x for x, _ in ours] != theirs:
            out.append(f"capability offsets {[hex(x) for x, _ in ours]} != {[hex(x) for x in theirs]}")
        else:
            for (off, name), (_, text) in zip(ours, o.caps):
                if not text.startswith(name.split(" (")[0]):
                    out.append(f"capability [{off:x}] {name!r} vs {text!r}")
    if len(data) >= 4096 and c.pcie is not None:
        ours_e = [cap.offset for cap in c.ext_capabilities]
        theirs_e = [off for off, _ in o.ext_caps]
        if ours_e != theirs_e:
            out.append(f"extended offsets {[hex(x) for x in ours_e]} != {[hex(x) for x in theirs_e]}")
    if len(data) >= 4096:
        regs = {}
        if c.aer is not None:
            regs.update(
                UESta=(c.aer.uncor_status, AER_UNCOR_BITS),
                UEMsk=(c.aer.uncor_mask, AER_UNCOR_BITS),
                UESvrt=(c.aer.uncor_severity, AER_UNCOR_BITS),
                CESta=(c.aer.cor_status, AER_COR_BITS),
                CEMsk=(c.aer.cor_mask, AER_COR_BITS),
            )
        if c.acs is not None:
            regs.update(ACSCap=(c.acs.cap, ACS_BITS), ACSCtl=(c.acs.ctrl, ACS_BITS))
        for key, theirs in o.ext_flags.items():
            if key not in regs:
                out.append(f"{key}: lspci shows it, we decoded no such capability")
                continue
            value, bits = regs[key]
            for bit, name in bits:
                if name in theirs and theirs[name] != bool(value & bit):
                    out.append(f"{key} {name}")
    if len(data) >= 4096 and o.ext_values:
        ours: dict = {}
        if c.ats is not None:
            ours.update(ats_qdep=c.ats.cap & 0x1F, ats_enable=c.ats.enabled, ats_stu=c.ats.stu)
        if c.pasid is not None:
            ours.update(pasid_exec=c.pasid.exec_perm, pasid_priv=c.pasid.priv_mode,
                        pasid_width=c.pasid.max_width, pasid_enable=c.pasid.enabled)
        if c.pri is not None:
            ours.update(pri_enable=c.pri.enabled, pri_stopped=c.pri.stopped, pri_capacity=c.pri.max_requests)
        if c.sriov is not None:
            v = c.sriov
            ours.update(iov_enable=v.vf_enabled, iov_mse=v.vf_memory_space, iov_initial=v.initial_vfs,
                        iov_total=v.total_vfs, iov_num=v.num_vfs, iov_offset=v.first_vf_offset,
                        iov_stride=v.vf_stride, iov_devid=v.vf_device_id)
        for key, theirs in o.ext_values.items():
            if ours.get(key) != theirs:
                out.append(f"{key}: ours {ours.get(key)!r}, lspci {theirs!r}")
    if o.port_type is not None and (c.pcie is None or c.pcie.port_type_name != o.port_type):
        out.append(f"port type {c.pcie.port_type_name if c.pcie else None!r} vs {o.port_type!r}")
    return out
