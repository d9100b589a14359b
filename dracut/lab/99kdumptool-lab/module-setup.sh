#!/bin/bash
# Lab-only dracut module: a stand-in for kdump-utils' 99kdumpbase inside the QEMU lab,
# running the same hook contract (/etc/kdump/pre.d, the dump, /etc/kdump/post.d with the
# dump's exit status, then `systemctl reboot -f`), so the kdumptool module is exercised the
# way kdump-utils runs it. The dump goes to the lab's 9p share "out", mounted at /kdumproot
# as kdump-utils mounts dump targets; makedumpfile -c -d 31 writes the vmcore.
# Boot it with rd.systemd.unit=kdumptool-lab.target (systemd in an initrd reads rd.systemd.unit=) (no root file system to wait for).

check() {
    return 255
}

depends() {
    echo kdumptool systemd
    return 0
}

installkernel() {
    hostonly='' instmods virtio_pci 9pnet_virtio 9p
}

install() {
    inst_multiple makedumpfile lspci setpci modprobe mount umount mkdir cat cut sync sleep \
        date mv cp ls grep sed readlink basename tee head
    inst_multiple -o /usr/share/misc/pci.ids /usr/share/hwdata/pci.ids
    inst_script "$moddir/lab-capture.sh" /usr/libexec/kdumptool-lab/capture
    inst_simple "$moddir/kdumptool-lab.service" "$systemdsystemunitdir/kdumptool-lab.service"
    inst_simple "$moddir/kdumptool-lab.target" "$systemdsystemunitdir/kdumptool-lab.target"
    mkdir -p "$initdir/etc"
    printf 'path /crash\ncore_collector makedumpfile -c -d 31\n' > "$initdir/etc/kdump.conf"
}
