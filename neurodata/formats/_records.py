"""Files made of fixed-size records after a header: map them window by window.

Readers of headerless or fixed-record formats (N-MNIST ``.bin``, AEDAT 2.0, Prophesee DAT)
decode straight from a read-only memory map of the file, one window of whole records at a
time. After each window the pages already decoded are released from the process
(``madvise(MADV_DONTNEED)``; they stay in the page cache), so the resident size of a read
stays at about the returned array plus one window, whatever the file size.
"""
from __future__ import annotations

import mmap
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._parallel import resolve_threads

WINDOW_BYTES = 1 << 23  # 8 MiB: large enough to amortise a parallel kernel launch, fits in L3


def record_layout(path, data_offset: int, record_size: int, fmt: str, warn: bool = True):
    """Return ``(n_records, trailing_bytes)`` of the data region starting at ``data_offset``.

    A trailing partial record (``trailing_bytes > 0``) is the documented recovery of every
    fixed-record format: whole records are decoded and a ``UserWarning`` names the file and
    the byte offset where the partial record starts (when ``warn``).
    """
    size = os.stat(path).st_size
    body = max(0, size - data_offset)
    n, rest = divmod(body, record_size)
    if rest and warn:
        warn_partial_record(os.fspath(path), fmt, data_offset + n * record_size, rest, record_size)
    return n, rest


def warn_partial_record(label: str, fmt: str, offset: int, rest: int, record_size: int) -> None:
    """The ``UserWarning`` of a trailing partial record of ``rest`` bytes at byte ``offset`` of
    ``label`` (a path, or the name of an in-memory file), attributed to the reader's caller."""
    warnings.warn(f"{label}: {fmt} file ends with a partial record of {rest} bytes at byte {offset} "
                  f"({record_size}-byte records); it was ignored", UserWarning, stacklevel=4)


def iter_windows(path, data_offset: int, record_size: int, n_records: int,
                 window_bytes: int | None = None):
    """Yield ``(first_record, view)`` for consecutive windows of whole records.

    ``view`` is a read-only ``uint8`` array over ``k * record_size`` bytes of a memory map of
    the file (``k >= 1``, at most about ``window_bytes`` bytes, default ``WINDOW_BYTES``); only
    ``n_records`` records are covered. Do not keep ``view`` after the next iteration: the pages
    behind it are released. A data region that fits in one window is read into memory instead.
    """
    if n_records <= 0:
        return
    per = max(1, int(WINDOW_BYTES if window_bytes is None else window_bytes) // record_size)
    if n_records <= per:  # one window: a plain read is cheaper than a map (many small files)
        with open(path, "rb") as f:
            f.seek(data_offset)
            buf = np.fromfile(f, dtype=np.uint8, count=n_records * record_size)
        k = buf.size // record_size
        if k:
            yield 0, buf[:k * record_size]
        return
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    released = 0
    can_release = hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED")
    try:
        # a file truncated after record_layout() looked at it: never map past its end
        n_records = min(n_records, max(0, (len(mm) - data_offset) // record_size))
        for r0 in range(0, n_records, per):
            r1 = min(n_records, r0 + per)
            view = np.frombuffer(mm, dtype=np.uint8, count=(r1 - r0) * record_size,
                                 offset=data_offset + r0 * record_size)
            yield r0, view
            del view
            cut = data_offset + r1 * record_size
            cut -= cut % mmap.PAGESIZE
            if can_release and cut > released:
                mm.madvise(mmap.MADV_DONTNEED, released, cut - released)
                released = cut
    finally:
        try:
            mm.close()
        except BufferError:  # a caller still holds a view: the map closes when it is freed
            pass


def shrink(out: np.ndarray, n: int) -> np.ndarray:
    """Return ``out[:n]`` reusing ``out``'s memory (in-place ``resize``; a copy only if impossible).

    Readers allocate an upper bound (one slot per record) and write events from the start; the
    untouched tail was never resident and is handed back here without copying the head.
    """
    if n == out.shape[0]:
        return out
    try:
        out.resize(n, refcheck=False)
        return out
    except (ValueError, SystemError):
        return out[:n].copy()


class Workers:
    """Run the chunks of one window on a few threads (numba ``nogil`` kernels release the GIL).

    Threads rather than numba ``parallel=True``: with GNU OpenMP as numba's threading layer, a
    process that forks after a parallel kernel ran (PyTorch ``DataLoader`` workers) dies the
    first time the child runs one. A pool lives only inside one ``with`` block, is created only
    when a window is large enough to split, and concurrent readers in several threads are safe.
    Results never depend on the number of threads: chunks are decoded at offsets computed from
    per-chunk counts, exactly as a serial pass would place them.
    """

    MIN_CHUNK_BYTES = 1 << 18

    def __init__(self, threads=None):
        self.threads = resolve_threads(threads)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def bounds(self, n_records: int, record_size: int) -> np.ndarray:
        """Chunk boundaries ``[0, ..., n_records]``: one chunk per thread, none under 256 KiB."""
        parts = max(1, min(self.threads, (n_records * record_size) // self.MIN_CHUNK_BYTES))
        return (np.arange(parts + 1, dtype=np.int64) * n_records) // parts

    def map(self, fn, n_items: int) -> list:
        """``[fn(0), ..., fn(n_items - 1)]``, on the pool's threads when ``n_items > 1``."""
        if n_items <= 1:
            return [fn(i) for i in range(n_items)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads)
        return list(self._pool.map(fn, range(n_items)))


def unwrap_check(t: np.ndarray, bits: int, fmt: str) -> None:
    """Raise ``ValueError`` unless ``t`` survives storing ``t mod 2**bits`` and unwrapping.

    The readers unwrap by adding ``2**bits`` whenever a stored value is more than
    ``2**(bits - 1)`` below the previous one; this replays that rule on the values a writer
    would store and names the first event that would come back different.
    """
    if t.size == 0:
        return
    raw = t & ((1 << bits) - 1)
    wraps = np.zeros(t.size, np.int64)
    np.cumsum(raw[:-1] - raw[1:] > (1 << (bits - 1)), out=wraps[1:])
    bad = raw + (wraps << bits) != t
    if bad.any():
        i = int(np.argmax(bad))
        if t[i] < 0:
            why = "is negative"
        elif i == 0:
            why = f"is the first timestamp and not below 2**{bits}"
        elif t[i] < t[i - 1]:
            why = f"steps back {int(t[i - 1] - t[i])} µs"
        else:
            why = f"jumps {int(t[i] - t[i - 1])} µs"
        raise ValueError(
            f"events[{i}]['t'] = {t[i]} cannot be stored in {fmt}'s {bits}-bit timestamps "
            f"(it {why}; the reader adds 2**{bits} only when a stored value drops by more than "
            f"2**{bits - 1}); sort the events by t and keep steps below 2**{bits - 1} µs")
