"""kdump configuration files: real distribution templates (fixtures/kdumpconf)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.formats.kdumpconf import (
    build_kdump_cmdline,
    dump_level_of,
    parse_kdump_conf,
    parse_kdump_tools,
    parse_sysconfig_kdump,
    settings_of,
)
from tests.conftest import FIXTURES

KC = FIXTURES / "kdumpconf"


def test_rhel_kdump_conf_template():
    f = parse_kdump_conf((KC / "rhel-kdump.conf").read_text())
    assert [(e.key, e.line) for e in f.entries] == [("path", 13), ("core_collector", 14)]
    assert f.get("core_collector").value == "makedumpfile -l --message-level 1 -d 31"
    s = settings_of("rhel", [f])
    assert s.target.kind == "local" and s.target.path == "/var/crash"
    assert s.dump_level.value == 31
    assert s.dump_level.cite() == "/etc/kdump.conf:14: core_collector makedumpfile -l --message-level 1 -d 31"
    assert s.extra_modules == ()


def test_kdump_conf_directives_and_comments():
    text = (
        "nfs my.server.com:/export/tmp   # the filer\n"
        "path /crash\n"
        "core_collector makedumpfile -F -l -d 17 --message-level 1\n"
        "extra_modules e1000e  nvme\n"
        "kdump_pre /usr/lib/kdumptool/quiesce-hook\n"
        'dracut_args --add-drivers "ixgbe mlx5_core"\n'
        "bogus!line\n"
    )
    f = parse_kdump_conf(text)
    s = settings_of("rhel", [f])
    assert (s.target.kind, s.target.location, s.target.path) == ("nfs", "my.server.com:/export/tmp", "/crash")
    assert s.dump_level.value == 17
    assert [m for m, _ in s.extra_modules] == ["e1000e", "nvme", "ixgbe", "mlx5_core"]
    assert s.extra_modules[0][1].entry.line == 4
    assert s.hooks[0][0] == "kdump_pre" and s.hooks[0][1].entry.line == 5
    assert any("line 7" in w for w in s.warnings)


def test_rhel_sysconfig_cmdline():
    sc = parse_sysconfig_kdump((KC / "rhel-sysconfig-kdump").read_text())
    assert sc.get("KDUMP_COMMANDLINE").value == ""
    assert sc.get("KDUMP_COMMANDLINE_REMOVE").line == 20
    s = settings_of("rhel", [parse_kdump_conf((KC / "rhel-kdump.conf").read_text()), sc])
    first = "BOOT_IMAGE=/vmlinuz-6.1 root=/dev/sda1 ro quiet crashkernel=256M intel_iommu=on hugepages=4"
    line, steps = build_kdump_cmdline(s, first)
    args = line.split()
    assert args[:3] == ["root=/dev/sda1", "ro", "intel_iommu=on"]
    assert "quiet" not in args and "crashkernel=256M" not in args and "hugepages=4" not in args
    assert args[-1] == "pcie_ports=compat" and "reset_devices" in args
    assert s.append_var == ("/etc/sysconfig/kdump", "KDUMP_COMMANDLINE_APPEND")
    assert any(":24:" in step for step in steps)


def test_debian_kdump_tools_template():
    f = parse_kdump_tools((KC / "debian-kdump-tools").read_text())
    s = settings_of("debian", [f])
    assert s.enabled.value == "0" and s.enabled.entry.line == 14
    assert s.target.path == "/var/crash" and s.target.source.entry.line == 37
    assert s.dump_level.value == 31 and s.dump_level.entry is None  # kdump-config default
    assert s.cmdline_append is None
    assert s.append_var == ("/etc/default/kdump-tools", "KDUMP_CMDLINE_APPEND")
    line, _ = build_kdump_cmdline(s, "root=/dev/vda1 intel_iommu=on crashkernel=512M")
    assert line == "root=/dev/vda1 intel_iommu=on"


def test_debian_makedump_args_level():
    f = parse_kdump_tools('MAKEDUMP_ARGS="-c -d 1"\nKDUMP_CMDLINE_APPEND="reset_devices intel_iommu=off"\n')
    s = settings_of("debian", [f])
    assert s.dump_level.value == 1
    line, _ = build_kdump_cmdline(s, "intel_iommu=on")
    assert line.split() == ["intel_iommu=on", "reset_devices", "intel_iommu=off"]


def test_suse_multiline_and_savedir():
    f = parse_sysconfig_kdump((KC / "suse-sysconfig-kdump").read_text())
    app = f.get("KDUMP_COMMANDLINE_APPEND")
    assert app.line == 15 and app.value.split() == ["intel_iommu=on,sm_off", "nr_cpus=1"]
    s = settings_of("suse", [f])
    assert s.dump_level.value == 31 and s.dump_level.entry.line == 22
    assert (s.target.kind, s.target.path) == ("local", "/var/crash")


def test_dump_level_of():
    assert dump_level_of("makedumpfile -l -d 31") == 31
    assert dump_level_of("-d31 -c") == 31
    assert dump_level_of("--dump-level 7") == 7
    assert dump_level_of("-c") is None
    assert dump_level_of("-d 99") is None


def test_unterminated_quote_is_a_warning():
    f = parse_sysconfig_kdump('KDUMP_COMMANDLINE_APPEND="irqpoll\n')
    assert f.warnings and "unterminated" in f.warnings[0]
    assert f.get("KDUMP_COMMANDLINE_APPEND").value.startswith("irqpoll")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_parsers_never_raise(text):
    for fn in (parse_kdump_conf, parse_sysconfig_kdump, parse_kdump_tools):
        f = fn(text)
        s = settings_of("unknown", [f])
        build_kdump_cmdline(s, "root=/dev/sda1 intel_iommu=on")
