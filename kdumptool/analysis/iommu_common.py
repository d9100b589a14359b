"""What the VT-d (analysis/scenario.py) and AMD-Vi (analysis/amdvi_scenario.py) classifiers
decide alike: a kernel command line's IOMMU options, and the case the two kernels' IOMMU
states make.

The command line is read the way both IOMMU drivers' options are read: each argument
``name=value`` in order; ``iommu=`` is the generic x86 option (arch/x86/kernel/pci-dma.c
``iommu_setup``: a comma list, each applied: ``off`` no IOMMU at all, ``pt`` identity
domains, ``nopt`` translated ones; the rest change neither), ``elfcorehdr=`` marks a kdump
kernel, and everything else is the vendor's (``intel_iommu=``, ``amd_iommu=``...).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, ClassVar, Dict, List, Optional, Protocol, Tuple, TypeVar


class CmdlineParams(Protocol):
    """What the vendors' parameter records share (frozen dataclasses)."""

    __dataclass_fields__: ClassVar[Dict[str, Any]]

    @property
    def no_iommu(self) -> bool: ...

    @property
    def passthrough(self) -> bool: ...

    @property
    def is_kdump(self) -> bool: ...

    @property
    def args(self) -> Tuple[str, ...]: ...


P = TypeVar("P", bound=CmdlineParams)


def read_cmdline(cmdline: str, params: P, vendor: Callable[[P, str, str], Optional[P]]) -> P:
    """``params`` with every IOMMU argument of ``cmdline`` applied; ``vendor(params, name,
    value)`` applies the vendor's own options (None: not one of them). ``args`` keeps the
    IOMMU arguments in command-line order, for evidence."""
    p = params
    args: List[str] = []
    for arg in cmdline.split():
        name, _, val = arg.partition("=")
        if name == "iommu":
            args.append(arg)
            for opt in val.split(","):
                if opt == "off":
                    p = replace(p, no_iommu=True)
                elif opt == "pt":
                    p = replace(p, passthrough=True)
                elif opt == "nopt":
                    p = replace(p, passthrough=False)
        elif name == "elfcorehdr":
            p = replace(p, is_kdump=True)
        else:
            q = vendor(p, name, val)
            if q is not None:
                p = q
                args.append(arg)
    return replace(p, args=tuple(args))


def both_kernels(first: Optional[bool], kdump: Optional[bool]) -> str:
    """The IOMMU's translation in the crashed (first) kernel and in the kdump kernel:
    ``off-both``, ``off-on``, ``on-off``, ``on-both``, or ``unknown`` when either is not known."""
    if first is None or kdump is None:
        return "unknown"
    if not first:
        return "off-on" if kdump else "off-both"
    return "on-both" if kdump else "on-off"
