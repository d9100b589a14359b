"""The kdump-initramfs entry point: ``record`` and ``quiesce`` with an argparse parser.

Same commands, options and code as ``kdumptool record`` / ``kdumptool quiesce``
(:func:`kdumptool.cli.record.run_record`, :func:`kdumptool.cli.quiesce.run_quiesce`), without
typer: typer pulls in click and pydantic (about 8 MB of modules and pydantic-core), which
the initramfs would carry for nothing. The dracut module's ``/usr/bin/kdumptool`` runs
``python3 -S -m kdumptool.cli.initrd``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def build_parser() -> argparse.ArgumentParser:
    from kdumptool import __version__

    p = argparse.ArgumentParser(prog="kdumptool", description="kdumptool in the kdump initramfs")
    p.add_argument("--version", action="version", version=f"kdumptool {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quiesce", help="clear Bus Master Enable on driverless bus masters")
    q.add_argument("--root", type=Path)
    q.add_argument("--format", "-f", default="text", choices=("text", "json"))
    q.add_argument("--plan", action="store_true", dest="plan_only")
    q.add_argument("--apply", action="store_true")
    q.add_argument("--journal", type=Path)
    q.add_argument("--dump-finished", action="store_true")
    q.add_argument("--dump-target", action="append", default=[])
    q.add_argument("--if-enabled", action="store_true")
    q.add_argument("--method", default="auto", choices=("auto", "config", "sysfs-enable"))

    r = sub.add_parser("record", help="write the report and snapshot")
    r.add_argument("--out", type=Path)
    r.add_argument("--root", type=Path)
    r.add_argument("--format", "-f", default="text", choices=("text", "json"))
    r.add_argument("--snapshot", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--publish", type=Path)
    r.add_argument("--if-enabled", action="store_true")
    r.add_argument("--force", action="store_true")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from kdumptool.errors import KdumptoolError
    from kdumptool.sources.runstats import mark

    mark("main")

    args = build_parser().parse_args(argv)
    try:
        if args.command == "quiesce":
            from kdumptool.cli.quiesce import run_quiesce

            return run_quiesce(
                args.root, args.format, args.plan_only, args.apply, args.journal,
                args.dump_finished, args.dump_target, args.if_enabled, True, args.method,
            )
        from kdumptool.cli.record import run_record

        return run_record(args.out, args.root, args.format, args.snapshot, args.publish, args.if_enabled,
                          args.force)
    except KdumptoolError as err:
        if args.debug:
            raise
        sys.stdout.flush()
        sys.stderr.write(f"error: {err}\n")
        return err.exit_code
    except Exception as exc:  # a bug: one line, as kdumptool.cli.main does; --debug for the traceback
        if args.debug:
            raise
        sys.stdout.flush()
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)\n")
        return 1
    finally:
        from kdumptool.sources.runstats import write_stats

        write_stats(args.command)


if __name__ == "__main__":
    sys.exit(main())
