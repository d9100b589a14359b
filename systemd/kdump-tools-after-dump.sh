#!/bin/sh
# kdump-tools (Debian/Ubuntu), in the kdump kernel, after `kdump-config savecore` has
# finished (dump and dmesg written, or failed) and before kdump-tools' init script reboots:
# run by the `reboot` shell function that /lib/lsb/init-functions.d/50-kdumptool defines
# inside that init script only ($1: KDUMP_COREDIR). Puts the record beside the dump if
# kdumptool-kdump-tools-publish.path has not yet, then clears Bus Master Enable on every
# driverless device if kdumptool.quiesce=1 (the dump target has a driver and is left
# alone; its file system is still mounted and synced before and after). Never fails.
# @KDUMPTOOL@: see kdumptool-pre.sh.
kdumptool="@KDUMPTOOL@"
# each kdumptool run logs one line to the console at exit: CPU, peak RSS, modules
# compiled from source (kdumptool/sources/runstats.py)
export KDUMPTOOL_STATS=/dev/kmsg
coredir=${1:-@KDUMP_COREDIR@}
rec=/run/kdumptool/record
[ -e /proc/vmcore ] || exit 0
[ -x "${kdumptool%% *}" ] || exit 0
echo "kdumptool: kdump-tools' savecore finished: quiesce start (uptime $(cut -d' ' -f1 /proc/uptime) s)" \
    > /dev/kmsg 2>/dev/null
@LIBEXECDIR@/kdump-tools-publish "$coredir" > /dev/null 2>&1
# the crash folder of this dump: as kdump-tools-publish finds it (created after the record
# started); without a record, the quiesce journal stays in /run/kdumptool
out=/run/kdumptool
if [ -f "$rec/.started" ]; then
    dir=$(find "$coredir" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/([^/]*-)?[0-9]{12}' \
        -newer "$rec/.started" -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
    [ -n "$dir" ] && mkdir -p "$dir/kdumptool" 2>/dev/null && out=$dir/kdumptool
fi
mkdir -p "$out"
sync
# shellcheck disable=SC2086  # "PYTHON -m kdumptool" is two words
$kdumptool quiesce --apply --if-enabled --journal "$out/kdumptool-quiesce.log" --format text \
    > "$out/quiesce-after-dump.txt" 2>&1
rc=$?
sync
echo "kdumptool: kdump-tools' savecore finished: quiesce exit $rc (uptime $(cut -d' ' -f1 /proc/uptime) s), $out" \
    > /dev/kmsg 2>/dev/null
exit 0
