"""IVRS table and its findings as JSON (the documented contract), plain text, and rich.

JSON contract (docs/amd.md), as the DMAR one: top level ``source``, ``signature``,
``length``, ``revision``, ``checksum``, ``checksum_valid``, ``oem_id``, ``oem_table_id``,
``oem_revision``, ``asl_compiler_id``, ``asl_compiler_revision``, ``iv_info`` {``raw``,
``efr_sup``, ``dma_remap``, ``gva_size``, ``pa_size``, ``va_size``},
``target_ivhd_type``, ``blocks``, ``findings``, ``warnings``. Every block and every
device entry is an object with its absolute table ``offset``, ``type``, ``type_id``,
``length`` and its fields.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from kdumptool.analysis.amdvi import AmdViUnit
from kdumptool.formats.amdvi_regs import AmdViRegisters
from kdumptool.formats.ivrs import (
    DATA_SETTING_NAMES,
    IVHD_FLAG_NAMES,
    IVMD_FLAG_NAMES,
    Block,
    DeviceEntry,
    Ivhd,
    Ivmd,
    Ivrs,
    Malformed,
    UnknownBlock,
    devid_text,
    flag_names,
)
from kdumptool.model.finding import Finding
from kdumptool.render.acpi import findings_lines, findings_rich, header_lines
from kdumptool.render.output import human_size


def entry_json(e: DeviceEntry) -> Dict[str, Any]:
    out: Dict[str, Any] = {"offset": e.offset, "type": e.type, "type_id": e.type_id,
                           "length": e.length, "device_id": e.device_id,
                           "bdf": devid_text(e.device_id), "data_setting": e.data_setting,
                           "data_setting_flags": flag_names(e.data_setting, DATA_SETTING_NAMES)}
    for key in ("source_device_id", "extended_data", "handle", "variety", "acpi_hid",
                "acpi_cid", "uid_format", "uid_length", "uid"):
        val = getattr(e, key)
        if val is not None:
            out[key] = val
    if e.source_device_id is not None:
        out["source_bdf"] = devid_text(e.source_device_id)
    if e.variety is not None:
        out["special"] = e.special_name
    if e.type == "UNKNOWN":
        out["raw"] = e.raw.hex()
    return out


def block_json(b: Block) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": b.type, "type_id": b.type_id, "offset": b.offset,
                           "length": b.length}
    if isinstance(b, Ivhd):
        out.update(flags=b.flags, flag_names=flag_names(b.flags, IVHD_FLAG_NAMES),
                   device_id=b.device_id, bdf=devid_text(b.device_id),
                   capability_offset=b.capability_offset, base_address=b.base_address,
                   pci_segment=b.pci_segment, info=b.info, unit_id=b.unit_id,
                   msi_number=b.msi_number)
        if b.type_id == 0x10:
            out["feature_reporting"] = b.feature_reporting
        else:
            out.update(attributes=b.attributes, efr_image=b.efr_image,
                       efr_image2=b.efr_image2)
    elif isinstance(b, Ivmd):
        devs = b.devices
        out.update(flags=b.flags, flag_names=flag_names(b.flags, IVMD_FLAG_NAMES),
                   device_id=b.device_id, auxiliary_data=b.auxiliary_data,
                   pci_segment=b.pci_segment, start_address=b.start_address,
                   memory_length=b.memory_length,
                   devices=None if devs is None else [devid_text(devs[0]), devid_text(devs[1])])
    elif isinstance(b, UnknownBlock):
        out["raw"] = b.raw.hex()
    elif isinstance(b, Malformed):
        out.update(reason=b.reason, raw=b.raw.hex())
    out["device_entries"] = [entry_json(e) for e in b.device_entries]
    if b.warnings:
        out["warnings"] = list(b.warnings)
    return out


def registers_json(r: AmdViRegisters) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "raw": dict(r.raw),
        "control": {"raw": r.control, "flags": r.control_names, "iommu_en": r.iommu_en,
                    "ht_tun_en": r.ht_tun_en, "event_log_en": r.event_log_en,
                    "cmd_buf_en": r.cmd_buf_en, "inv_timeout": r.inv_timeout},
        "device_table": {"base": r.dev_table_base, "size": r.dev_table_size,
                         "entries": r.dev_table_entries},
        "status": None if r.status is None else {"raw": r.status, "flags": r.status_names},
    }
    for key, base, head, tail in (("command_buffer", "CMD_BUF", "CMD_HEAD", "CMD_TAIL"),
                                  ("event_log", "EVT_BUF", "EVT_HEAD", "EVT_TAIL"),
                                  ("ppr_log", "PPR_LOG", "PPR_HEAD", "PPR_TAIL")):
        lb = r.log(base)
        ring = r.ring(base, head, tail)
        out[key] = None if lb is None else {
            "base": lb.base, "entries": lb.entries,
            "head": None if ring is None else ring[0], "tail": None if ring is None else ring[1],
            "pending": None if ring is None else ring[2]}
    efr = r.efr
    out["extended_features"] = None if efr is None else {
        "raw": efr.value, "flags": efr.names, "hats": efr.hats, "gats": efr.gats,
        "glx": efr.glx, "pasmax": efr.pasmax,
        "kernel_text": efr.kernel_text(r.get("EXT_FEATURES2") or 0)}
    ex = r.exclusion
    out["exclusion"] = None if ex is None else {"enabled": ex[0], "allow_all": ex[1],
                                                "base": ex[2], "limit": ex[3]}
    return out


def unit_json(u: AmdViUnit) -> Dict[str, Any]:
    return {"name": u.name, "ivhd_offset": u.ivhd.offset, "address": u.ivhd.base_address,
            "pci_segment": u.ivhd.pci_segment, "bdf": devid_text(u.ivhd.device_id),
            "source": u.source or None, "read_error": u.read_error,
            "registers": None if u.registers is None else registers_json(u.registers)}


def ivrs_json(ivrs: Ivrs, findings: Sequence[Finding], source: str = "",
              units: Optional[Sequence[AmdViUnit]] = None) -> Dict[str, Any]:
    return {
        "source": source or ivrs.name,
        "vendor": "AMD-Vi",
        "signature": ivrs.signature,
        "length": ivrs.length,
        "revision": ivrs.revision,
        "checksum": ivrs.checksum,
        "checksum_valid": ivrs.checksum_valid,
        "oem_id": ivrs.oem_id,
        "oem_table_id": ivrs.oem_table_id,
        "oem_revision": ivrs.oem_revision,
        "asl_compiler_id": ivrs.asl_compiler_id,
        "asl_compiler_revision": ivrs.asl_compiler_revision,
        "iv_info": {"raw": ivrs.iv_info, "efr_sup": ivrs.efr_sup, "dma_remap": ivrs.dma_remap,
                    "gva_size": ivrs.gva_size, "pa_size": ivrs.pa_size,
                    "va_size": ivrs.va_size},
        "target_ivhd_type": ivrs.target_ivhd_type(),
        "blocks": [block_json(b) for b in ivrs.blocks],
        "iommus": None if units is None else [unit_json(u) for u in units],
        "findings": [f.to_json() for f in findings],
        "warnings": list(ivrs.warnings),
    }


# ---------------------------------------------------------------------------- text

def _flags(value: int, names: Any) -> str:
    n = flag_names(value, names)
    return f"0x{value:02x}" + (f" ({' '.join(n)})" if n else "")


def entry_line(e: DeviceEntry) -> str:
    """``START        00:01.0`` and friends; specials and HIDs name what they are."""
    d = devid_text(e.device_id)
    if e.type == "SPECIAL":
        what = f"{e.special_name} {e.handle} -> {devid_text(e.source_device_id or 0)}"
    elif e.type == "HID":
        uid = "" if e.uid is None else f' UID "{e.uid}"' if isinstance(e.uid, str) \
            else f" UID {e.uid}"
        hid = e.acpi_hid if isinstance(e.acpi_hid, str) else f"0x{e.acpi_hid:x}"
        cid = "" if e.acpi_cid in (0, "") else (
            f" CID {e.acpi_cid}" if isinstance(e.acpi_cid, str) else f" CID 0x{e.acpi_cid:x}")
        what = f"{d} HID {hid}{cid}{uid}"
    elif e.type in ("ALIAS_SELECT", "ALIAS_START"):
        what = f"{d} as {devid_text(e.source_device_id or 0)}"
    elif e.type in ("EXT_SELECT", "EXT_START", "PAD8"):
        what = f"{d} ext 0x{e.extended_data or 0:08x}"
    elif e.type == "ALL":
        what = "every device"
    elif e.type == "UNKNOWN":
        what = f"type {e.type_id:02x}h, {e.length} bytes: {e.raw[:8].hex(' ')}"
    else:
        what = d
    ds = flag_names(e.data_setting, DATA_SETTING_NAMES)
    extra = f"  [{' '.join(ds)}]" if ds else ""
    return f"@0x{e.offset:03x} {e.type:<12} {what}{extra}"


def block_summary(b: Block) -> str:
    if isinstance(b, Ivhd):
        s = (f"IOMMU {b.pci_segment:04x}:{devid_text(b.device_id)}  base 0x{b.base_address:x}  "
             f"cap 0x{b.capability_offset:x}  flags {_flags(b.flags, IVHD_FLAG_NAMES)}  "
             f"info 0x{b.info:04x}")
        if b.type_id == 0x10:
            return s + f"  features 0x{b.feature_reporting or 0:08x}"
        return s + f"  attributes 0x{b.attributes or 0:08x}  EFR 0x{b.efr_image or 0:016x}"
    if isinstance(b, Ivmd):
        devs = b.devices
        who = ("all devices" if devs is None else devid_text(devs[0]) if devs[0] == devs[1]
               else f"{devid_text(devs[0])}..{devid_text(devs[1])}")
        return (f"{who}  0x{b.start_address:x} +{human_size(b.memory_length)}  "
                f"flags {_flags(b.flags, IVMD_FLAG_NAMES)}")
    if isinstance(b, UnknownBlock):
        return (f"type {b.type_id:02x}h, {b.length} bytes kept raw: {b.raw[:16].hex(' ')}"
                + (" ..." if len(b.raw) > 16 else ""))
    return b.reason


def registers_lines(u: AmdViUnit) -> List[str]:
    head = (f"{u.name}: IOMMU {u.ivhd.pci_segment:04x}:{devid_text(u.ivhd.device_id)} at "
            f"{u.ivhd.base_address:#x}")
    if u.registers is None:
        return [head + (f": registers not read: {u.read_error}" if u.source else
                        ": registers not read")]
    r = u.registers
    lines = [head + f" (registers from {u.source})"]
    lines.append(f"  Control       0x{r.control:016x}: {' '.join(r.control_names) or 'none'}"
                 f"; InvTimeOut {r.inv_timeout}")
    lines.append(f"  Device table  0x{r.dev_table_base:x}, {human_size(r.dev_table_size)} "
                 f"({r.dev_table_entries} entries)")
    for label, base, hd, tl in (("Command buf", "CMD_BUF", "CMD_HEAD", "CMD_TAIL"),
                                ("Event log", "EVT_BUF", "EVT_HEAD", "EVT_TAIL"),
                                ("PPR log", "PPR_LOG", "PPR_HEAD", "PPR_TAIL")):
        lb = r.log(base)
        if lb is None:
            continue
        ring = r.ring(base, hd, tl)
        rs = "" if ring is None else f", head {ring[0]} tail {ring[1]} ({ring[2]} pending)"
        lines.append(f"  {label:<13} 0x{lb.base:x}, {lb.entries} entries{rs}")
    if r.status is not None:
        lines.append(f"  Status        0x{r.status:08x}: {' '.join(r.status_names) or 'none'}")
    efr = r.efr
    if efr is not None:
        lines.append(f"  EFR           0x{efr.value:016x}: {' '.join(efr.names) or 'none'}; "
                     f"HATS {efr.hats} GATS {efr.gats} GLX {efr.glx} PASmax {efr.pasmax}")
    ex = r.exclusion
    if ex is not None and ex[0]:
        lines.append(f"  Exclusion     0x{ex[2]:x}-0x{ex[3]:x}{' (all devices)' if ex[1] else ''}")
    return lines


def render_ivrs_text(ivrs: Ivrs, findings: Sequence[Finding], source: str = "",
                     units: Optional[Sequence[AmdViUnit]] = None) -> str:
    lines = header_lines(ivrs, f"IVRS table {source or ivrs.name} (AMD-Vi)")
    bits = [n for n, on in (("EFRSup", ivrs.efr_sup), ("DMA remap", ivrs.dma_remap)) if on]
    lines.append(f"  IVinfo 0x{ivrs.iv_info:08x}: {', '.join(bits + [''])}PA {ivrs.pa_size} "
                 f"bits, VA {ivrs.va_size} bits, GVA size {ivrs.gva_size}")
    t = ivrs.target_ivhd_type()
    if t is not None:
        lines.append(f"  Linux uses the IVHD type {t:02x}h blocks")
    counts: Dict[str, int] = {}
    for b in ivrs.blocks:
        k = f"{b.type} {b.type_id:02x}h" if b.type_id is not None else b.type
        counts[k] = counts.get(k, 0) + 1
    lines.append("")
    lines.append(f"Blocks ({', '.join(f'{n} {k}' for k, n in counts.items()) or 'none'}):")
    for b in ivrs.blocks:
        tid = f"{b.type_id:02x}h" if b.type_id is not None else "?"
        lines.append(f"  @0x{b.offset:03x} {b.type} {tid}  {block_summary(b)}")
        for e in b.device_entries:
            lines.append(f"      {entry_line(e)}")
    lines.append("")
    if units:
        lines.append("IOMMU registers:")
        for u in units:
            lines.extend("  " + ln for ln in registers_lines(u))
        lines.append("")
    lines += findings_lines(findings)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- rich



def render_ivrs_rich(ivrs: Ivrs, findings: Sequence[Finding], source: str = "",
                     units: Optional[Sequence[AmdViUnit]] = None) -> List[Any]:
    from rich.text import Text
    from rich.tree import Tree

    text = render_ivrs_text(ivrs, (), source)
    head, _, _ = text.partition("\nBlocks")
    tree = Tree(Text("Blocks", style="bold"))
    for b in ivrs.blocks:
        tid = f"{b.type_id:02x}h" if b.type_id is not None else "?"
        style = "bold green" if b.type == "IVHD" else "magenta" if b.type == "IVMD" else "red"
        node = tree.add(Text.assemble((f"@0x{b.offset:03x} ", "dim"), (f"{b.type} {tid} ", style),
                                      block_summary(b)))
        for e in b.device_entries:
            node.add(Text(entry_line(e)))
    out: List[Any] = [Text(head), tree, Text("")]
    if units:
        out.append(Text("IOMMU registers:", style="bold"))
        for u in units:
            out.append(Text("\n".join("  " + ln for ln in registers_lines(u))))
        out.append(Text(""))
    out.append(findings_rich(findings))
    return out
