# Guest-side steps of a lab scenario (sourced by /init; busybox ash).
#
# Two kinds of capture side by side, into /out/<mode>/:
#   oracle: what independent tools say (busybox devmem reads of the DRHD page, Debian's
#           pciutils lspci, /sys/kernel/iommu_groups, dmesg, /proc/cmdline, the raw DMAR);
#   kdt_*:  what kdumptool says (every command that exists in this working tree).
# The host-side tests (tests/lab) compare the two.
#
# Variables from /cfg/scenario.env: RUN KVER KDUMP_APPEND KDUMP_INITRD LIVE_DRIVERS
# KDUMP_DRIVERS DUMPS DRHD_BASE.

PY=/t/usr/bin/python3.11
LSPCI=/t/usr/bin/lspci
KEXEC=/t/sbin/kexec
MAKEDUMPFILE=/t/usr/bin/makedumpfile

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "LAB: t=$(up) $*"; }

# kdt_batch DIR NAME='ARGS' ...: kdumptool commands, all in one Python process
# (guest/kdt_batch.py: each through kdumptool's real entry point), outputs in DIR/kdt/.
# A command whose module is not in this working tree is recorded as "absent".
kdt_batch() {
    local d t0
    d=$1/kdt; shift
    mkdir -p "$d"
    t0=$(up)
    PYTHONPATH=/kdt:/t/opt/lab-site PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 \
        TERM=dumb COLUMNS=200 "$PY" /lab/kdt_batch.py "$d" "$@"
    say "kdt_batch rc=$? ($t0..$(up))"
}

# rd OFFSET WIDTH: one MMIO register of the DRHD page (0x%08X or 0x%016X), or ERR
rd() {
    local v
    v=$(devmem $(printf '0x%x' $((DRHD + $1))) "$2" 2>/dev/null) || { echo ERR; return; }
    if [ "$2" = 64 ]; then printf '0x%016X' $((v)); else printf '0x%08X' $((v)); fi
}

drhd_regs() {
    local base r name rest off w cap nfr fro i o
    base=${DRHD_BASE:-0xfed90000}
    [ -r /sys/class/iommu/dmar0/intel-iommu/address ] && \
        base=0x$(cat /sys/class/iommu/dmar0/intel-iommu/address)
    DRHD=$((base))
    printf '# dmar0 base=0x%x\n' $DRHD
    for r in VER:0x000:32 CAP:0x008:64 ECAP:0x010:64 GCMD:0x018:32 GSTS:0x01c:32 \
             RTADDR:0x020:64 CCMD:0x028:64 FSTS:0x034:32 FECTL:0x038:32 FEDATA:0x03c:32 \
             FEADDR:0x040:32 FEUADDR:0x044:32 AFLOG:0x058:64 PMEN:0x064:32 \
             IQH:0x080:64 IQT:0x088:64 IQA:0x090:64 ICS:0x09c:32 IECTL:0x0a0:32 \
             IRTA:0x0b8:64 PQH:0x0c0:64 PQT:0x0c8:64 PQA:0x0d0:64 PRS:0x0dc:32; do
        name=${r%%:*}; rest=${r#*:}; off=${rest%%:*}; w=${rest#*:}
        printf '%-9s off=%s w=%s %s\n' "$name" "$off" "$w" "$(rd "$off" "$w")"
    done
    cap=$(rd 0x008 64)
    case "$cap" in ERR) return ;; esac
    nfr=$(( ((cap >> 40) & 0xff) + 1 ))
    fro=$(( ((cap >> 24) & 0x3ff) * 16 ))
    i=0
    while [ $i -lt $nfr ] && [ $i -lt 16 ]; do
        o=$((fro + i * 16))
        printf '%-9s off=0x%03x lo=%s hi=%s\n' "FRCD$i" $o "$(rd $o 64)" "$(rd $((o + 8)) 64)"
        i=$((i + 1))
    done
}

