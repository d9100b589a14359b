"""The one exception tree of kdumptool.

Every error we raise on purpose derives from :class:`KdumptoolError` and reads well as a
single line (``str(err)``): the CLI prints ``error: <that line>`` and exits 1. Anything
else escaping a decoder is a bug (the fuzz tests enforce this).
"""

from __future__ import annotations

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional



class KdumptoolError(Exception):
    """Base of every error kdumptool raises deliberately."""

    exit_code = 1


class DecodeError(KdumptoolError):
    """Input bytes or text that do not decode.

    ``what`` names the input (a file path, or a structure such as ``DMAR``), ``offset`` is
    the byte offset (or 1-based line number when ``unit='line'``) where decoding failed.
    """

    def __init__(
        self,
        what: str,
        offset: Optional[int],
        reason: str,
        unit: str = "offset",
    ) -> None:
        self.what = what
        self.offset = offset
        self.reason = reason
        self.unit = unit
        super().__init__(str(self))

    def with_source(self, source: str) -> DecodeError:
        """Return the same error, naming the file it came from."""
        what = source if self.what in ("", source) else f"{source} ({self.what})"
        return type(self)(what, self.offset, self.reason, self.unit)

    def __str__(self) -> str:
        if self.offset is None:
            return f"{self.what}: {self.reason}"
        if self.unit == "line":
            return f"{self.what}: line {self.offset}: {self.reason}"
        return f"{self.what}: offset 0x{self.offset:x}: {self.reason}"


class UnsupportedFormat(KdumptoolError):
    """A well-formed input of a kind we do not decode (an AMD IVRS table, a flattened dump)."""


class NotMapped(KdumptoolError):
    """A physical address that the memory source does not hold."""

    def __init__(self, paddr: int, why: str = "not in the dump") -> None:
        self.paddr = paddr
        self.why = why
        super().__init__(f"physical address 0x{paddr:x}: {why}")


class SourceMissing(KdumptoolError):
    """A file or device that the requested source needs is not there."""


class PermissionDenied(KdumptoolError):
    """The kernel refused access (not root, STRICT_DEVMEM, lockdown)."""


class ActionRefused(KdumptoolError):
    """A hardware change that the safety rules refuse."""


class BadArgument(KdumptoolError):
    """A command-line value that cannot be used (exit 2, like a usage error)."""

    exit_code = 2


class DecompressorMissing(UnsupportedFormat):
    """A dump whose pages use a compression no installed module decodes (zstd without
    zstandard or cramjam): raised when the dump is opened, so that no command reads on
    and reports an empty result instead of an error."""


class UnreadablePages(KdumptoolError):
    """A result that would rest on dump pages that could not be read or decompressed (a
    scan that found nothing, with pages it could not look at): an error, never "none"."""


class IncompleteResult(KdumptoolError):
    """Raised by a command AFTER it has printed its (partial) result, when that result
    rests on damaged, missing or cut-short evidence (a damaged printk ring, a truncated
    dump, a table walk stopped at a limit). The CLI prints the one line and exits 3: a
    partial answer is never a clean exit 0."""

    exit_code = 3
