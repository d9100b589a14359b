"""kdumptool.quiesce / kdumptool.record: kernel command line over the config file."""

from __future__ import annotations

from kdumptool.sources.knobs import CONFIG_FILE, parse_cmdline, parse_config, read_knob
from kdumptool.sources.root import Root


def _root(tmp_path, cmdline=None, conf=None):
    if cmdline is not None:
        (tmp_path / "proc").mkdir(exist_ok=True)
        (tmp_path / "proc/cmdline").write_text(cmdline + "\n")
    if conf is not None:
        p = tmp_path / CONFIG_FILE.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(conf)
    return Root(tmp_path)


def test_defaults(tmp_path):
    r = _root(tmp_path)
    assert read_knob(r, "quiesce").value is False and read_knob(r, "quiesce").source == "default"
    assert read_knob(r, "record").value is True


def test_config_then_cmdline_wins(tmp_path):
    r = _root(tmp_path, cmdline="console=ttyS0 irqpoll", conf="# opt in\nquiesce = 1\nrecord=no\n")
    assert read_knob(r, "quiesce").value is True and read_knob(r, "quiesce").source == CONFIG_FILE
    assert read_knob(r, "record").value is False
    r = _root(tmp_path, cmdline="kdumptool.quiesce=1 reset_devices kdumptool.quiesce=0")
    k = read_knob(r, "quiesce")
    assert (k.value, k.source) == (False, "kernel command line")


def test_junk_ignored():
    assert parse_cmdline("kdumptool.quiesce=maybe kdumptool.other=1 kdumptool.record") == {}
    assert parse_config("quiesce\n=1\nfoo=1\nkdumptool.record=off\n") == {"record": False}
