#!/bin/sh
# After the dump (kdump-utils /etc/kdump/post.d, or kdump_post; $1 is the dump's exit
# status): put the record beside the vmcore, then clear Bus Master Enable on driverless
# devices if kdumptool.quiesce=1. The dump target devices are still left alone here, since
# kdump-utils saves its log after this hook; the shutdown hook finishes the job.
# @KDUMPTOOL@: see kdumptool-pre.sh.
kdumptool="@KDUMPTOOL@"
# each kdumptool run logs one line to the console at exit: CPU, peak RSS, modules
# compiled from source (kdumptool/sources/runstats.py)
export KDUMPTOOL_STATS=/dev/kmsg
status=${1:-}
mkdir -p /run/kdumptool
# shellcheck disable=SC2086
dir=$($kdumptool record --publish /run/kdumptool/record 2>/run/kdumptool/publish.err) || dir=
journal=${dir:-/run/kdumptool}/kdumptool-quiesce.log
# shellcheck disable=SC2086
$kdumptool quiesce --apply --if-enabled --journal "$journal" --format text \
    > /run/kdumptool/quiesce-post.txt 2>&1
rc=$?
[ -n "$dir" ] && cp /run/kdumptool/quiesce-post.txt "$dir/" 2>/dev/null
echo "kdumptool: post (dump status ${status:-?}): record in ${dir:-/run/kdumptool/record}, quiesce exit $rc" \
    > /dev/kmsg 2>/dev/null
sync
exit 0
