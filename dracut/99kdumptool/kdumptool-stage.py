#!/usr/bin/env python3
"""Stage a minimal Python runtime and kdumptool into an initramfs tree (run by
module-setup.sh with the Python that will run kdumptool in the initramfs).

Only what kdumptool imports goes in, byte-compiled only (``mod.pyc`` in place of
``mod.py``, so no source is shipped): the import closure is found by importing every
kdumptool module in a child process, scanning kdumptool's sources for imports made inside
functions, and running the read-only commands once; every module then in ``sys.modules``
is kept. The commands run through :mod:`kdumptool.cli.initrd` (argparse), so typer,
click, pydantic and rich stay out. Third-party packages that were imported at all are
kept whole (they may import lazily).

Layout in the initramfs (PREFIX defaults to /usr/lib/kdumptool):
    PREFIX/lib/pythonX.Y/...              stdlib .pyc (PYTHONHOME=PREFIX)
    PREFIX/lib/pythonX.Y/lib-dynload/*.so extension modules that were imported
    PREFIX/site/...                       kdumptool and its dependencies (.pyc, .so)

Prints, one per line, ``ELF <source> <destination>`` for every extension module to
install (module-setup.sh installs them with dracut's inst_library, which also installs the
libraries they link) and
``PYTHON <binary>`` for the interpreter, then a summary on stderr.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import py_compile
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

#: Third-party top-level packages never shipped (pretty output only; tests; build tools).
EXCLUDE_TOP = {
    "rich", "pygments", "markdown_it", "mdurl", "shellingham", "pytest", "_pytest",
    "hypothesis", "pip", "setuptools", "pkg_resources", "_distutils_hack", "mypy",
    "ruff", "vermin", "tests",
    # udev enumeration is for the running system; in the initramfs record and quiesce read
    # sysfs (and pyudev would need libudev found through ldconfig)
    "pyudev",
}
#: Stdlib modules always kept: the interpreter's startup set and the path landmark.
ALWAYS = ["os", "encodings", "encodings.utf_8", "encodings.aliases", "encodings.ascii",
          "encodings.latin_1", "codecs", "io", "abc", "stat", "posixpath", "genericpath",
          "_collections_abc", "runpy", "importlib", "importlib.util", "importlib.machinery",
          "kdumptool.cli.quiesce", "kdumptool.cli.record", "kdumptool.cli.initrd"]

TRACER = r"""
import sys
baseline = sorted(sys.modules)  # what the interpreter and site (.pth files) loaded
import ast, importlib, json, os, tempfile
notes = []
from kdumptool.cli.initrd import main
out = tempfile.mkdtemp(prefix="kdt-stage-")
for args in RUNS:
    args = [a.replace("@OUT@", out) for a in args]
    try:
        main(args)
    except SystemExit:
        pass
    except Exception as exc:
        notes.append(f"run {args}: {type(exc).__name__}: {exc}")
for m in ALWAYS:
    try:
        importlib.import_module(m)
    except Exception as exc:
        notes.append(f"import {m}: {exc}")
# Imports made inside functions of the kdumptool modules that were loaded: code paths the
# runs above did not take on this machine (no DMAR here, a register read that failed).
# Followed to a fixed point, for the stdlib and kdumptool only: optional third-party
# packages (vmcore decompressors) stay out unless a run loaded them.
stdlib_names = set(getattr(sys, "stdlib_module_names", ()))
scanned = set()
while True:
    todo = [n for n, m in list(sys.modules.items())
            if n.split(".")[0] == "kdumptool" and n not in scanned and getattr(m, "__file__", None)]
    if not todo:
        break
    for n in todo:
        scanned.add(n)
        try:
            tree = ast.parse(open(sys.modules[n].__file__, encoding="utf-8").read())
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods = [node.module] + [node.module + "." + a.name for a in node.names]
            for m in mods:
                top = m.split(".")[0]
                if top in EXCLUDE or not (top == "kdumptool" or top in stdlib_names):
                    continue
                if m.startswith("kdumptool.cli.") or m.endswith("__main__"):
                    continue  # other commands are not run in the initramfs
                try:
                    importlib.import_module(m)
                except BaseException:
                    pass
files = {}
for name, mod in list(sys.modules.items()):
    files[name] = getattr(mod, "__file__", None)
