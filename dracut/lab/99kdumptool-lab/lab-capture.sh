#!/bin/sh
# The lab's kdump capture: the steps of kdump-utils' kdump.sh that matter to kdumptool.
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "LAB: t=$(up) $*"; }
say "init mode=kdump run=dracut"
modprobe -a virtio_pci 9pnet_virtio 9p
mkdir -p /kdumproot
n=0
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /kdumproot 2>/dev/null; do
    n=$((n + 1)); [ $n -gt 100 ] && { say "FATAL cannot mount the out share"; break; }
    sleep 0.2
done
say "pre.d: $(ls /etc/kdump/pre.d 2>/dev/null | tr '\n' ' ')"
t0=$(up)
for f in /etc/kdump/pre.d/*; do [ -x "$f" ] && "$f"; done
say "pre.d done ($t0 -> $(up) s)"
d=/kdumproot/crash/127.0.0.1-$(date +%Y-%m-%d-%H:%M:%S)
mkdir -p "$d"
say "saving vmcore to $d"
makedumpfile --message-level 1 -c -d 31 /proc/vmcore "$d/vmcore-incomplete" > "$d/makedumpfile.log" 2>&1
rc=$?
[ $rc = 0 ] && mv "$d/vmcore-incomplete" "$d/vmcore"
say "makedumpfile exit $rc"
t0=$(up)
for f in /etc/kdump/post.d/*; do [ -x "$f" ] && "$f" "$rc"; done
say "post.d done ($t0 -> $(up) s)"
# Verification, independent of kdumptool: a fresh read of every COMMAND register with
# setpci, and lspci's view of bus mastering.
for p in /sys/bus/pci/devices/*; do
    b=$(basename "$p")
    drv=$(basename "$(readlink "$p/driver" 2>/dev/null)" 2>/dev/null)
    say "verify $b COMMAND=0x$(setpci -s "$b" COMMAND) driver=${drv:--}"
done | tee "$d/verify-setpci.txt"
lspci -vvv > "$d/lspci-vvv-after.txt" 2>&1
lspci | while read -r b rest; do
    say "lspci $b $(lspci -vvv -s "$b" | grep -o 'BusMaster[+-]' | head -1)"
done
mkdir -p /kdumproot/kdump
echo "dracut capture rc=$rc dir=$d" > /kdumproot/kdump/done.txt
say "kdump done"
sync
umount /kdumproot
say "systemctl reboot -f"
systemctl reboot -f
