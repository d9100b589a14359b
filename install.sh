#!/bin/sh
# Set-up from a clone, on a fresh Debian/Ubuntu or RHEL-like machine (python3 and git are
# enough) or on one with a private python3:
#   1. as root, system packages through apt-get/dnf: the oracle tools the tests compare
#      against, and python3-venv where the distribution splits it out (Debian, Ubuntu);
#   2. kdumptool in its own virtual environment (PEP 668: never into the system Python),
#      installed editable from this clone with its test tools: $KDUMPTOOL_VENV, default
#      /opt/kdumptool/venv as root, ./.venv otherwise;
#   3. `kdumptool` linked onto PATH: $KDUMPTOOL_BIN, default /usr/local/bin as root,
#      ~/.local/bin otherwise;
#   4. shell completion (bash, zsh, fish) and the man page, generated from the installed
#      CLI by tools/gen_cli_docs.py, under $KDUMPTOOL_SHARE: default /usr/local/share as
#      root (bash-completion/completions, zsh/site-functions, fish/vendor_completions.d,
#      man/man1: where bash-completion, zsh, fish and man look), ~/.local/share otherwise.
# Environment: PYTHON (default python3) the interpreter the venv is made from.
# Prints the test command at the end: <venv>/bin/python3 -m pytest
set -eu
cd "$(dirname "$0")"
PKGS_DEB="pciutils acpica-tools kmod cpio zstd xz-utils lz4 makedumpfile dracut-core systemd"
PKGS_RPM="pciutils acpica-tools kmod cpio zstd xz lz4 makedumpfile dracut systemd"
PY=${PYTHON:-python3}
say() { echo "install.sh: $*" >&2; }
if [ "$(id -u)" = 0 ]; then
    VENV=${KDUMPTOOL_VENV:-/opt/kdumptool/venv}
    BIN=${KDUMPTOOL_BIN:-/usr/local/bin}
    SHARE=${KDUMPTOOL_SHARE:-/usr/local/share}
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        extra=""
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then extra="python3-venv"; fi
        say "apt-get install $PKGS_DEB $extra"
        apt-get update -qq >/dev/null || say "apt-get update failed; trying the cached lists"
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $PKGS_DEB $extra >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        say "dnf install $PKGS_RPM"
        # shellcheck disable=SC2086
        dnf install -y -q $PKGS_RPM >/dev/null
    else
        say "neither apt-get nor dnf: install $PKGS_DEB yourself"
    fi
else
    VENV=${KDUMPTOOL_VENV:-$PWD/.venv}
    BIN=${KDUMPTOOL_BIN:-$HOME/.local/bin}
    SHARE=${KDUMPTOOL_SHARE:-${XDG_DATA_HOME:-$HOME/.local/share}}
    say "not root: skipping system packages ($PKGS_DEB)"
fi
if [ ! -x "$VENV/bin/python3" ]; then
    say "creating $VENV with $("$PY" --version 2>&1) ($(command -v "$PY"))"
    if ! "$PY" -m venv "$VENV"; then
        rm -rf "$VENV"
        say "cannot create a venv with $PY: install python3-venv (Debian/Ubuntu) and rerun"
        exit 1
    fi
fi
"$VENV/bin/python3" -m pip install -q --disable-pip-version-check -e '.[test]'
# Byte-compile kdumptool (installed editable: its modules are this clone's) and the venv:
# the kdump kernel may mount this root read-only, and a module without a current .pyc is
# compiled again at every start there (seconds under a slow CPU: docs/install.md).
"$VENV/bin/python3" -m compileall -q -j 0 kdumptool "$VENV/lib" >/dev/null \
    || say "note: some files of $VENV did not byte-compile (they are compiled when imported)"
mkdir -p "$BIN"
ln -sfn "$VENV/bin/kdumptool" "$BIN/kdumptool"
case ":$PATH:" in
    *":$BIN:"*) ;;
    *) say "note: $BIN is not on PATH; add it, or run $VENV/bin/kdumptool" ;;
esac
docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
"$VENV/bin/python3" tools/gen_cli_docs.py "$docs" >/dev/null
install -Dm644 "$docs/kdumptool.bash" "$SHARE/bash-completion/completions/kdumptool"
install -Dm644 "$docs/_kdumptool" "$SHARE/zsh/site-functions/_kdumptool"
install -Dm644 "$docs/kdumptool.fish" "$SHARE/fish/vendor_completions.d/kdumptool.fish"
install -Dm644 "$docs/kdumptool.1" "$SHARE/man/man1/kdumptool.1"
say "shell completion (bash, zsh, fish) and man page (man kdumptool) installed under $SHARE"
say "kdumptool installed: $("$BIN/kdumptool" --version) in $VENV, linked as $BIN/kdumptool"
say "tests: $VENV/bin/python3 -m pytest"
