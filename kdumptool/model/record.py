"""The record file ``kdumptool record`` writes (``kdumptool-record.json``, beside a
``kdumptool-record.txt`` and a ``kdumptool-snapshot.tar.gz``) and that offline triage reads
back: one schema for the writer (cli/record.py through :meth:`RecordFile.to_json`) and
the reader (:meth:`RecordFile.from_json`, sources/triage.py). Documented in
docs/INTERFACES.md ("Record file").

The reader trusts nothing: a field of the wrong type reads as absent, an RTADDR that is
not a hex number is skipped.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from kdumptool.formats.frozen import dataclass, field  # records made without dataclasses: start-up

#: Where the boot-time record lives on the running system (and, mounted, in kdump).
BOOT_DIR = "/var/lib/kdumptool/boot"
RECORD_JSON = "kdumptool-record.json"
RECORD_TEXT = "kdumptool-record.txt"
RECORD_SNAPSHOT = "kdumptool-snapshot.tar.gz"

JsonObj = Dict[str, Any]


def hex_or_none(v: Optional[int]) -> Optional[str]:
    return None if v is None else f"0x{v:x}"


def parse_hexes(m: object) -> Dict[str, int]:
    """``{"dmar0": "0x1d836000"}`` -> ``{"dmar0": 0x1d836000}``; what does not parse is left out."""
    out: Dict[str, int] = {}
    if isinstance(m, dict):
        for k, v in m.items():
            try:
                out[str(k)] = int(str(v), 0)
            except ValueError:
                continue
    return out


def _str(v: object) -> Optional[str]:
    return v if isinstance(v, str) else None


@dataclass(frozen=True)
class BootRecordRef:
    """The boot-time record of the crashed system, as the kdump kernel found it."""

    path: str
    rtaddr: Mapping[str, Optional[str]] = field(default_factory=dict)
    time: Optional[str] = None
    kernel: Optional[str] = None

    def to_json(self) -> JsonObj:
        return {"path": self.path, "rtaddr": dict(self.rtaddr), "time": self.time, "kernel": self.kernel}

    @classmethod
    def from_json(cls, data: object) -> Optional[BootRecordRef]:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            return None
        rt = data.get("rtaddr")
        return cls(data["path"], dict(rt) if isinstance(rt, dict) else {}, _str(data.get("time")),
                   _str(data.get("kernel")))


@dataclass(frozen=True)
class RecordFile:
    """``kdumptool-record.json``. Keys in this order; ``triage`` and ``snapshot`` only
    when present. ``units``, ``bus_masters``, ``dump_target``, ``quiesce_plan``,
    ``knobs``, ``triage`` and ``snapshot`` are JSON objects as their renderers give them
    (render/record.py, the quiesce plan, render/triage.py)."""

    kdumptool: str  # version that wrote it
    time: str  # UTC, ISO 8601
    kernel: Optional[str]
    cmdline: Optional[str]
    in_kdump_kernel: bool
    rtaddr: Mapping[str, Optional[str]]  # unit -> RTADDR register value ("0x...") as read
    boot_record: Optional[BootRecordRef] = None
    units: Tuple[JsonObj, ...] = ()
    bus_masters: Tuple[JsonObj, ...] = ()
    dump_target: Optional[JsonObj] = None
    quiesce_plan: Optional[JsonObj] = None
    knobs: Mapping[str, JsonObj] = field(default_factory=dict)
    warnings: Tuple[str, ...] = ()
    triage: Optional[JsonObj] = None
    snapshot: Optional[JsonObj] = None
    elapsed_s: Optional[float] = None
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def rtaddr_values(self) -> Dict[str, int]:
        return parse_hexes(dict(self.rtaddr))

    @property
    def boot_rtaddr_values(self) -> Dict[str, int]:
        return parse_hexes(dict(self.boot_record.rtaddr)) if self.boot_record is not None else {}

    def to_json(self) -> JsonObj:
        out: JsonObj = {
            "kdumptool": self.kdumptool,
            "time": self.time,
            "kernel": self.kernel,
            "cmdline": self.cmdline,
            "in_kdump_kernel": self.in_kdump_kernel,
            "rtaddr": dict(self.rtaddr),
            "boot_record": self.boot_record.to_json() if self.boot_record is not None else None,
            "units": list(self.units),
            "bus_masters": list(self.bus_masters),
            "dump_target": self.dump_target,
            "quiesce_plan": self.quiesce_plan,
            "knobs": dict(self.knobs),
            "warnings": list(self.warnings),
        }
        if self.triage is not None:
            out["triage"] = self.triage
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot
        out["elapsed_s"] = self.elapsed_s
        out["timings_s"] = dict(self.timings_s)
        return out

    @classmethod
    def from_json(cls, data: object) -> Optional[RecordFile]:
        """A record read back (None when ``data`` is not a JSON object)."""
        if not isinstance(data, dict):
            return None

        def objs(key: str) -> Tuple[JsonObj, ...]:
            v = data.get(key)
            return tuple(x for x in v if isinstance(x, dict)) if isinstance(v, list) else ()

        def obj(key: str) -> Optional[JsonObj]:
            v = data.get(key)
            return v if isinstance(v, dict) else None

        rt = data.get("rtaddr")
        warns = data.get("warnings")
        el = data.get("elapsed_s")
        return cls(
            kdumptool=_str(data.get("kdumptool")) or "",
            time=_str(data.get("time")) or "",
            kernel=_str(data.get("kernel")),
            cmdline=_str(data.get("cmdline")),
            in_kdump_kernel=data.get("in_kdump_kernel") is True,
            rtaddr=dict(rt) if isinstance(rt, dict) else {},
            boot_record=BootRecordRef.from_json(data.get("boot_record")),
            units=objs("units"),
            bus_masters=objs("bus_masters"),
            dump_target=obj("dump_target"),
            quiesce_plan=obj("quiesce_plan"),
            knobs=obj("knobs") or {},
            warnings=tuple(w for w in warns if isinstance(w, str)) if isinstance(warns, list) else (),
            triage=obj("triage"),
            snapshot=obj("snapshot"),
            elapsed_s=float(el) if isinstance(el, (int, float)) and not isinstance(el, bool) else None,
            timings_s=obj("timings_s") or {},
        )

