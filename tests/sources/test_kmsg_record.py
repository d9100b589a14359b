"""``/dev/kmsg`` records as ``dmesg`` prints them (the collector's dmesg.txt)."""

from kdumptool.sources.kmsg import format_kmsg_record


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


class FakeKmsg:
    """/dev/kmsg's read() contract (kernel/printk/printk.c devkmsg_read): one record per
    read; a buffer too small for the record fails with EINVAL and the record stays
    unread; EAGAIN at the end of the ring."""

    def __init__(self, records):
        self.records = list(records)
        self.sizes = []

    def read(self, fd, size):
        import errno

        self.sizes.append(size)
        if not self.records:
            raise BlockingIOError(errno.EAGAIN, "no more records")
        if len(self.records[0]) > size:
            raise OSError(errno.EINVAL, "buffer too small")
        return self.records.pop(0)


def test_a_record_larger_than_the_first_buffer_is_read_whole_and_the_rest_follows():
    from kdumptool.sources.kmsg import KMSG_READ, read_kmsg_records

    big = b"6,2,1000,-;" + b"x" * (3 * KMSG_READ) + b"\n"
    dev = FakeKmsg([b"6,1,5,-;before\n", big, b"6,3,2000,-;after\n"])
    warnings = []
    got = list(read_kmsg_records(0, warnings, read=dev.read))
    assert got == ["6,1,5,-;before", big.decode().rstrip("\n"), "6,3,2000,-;after"]
    assert warnings == []
    # the first read size, then doubled until the big record fitted (never re-read forever)
    assert dev.sizes[:4] == [KMSG_READ, KMSG_READ, 2 * KMSG_READ, 4 * KMSG_READ]


def test_a_record_beyond_the_bound_stops_with_a_warning():
    from kdumptool.sources.kmsg import KMSG_READ_MAX, read_kmsg_records

    dev = FakeKmsg([b"6,1,5,-;" + b"y" * KMSG_READ_MAX + b"\n", b"6,2,6,-;never\n"])
    warnings = []
    assert list(read_kmsg_records(0, warnings, read=dev.read)) == []
    assert len(warnings) == 1 and "does not fit" in warnings[0]
    assert max(dev.sizes) == KMSG_READ_MAX and len(dev.sizes) < 12
