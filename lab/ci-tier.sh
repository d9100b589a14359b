#!/bin/bash
# The lab tier of CI (.ci/run calls this when it is executable): install what the lab needs
# on the host, fetch and unpack the guest's ingredients from the Debian archive (cached in
# lab/cache for the rest of the run), then boot every scenario under QEMU through a real
# panic and run the assertions: python3 -m pytest -m lab (tests/lab and any other
# stream's tests marked lab, e.g. for a scenario with its own kdump initrd).
# Environment: LAB_KERNELS picks the kernel axis (default below: every scenario on 6.1, the
# three that tell the eras apart on 5.10 and 6.12; see docs/lab.md); LAB_SCENARIOS=a,b
# narrows the scenarios (names or NAME@KERNEL keys); LAB_REUSE=1 reuses lab/out.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    need=""
    for tool in qemu-system-x86_64:qemu-system-x86 depmod:kmod readelf:binutils ldconfig:libc-bin \
                dpkg-deb:dpkg iasl:acpica-tools mmdebstrap:mmdebstrap; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || need="$need ${tool#*:}"
    done
    if [ -n "$need" ]; then
        apt-get update -qq >/dev/null || true
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $need >/dev/null
    fi
fi
# Every scenario on 6.1; on 5.10 and 6.12 the three that tell the kernel eras apart
# (docs/lab.md "CI lab tier per kernel" has the measured time of each).
: "${LAB_KERNELS:=6.1,5.10=sm_mismatch+sm_on+legacy_on,6.12=sm_mismatch+sm_on+legacy_on}"
export LAB_KERNELS
for k in $(echo "$LAB_KERNELS" | tr ',' '\n' | cut -d= -f1); do
    python3 lab/run --prepare-only --kernel "$k"
done
# debian_kdump_tools' Debian 12 root (mmdebstrap from the Debian archive, README's ./install.sh
# run in it: PyPI), built once into lab/cache/debian-kdump-tools; a failure here is retried,
# and reported, by the scenario itself
case ",${LAB_SCENARIOS:-debian_kdump_tools}," in
    *,debian_kdump_tools,*)
        t1=$(date +%s)
        LAB_TREE=$PWD/lab/cache/tree dracut/lab-scenarios/build-debian-kdump-tools --prepare \
            || echo "lab tier: the Debian root for debian_kdump_tools could not be built (see above)"
        echo "lab tier: debian_kdump_tools' Debian root ready after $(( $(date +%s) - t1 ))s" ;;
esac
echo "lab tier: ingredients ready after $(( $(date +%s) - t0 ))s (LAB_KERNELS=$LAB_KERNELS)"
set +e
python3 -m pytest -m lab -q -rsx -p no:cacheprovider
rc=$?
set -e
echo "lab tier: $(( $(date +%s) - t0 ))s in all"
python3 - <<'PY'
import glob, json
per = {}
for f in sorted(glob.glob("lab/out/*/result.json")):
    r = json.load(open(f))
    key = r.get("key") or r["scenario"]["name"]
    print("  %-26s %-22s wall=%6.1fs live_ok=%s kdump_ok=%s" % (key, r.get("kver", "?"), r["wall_s"], r["live_ok"], r["kdump_ok"]))
    k = r.get("kver", "?")
    per[k] = per.get(k, 0.0) + r["wall_s"]
for k, s in sorted(per.items()):
    print("  kernel %-22s %7.1fs of QEMU wall time" % (k, s))
PY
exit $rc
