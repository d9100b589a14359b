"""Entry point: the typer app, global options, and the one place that turns our errors
into ``error: ...`` lines and exit codes (1 for our errors, 2 for usage errors).

Command modules are listed in ``COMMAND_MODULES``; each defines ``register(app)``. They
import only typer at module level and load decoders inside the command body, so
``kdumptool --version`` stays cheap in the kdump initramfs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import List, Optional

import typer

from kdumptool import __version__

COMMAND_MODULES = (
    "dmar",
    "pci",
    "iommu",
    "collect",
    "log",
    "vmcore",
    "triage",
    "quiesce",
    "record",
    "integration",
)

app = typer.Typer(
    name="kdumptool",
    help="Triage Linux kdump on Intel VT-d machines: DMAR, PCI bus mastering, IOMMU state, "
    "kernel-log faults and the crashed kernel's VT-d tables in a vmcore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False, "registered": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kdumptool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def _register_commands() -> None:
    if _state["registered"]:
        return
    _state["registered"] = True
    for name in COMMAND_MODULES:
        modname = f"kdumptool.cli.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(app)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI; never lets one of our errors escape as a traceback.

    typer/click handle usage errors themselves (message, exit 2); everything of ours
    arrives here as a ``KdumptoolError``.
    """
    from kdumptool.errors import KdumptoolError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _register_commands()
    try:
        app(args=args, prog_name="kdumptool")
    except KdumptoolError as err:
        if debug:
            raise
        _error(str(err))
        sys.exit(err.exit_code)
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(1)


def _error(msg: str) -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    sys.stderr.write(f"error: {msg}\n")
