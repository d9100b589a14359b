"""Construct specs built on first use, for the formats whose hot paths decode with ``struct``.

Importing construct costs ~40 ms of start-up, and ``vmcore log``/``vmcore scan`` never touch
the specs (they document each layout and back the cross-checks in the tests). A format
module defines ``_construct_specs()`` returning ``{"NameStruct": spec, ...}`` and sets
``__getattr__ = lazy_specs(__name__, _construct_specs)``: ``module.NameStruct`` then builds
all of that module's specs on first access (PEP 562).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; only type checkers read it here
    from typing import Any, Callable, Dict


def lazy_specs(module: str, build: Callable[[], Dict[str, Any]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``*Struct`` names from ``build()``, built once."""
    specs: Dict[str, Any] = {}

    def __getattr__(name: str) -> Any:
        if name.endswith("Struct") and not name.startswith("_"):
            if not specs:
                specs.update(build())
            if name in specs:
                return specs[name]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
