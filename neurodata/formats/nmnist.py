"""N-MNIST / N-Caltech101 ATIS binary (``.bin``): 5-byte records, no header.

Record bytes ``b0 b1 b2 b3 b4``: ``x = b0``, ``y = b1``, ``p = b2 >> 7`` (1 = ON),
``t = ((b2 & 0x7F) << 16) | (b3 << 8) | b4`` µs (23 bits). A record with ``y == 240`` is a
timestamp-overflow marker (the dataset authors' MATLAB reader): it is dropped and every later
timestamp gets ``2**13`` µs more, cumulatively.

The writer emits the marker ``00 F0 00 00 00`` (x = 0, y = 240, p = 0, t = 0) whenever the next
event's timestamp does not fit the 23 bits after the markers already written.
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit

from ..events import as_events, check_bounds, check_sensor_size, empty_events
from ._base import FileInfo, atomic_write
from ._records import Workers, iter_windows, record_layout, shrink

NAME = "nmnist"
SUFFIXES = (".bin",)

RECORD_SIZE = 5
MARKER_Y = 240
OVERFLOW_US = 1 << 13
T_MAX = (1 << 23) - 1
MARKER_RECORD = bytes([0, MARKER_Y, 0, 0, 0])

__all__ = ["read_nmnist", "write_nmnist"]


def detect(head: bytes) -> bool:
    """Always False: the format has no header; ``detect_format`` falls back on the ``.bin`` suffix."""
    return False


@njit(cache=True, nogil=True)
def _count_markers_kernel(buf):
    """Number of overflow markers (``y == 240``) among the whole 5-byte records of ``buf``."""
    k = 0
    for i in range(buf.size // 5):
        k += buf[5 * i + 1] == 240
    return k


@njit(cache=True, nogil=True)
def _put_kernel(src, dst, m):
    """Decode ``dst.size`` marker-free records of ``src`` into ``dst``, ``m`` markers before them."""
    for i in range(dst.size):
        j = 5 * i
        b2 = np.int64(src[j + 2])
        dst[i]["t"] = (((b2 & 0x7F) << 16) | (np.int64(src[j + 3]) << 8)
                       | np.int64(src[j + 4])) + (m << 13)
        dst[i]["x"] = src[j]
        dst[i]["y"] = src[j + 1]
        dst[i]["p"] = b2 >> 7


@njit(cache=True, nogil=True)
def _decode_kernel(buf, out, m):
    """Decode the whole 5-byte records of ``buf`` into ``out``, ``m`` markers before them.

    Markers are skipped and raise ``m``; ``t = stored + m * 2**13``. Returns the number of
    events written (``out`` has room for one per record). Works in blocks of 256 records: a
    block without markers (a vectorised count says so) is decoded in one tight loop, a block
    with markers run by run between them.
    """
    n = buf.size // 5
    o = 0
    for s in range(0, n, 256):
        e = min(n, s + 256)
        src = buf[5 * s:5 * e]
        k = 0
        for i in range(e - s):
            k += src[5 * i + 1] == 240
        if o + (e - s - k) > out.size:  # only if the file changed between two passes
            break
        if k == 0:
            _put_kernel(src, out[o:o + (e - s)], m)
            o += e - s
            continue
        run = 0
        for i in range(e - s + 1):
            if i == e - s or src[5 * i + 1] == 240:
                if i > run:
                    _put_kernel(src[5 * run:5 * i], out[o:o + (i - run)], m)
                    o += i - run
                if i < e - s:
                    m += 1
                run = i + 1
    return o


def _decode_window(workers, view, out, pos, markers) -> int:
    """Decode one window into ``out[pos:]`` (chunks on ``workers``); return its marker count.

    Chunk ``c`` starts at output ``pos + records before it - markers before it``: the markers of
    every chunk but the last are counted first (no counting at all for a one-chunk window).
    """
    b = workers.bounds(view.size // RECORD_SIZE, RECORD_SIZE)
    if b.size == 2:
        return int(b[1] - _decode_kernel(view, out[pos:pos + b[1]], markers))
    parts = [view[RECORD_SIZE * b[c]:RECORD_SIZE * b[c + 1]] for c in range(b.size - 1)]
    counts = workers.map(lambda c: _count_markers_kernel(parts[c]), len(parts) - 1)
    before = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    starts = pos + b[:-1] - before
    sizes = np.diff(b)  # room per chunk: exact for all but the last, whose markers are not counted
    sizes[:-1] -= counts
    written = workers.map(lambda c: _decode_kernel(parts[c], out[starts[c]:starts[c] + sizes[c]],
                                                   markers + before[c]), len(parts))
    return int(before[-1] + (b[-1] - b[-2]) - written[-1])


def _check_path(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"N-MNIST file not found: {os.fspath(path)}")


def read(path, **options) -> np.ndarray:
    """Read an N-MNIST / N-Caltech101 ``.bin`` file (see ``read_nmnist``)."""
    return read_nmnist(path, **options)


def read_nmnist(path, *, threads=None) -> np.ndarray:
    """Decode an N-MNIST / N-Caltech101 ATIS ``.bin`` file.

    Parameters
    ----------
    path : str or os.PathLike
    threads : int, optional
        Decoding threads (default: the CPUs available, at most 8); the result never depends on it.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,)
        ``t`` int64 µs (23-bit stored value plus ``2**13`` per overflow marker before it),
        ``x``/``y`` as stored (0-based), ``p`` 1 = ON. Overflow markers (``y == 240``) are
        dropped. A zero-length file gives 0 events.

    Warns
    -----
    UserWarning
        When the size is not a multiple of 5: the trailing partial record is ignored.
    """
    _check_path(path)
    n, _ = record_layout(path, 0, RECORD_SIZE, "N-MNIST")
    out = empty_events(n)
    pos = 0
    markers = 0
    with Workers(threads) as workers:
        for _, view in iter_windows(path, 0, RECORD_SIZE, n):
            m = _decode_window(workers, view, out, pos, markers)
            pos += view.size // RECORD_SIZE - m
            markers += m
    return shrink(out, pos)


def iter_blocks(path, block_bytes: int, **options):
    """Yield the events of ``path`` decoded from windows of about ``block_bytes`` bytes.

    The overflow-marker count carries from one block to the next.
    """
    threads = options.pop("threads", None)
    if options:
        raise TypeError(f"nmnist takes only the option threads, got {sorted(options)}")
    _check_path(path)
    n, _ = record_layout(path, 0, RECORD_SIZE, "N-MNIST")
    markers = 0
    with Workers(threads) as workers:
        for _, view in iter_windows(path, 0, RECORD_SIZE, n, block_bytes):
            k = view.size // RECORD_SIZE
            out = empty_events(k)
            m = _decode_window(workers, view, out, 0, markers)
            markers += m
            yield shrink(out, k - m)


def inspect(path) -> FileInfo:
    """Describe a ``.bin`` file: record and marker counts (one fast pass over the bytes).

    ``sensor_size`` is None (the file does not store it); ``event_count`` = records - markers.
    """
    _check_path(path)
    n, rest = record_layout(path, 0, RECORD_SIZE, "N-MNIST", warn=False)
    markers = 0
    for _, view in iter_windows(path, 0, RECORD_SIZE, n):
        markers += int(_count_markers_kernel(view))
    return FileInfo(
        path=os.fspath(path), format=NAME, sensor_size=None, event_count=n - markers,
        metadata={"records": n, "overflow_markers": markers, "trailing_bytes": rest},
        data_offset=0,
    )


def write(path, events, sensor_size=None, **options) -> None:
    """Write events as an N-MNIST ``.bin`` file (see ``write_nmnist``)."""
    if options:
        raise TypeError(f"nmnist write takes no options, got {sorted(options)}")
    write_nmnist(path, events, sensor_size=sensor_size)


def _marker_counts(t: np.ndarray, path) -> np.ndarray:
    """Cumulative number of overflow markers written before each event (validated)."""
    if t.size == 0:
        return np.zeros(0, np.int64)
    neg = t < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise ValueError(f"events[{i}]['t'] = {t[i]} < 0: N-MNIST timestamps are >= 0 µs")
    need = np.maximum(0, -((T_MAX - t) // OVERFLOW_US))  # ceil((t - T_MAX) / 2**13), >= 0
    k = np.maximum.accumulate(need)
    bad = t - k * OVERFLOW_US < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"events[{i}]['t'] = {t[i]} cannot be stored in {os.fspath(path)}: {k[i]} overflow "
            f"markers (+{OVERFLOW_US} µs each) already precede it; N-MNIST timestamps must not "
            "go back past a marker — sort the events by t first"
        )
    return k


def write_nmnist(path, events, sensor_size=None) -> None:
    """Write ``events`` (``EVENT_DTYPE``, shape (N,)) as 5-byte ATIS records.

    ``x`` and ``y`` must be < 256 and ``y != 240`` (240 marks timestamp overflow); ``t`` must be
    >= 0. Whenever an event's ``t`` exceeds ``2**23 - 1`` µs plus the ``2**13`` µs of each marker
    written so far, the fewest markers ``00 F0 00 00 00`` that make it fit are written right
    before it, so ``read_nmnist(write_nmnist(ev)) == ev``. Sorted events always fit; unsorted ones
    fit as long as no event goes back past a marker. ``sensor_size`` is only checked (the file
    does not store it). The file appears atomically.
    """
    events = as_events(events)
    if sensor_size is not None:
        check_bounds(events, check_sensor_size(sensor_size))
    x = events["x"]
    y = events["y"]
    bad = (x > 255) | (y > 255) | (y == MARKER_Y)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"events[{i}] has x={x[i]}, y={y[i]}: N-MNIST stores x, y < 256 and y != 240 "
            "(y == 240 is the overflow marker)"
        )
    t = events["t"]
    k = _marker_counts(t, path)
    atomic_write(path, _encode_chunks(events, k))


def _encode_chunks(events, k, chunk: int = 1 << 20):
    prev = 0
    for s in range(0, events.shape[0], chunk):
        ev = events[s:s + chunk]
        kk = k[s:s + chunk]
        new = np.diff(kk, prepend=prev)  # markers to emit right before each event
        prev = int(kk[-1])
        tt = ev["t"] - kk * OVERFLOW_US
        rec = np.empty((ev.shape[0], RECORD_SIZE), np.uint8)
        rec[:, 0] = ev["x"]
        rec[:, 1] = ev["y"]
        rec[:, 2] = ((tt >> 16) & 0x7F) | (ev["p"].astype(np.int64) > 0) << 7
        rec[:, 3] = (tt >> 8) & 0xFF
        rec[:, 4] = tt & 0xFF
        if not new.any():
            yield rec.tobytes()
            continue
        # insert new[i] marker records before record i
        total = ev.shape[0] + int(new.sum())
        full = np.empty((total, RECORD_SIZE), np.uint8)
        where = np.arange(ev.shape[0]) + np.cumsum(new)
        is_marker = np.ones(total, bool)
        is_marker[where] = False
        full[where] = rec
        full[is_marker] = np.frombuffer(MARKER_RECORD, np.uint8)
        yield full.tobytes()
