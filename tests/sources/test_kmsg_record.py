"""``/dev/kmsg`` records as ``dmesg`` prints them (the collector's dmesg.txt)."""

from kdumptool.sources.snapshot import format_kmsg_record


def test_escapes_are_decoded_like_dmesg():
    # The kernel escapes a tab as \x09 and a backslash as \x5c in /dev/kmsg (see
    # Documentation/ABI/testing/dev-kmsg); dmesg prints the characters.
    rec = b"6,339,5140900,-;pci 0000:00:02.0:\\x09reg 0x10 C:\\x5cpath\n SUBSYSTEM=pci\n"
    assert format_kmsg_record(rec) == ["[    5.140900] pci 0000:00:02.0:\treg 0x10 C:\\path"]


def test_multi_line_message_keeps_the_timestamp_on_each_line():
    rec = b"4,12,1000001,-;first line\\x0asecond line\n"
    assert format_kmsg_record(rec) == ["[    1.000001] first line", "[    1.000001] second line"]


def test_dictionary_lines_and_garbage():
    assert format_kmsg_record(b"6,1,2,-;hello\n DEVICE=+pci:0000:00:02.0\n") == ["[    0.000002] hello"]
    assert format_kmsg_record(b"no header here") == []
    assert format_kmsg_record(b"6,1,notanumber,-;x") == []
