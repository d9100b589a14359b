"""A makedumpfile flattened stream (``makedumpfile -F``) read as the seekable file that
``makedumpfile -R`` would rebuild from it, without writing that file.

``FlatImage(path, fd)`` walks the stream once (the block headers only: a 64 KiB read buffer
for runs of small blocks, one ``pread`` of 16 bytes past each large payload) and keeps an
index of where each run of the image lies in the stream: three ``array('q')`` of 8 bytes per
entry, at most ``MAX_BLOCKS`` entries. ``pread(size, offset)`` then serves any byte range
of the image from the stream, as ``os.pread`` serves a file: a block written later in the
stream wins over an earlier one at the same offset (``-R`` writes them in stream order),
bytes no block covers read as zeros (``-R`` leaves them as holes of its output file), and a
read past the image's end comes back short. The kdump-compressed and ELF readers of
``sources/vmcore.py`` read through it unchanged.

A stream cut short (no end marker: makedumpfile killed, a disk full, an ssh dropped), a
damaged block header or more than ``MAX_BLOCKS`` blocks stop the walk there: the blocks
before are served, ``truncated`` is set and ``warnings`` says where and why.
"""

from __future__ import annotations

import bisect
import heapq
import os
from array import array

from kdumptool.errors import DecodeError
from kdumptool.formats import flat as ff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

# 4,194,304 blocks: 96 MiB of index at most. makedumpfile writes about 32 blocks per MiB
# of stream (64 KiB runs of page data, and the page descriptors between them), so this is
# a stream of about 128 GiB.
MAX_BLOCKS = 1 << 22
_SEQ_MASK = MAX_BLOCKS - 1     # a block's index in the stream, below its offset in a sort key
_BUF = 1 << 16


