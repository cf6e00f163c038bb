"""N-MNIST / N-Caltech101 ATIS binary (``.bin``): 5-byte records, no header.

Record bytes ``b0 b1 b2 b3 b4``: ``x = b0``, ``y = b1``, ``p = b2 >> 7`` (1 = ON),
``t = ((b2 & 0x7F) << 16) | (b3 << 8) | b4`` µs (23 bits). A record with ``y == 240`` is a
timestamp-overflow marker (the dataset authors' MATLAB reader): it is dropped and every later
timestamp gets ``2**13`` µs more, cumulatively.

The writer emits the marker ``00 F0 00 00 00`` (x = 0, y = 240, p = 0, t = 0) whenever the next
event's timestamp does not fit the 23 bits after the markers already written.
"""
from __future__ import annotations

import mmap
import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..events import EVENT_DTYPE, check_bounds, check_sensor_size, empty_events
from ._base import FileInfo, atomic_write, writable_events
from . import _records
from ._records import Workers, iter_windows, record_layout, shrink, warn_partial_record
from ._unaligned import I64, ZERO, events8_codegen, load_bytes, put_event, shuffle_lanes, splat, vector_arg

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


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 runs the kernels as Python: no intrinsics
    def _decode8(src, q, out8, j, base):
        """Numpy stand-in for the intrinsic below (same results)."""
        r = src[int(q):int(q) + 40].reshape(8, 5).astype(np.uint64)
        ev = out8[int(j):int(j) + 104].view(EVENT_DTYPE)
        ev["t"] = (((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]) + np.uint64(base)
        ev["x"], ev["y"], ev["p"] = r[:, 0], r[:, 1], r[:, 2] >> 7
        return np.uint64(np.packbits(r[:, 1] == MARKER_Y, bitorder="little")[0])
else:
    @intrinsic
    def _decode8(typingctx, src, q, out8, j, base):
        """Decode the 8 records at byte ``q`` of ``src`` as events at byte ``j`` of ``out8``
        (``t`` + ``base``), markers included; return a ``uint64`` that is non-zero when one of
        them is a marker. Byte shuffles on 8 records at once (see ``_unaligned``); the caller
        guarantees ``q + 40 <= src.size`` and ``j + 104 <= out8.size``."""
        def codegen(context, builder, sig, args):
            v = load_bytes(context, builder, sig.args[0], args[0], args[1], 40)
            t = shuffle_lanes(builder, v, [(5 * k + 4, 5 * k + 3, 5 * k + 2) + (ZERO,) * 5 for k in range(8)])
            w = shuffle_lanes(builder, v, [(5 * k, ZERO, 5 * k + 1, ZERO, 5 * k + 2) + (ZERO,) * 3
                                           for k in range(8)])  # x | y << 16 | b2 << 32
            base = vector_arg(builder, context.cast(builder, args[4], sig.args[4], types.uint64))
            t = builder.add(builder.and_(t, splat(I64, 8, T_MAX)), base)
            marker = builder.icmp_unsigned("==", builder.and_(w, splat(I64, 8, 0xFF << 16)),
                                           splat(I64, 8, MARKER_Y << 16))
            w = builder.or_(builder.and_(w, splat(I64, 8, 0xFF00FF)),
                            builder.and_(builder.lshr(w, splat(I64, 8, 7)), splat(I64, 8, 1 << 32)))
            events8_codegen(context, builder, sig.args[2], args[2], args[3], t, w)
            return builder.zext(builder.bitcast(marker, ir.IntType(8)), I64)
        return types.uint64(src, q, out8, j, base), codegen


@njit(cache=True, nogil=True)
def _count_markers_kernel(buf):
    """Number of overflow markers (``y == 240``) among the whole 5-byte records of ``buf``."""
    k = 0
    for i in range(buf.size // 5):
        k += buf[5 * i + 1] == 240
    return k


@njit(cache=True, nogil=True)
def _records_kernel(src, s, e, out8, o, m):
    """Decode records ``s..e-1`` one by one from event ``o`` on, ``m`` markers before them.

    Markers are skipped and raise ``m``; a record finding no room in ``out8`` stops the loop
    (only possible if the file changed between two passes). Returns ``(o, m)`` after them.
    """
    room = out8.size // 13
    for i in range(s, e):
        q = 5 * i
        if src[q + 1] == MARKER_Y:
            m += 1
            continue
        if o >= room:
            break
        b2 = np.uint64(src[q + 2])
        j = 13 * o
        put_event(out8, j, (((b2 & 0x7F) << 16) | (np.uint64(src[q + 3]) << 8) | np.uint64(src[q + 4]))
                  + (np.uint64(m) << 13), np.uint64(src[q]) | (np.uint64(src[q + 1]) << 16), b2 >> 7)
        o += 1
    return o, m


@njit(cache=True, nogil=True)
def _decode_kernel(buf, out8, m):
    """Decode the whole 5-byte records of ``buf`` into the bytes ``out8`` of an ``EVENT_DTYPE``
    array, ``m`` markers before them; return the number of events written.

    Markers are skipped and raise ``m``; ``t = stored + m * 2**13``. Records go 8 at a time
    through ``_decode8`` while ``out8`` has room for 8 more events; a group that holds a marker
    is decoded again record by record over the same events, and so are the last records.
    """
    n = buf.size // 5
    room = out8.size // 13
    o = 0
    s = 0
    while s + 8 <= n and o + 8 <= room:
        if _decode8(buf, 5 * s, out8, 13 * o, np.uint64(m) << 13) == 0:
            o += 8
        else:
            o, m = _records_kernel(buf, s, s + 8, out8, o, m)
        s += 8
    return _records_kernel(buf, s, n, out8, o, m)[0]


def _decode_window(workers, view, out, pos, markers) -> int:
    """Decode one window into ``out[pos:]`` (chunks on ``workers``); return its marker count.

    Chunk ``c`` starts at output ``pos + records before it - markers before it``: the markers of
    every chunk but the last are counted first (no counting at all for a one-chunk window).
    """
    b = workers.bounds(view.size // RECORD_SIZE, RECORD_SIZE)
    if b.size == 2:
        return int(b[1] - _decode_kernel(view, out[pos:pos + b[1]].view(np.uint8), markers))
    parts = [view[RECORD_SIZE * b[c]:RECORD_SIZE * b[c + 1]] for c in range(b.size - 1)]
    counts = workers.map(lambda c: _count_markers_kernel(parts[c]), len(parts) - 1)
    before = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    starts = pos + b[:-1] - before
    sizes = np.diff(b)  # room per chunk: exact for all but the last, whose markers are not counted
    sizes[:-1] -= counts
    written = workers.map(lambda c: _decode_kernel(parts[c], out[starts[c]:starts[c] + sizes[c]].view(np.uint8),
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
    with Workers(threads) as workers:
        if n * RECORD_SIZE > _records.WINDOW_BYTES:
            return _read_mapped(path, n, workers)
        # one window: read, not mapped (none when the file is empty or shrank since measured)
        view = next((v for _, v in iter_windows(path, 0, RECORD_SIZE, n)), np.zeros(0, np.uint8))
        return _decode_records(view, workers)


def _decode_records(buf, workers) -> np.ndarray:
    """The events of the whole 5-byte records at the start of ``buf`` (uint8), in one window."""
    n = buf.size // RECORD_SIZE
    out = empty_events(n)
    if n:
        n -= _decode_window(workers, buf[:n * RECORD_SIZE], out, 0, 0)
    return shrink(out, n)


def decode(data, *, name=None, threads=None) -> np.ndarray:
    """:func:`read_nmnist` for a whole file already in memory (bytes-like, e.g. an archive
    member); a partial last record is ignored with a warning naming ``name`` (default
    ``<buffer>``). Archive builds call it for every member: a temporary file per member cost
    ~0.23 ms, several times the decoding."""
    buf = np.frombuffer(data, np.uint8)
    n, rest = divmod(buf.size, RECORD_SIZE)
    if rest:
        warn_partial_record(name or "<buffer>", "N-MNIST", n * RECORD_SIZE, rest, RECORD_SIZE)
    with Workers(threads) as workers:
        return _decode_records(buf, workers)


def _read_mapped(path, n, workers) -> np.ndarray:
    """Decode a file of ``n`` records (more than one window) from a memory map, one contiguous
    range of records per thread, with no synchronisation between windows.

    The markers of every range but the last are counted first (each range split among all
    threads); that places each range's first event. Then each thread decodes its range window
    by window (``_records.WINDOW_BYTES`` of file) and releases the pages behind it
    (``madvise(MADV_DONTNEED)``; they stay in the page cache), so the mapped input shrinks as
    the output grows.
    """
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        n = min(n, len(mm) // RECORD_SIZE)  # the file may have shrunk since it was measured
        buf = np.frombuffer(mm, np.uint8, count=RECORD_SIZE * n)
        b = [int(v) for v in workers.bounds(n, RECORD_SIZE)]
        r, k = len(b) - 1, workers.threads
        pieces = [(b[c] + (b[c + 1] - b[c]) * i // k, b[c] + (b[c + 1] - b[c]) * (i + 1) // k)
                  for c in range(r - 1) for i in range(k)]
        counts = workers.map(lambda i: _count_markers_kernel(buf[RECORD_SIZE * pieces[i][0]:
                                                                 RECORD_SIZE * pieces[i][1]]), len(pieces))
        before = [0] + np.cumsum(np.reshape(np.asarray(counts, np.int64), (r - 1, k)).sum(1)).tolist()
        before.append(before[-1])  # the last range: its markers are not counted, its room is its records
        out = empty_events(n)
        out8 = out.view(np.uint8)
        per = max(1, _records.WINDOW_BYTES // RECORD_SIZE)

        def decode_range(c):
            o, stop, m = b[c] - before[c], b[c + 1] - before[c + 1], before[c]
            for s in range(b[c], b[c + 1], per):
                e = min(b[c + 1], s + per)
                w = int(_decode_kernel(buf[RECORD_SIZE * s:RECORD_SIZE * e], out8[13 * o:13 * stop], m))
                m, o = m + (e - s) - w, o + w
                _release(mm, RECORD_SIZE * s, RECORD_SIZE * e)
            return o

        return shrink(out, workers.map(decode_range, r)[-1])
    finally:
        buf = None
        try:
            mm.close()
        except BufferError:  # a view still alive (an exception's traceback): closed when freed
            pass


def _release(mm, start, stop):
    """Release the pages of ``mm[start:stop]`` from this process (they stay in the page cache)."""
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        start -= start % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, start, stop - start)


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
    events = writable_events(events)
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
