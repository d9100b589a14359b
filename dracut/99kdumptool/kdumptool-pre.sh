#!/bin/sh
# Before the dump (kdump-utils /etc/kdump/pre.d, or kdump_pre in /etc/kdump.conf):
# record the VT-d and PCI state while it is still as the crashed kernel left it. Kept in
# /run until the dump folder exists; kdump-post copies it beside the vmcore.
# Never fails the dump: errors are reported and the script exits 0.
out=/run/kdumptool/record
mkdir -p "$out"
start=$(cut -d' ' -f1 /proc/uptime)
kdumptool record --if-enabled --out "$out" --format text > "$out/record.log" 2>&1
rc=$?
end=$(cut -d' ' -f1 /proc/uptime)
echo "kdumptool: record exit $rc (uptime $start -> $end s), $out" > /dev/kmsg 2>/dev/null
sed -n '1,3p' "$out/record.log" | while read -r l; do echo "kdumptool: $l" > /dev/kmsg 2>/dev/null; done
exit 0