json.dump({"modules": files, "baseline": baseline, "notes": notes}, sys.__stdout__)
sys.__stdout__.write("\n")
"""

#: Read-only command runs that pull in lazily imported modules (live root, a dry run only).
RUNS = [
    ["--version"], ["--help"], ["quiesce", "--help"], ["record", "--help"],
    ["quiesce", "--plan", "-f", "text"], ["quiesce", "--plan", "-f", "json"],
    ["quiesce", "-f", "text"], ["record", "--out", "@OUT@/rec", "-f", "text"],
    ["record", "--out", "@OUT@/rec", "-f", "json"], ["quiesce", "--no-such-option"],
]


def trace(python: str, extra_path: Optional[str]) -> Tuple[Dict[str, Optional[str]], List[str]]:
    env = dict(os.environ)
    env.update({"TYPER_USE_RICH": "0", "PYTHONUTF8": "1", "LC_ALL": "C", "PYTHONDONTWRITEBYTECODE": "1"})
    if extra_path:
        env["PYTHONPATH"] = extra_path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = (
        f"EXCLUDE={sorted(EXCLUDE_TOP)!r}\nALWAYS={ALWAYS!r}\nRUNS={RUNS!r}\n" + TRACER
    )
    proc = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"kdumptool-stage: tracing failed ({proc.returncode}): {proc.stderr[-2000:]}")
    # the commands print to stdout as well: the JSON is the last line
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    # third-party modules loaded before kdumptool ran come from .pth files of this host
    # (editable-install finders, certificate hooks): not needed in the initramfs
    for name in data["baseline"]:
        f = data["modules"].get(name) or ""
        if name.split(".")[0] != "kdumptool" and "-packages" in f:
            data["modules"].pop(name, None)
    return data["modules"], data["notes"]


def classify(files: Dict[str, Optional[str]], python_info: dict) -> Tuple[Set[Path], Dict[Path, Path]]:
    """(stdlib files, {third-party file: path relative to its sys.path entry})."""
    stdlib = Path(python_info["stdlib"]).resolve()
    site_dirs = [
        Path(p).resolve() for p in python_info["path"] if p and ("site-packages" in p or "dist-packages" in p)
    ]
    std: Set[Path] = set()
    third: Dict[Path, Path] = {}
    entries = sorted({Path(p).resolve() for p in python_info["path"] if p}, key=lambda p: -len(str(p)))
    for name, f in files.items():
        if not f:
            continue
        p = Path(f).resolve()
        top = name.split(".")[0]
        if top in EXCLUDE_TOP:
            continue
        in_site = any(str(p).startswith(str(s) + os.sep) for s in site_dirs)
        if str(p).startswith(str(stdlib) + os.sep) and not in_site:
            std.add(p)
            continue
        for e in entries:
            if str(p).startswith(str(e) + os.sep) and e != stdlib:
                rel = p.relative_to(e)
                # keep the whole top-level package of a third-party module
                top_dir = e / rel.parts[0]
                if top_dir.is_dir():
                    for q in top_dir.rglob("*"):
                        if q.is_file() and (q.suffix in (".py", ".so") or q.name == "py.typed"):
                            if "__pycache__" in q.parts or "tests" in q.relative_to(top_dir).parts[:1]:
                                continue
                            third[q] = q.relative_to(e)
                else:
                    third[p] = rel
                break
    return std, third


def compile_to(src: Path, dest_pyc: Path, shown_name: str, optimize: int) -> int:
    dest_pyc.parent.mkdir(parents=True, exist_ok=True)
    py_compile.compile(
        str(src), cfile=str(dest_pyc), dfile=shown_name, doraise=True, optimize=optimize,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return dest_pyc.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--initdir", required=True, help="the initramfs staging tree")
    ap.add_argument("--prefix", default="/usr/lib/kdumptool")
    ap.add_argument("--python", default=sys.executable, help="the interpreter to ship")
    ap.add_argument("--path", default=None, help="prepend to PYTHONPATH when tracing (a source checkout)")
    ap.add_argument("--optimize", type=int, default=2, choices=(0, 1, 2),
                    help="bytecode optimisation (2: no docstrings, no asserts; the default)")
    ap.add_argument("--copy-elf", action="store_true",
                    help="copy extension modules too (without dracut, for tests)")
    args = ap.parse_args()

    info = json.loads(subprocess.run(
        [args.python, "-c", "import json,sys,sysconfig;print(json.dumps({'stdlib':sysconfig.get_paths()['stdlib'],"
         "'platstdlib':sysconfig.get_paths()['platstdlib'],'path':sys.path,'ver':'%d.%d'%sys.version_info[:2],"
         "'exe':sys.executable}))"],
        capture_output=True, text=True, check=True,
        env={**os.environ, **({"PYTHONPATH": args.path} if args.path else {})},
    ).stdout)
    files, notes = trace(args.python, args.path)
    std, third = classify(files, info)
    initdir = Path(args.initdir)
    prefix = initdir / args.prefix.lstrip("/")
    libdir = prefix / "lib" / f"python{info['ver']}"
    sitedir = prefix / "site"
    stdlib = Path(info["stdlib"]).resolve()
    total = {"pyc": 0, "so": 0, "n": 0}
    elf: List[Tuple[Path, str]] = []

    def put(src: Path, rel: Path, base: Path) -> None:
        if src.suffix == ".py":
            dest = base / rel.with_suffix(".pyc")
            total["pyc"] += compile_to(
                src, dest, str(Path(args.prefix) / dest.relative_to(prefix)), args.optimize
            )
        elif src.suffix == ".so":
            # not copied here: module-setup.sh installs it with inst_library, which also
            # installs the libraries it links (and skips a file already in place)
            dest = base / rel
            total["so"] += src.stat().st_size
            elf.append((src, "/" + str(dest.relative_to(initdir))))
            if args.copy_elf:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        else:
            dest = base / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        total["n"] += 1

    for src in sorted(std):
        put(src, src.relative_to(stdlib), libdir)
    for src, rel in sorted(third.items()):
        put(src, rel, sitedir)
    exe = os.path.realpath(info["exe"])
    for src, dest in elf:
        print(f"ELF {src} {dest}")
    print(f"PYTHON {exe}")
    print(
        f"kdumptool-stage: {total['n']} files into {args.prefix}: {total['pyc']} bytes of .pyc, "
        f"{total['so']} bytes of extension modules ({len(std)} stdlib, {len(third)} site files)",
        file=sys.stderr,
    )
    for n in notes:
        print(f"kdumptool-stage: note: {n}", file=sys.stderr)
    with tempfile.NamedTemporaryFile("w", delete=False, dir=str(prefix), prefix=".manifest-") as fh:
        fh.write("\n".join(sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file())) + "\n")
    os.replace(fh.name, prefix / "MANIFEST")
    return 0


if __name__ == "__main__":
    sys.exit(main())
