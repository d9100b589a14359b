#!/bin/bash
# The lab tier of CI (.ci/run calls this when it is executable): install what the lab needs
# on the host, fetch and unpack the guest's ingredients from the Debian archive (cached in
# lab/cache for the rest of the run), then boot every scenario under QEMU through a real
# panic and run the assertions: python3 -m pytest -m lab (tests/lab and any other
# stream's tests marked lab, e.g. for a scenario with its own kdump initrd).
# Environment: LAB_SCENARIOS=a,b narrows the scenarios; LAB_REUSE=1 reuses lab/out.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    need=""
    for tool in qemu-system-x86_64:qemu-system-x86 depmod:kmod readelf:binutils ldconfig:libc-bin \
                dpkg-deb:dpkg iasl:acpica-tools; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || need="$need ${tool#*:}"
    done
    if [ -n "$need" ]; then
        apt-get update -qq >/dev/null || true
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $need >/dev/null
    fi
fi
python3 lab/run --prepare-only
echo "lab tier: ingredients ready after $(( $(date +%s) - t0 ))s"
set +e
python3 -m pytest -m lab -q -rsx -p no:cacheprovider
rc=$?
set -e
echo "lab tier: $(( $(date +%s) - t0 ))s in all"
for f in lab/out/*/result.json; do
    [ -f "$f" ] && python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %-12s wall=%6.1fs live_ok=%s kdump_ok=%s" % (r["scenario"]["name"], r["wall_s"], r["live_ok"], r["kdump_ok"]))' "$f"
done
exit $rc
