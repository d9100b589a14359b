#!/bin/sh
# kdump-tools (Debian/Ubuntu), in the kdump kernel: run by
# kdumptool-kdump-tools-publish.path when KDUMP_COREDIR ($1) changes, i.e. when
# `kdump-config savecore` creates <timestamp>/ for this crash. Copies the record that
# kdumptool-kdump-tools-record.service took before the dump into <timestamp>/kdumptool/,
# once. Shell only: it runs while makedumpfile writes the dump and must be done long before
# kdump-tools' `reboot -f`. Never fails.
coredir=${1:-/var/crash}
rec=/run/kdumptool/record
[ -e /proc/vmcore ] || exit 0
[ -f "$rec/.started" ] || exit 0
[ -f "$rec/kdumptool-record.json" ] || exit 0
# the newest crash folder created since the record started (an older crash's folder never
# is): kdump-config names them <stamp> or <host>-<stamp>, stamp = date +%Y%m%d%H%M
dir=$(find "$coredir" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/([^/]*-)?[0-9]{12}' \
    -newer "$rec/.started" -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
[ -n "$dir" ] || exit 0
[ -e "$dir/kdumptool/kdumptool-record.json" ] && exit 0
mkdir -p "$dir/kdumptool" || exit 0
for f in "$rec"/*; do
    [ -f "$f" ] && cp -p "$f" "$dir/kdumptool/"
done
sync
echo "kdumptool: record published to $dir/kdumptool" > /dev/kmsg 2>/dev/null
echo "kdumptool: record published to $dir/kdumptool"
exit 0
