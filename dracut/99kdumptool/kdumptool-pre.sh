#!/bin/sh
# Before the dump: record the VT-d and PCI state while it is still as the crashed kernel
# left it. Run by kdump-utils (/etc/kdump/pre.d, or kdump_pre in /etc/kdump.conf) inside
# the kdump initramfs, and by kdumptool-kdump-tools-record.service before kdump-tools'
# `kdump-config savecore` (Debian/Ubuntu). Kept in /run until the dump folder exists;
# kdump-post (kdump-utils) or kdump-tools-publish (kdump-tools) copies it beside the vmcore.
# Never fails the dump: errors are reported and the script exits 0.
# @KDUMPTOOL@ is replaced when installed (the dracut module: /usr/bin/kdumptool, its
# launcher in the initramfs; install-integration: the installed kdumptool's real path).
kdumptool="@KDUMPTOOL@"
# each kdumptool run logs one line to the console at exit: CPU, peak RSS, modules
# compiled from source (kdumptool/sources/runstats.py)
export KDUMPTOOL_STATS=/dev/kmsg
out=/run/kdumptool/record
mkdir -p "$out"
: > "$out/.started"
start=$(cut -d' ' -f1 /proc/uptime)
echo "kdumptool: record start (uptime $start s)" > /dev/kmsg 2>/dev/null
# shellcheck disable=SC2086  # "PYTHON -m kdumptool" is two words
$kdumptool record --if-enabled --out "$out" --format text > "$out/record.log" 2>&1
rc=$?
end=$(cut -d' ' -f1 /proc/uptime)
echo "kdumptool: record exit $rc (uptime $start -> $end s), $out" > /dev/kmsg 2>/dev/null
sed -n '1,3p' "$out/record.log" | while read -r l; do echo "kdumptool: $l" > /dev/kmsg 2>/dev/null; done
exit 0
