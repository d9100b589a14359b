"""cpio/initramfs reader against images built with GNU cpio, gzip, xz, zstd and lz4
(fixtures/initramfs, oracle: ``cpio -t`` listings)."""

from __future__ import annotations

import gzip
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats.cpio import lz4_block_decompress, module_name, modules_of, parse_cpio
from tests.conftest import FIXTURES

IF = FIXTURES / "initramfs"
EARLY = (IF / "early.cpio-t.txt").read_text().split()
MAIN = (IF / "main.cpio-t.txt").read_text().split()
MODULES = ["e1000e", "nvme", "nvme_core", "virtio_blk"]


@pytest.mark.parametrize("comp", ["gzip", "xz", "zstd", "lz4"])
def test_early_microcode_then_compressed_main(comp):
    img = parse_cpio((IF / f"initrd-early-{comp}.img").read_bytes())
    assert img.names() == EARLY + MAIN
    assert [s.compression for s in img.segments] == ["none", comp]
    assert [s.entries for s in img.segments] == [len(EARLY), len(MAIN)]
    assert modules_of(img.names()) == MODULES
    assert img.warnings == ()


def test_plain_archive_modes_and_sizes():
    img = parse_cpio((IF / "initrd-plain.img").read_bytes())
    assert img.names() == MAIN
    by = {e.name: e for e in img.entries}
    assert by["etc/kdump.conf"].is_file and by["etc/kdump.conf"].size == 6
    assert by["usr/bin/init-link"].is_symlink and by["usr/bin/init-link"].size == len("../init")
    assert by["usr/lib"].is_dir


def test_lz4_python_block_decoder_matches_cramjam():
    data = (IF / "initrd-early-lz4.img").read_bytes()
    off = data.index(b"\x02\x21\x4c\x18")
    size = struct.unpack_from("<I", data, off + 4)[0]
    block = data[off + 8 : off + 8 + size]
    # main.cpio is 4 KiB: one lz4 block holds all of it
    assert lz4_block_decompress(block) == (IF / "initrd-plain.img").read_bytes()


def test_module_name():
    assert module_name("usr/lib/modules/6.1/kernel/drivers/nvme/host/nvme-core.ko") == "nvme_core"
    assert module_name("lib/modules/6.1/e1000e.ko.zst") == "e1000e"
    assert module_name("etc/kdump.conf") is None


def test_trailing_garbage_after_good_archive_is_a_warning():
    data = (IF / "initrd-plain.img").read_bytes() + b"\x1f\x8bnot gzip at all"
    img = parse_cpio(data)
    assert img.names() == MAIN
    assert len(img.warnings) == 1 and "gzip" in img.warnings[0]


def test_concatenated_compressed_streams():
    plain = (IF / "initrd-plain.img").read_bytes()
    data = gzip.compress(plain, mtime=0) + b"\0" * 12 + gzip.compress(plain, mtime=0)
    img = parse_cpio(data)
    assert img.names() == MAIN + MAIN
    assert [s.compression for s in img.segments] == ["gzip", "gzip"]


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty image"),
        (b"\0" * 64, "empty image"),
        (b"hello world", "neither a cpio archive"),
        (b"070701" + b"0" * 20, "header runs past the end"),
        (b"070701" + b"zz" * 52, "not hex"),
    ],
)
def test_malformed(data, reason):
    with pytest.raises(DecodeError) as ei:
        parse_cpio(data, what="x.img")
    assert reason in str(ei.value) and str(ei.value).startswith("x.img")


def test_truncated_member():
    plain = (IF / "initrd-plain.img").read_bytes()
    with pytest.raises(DecodeError) as ei:
        parse_cpio(plain[:300])
    assert "runs past the end" in str(ei.value)


def test_truncated_gzip():
    plain = (IF / "initrd-plain.img").read_bytes()
    with pytest.raises(DecodeError) as ei:
        parse_cpio(gzip.compress(plain)[:-40])
    assert "does not decompress" in str(ei.value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_only_our_errors(data):
    try:
        parse_cpio(data)
    except KdumptoolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 4095), st.binary(min_size=1, max_size=4))
def test_fuzz_mutated_real_image(pos, patch):
    data = bytearray((IF / "initrd-early-gzip.img").read_bytes())
    pos %= len(data)
    data[pos : pos + len(patch)] = patch
    try:
        parse_cpio(bytes(data))
    except KdumptoolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_lz4_block(data):
    try:
        lz4_block_decompress(data)
    except ValueError:
        pass
