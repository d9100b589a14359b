#!/bin/bash
# dracut module "kdumptool": kdumptool and a minimal Python runtime in the kdump
# initramfs, run through the hooks kdump itself runs:
#   - kdump-utils (RHEL/Fedora): /etc/kdump/pre.d (before the dump: kdumptool record),
#     /etc/kdump/post.d (after it: publish the record beside the vmcore, quiesce --apply);
#     the same two scripts are installed as /usr/libexec/kdumptool/kdump-{pre,post} for
#     the kdump_pre / kdump_post directives of /etc/kdump.conf;
#   - systemd-shutdown: /usr/lib/systemd/system-shutdown/kdumptool.shutdown, run after
#     file systems are unmounted, also on `systemctl reboot -f` (which kdump-utils' final
#     action uses and which skips units' ExecStop=).
# Quiesce is opt-in: kdumptool.quiesce=1 on the kdump kernel's command line, or quiesce=1
# in /etc/kdumptool/kdumptool.conf (copied in when present).
#
# Environment: KDUMPTOOL_PYTHON  the interpreter to ship (default: the python3 on PATH);
#              KDUMPTOOL_SRC     a source checkout to take kdumptool from (default: installed).

# called by dracut
check() {
    local py
    _kdumptool_python > /dev/null || return 1
    # only when asked for: dracut --add kdumptool, or dracut_args --add kdumptool in kdump.conf
    return 255
}

# called by dracut
depends() {
    echo base
    return 0
}

_kdumptool_python() {
    # KDUMPTOOL_PYTHON, else the interpreter `kdumptool install-integration` recorded in
    # /etc/kdumptool/python, else python3 on PATH; it must import kdumptool and typer.
    local py cand
    for cand in "$KDUMPTOOL_PYTHON" "$(cat /etc/kdumptool/python 2>/dev/null)" python3 /usr/bin/python3; do
        [[ -n $cand ]] || continue
        py=$(command -v "$cand") || continue
        # resolve wrappers (pyenv shims) to the real interpreter, but keep a venv's own
        # python (install.sh's /opt/kdumptool/venv): only it sees the venv's packages, and
        # kdumptool-stage.py ships the real binary behind it
        if PYTHONPATH=${KDUMPTOOL_SRC:-} "$py" -c 'import kdumptool, typer, os, sys; print(sys.executable if sys.prefix != sys.base_prefix else os.path.realpath(sys.executable))' 2>/dev/null; then
            return 0
        fi
    done
    return 1
}

# install a hook script with @KDUMPTOOL@ replaced by the initramfs launcher
_kdumptool_hook() {
    mkdir -p "$initdir/${2%/*}" || return 1
    sed -e 's|@KDUMPTOOL@|/usr/bin/kdumptool|g' "$1" > "$initdir/$2" || return 1
    chmod 0755 "$initdir/$2"
}

# called by dracut
install() {
    local py line kind src dest ver
    py=$(_kdumptool_python) || { derror "kdumptool: no python3 found"; return 1; }
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    local prefix=/usr/lib/kdumptool
    local out
    out=$("$py" "$moddir/kdumptool-stage.py" --initdir "$initdir" --prefix "$prefix" \
        ${KDUMPTOOL_SRC:+--path "$KDUMPTOOL_SRC"}) || { derror "kdumptool: staging failed"; return 1; }
    while read -r kind src dest; do
        case $kind in
            ELF) inst_library "$src" "$dest" || return 1 ;;
            PYTHON) inst_binary "$src" "$prefix/bin/python$ver" || return 1 ;;
        esac
    done <<< "$out"
    ln_r "$prefix/bin/python$ver" "$prefix/bin/python3"
    # the launcher knows the interpreter's version
    sed -e "s|@PREFIX@|$prefix|g" "$moddir/kdumptool.sh" > "$initdir/usr/bin/kdumptool"
    chmod 0755 "$initdir/usr/bin/kdumptool"

    # the hooks are templates: @KDUMPTOOL@ is the launcher above in the initramfs
    _kdumptool_hook "$moddir/kdumptool-pre.sh" /usr/libexec/kdumptool/kdump-pre || return 1
    _kdumptool_hook "$moddir/kdumptool-post.sh" /usr/libexec/kdumptool/kdump-post || return 1
    inst_dir /etc/kdump/pre.d
    inst_dir /etc/kdump/post.d
    ln_r /usr/libexec/kdumptool/kdump-pre /etc/kdump/pre.d/50-kdumptool-record
    ln_r /usr/libexec/kdumptool/kdump-post /etc/kdump/post.d/50-kdumptool
    _kdumptool_hook "$moddir/kdumptool-shutdown.sh" /usr/lib/systemd/system-shutdown/kdumptool.shutdown || return 1
    inst_multiple -o sync cut sed mkdir cp
    [[ -f /etc/kdumptool/kdumptool.conf ]] && inst_simple /etc/kdumptool/kdumptool.conf
    return 0
}
