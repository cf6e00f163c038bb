"""Prophesee RAW EVT 3.0 (``.raw``): 16-bit little-endian stateful words after a ``% `` header.

The state machine is openeb's (``EVT3Decoder::decode_events_buffer``); ``type = w >> 12``:

- ``0x0`` EVT_ADDR_Y: row = ``w & 0xFFF`` (11-bit y plus the system-type bit); CD words that
  follow are valid when the row is below the sensor height (any row when the height is unknown);
- ``0x1`` (EM row address): CD words that follow emit nothing until the next ``0x0``;
- ``0x2`` EVT_ADDR_X: one event ``(x = w & 0x7FF, y = row & 0x7FF, p = (w >> 11) & 1, t)``;
- ``0x3`` VECT_BASE_X: ``vbase = w & 0xFFF`` (x in bits 0–10, polarity in bit 11);
- ``0x4`` VECT_12 / ``0x5`` VECT_8: for each set bit ``i`` of ``w & 0xFFF`` / ``w & 0xFF``, LSB
  first: event ``(x = (vbase & 0xF7FF) + i, y, p = (vbase >> 11) & 1, t)``; then ``vbase += 12`` / ``8``;
- ``0x6`` EVT_TIME_LOW: ``time_low = w & 0xFFF``;
- ``0x8`` EVT_TIME_HIGH: ``h = w & 0xFFF``; ``loop += 1`` when ``time_high − h ≥ 2048``;
  ``time_low = 0`` when ``h != time_high``; ``time_high = h``;
- ``0xA`` EXT_TRIGGER: ``(t, id = (w >> 8) & 0xF, value = w & 1)`` with ``triggers=True``;
- everything else (OTHERS, CONTINUED, IMU, unused): ignored.

``t = loop·2^24 + (time_high << 12) + time_low`` µs, never clamped. Words before the first
TIME_HIGH are skipped. A stateless pass first bounds the event count (ADDR_X words plus vector
bits) so the output is allocated once. Large inputs are cut at TIME_HIGH changes, where the
decoder state can be rebuilt exactly, and the pieces are decoded on threads (``nogil`` kernels,
see ``_evt3_decode``); the result is the same as one sequential pass.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..events import check_bounds, check_sensor_size
from . import _rawheader as raw
from ._base import atomic_write, writable_events
from ._evt3_decode import _STATE_SIZE, _decode
from ._parallel import resolve_threads

NAME = "evt3"
SUFFIXES = (".raw",)
WORD = np.dtype("<u2")
MAX_T = (1 << 44) - 1  # writer limit: 2^20 time loops of 2^24 µs (203 days)


def detect(head: bytes) -> bool:
    """True when ``head`` starts with a RAW header declaring EVT 3.0 (``% evt 3.0`` or ``% format EVT3``)."""
    return raw.detect_encoding(head) == NAME


def _height(header, sensor_size, height):
    geometry = raw.resolve_geometry(header, sensor_size, height)
    return -1 if geometry is None else geometry[1]


def read(path, *, triggers: bool = False, sensor_size=None, height=None, threads=None):
    """Decode the CD events of an EVT 3.0 RAW file.

    Parameters
    ----------
    path : str or os.PathLike
    triggers : bool, default False
        Also return the external trigger words as a ``TRIGGER_DTYPE`` array (``t`` µs, ``id``, ``value``).
    sensor_size : tuple (W, H) or (W, H, P), optional
        Overrides the geometry of the header (or the one inferred from the camera); rows with
        ``y >= H`` are dropped, as openeb does.
    height : int, optional
        Overrides only the height. Give at most one of ``sensor_size`` and ``height``.
    threads : int, optional
        Threads for the counting pass and for decoding pieces of large files cut at TIME_HIGH
        changes (default: the usable CPUs, at most 8). The result does not depend on it.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,)
        CD events in file order, ``t`` in µs (loop rule applied, not clamped), ``p`` = 1 for ON.
        With ``triggers=True``: the tuple ``(events, triggers)``.

    Raises
    ------
    FormatError
        Empty file, header line without line end, a header declaring another encoding.
    """
    header = raw.read_header(path)
    raw.check_encoding(path, header, NAME)
    h = _height(header, sensor_size, height)
    words = raw.load_words(path, header.data_offset, WORD)
    events, trig = _decode(words, h, np.zeros(_STATE_SIZE, np.int64), bool(triggers), resolve_threads(threads))
    return (events, trig) if triggers else events


def iter_blocks(path, block_bytes: int, *, sensor_size=None, height=None, threads=None):
    """Yield the CD events decoded from successive blocks of about ``block_bytes`` bytes.

    The decoder state (row, vector base, time, loop) carries across blocks, so the
    concatenation equals ``read(path, sensor_size=..., height=...)``.
    """
    header = raw.read_header(path)
    raw.check_encoding(path, header, NAME)
    h = _height(header, sensor_size, height)
    threads = resolve_threads(threads)
    state = np.zeros(_STATE_SIZE, np.int64)
    for words in raw.iter_word_blocks(path, header.data_offset, WORD, block_bytes):
        events, _ = _decode(words, h, state, False, threads)
        if events.size:
            yield events


def inspect(path):
    """Header metadata and the sensor size (declared or inferred from the camera); no event count."""
    return raw.info(path, raw.read_header(path), NAME)


@njit(cache=True)
def _evt3_encode_kernel(t, x, y, p, vectorize, out):
    """Words for sorted events; ``out`` must hold 1 + 5·n + 2·(t[-1] >> 24) words. Returns the count."""
    out[0] = np.uint16(0x8000)  # TIME_HIGH 0: decoding starts here
    k = 1
    cur_h = np.int64(0)
    cur_low = np.int64(-1)
    cur_y = np.int64(-1)
    loop = np.int64(0)
    n = t.shape[0]
    i = 0
    while i < n:
        ti = t[i]
        while loop < (ti >> 24):  # a drop of the high part by >= 2048 is one loop
            out[k] = np.uint16(0x8FFF)
            out[k + 1] = np.uint16(0x8000)
            k += 2
            loop += 1
            cur_h = 0
            cur_low = -1
        h = (ti >> 12) & 0xFFF
        if h != cur_h:
            out[k] = np.uint16(0x8000 | h)
            k += 1
            cur_h = h
            cur_low = -1
        low = ti & 0xFFF
        if low != cur_low:
            out[k] = np.uint16(0x6000 | low)
            k += 1
            cur_low = low
        yi = np.int64(y[i])
        if yi != cur_y:
            out[k] = np.uint16(yi)
            k += 1
            cur_y = yi
        pi = np.int64(p[i])
        end = i + 1
        if vectorize:  # same t, y, p and increasing x: one run of vectors
            while end < n and t[end] == ti and y[end] == y[i] and p[end] == p[i] and x[end] > x[end - 1]:
                end += 1
        if end - i < 2:
            out[k] = np.uint16(0x2000 | (pi << 11) | np.int64(x[i]))
            k += 1
            i += 1
            continue
        while i < end:
            base = np.int64(x[i])
            out[k] = np.uint16(0x3000 | (pi << 11) | base)
            k += 1
            while i < end and np.int64(x[i]) < base + 12:
                m = 0
                while i < end and np.int64(x[i]) < base + 12:
                    m |= 1 << (np.int64(x[i]) - base)
                    i += 1
                if m < 256:
                    out[k] = np.uint16(0x5000 | m)
                    base += 8
                else:
                    out[k] = np.uint16(0x4000 | m)
                    base += 12
                k += 1
    return k


def write(path, events, sensor_size=None, *, vectorize: bool = False) -> None:
    """Write ``events`` as an EVT 3.0 RAW file.

    Parameters
    ----------
    path : str or os.PathLike
    events : ndarray[EVENT_DTYPE], shape (N,)
        Sorted by ``t`` (non-decreasing), ``0 <= t < 2^44`` µs, ``x``, ``y`` < 2048, ``p`` in {0, 1}.
    sensor_size : tuple (W, H, P), optional
        Written as ``% format EVT3;height=H;width=W`` and ``% geometry WxH``; events must lie inside.
    vectorize : bool, default False
        Encode runs of events with equal ``t``, ``y``, ``p`` and increasing ``x`` as
        VECT_BASE_X + VECT_12/VECT_8 words (VECT_8 when the 12-pixel window only uses its first 8);
        otherwise one ADDR_X word per event.

    The data starts with TIME_HIGH 0; TIME_HIGH, TIME_LOW and ADDR_Y words are written when their
    value changes. Crossing a multiple of 2^24 µs writes TIME_HIGH 0xFFF then TIME_HIGH 0 (one
    reader loop each). Raises ``ValueError`` (naming the first bad index) for unsorted or
    out-of-range events.
    """
    events = writable_events(events)
    if sensor_size is not None:
        sensor_size = check_sensor_size(sensor_size)
        check_bounds(events, sensor_size)
    raw.check_writable(events, MAX_T, "EVT 3.0")
    n = events.size
    loops = int(events["t"][-1]) >> 24 if n else 0
    out = np.empty(1 + 5 * n + 2 * loops, WORD)
    k = _evt3_encode_kernel(np.ascontiguousarray(events["t"]), np.ascontiguousarray(events["x"]),
                            np.ascontiguousarray(events["y"]), np.ascontiguousarray(events["p"]),
                            bool(vectorize), out)
    atomic_write(path, [raw.header_bytes("3.0", "EVT3", sensor_size), memoryview(out[:k]).cast("B")])