class FlatImage:
    """The reassembled image of a flattened stream (see the module docstring)."""

    def __init__(self, path: str, fd: int, max_blocks: int = MAX_BLOCKS) -> None:
        max_blocks = min(max_blocks, MAX_BLOCKS)
        self.path = path
        self._fd = fd
        self.stream_size = os.lseek(fd, 0, os.SEEK_END)   # st_size is 0 for a block device
        self.warnings: List[str] = []
        self.truncated = False
        self.end_marker: Optional[int] = None     # stream offset of the end record
        self.version = ff.parse_flat_header(os.pread(fd, ff.MAX_SIZE_MDF_HEADER, 0), path)
        if self.version != ff.VERSION_FLAT_HEADER:
            self.warnings.append(f"{path}: flat header version {self.version}, not 1 (read as 1)")
        offs, sizes, fpos = array("q"), array("q"), array("q")
        self._walk(offs, sizes, fpos, max_blocks)
        self.blocks = len(offs)
        self.size = max((o + s for o, s in zip(offs, sizes)), default=0)
        self.overlapping_blocks = 0
        self._starts, self._ends, self._fpos = self._resolve(offs, sizes, fpos)
        self.gap_bytes = self.size - sum(e - s for s, e in zip(self._starts, self._ends))
        self.trailing_bytes = (self.stream_size - self.end_marker - ff.DATA_HEADER_SIZE
                               if self.end_marker is not None else 0)

    # -- the walk over the stream -------------------------------------------------------
    def _walk(self, offs: array, sizes: array, fpos: array, max_blocks: int) -> None:
        fd, path, end = self._fd, self.path, self.stream_size
        pos = ff.MAX_SIZE_MDF_HEADER
        buf, buf_at = b"", 0
        while True:
            if pos + ff.DATA_HEADER_SIZE > buf_at + len(buf):
                buf, buf_at = os.pread(fd, _BUF, pos), pos
            rel = pos - buf_at
            head = buf[rel:rel + ff.DATA_HEADER_SIZE]
            if len(head) < ff.DATA_HEADER_SIZE:
                what = "block header cut short" if head else "the stream ends"
                self._stop(pos, f"{what} without makedumpfile's end marker after {len(offs)} "
                                f"blocks: the dump was cut off while it was written; the "
                                f"blocks after this point are missing")
                return
            try:
                offset, size = ff.parse_data_header(head, pos, path)
            except DecodeError as err:
                self._stop(None, f"{err}: the stream is read up to here")
                return
            if offset == ff.END_FLAG_FLAT_HEADER:
                self.end_marker = pos
                return
            if len(offs) >= max_blocks:
                self._stop(pos, f"more than {max_blocks:,} blocks (the index's limit, "
                                f"MAX_BLOCKS): the blocks from here on are not read")
                return
            data_at = pos + ff.DATA_HEADER_SIZE
            avail = min(size, end - data_at)
            if avail > 0:
                offs.append(offset)
                sizes.append(avail)
                fpos.append(data_at)
            if avail < size:
                self._stop(pos, f"block of {size} bytes (image offset 0x{offset:x}) is cut "
                                f"after {max(avail, 0)} bytes by the end of the file: the dump "
                                f"was cut off while it was written")
                return
            pos = data_at + size

    def _stop(self, pos: Optional[int], reason: str) -> None:
        self.truncated = True
        self.warnings.append(reason if pos is None else f"{self.path}: offset 0x{pos:x}: {reason}")

    def _resolve(self, offs: array, sizes: array, fpos: array) -> tuple:
        """Disjoint runs (start, end, stream position) sorted by start; where blocks
        overlap, the one later in the stream wins."""
        n = len(offs)
        # Sorted by offset, ties in stream order: one list of packed keys sorted in place
        # (about 44 bytes a block; a key function would hold a second list).
        keys = [offs[i] << 22 | i for i in range(n)]
        keys.sort()
        order = array("q", (k & _SEQ_MASK for k in keys))
        del keys
        starts, ends, where = array("q"), array("q"), array("q")
        hi, overlaps = -1, 0
        for i in order:
            if offs[i] < hi:
                overlaps += 1
            hi = max(hi, offs[i] + sizes[i])
        self.overlapping_blocks = overlaps
        if not overlaps:
            for i in order:
                starts.append(offs[i])
                ends.append(offs[i] + sizes[i])
                where.append(fpos[i])
            return starts, ends, where
        # Overlaps: sweep the boundaries; on each stretch between two, the block with the
        # highest stream index covering it wins (a max-heap, ended blocks dropped lazily).
        bounds = sorted({offs[i] for i in range(n)} | {offs[i] + sizes[i] for i in range(n)})
        heap: List[tuple] = []
        k = 0
        for x, nxt in zip(bounds, bounds[1:]):
            while k < n and offs[order[k]] <= x:
                i = order[k]
                heapq.heappush(heap, (-i, offs[i] + sizes[i]))
                k += 1
            while heap and heap[0][1] <= x:
                heapq.heappop(heap)
            if not heap:
                continue
            i = -heap[0][0]
            at = fpos[i] + x - offs[i]
            if ends and ends[-1] == x and where[-1] + (x - starts[-1]) == at:
                ends[-1] = nxt
            else:
                starts.append(x)
                ends.append(nxt)
                where.append(at)
        return starts, ends, where

    # -- reads of the image -------------------------------------------------------------
    def pread(self, size: int, offset: int) -> bytes:
        """Like ``os.pread`` on the rebuilt file: short at its end, zeros in holes."""
        end = min(offset + size, self.size)
        if offset < 0 or offset >= end:
            return b""
        starts, ends = self._starts, self._ends
        j = bisect.bisect_right(starts, offset) - 1
        if j >= 0 and end <= ends[j]:
            return os.pread(self._fd, end - offset, self._fpos[j] + offset - starts[j])
        out = []
        pos = offset
        while pos < end:
            if j >= 0 and pos < ends[j]:
                n = min(end, ends[j]) - pos
                data = os.pread(self._fd, n, self._fpos[j] + pos - starts[j])
                out.append(data)
                if len(data) < n:        # the file shrank under us
                    break
            else:
                nxt = starts[j + 1] if j + 1 < len(starts) else self.size
                n = min(end, nxt) - pos
                out.append(bytes(n))
            pos += n
            if j + 1 < len(starts) and pos >= starts[j + 1]:
                j += 1
        return b"".join(out)

    def covered(self, offset: int, size: int) -> bool:
        """Every byte of [offset, offset + size) comes from a block of the stream (none
        from a hole): the readers say a page whose data is not in the stream is missing,
        where ``makedumpfile -R``'s file would hold zeros."""
        starts, ends = self._starts, self._ends
        j = bisect.bisect_right(starts, offset) - 1
        end = offset + size
        if j < 0 or offset >= ends[j]:
            return size <= 0
        while ends[j] < end:
            if j + 1 >= len(starts) or starts[j + 1] != ends[j]:
                return False
            j += 1
        return True

    def describe(self) -> dict:
        return {
            "version": self.version,
            "stream_size": self.stream_size,
            "image_size": self.size,
            "blocks": self.blocks,
            "end_marker": self.end_marker,
            "trailing_bytes": self.trailing_bytes,
            "hole_bytes": self.gap_bytes,
            "overlapping_blocks": self.overlapping_blocks,
            "truncated": self.truncated,
        }
