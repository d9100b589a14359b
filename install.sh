#!/bin/sh
# Set-up on a fresh Debian/Ubuntu or RHEL-like machine: the system packages the tests use
# as independent oracles, then kdumptool itself (editable) with its test tools.
# Usage: ./install.sh            (root installs system packages; others skip that step)
set -eu
cd "$(dirname "$0")"
PKGS_DEB="pciutils acpica-tools kmod cpio zstd makedumpfile dracut-core systemd"
PKGS_RPM="pciutils acpica-tools kmod cpio zstd makedumpfile dracut systemd"
if [ "$(id -u)" = 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || true
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $PKGS_DEB >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        dnf install -y -q $PKGS_RPM >/dev/null
    fi
else
    echo "install.sh: not root, skipping system packages ($PKGS_DEB)" >&2
fi
PY=${PYTHON:-python3}
$PY -m pip install -q --disable-pip-version-check -e '.[test]'
echo "kdumptool installed: $($PY -m kdumptool --version)"
