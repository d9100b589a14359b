"""Entry point: the typer app, global options, and the one place that turns our errors
into ``error: ...`` lines and exit codes (1 for our errors, 2 for usage errors).

The global flags ``--debug`` and ``--exit-zero`` are taken from anywhere on the command
line (``kdumptool triage --debug`` as well as ``kdumptool --debug triage``), since error
messages tell people to "run with --debug" after the command they typed.

Command modules are listed in ``COMMAND_MODULES``; each defines ``register(app)``. They
import only typer at module level and load decoders inside the command body. typer
itself (with its click) is imported only when a command needs parsing: ``kdumptool
--version`` answers without it, and so do plain invocations of the hot commands (``dmar
FILE``, ``vmcore log|scan DUMP``, with at most ``-f``: cli/hot.py), because the kdump
initramfs pays for every millisecond (bench/bench_ratios.py, bench/bench_startup.py).
typer is pinned below 0.29, which would import pydantic for every command (pyproject.toml).
"""

from __future__ import annotations

import os
import signal
import sys

from kdumptool import __version__

# typing is only read by type checkers here: importing it costs ~9 ms of the start-up
# of every command (bench/bench_ratios.py), and annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

COMMAND_MODULES = (
    "dmar",
    "ivrs",
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

HELP = (
    "Triage Linux kdump on Intel VT-d machines: DMAR, PCI bus mastering, IOMMU state, "
    "kernel-log faults and the crashed kernel's VT-d tables in a vmcore."
)

_state: dict = {"debug": False, "app": None}


def _build_app() -> Any:
    """The typer app with every available command registered (built once)."""
    if _state["app"] is not None:
        return _state["app"]
    import typing

    import typer

    # typer evaluates the callback's string annotations in this module's globals, where
    # typing's names are not imported at start-up (the fast path never needs them).
    globals().setdefault("Optional", typing.Optional)
    app = typer.Typer(
        name="kdumptool",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # click's own help layout: flags show no "<bool>", enum options list their
        # choices ("[auto|text|rich|json]"), and the man page generator reads the same text
        rich_markup_mode=None,
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"kdumptool {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (accepted anywhere on the line)."),
        exit_zero: bool = typer.Option(
            False, "--exit-zero",
            help="Exit 0 when a report was produced, whatever its verdict (exit codes 3 and 4 "
            "become 0; 1 and 2 for errors stay). Accepted anywhere on the line."),
        no_pager: bool = typer.Option(
            False, "--no-pager",
            help="Never page: output taller than the terminal otherwise goes through $PAGER "
            "(less -FRX); never when piped. Accepted anywhere on the line."),
        version: Optional[bool] = typer.Option(
            None, "--version", callback=_version, is_eager=True,
            help="Print the version and exit.",
        ),
    ) -> None:
        _state["debug"] = debug

    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"kdumptool.cli.{name}").register(app)
    if sys.version_info < (3, 10):
        _resolve_annotations(app)
    _state["app"] = app
    return app


