# kdumptool with Debian/Ubuntu's kdump-tools (written by `kdumptool install-integration`).
# /lib/lsb/init-functions sources every file in /lib/lsb/init-functions.d into every LSB
# init script. This one acts only in kdump-tools' own init script starting in the kdump
# kernel (NAME=kdump-tools, "start", a non-empty /proc/vmcore), which runs
# `kdump-config savecore` and then `date -R; reboot -f` (or KDUMP_FAIL_CMD when the save
# failed). `reboot -f` reboots at once (reboot(2), no systemd-shutdown, no unit stopped),
# so nothing else can run between the dump and the reboot. Here `reboot` becomes a shell
# function of that script: kdumptool's after-dump step (the record beside the dump, the
# quiesce when enabled) runs first, then the real reboot with the same arguments.
# kdump-config itself (sourced with "savecore", "load"...) and every other init script
# are unaffected; kdump-tools' files are not changed. Delete this file to undo.
if [ "${NAME:-}" = kdump-tools ] && [ "${1:-}" = start ] && [ -s /proc/vmcore ] \
        && [ -x @LIBEXECDIR@/kdump-tools-after-dump ]; then
    reboot() {
        @LIBEXECDIR@/kdump-tools-after-dump "${KDUMP_COREDIR:-@KDUMP_COREDIR@}" || :
        command reboot "$@"
    }
fi
