"""One finding type for every check (``dmar`` table checks and ``triage`` alike): a stable
kebab-case ``id`` from the catalogue (:mod:`kdumptool.analysis.catalogue`), one severity
order, the exact evidence, and a remedy.

JSON shape (docs/INTERFACES.md, "Findings")::

    {"id": "rmrr-not-reserved", "severity": "warning", "title": "...",
     "evidence": [{"source": "...", "line": null, "text": "..."}],
     "remedy": "..." | null, "devices": ["0000:00:02.0", ...],
     "offset": 128}          # only for findings about a byte of a decoded table
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up
from kdumptool.model.evidence import Evidence

INFO = "info"
WARNING = "warning"
ERROR = "error"
#: Every severity, least severe first; the one order every command uses.
SEVERITIES: Tuple[str, ...] = (INFO, WARNING, ERROR)
SEVERITY_RANK: Dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # info | warning | error (SEVERITIES)
    title: str
    evidence: Tuple[Evidence, ...] = ()
    remedy: Optional[str] = None
    devices: Tuple[str, ...] = ()
    offset: Optional[int] = None  # byte offset in a decoded table (DMAR) of what it is about

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def to_json(self) -> Dict[str, object]:
        out: Dict[str, object] = {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "evidence": [e.to_json() for e in self.evidence],
            "remedy": self.remedy,
            "devices": list(self.devices),
        }
        if self.offset is not None:
            out["offset"] = self.offset
        return out


def worst(findings: Iterable[Finding]) -> Optional[str]:
    """The most severe severity among ``findings`` (None for none)."""
    ranks = [f.rank for f in findings]
    return SEVERITIES[max(ranks)] if ranks else None


def at_least(findings: Iterable[Finding], severity: str) -> bool:
    """Whether a finding of ``severity`` or worse is among ``findings``."""
    limit = SEVERITY_RANK[severity]
    return any(f.rank >= limit for f in findings)
