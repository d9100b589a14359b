#!/bin/sh
# systemd-shutdown hook ($1: reboot, poweroff, halt or kexec), run after file systems are
# unmounted or read-only, also on `systemctl reboot -f` / `reboot -f` (the final action of
# kdump-utils and of kdump-tools, which skips units' ExecStop=). In the kdump kernel (there
# is a /proc/vmcore) the dump is over: clear Bus Master Enable on every driverless device,
# dump target included, if kdumptool.quiesce=1. @KDUMPTOOL@: see kdumptool-pre.sh.
kdumptool="@KDUMPTOOL@"
# each kdumptool run logs one line to the console at exit: CPU, peak RSS, modules
# compiled from source (kdumptool/sources/runstats.py)
export KDUMPTOOL_STATS=/dev/kmsg
[ -e /proc/vmcore ] || exit 0
[ -x "${kdumptool%% *}" ] || exit 0
mkdir -p /run/kdumptool
echo "kdumptool: shutdown ($1): quiesce start" > /dev/kmsg 2>/dev/null
# shellcheck disable=SC2086
$kdumptool quiesce --apply --if-enabled --dump-finished \
    --journal /run/kdumptool/kdumptool-quiesce.log --format text \
    > /run/kdumptool/quiesce-shutdown.txt 2>&1
rc=$?
echo "$rc" > /run/kdumptool/quiesce-shutdown.rc
echo "kdumptool: shutdown ($1): quiesce exit $rc" > /dev/kmsg 2>/dev/null
exit 0
