#!/bin/sh
# kdumptool in the kdump initramfs: the shipped interpreter, its own stdlib only
# (PYTHONHOME), byte-compiled modules, no site-packages scan; record and quiesce only
# (kdumptool.cli.initrd: argparse, no typer).
PYTHONHOME=@PREFIX@ PYTHONPATH=@PREFIX@/site PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1 \
TERM=dumb exec @PREFIX@/bin/python3 -S -m kdumptool.cli.initrd "$@"