# amdvi_regs: the AMD-Vi MMIO registers (QEMU's amd-iommu at AMDVI_BASE), read with
# busybox devmem: the oracle beside kdumptool's amdvi_registers.json.
amdvi_regs() {
    local r name off
    DRHD=$((${AMDVI_BASE:-0xfed80000}))
    printf '# ivhd0 base=0x%x\n' $DRHD
    for r in DEV_TABLE:0x0000 CMD_BUF:0x0008 EVT_BUF:0x0010 CONTROL:0x0018 EXCL_BASE:0x0020 \
             EXCL_LIMIT:0x0028 EXT_FEATURES:0x0030 PPR_LOG:0x0038 CMD_HEAD:0x2000 CMD_TAIL:0x2008 \
             EVT_HEAD:0x2010 EVT_TAIL:0x2018 STATUS:0x2020; do
        name=${r%%:*}; off=${r#*:}
        printf '%-12s off=%s w=64 %s\n' "$name" "$off" "$(rd "$off" 64)"
    done
}

# iommu_regs: the IOMMU's registers by the scenario's VENDOR
iommu_regs() {
    if [ "$VENDOR" = amd ]; then amdvi_regs; else drhd_regs; fi
}

iommu_groups() {
    local g p
    for g in $(ls /sys/kernel/iommu_groups 2>/dev/null | sort -n); do
        p=/sys/kernel/iommu_groups/$g
        echo "group $g type=$(cat $p/type 2>/dev/null) devices=$(ls $p/devices | tr '\n' ' ')"
        sed 's/^/  reserved /' $p/reserved_regions 2>/dev/null
    done
}

# oracle DIR: the independent view of this kernel
oracle() {
    local d t0 f dev b drv grp
    d=$1; mkdir -p "$d"
    t0=$(up)
    cat /proc/cmdline > "$d/cmdline.txt"
    cat /sys/kernel/security/lockdown > "$d/lockdown.txt" 2>&1
    cat /proc/modules > "$d/modules.txt"
    uname -r > "$d/uname.txt"
    dmesg > "$d/dmesg.txt"
    cat /proc/iomem > "$d/iomem.txt"
    cat /proc/meminfo > "$d/meminfo.txt"
    for f in kexec_crash_loaded kexec_crash_size; do
        echo "$f $(cat /sys/kernel/$f 2>/dev/null)"
    done > "$d/kexec_sysfs.txt"
    cp /sys/firmware/acpi/tables/DMAR "$d/DMAR.bin" 2>/dev/null
    cp /sys/firmware/acpi/tables/IVRS "$d/IVRS.bin" 2>/dev/null
    iommu_regs > "$d/drhd_regs.txt" 2>&1
    "$LSPCI" -xxxx > "$d/lspci_xxxx.txt" 2>&1
    "$LSPCI" -vvv -nn > "$d/lspci_vvv.txt" 2>&1
    "$LSPCI" -tv > "$d/lspci_tree.txt" 2>&1
    "$LSPCI" -n > "$d/lspci_n.txt" 2>&1
    iommu_groups > "$d/iommu_groups.txt"
    for dev in /sys/bus/pci/devices/*; do
        b=$(basename "$dev")
        drv=$(basename "$(readlink "$dev/driver" 2>/dev/null)" 2>/dev/null)
        grp=$(basename "$(readlink "$dev/iommu_group" 2>/dev/null)" 2>/dev/null)
        echo "$b class=$(cat $dev/class) vendor=$(cat $dev/vendor) device=$(cat $dev/device) driver=${drv:--} group=${grp:--} enable=$(cat $dev/enable 2>/dev/null) power=$(cat $dev/power_state 2>/dev/null) reset=$(cat $dev/reset_method 2>/dev/null | tr ' ' +) path=$(readlink -f "$dev")"
    done > "$d/pci_sysfs.txt"
    say "oracle $d ($t0..$(up))"
}

# kdt_probe DIR: kdumptool's library view of this kernel (guest/kdt_probe.py)
kdt_probe() {
    local t0
    mkdir -p "$1/kdt"
    t0=$(up)
    PYTHONPATH=/kdt:/t/opt/lab-site PYTHONDONTWRITEBYTECODE=1 "$PY" /lab/kdt_probe.py \
        "$1/kdt/probe.json" > "$1/kdt/probe.log" 2>&1
    say "kdt_probe rc=$? $(tail -1 "$1/kdt/probe.log") ($t0..$(up))"
}

nic_up() {
    local n
    for n in /sys/class/net/*; do
        case "$(readlink "$n/device")" in
            *0000:00:02.0) ip link set "$(basename "$n")" up
                           ip addr add 10.0.2.15/24 dev "$(basename "$n")"
                           say "e1000e is $(basename "$n"), up" ;;
        esac
    done
}

live_main() {
    local O t0
    O=/out/live; mkdir -p "$O"
    say "live start run=$RUN kernel=$(uname -r)"
    # A text file offered as a module: the kernel's loader logs the ELF magic it wanted
    # (6.12: "Invalid ELF header magic: != \x7fELF", a raw 0x7f in the ring), the byte
    # that `vmcore log` must escape exactly as makedumpfile --dump-dmesg does.
    insmod /lab/lib.sh 2>/dev/null
    for m in $LIVE_DRIVERS; do say "modprobe $m"; modprobe "$m" || say "modprobe $m failed"; done
    sleep 1
    nic_up
    # What Debian's kdump-tools would have said to kexec: kdumptool triage reads it to
    # predict the kdump kernel's command line.
    mkdir -p /etc/default
    echo "KDUMP_CMDLINE=\"$KDUMP_APPEND\"" > /etc/default/kdump-tools
    t0=$(up)
    KEXEC_OPT=
    case "$(cat /sys/kernel/security/lockdown 2>/dev/null)" in
        *"[integrity]"*|*"[confidentiality]"*)
            # A locked-down kernel refuses kexec_load (LOCKDOWN_KEXEC) and checks the image's
            # signature in kexec_file_load (kexec -s): both attempts kept (docs/lockdown.md).
            "$KEXEC" -p "/t/boot/vmlinuz-$KVER" --initrd="$KDUMP_INITRD" --append="$KDUMP_APPEND" \
                > "$O/kexec_load.txt" 2>&1
            echo "rc=$?" >> "$O/kexec_load.txt"
            KEXEC_OPT=-s ;;
    esac
    "$KEXEC" $KEXEC_OPT -p "/t/boot/vmlinuz-$KVER" --initrd="$KDUMP_INITRD" --append="$KDUMP_APPEND" \
        > "$O/kexec.txt" 2>&1
    echo "rc=$? t0=$t0 t1=$(up)" >> "$O/kexec.txt"
    echo "loaded=$(cat /sys/kernel/kexec_crash_loaded)" >> "$O/kexec.txt"
    oracle "$O"
    kdt_probe "$O"
    set --
    [ "$VENDOR" = amd ] && set -- 'ivrs=ivrs -f json'
    kdt_batch "$O" version=--version 'dmar=dmar -f json' 'pci=pci -f json' \
        'iommu=iommu -f json' 'log=log -f json' 'triage=triage -f json' \
        "collect=collect --output $O/snapshot -f json" "$@"
    # The RTADDR the crashed kernel had, read as late as possible before the panic.
    iommu_regs > "$O/drhd_regs_final.txt" 2>&1
    dmesg > "$O/dmesg_final.txt"
    say "live done, panicking (crash_loaded=$(cat /sys/kernel/kexec_crash_loaded))"
    sync
    echo "$(up)" > "$O/panic_at.txt"
    sync
    echo c > /proc/sysrq-trigger
    say "still alive after sysrq-c?"
}

# dump NAME: one copy of /proc/vmcore into /out/kdump, timed
dump() {
    local d f rc t0 t1 sz
    d=/out/kdump
    # makedumpfile silently writes an uncompressed dump when asked for a compression it
    # was built without (Debian's 1.7.2: zstd and snappy disabled): record a skip instead.
    case "$1" in
        zstd|snappy)
            if grep -q "^$1[[:space:]]*disabled" "$d/makedumpfile_v.txt"; then
                echo "$1 skipped: disabled in this makedumpfile" >> "$d/dumps.txt"
                say "dump $1 skipped (makedumpfile built without it)"
                return
            fi ;;
    esac
    t0=$(up)
    case "$1" in
        elf)  f=vmcore.elf; cp /proc/vmcore "$d/$f" 2> "$d/$f.err" ;;
        zlib) f=vmcore.d31.zlib.kdump; "$MAKEDUMPFILE" --message-level 30 -c -d 31 /proc/vmcore "$d/$f" > "$d/$f.log" 2>&1 ;;
        lzo)  f=vmcore.d31.lzo.kdump; "$MAKEDUMPFILE" --message-level 30 -l -d 31 /proc/vmcore "$d/$f" > "$d/$f.log" 2>&1 ;;
        zstd) f=vmcore.d31.zstd.kdump; "$MAKEDUMPFILE" --message-level 30 -z -d 31 /proc/vmcore "$d/$f" > "$d/$f.log" 2>&1 ;;
        snappy) f=vmcore.d31.snappy.kdump; "$MAKEDUMPFILE" --message-level 30 -p -d 31 /proc/vmcore "$d/$f" > "$d/$f.log" 2>&1 ;;
        elfd31) f=vmcore.d31.elf; "$MAKEDUMPFILE" --message-level 30 -E -d 31 /proc/vmcore "$d/$f" > "$d/$f.log" 2>&1 ;;
        *) say "unknown dump format $1"; return ;;
    esac
    rc=$?
    t1=$(up)
    sz=$(stat -c %s "$d/$f" 2>/dev/null || echo 0)
    echo "$1 file=$f rc=$rc size=$sz t0=$t0 t1=$t1" >> "$d/dumps.txt"
    say "dump $1 rc=$rc size=$sz ($t0..$t1)"
}

# lockdown_probe DIR (a locked-down kernel only, after quiesce): the kernel's answers to
# a config-space write (setpci rewriting the host bridge's COMMAND with the value it
# holds) and to sysfs enable 1 then 0 on the e1000 behind the PCIe-to-PCI bridge, with
# lspci -xxxx of every device after each step (docs/lockdown.md).
lockdown_probe() {
    local d e b v
    d=$1; mkdir -p "$d"
    b=0000:03:01.0
    e=/sys/bus/pci/devices/$b/enable
    "$LSPCI" -xxxx > "$d/lspci_xxxx_0.txt" 2>&1
    # The kernel rate-limits its "Lockdown:" lines (10 per 5 s; the devmem reads above
    # use them up): wait, so the config write's own line is logged.
    sleep 6
    v=$(/t/usr/bin/setpci -s 00:00.0 COMMAND 2>&1)
    /t/usr/bin/setpci -s 00:00.0 COMMAND="$v" > "$d/setpci_write.txt" 2>&1
    echo "rc=$? value=$v" >> "$d/setpci_write.txt"
    { echo "before enable=$(cat $e)"; echo 1 > "$e"; echo "write 1 rc=$? enable=$(cat $e)"; } > "$d/enable.txt" 2>&1
    "$LSPCI" -xxxx > "$d/lspci_xxxx_1.txt" 2>&1
    { echo 0 > "$e"; echo "write 0 rc=$? enable=$(cat $e)"; } >> "$d/enable.txt" 2>&1
    "$LSPCI" -xxxx > "$d/lspci_xxxx_2.txt" 2>&1
    # pci_enable_bridge enabled the driverless bridge above it: disable it again.
    { echo 0 > /sys/bus/pci/devices/0000:02:00.0/enable; echo "bridge 02:00.0 write 0 rc=$?"; } >> "$d/enable.txt" 2>&1
    "$LSPCI" -xxxx > "$d/lspci_xxxx_3.txt" 2>&1
    dmesg | grep -i lockdown > "$d/dmesg_lockdown.txt"
    say "lockdown probe $d"
}

kdump_main() {
    local saved
    O=/out/kdump; mkdir -p "$O"
    # the crashed kernel's table address: VT-d's RTADDR listing, AMD-Vi's live snapshot
    saved=/out/live/drhd_regs_final.txt
    [ "$VENDOR" = amd ] && saved=/out/live/snapshot
    say "kdump start run=$RUN"
    ls -l /proc/vmcore > "$O/vmcore_ls.txt" 2>&1
    "$MAKEDUMPFILE" -v > "$O/makedumpfile_v.txt" 2>&1
    # The oracle of `kdumptool vmcore log`: Debian's makedumpfile reading the same ring.
    "$MAKEDUMPFILE" --dump-dmesg /proc/vmcore "$O/makedumpfile_dmesg.txt" > "$O/makedumpfile_dmesg.log" 2>&1
    oracle "$O"
    kdt_probe "$O"
    kdt_batch "$O" 'dmar=dmar -f json' 'pci=pci -f json' 'iommu=iommu -f json' \
        'log=log -f json' 'triage=triage -f json' "record=record --out $O/record -f json" \
        'quiesce_plan=quiesce --plan -f json' 'vmcore_info=vmcore info /proc/vmcore -f json' \
        'vmcore_log=vmcore log /proc/vmcore -f json' \
        "vmcore_iommu=vmcore iommu /proc/vmcore --saved $saved -f json"
    if [ -n "$KDUMP_DRIVERS" ]; then
        say "loading drivers in kdump kernel: $KDUMP_DRIVERS"
        for m in $KDUMP_DRIVERS; do modprobe "$m" || say "modprobe $m failed"; done
        sleep 3
        oracle "$O/after_drivers"
    fi
    for f in $DUMPS; do dump "$f"; done
    # The dump is finished: quiesce for real, then look again with the oracle tools.
    kdt_batch "$O" "quiesce_apply=quiesce --apply --dump-finished --journal $O/quiesce.journal -f json" \
        'quiesce_again=quiesce --apply --dump-finished -f json'
    oracle "$O/after_quiesce"
    case "$(cat /sys/kernel/security/lockdown 2>/dev/null)" in
        *"[integrity]"*|*"[confidentiality]"*) lockdown_probe "$O/lockdown" ;;
    esac
    dmesg > "$O/dmesg_final.txt"
    iommu_regs > "$O/drhd_regs_final.txt" 2>&1
    echo "$(up)" > "$O/done.txt"
    say "kdump done"
}
