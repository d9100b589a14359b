"""Evidence: one quoted fact (a register value, a log line, a config line) with where it
came from. Every finding and every kernel state carries its evidence."""

from __future__ import annotations

from typing import Dict, Optional

from kdumptool.formats.frozen import dataclass  # records made without dataclasses: start-up


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence, quoted exactly: a register value, a log line, a config line."""

    source: str
    text: str
    line: Optional[int] = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}: {self.text}"
        return f"{self.source}: {self.text}"

    def to_json(self) -> Dict[str, object]:
        return {"source": self.source, "line": self.line, "text": self.text}
