"""JSON and text for ``vmcore iommu`` / ``vmcore exposure`` on an AMD-Vi dump.

The JSON is VT-d's (render/vtd.py: ``devices`` [{bdf, present, translation_type,
address_width, domain_id, pt_root, mapped_4k_pages, mapped_large_pages, extents,
unreadable_tables, ...}], ``domains``, ``problems``, ``warnings``) with ``vendor``
"AMD-Vi", a ``device_table`` object {address, size, entries, source, source_detail,
blocked_entries, untranslated_devids, invalid_entries} in place of ``root_table`` (which
is kept too, mode "amd-vi", for tools that read it), and per device its decoded ``dte``.
``translation_type`` is one of translated, pass-through, untranslated (V=0), invalid.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from kdumptool.analysis.amdvi_walk import AmdViTables
from kdumptool.analysis.exposure import Exposure
from kdumptool.analysis.vtd_walk import DeviceTranslation, FaultCheck, IovaLookup
from kdumptool.formats.amdvi_tables import INT_CTL_NAMES, Dte
from kdumptool.render import vtd as rv

SOURCE_TEXT = {
    "argument": "given with --dev-table",
    "saved": "from the Device Table Base register saved before the crash",
    "scan": "found by scanning the dump",
}


def _devid(d: int) -> str:
    return f"{d >> 8:02x}:{(d >> 3) & 0x1F:02x}.{d & 7:x}"


def dte_json(d: Dte) -> Dict[str, Any]:
    return {
        "raw": [f"0x{q:016x}" for q in d.q],
        "v": d.v, "tv": d.tv, "mode": d.mode, "ir": d.ir, "iw": d.iw,
        "domain_id": d.domain_id, "pt_root": d.pt_root, "ppr": d.ppr, "gv": d.gv, "giov": d.giov,
        "glx": d.glx, "gcr3": d.gcr3 if d.gv else None, "iotlb": d.iotlb, "sa": d.sa, "se": d.se,
        "ex": d.ex, "sysmgt": d.sysmgt,
        "interrupt_remapping": {"iv": d.iv, "int_ctl": INT_CTL_NAMES[d.int_ctl],
                                "int_tab_len": d.int_tab_len, "table": d.int_table_root,
                                "init_pass": d.init_pass, "eint_pass": d.eint_pass,
                                "nmi_pass": d.nmi_pass, "lint0_pass": d.lint0_pass,
                                "lint1_pass": d.lint1_pass},
        "reserved_bits": d.reserved_bits,
    }


def _head(t: AmdViTables, source: str, detail: str) -> Dict[str, Any]:
    return {"address": t.base, "size": t.size, "entries": t.entries, "segment": t.segment,
            "source": source, "source_detail": detail, "blocked_entries": t.blocked,
            "untranslated_devids": [[_devid(a), _devid(b)] for a, b in t.untranslated],
            "invalid_entries": t.invalid}


def iommu_json(t: AmdViTables, source: str, detail: str, warnings: List[str],
               devices: Optional[List[DeviceTranslation]] = None) -> Dict[str, Any]:
    obj = rv.iommu_json(t.as_vtd_tables(), source, detail, warnings, devices)
    obj["vendor"] = "AMD-Vi"  # the VT-d renderer says "Intel VT-d"
    obj["device_table"] = _head(t, source, detail)
    for dj, d in zip(obj["devices"], devices if devices is not None else t.devices):
        dte = t.dtes.get((d.bus << 8) | d.devfn)
        dj["dte"] = dte_json(dte) if dte is not None else None
        dj["dte_address"] = dj.pop("context_entry")
        dj.pop("fpd", None)
        dj["not_walked"] = list(d.not_walked)
    return obj


def _first_line(obj: Dict[str, Any]) -> str:
    dt = obj["device_table"]
    src = SOURCE_TEXT.get(dt["source"], dt["source"])
    untr = len(dt["untranslated_devids"])
    return (f"AMD-Vi device table 0x{dt['address']:x} ({dt['entries']} entries, segment "
            f"{dt['segment']:04x}), {src}" + (f": {dt['source_detail']}" if dt.get("source_detail") else "")
            + f"\n{dt['blocked_entries']} entries blocked (V=1, no access)"
            + (f", {untr} run(s) of requester IDs with V=0 (DMA not checked)" if untr else "")
            + (f", {dt['invalid_entries']} invalid" if dt["invalid_entries"] else ""))


def render_iommu_text(obj: Dict[str, Any], max_extents: int = 8) -> str:
    text = rv.render_iommu_text(obj, max_extents)
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    extra = []
    for d in obj["devices"]:
        dte = d.get("dte")
        if dte:
            ir = dte["interrupt_remapping"]
            extra.append(f"  {d['bdf']}: DTE {' '.join(dte['raw'])}  V={int(dte['v'])} TV={int(dte['tv'])} "
                         f"Mode={dte['mode']} IR={int(dte['ir'])} IW={int(dte['iw'])} "
                         f"DomainID={dte['domain_id']} IntCtl={ir['int_ctl']}"
                         + (f" GCR3=0x{dte['gcr3']:x}" if dte.get("gcr3") is not None else ""))
    unknown = [f"  {d['bdf']}: {w}" for d in obj["devices"] for w in d.get("not_walked", [])]
    return (_first_line(obj) + "\n" + rest + ("\nDTEs:\n" + "\n".join(extra) + "\n" if extra else "")
            + ("\nNot walked (what these devices reach is UNKNOWN):\n" + "\n".join(unknown) + "\n" if unknown else ""))


def exposure_json(ex: Exposure, t: AmdViTables, source: str, detail: str,
                  warnings: List[str]) -> Dict[str, Any]:
    obj = rv.exposure_json(ex, t.as_vtd_tables(), source, detail, warnings)
    obj["vendor"] = "AMD-Vi"
    obj["device_table"] = _head(t, source, detail)
    obj["not_walked"] = [{"bdf": d.bdf, "why": w} for d in t.devices for w in d.not_walked
                         if any(e.bdf == d.bdf for e in ex.devices)]
    return obj


def render_exposure_text(obj: Dict[str, Any], max_ranges: int = 12) -> str:
    text = rv.render_exposure_text(obj, max_ranges)
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    unknown = [f"  {u['bdf']}: {u['why']}" for u in obj.get("not_walked", [])]
    return (_first_line(obj) + "\n" + rest
            + ("\nINCOMPLETE: guest page tables not walked (the reach above leaves them out):\n"
               + "\n".join(unknown) + "\n" if unknown else ""))


# --- vmcore iommu --iova / --faults ---------------------------------------------------------------

def _table_head(base: int, size: int, source: str, detail: str) -> Dict[str, Any]:
    return {"address": base, "size": size, "entries": size // 32, "source": source, "source_detail": detail}


def lookup_json(r: IovaLookup, base: int, size: int, source: str, detail: str,
                warnings: List[str]) -> Dict[str, Any]:
    """One IOVA through the DTE and the v1 tables: VT-d's lookup JSON (render/vtd.py) with
    ``vendor`` and ``device_table`` (``root_table`` kept, mode ``amd-v1``)."""
    obj = rv.lookup_json(r, "AMD-Vi", source)
    obj["vendor"] = "AMD-Vi"
    obj["device_table"] = _table_head(base, size, source, detail)
    obj["warnings"] = warnings
    return obj


def render_lookup_text(obj: Dict[str, Any]) -> str:
    """The entries read, as the kernel dumps a DTE ("DTE[0]: ..." after an
    ILLEGAL_DEV_TABLE_ENTRY) and then one line per page-table level."""
    dt = obj["device_table"]
    lines = [f"warning: {w}" for w in obj.get("warnings", [])]
    lines.append(f"AMD-Vi device table 0x{dt['address']:x}, {SOURCE_TEXT.get(dt['source'], dt['source'])}"
                 + (f": {dt['source_detail']}" if dt.get("source_detail") else ""))
    lines.append(f"Dump AMD-Vi table entries for IOVA 0x{obj['iova']:x} (device [{obj['bdf']}])")
    for s in obj["steps"]:
        v = s["values"]
        if s["name"] == "device table entry":
            lines.append(f"DTE at 0x{s['paddr']:x}:")
            lines += [f"  DTE[{i}]: {q:016x}" for i, q in enumerate(v)]
        else:
            lines.append(f"pte level: {s['level']}, pte value: 0x{v[0]:016x}")
    lines.append(rv.lookup_outcome(obj))
    return "\n".join(lines) + "\n"


def faults_json(checks: List[FaultCheck], log: str, base: int, size: int, source: str, detail: str,
                warnings: List[str], unchecked: int = 0) -> Dict[str, Any]:
    """``vmcore iommu --faults`` on AMD-Vi: VT-d's shape (render/vtd.py ``faults_json``),
    ``device_table`` in place of the root table."""
    from kdumptool.model.roottable import RootTable

    obj = rv.faults_json(checks, log, RootTable(base, "amd-v1", source, detail, "AMD-Vi"), warnings, unchecked)
    obj["vendor"] = "AMD-Vi"
    obj["device_table"] = _table_head(base, size, source, detail)
    return obj


def render_faults_text(obj: Dict[str, Any]) -> str:
    dt = obj["device_table"]
    head = (f"AMD-Vi device table 0x{dt['address']:x} ({dt['entries']} entries), "
            f"{SOURCE_TEXT.get(dt['source'], dt['source'])}"
            + (f": {dt['source_detail']}" if dt.get("source_detail") else ""))
    return rv.faults_text(head, "IO_PAGE_FAULTs", obj)