def _resolve_annotations(app: Any) -> None:
    """Evaluate the string annotations of every command callback (Python 3.9).

    Our modules use ``from __future__ import annotations``, so annotations are strings.
    On Python < 3.10 typer reads them with ``inspect.signature(func)`` (no
    ``eval_str``) and never sees the ``Annotated[..., typer.Option(...)]`` metadata
    (``FormatOpt``, ``RootOpt``): ``-f`` would not exist. Replacing
    ``__annotations__`` with the evaluated hints fixes that before typer looks.
    """
    import inspect
    import typing

    callbacks = [c.callback for c in app.registered_commands]
    if app.registered_callback is not None:
        callbacks.append(app.registered_callback.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _resolve_annotations(group.typer_instance)
        callbacks.append(group.callback)
    for cb in callbacks:
        if cb is None:
            continue
        for fn in {cb, inspect.unwrap(cb)}:
            try:
                hints = typing.get_type_hints(fn, include_extras=True)
            except Exception:  # names only a closure knows: leave that one as it is
                continue
            hints = {k: _strip_implicit_optional(v) for k, v in hints.items()}
            fn.__annotations__ = {**getattr(fn, "__annotations__", {}), **hints}


def _strip_implicit_optional(hint: Any) -> Any:
    """Python 3.9's ``get_type_hints`` turns ``x: Annotated[Optional[T], m] = None`` into
    ``Optional[Annotated[...]]``, hiding the ``Annotated`` from typer: undo that."""
    import typing

    if typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        ann = [a for a in args if typing.get_origin(a) is typing.Annotated]
        if len(ann) == 1 and all(a is type(None) or a is ann[0] for a in args):
            return ann[0]
    return hint


def __getattr__(name: str) -> Any:
    # ``from kdumptool.cli.main import app`` keeps working (PEP 562), built on first use.
    if name == "app":
        return _build_app()
    raise AttributeError(name)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI; never lets one of our errors escape as a traceback.

    typer/click handle usage errors themselves (message, exit 2); everything of ours
    arrives here as a ``KdumptoolError``. Anything else is a bug: one ``error: internal
    error`` line, or its traceback under ``--debug``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if "KDUMPTOOL_STATS" in os.environ:  # measuring (the kdump hooks): when main() began
        from kdumptool.sources.runstats import mark

        mark("main")
    if args == ["--version"]:
        sys.stdout.write(f"kdumptool {__version__}\n")
        return
    from kdumptool.errors import KdumptoolError

    args, debug, exit_zero = _global_flags(args)
    previous = install_sigterm_exit()
    try:
        # `dmar FILE`, `vmcore log DUMP`, `vmcore scan DUMP` with at most -f: run without
        # importing typer (cli/hot.py), the kdump kernel's and big dumps' common case.
        from kdumptool.cli.hot import fast_command

        fast = fast_command([a for a in args if a not in GLOBAL_FLAGS])
        if fast is not None:
            fast()
            return
        app = _build_app()
        if _bare_group(app, args):
            # A command group without its subcommand is a usage error (exit 2). click
            # >= 8.2 says so itself; click 8.1 (what pip installs on Python 3.9) prints
            # the help and exits 0, so do the same thing on both.
            try:
                app(args=args + ["--help"], prog_name="kdumptool")
            except SystemExit:
                pass
            sys.exit(2)
        app(args=args, prog_name="kdumptool")
    except SystemExit as done:
        if exit_zero and done.code in VERDICT_EXIT_CODES:
            sys.exit(0)
        raise
    except KdumptoolError as err:
        if debug:
            raise
        _error(str(err))
        sys.exit(err.exit_code)
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except ModuleNotFoundError as exc:  # a dependency not installed for this interpreter
        if debug:
            raise
        _error(f"missing Python module {exc.name!r} for {sys.executable}: install kdumptool's "
               "dependencies (pip install kdumptool, or the distribution's packages)")
        sys.exit(1)
    except PermissionError as exc:  # an input or output we may not open: not a bug
        if debug:
            raise
        _error(f"{exc.filename or '?'}: permission denied (run as root?)")
        sys.exit(1)
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        from kdumptool.sources.runstats import write_stats

        write_stats(" ".join(a for a in args[:2] if not a.startswith("-")) or "kdumptool")


def install_sigterm_exit() -> Any:
    """SIGTERM raises SystemExit(143), so ``finally`` blocks run and temporary trees (an
    unpacked snapshot, a collect in progress) are removed, as they are on Ctrl-C. Returns
    the previous handler (None when not on the main thread)."""
    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    # signal.signal refuses (ValueError) off the main thread: no need to import
    # threading (~1 ms of every start-up) to ask first.
    try:
        return signal.signal(signal.SIGTERM, terminated)
    except ValueError:
        return None


#: Exit codes that carry a report's verdict (3 warnings, 4 errors), not a failure.
VERDICT_EXIT_CODES = (3, 4)
GLOBAL_FLAGS = ("--debug", "--exit-zero", "--no-pager")


def _global_flags(args: List[str]) -> Tuple[List[str], bool, bool]:
    """Move ``--debug``/``--exit-zero`` from anywhere before ``--`` to the front."""
    end = args.index("--") if "--" in args else len(args)
    found = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]
    flags = [f for f in GLOBAL_FLAGS if f in found]
    if "--no-pager" in found or "--no-pager" in args[:end]:
        from kdumptool.render.output import PAGER_ENABLED

        PAGER_ENABLED["on"] = False
    elif "kdumptool.render.output" in sys.modules:
        sys.modules["kdumptool.render.output"].PAGER_ENABLED["on"] = True
    return flags + rest, "--debug" in found, "--exit-zero" in found


def _bare_group(app: Any, args: List[str]) -> bool:
    """True when ``args`` name a command group (``kdumptool vmcore``) and nothing more."""
    rest = [a for a in args if a not in GLOBAL_FLAGS]
    if len(rest) != 1:
        return False
    for group in app.registered_groups:
        name = group.name or getattr(getattr(group.typer_instance, "info", None), "name", None)
        if name == rest[0]:
            return True
    return False


def _error(msg: str) -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    from kdumptool.render.escape import escape_control

    sys.stderr.write(f"error: {escape_control(msg, keep_newlines=False)}\n")
