"""Prophesee RAW EVT 2.0 (``.raw``): 32-bit little-endian words after a ``% `` header.

Word ``w``, ``type = w >> 28``:

- ``0x0`` CD_OFF / ``0x1`` CD_ON: ``t = base + ((w >> 22) & 0x3F)``, ``x = (w >> 11) & 0x7FF``,
  ``y = w & 0x7FF``, ``p = type``;
- ``0x8`` EVT_TIME_HIGH: ``base = loop·2^34 + ((w & 0x0FFFFFFF) << 6)``; the loop counter grows by
  one when the new value is smaller than the previous one by at least ``MaxTimestamp − 10000`` µs
  (``MaxTimestamp = (2^28 − 1) << 6``), as in openeb;
- ``0xA`` EXT_TRIGGER: ``t = base + ((w >> 22) & 0x3F)``, ``id = (w >> 8) & 0x1F``, ``value = w & 1``
  (returned with ``triggers=True``);
- every other type (IMU, OTHERS, CONTINUED, unused): no output.

Decoding starts at the first TIME_HIGH word; words before it are skipped. Because the loop rule
only compares consecutive TIME_HIGH values, the words are split into chunks that are counted, then
decoded, on a thread pool (``nogil`` kernels: nothing survives a ``fork``), with a result
identical to the sequential definition.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..events import EVENT_DTYPE, check_bounds, check_sensor_size
from . import _rawheader as raw
from ._base import atomic_write, writable_events
from ._parallel import map_ordered, resolve_threads
from ._unaligned import I64, ZERO, events8_codegen, load_bytes, put_event, shuffle_lanes, splat, vector_arg

NAME = "evt2"
SUFFIXES = (".raw",)
WORD = np.dtype("<u4")
MAX_T = (1 << 54) - 1  # writer limit: 2^20 time loops of 2^34 µs (571 years)
_MIN_CHUNK_WORDS = 1 << 18
_LOOP_THRESHOLD = ((1 << 28) - 1 << 6) - 10000  # MaxTimestamp - 10000 µs = 17179859120 (literal in kernels)


def detect(head: bytes) -> bool:
    """True when ``head`` starts with a RAW header declaring EVT 2.0 (``% evt 2.0`` or ``% format EVT2``)."""
    return raw.detect_encoding(head) == NAME


@njit(cache=True)
def _evt2_first_time_high_kernel(words):
    for i in range(words.shape[0]):
        if (words[i] >> 28) == 8:
            return i
    return -1


@njit(cache=True, nogil=True)
def _evt2_scan_kernel(words, stats):
    """Summarise one chunk: stats = (CD words, trigger words, first TIME_HIGH payload or -1,
    last TIME_HIGH payload, loops between TIME_HIGH words inside the chunk)."""
    n_cd = 0
    n_tr = 0
    first = -1
    prev = -1
    loops = 0
    for i in range(words.shape[0]):
        w = words[i]
        n_cd += w < np.uint32(0x20000000)
        typ = w >> 28
        if typ == 8:
            th = np.int64(w & 0x0FFFFFFF)
            if first < 0:
                first = th
            # MaxTimestamp - LoopThreshold = ((2^28 - 1) << 6) - 10000
            elif th < prev and ((prev - th) << 6) >= 17179859120:
                loops += 1
            prev = th
        elif typ == 10:
            n_tr += 1
    stats[0] = n_cd
    stats[1] = n_tr
    stats[2] = first
    stats[3] = prev
    stats[4] = loops


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 runs the kernels as Python: no intrinsics
    def _decode8(src, q, out8, j, base):
        """Numpy stand-in for the intrinsic below (same results)."""
        w = src[int(q):int(q) + 32].view("<u4").astype(np.uint64)
        ev = out8[int(j):int(j) + 104].view(EVENT_DTYPE)
        ev["t"] = ((w >> 22) & 0x3F) + np.uint64(base)
        ev["x"], ev["y"], ev["p"] = (w >> 11) & 0x7FF, w & 0x7FF, w >> 28
        return np.uint64((w >= 0x20000000).any())
else:
    @intrinsic
    def _decode8(typingctx, src, q, out8, j, base):
        """Decode the 8 words at byte ``q`` of ``src`` as CD events at byte ``j`` of ``out8`` with
        time base ``base``; return a ``uint64`` that is non-zero when one of them is not a CD word
        (the events written are then meaningless). One byte shuffle and one 104-byte store (see
        ``_unaligned``); the caller guarantees ``q + 32 <= src.size`` and ``j + 104 <= out8.size``."""
        def codegen(context, builder, sig, args):
            v = load_bytes(context, builder, sig.args[0], args[0], args[1], 32)
            w = shuffle_lanes(builder, v, [(4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3) + (ZERO,) * 4 for k in range(8)])
            base = vector_arg(builder, context.cast(builder, args[4], sig.args[4], types.uint64))

            def field(shift, mask):
                return builder.and_(builder.lshr(w, splat(I64, 8, shift)), splat(I64, 8, mask))

            t = builder.add(field(22, 0x3F), base)
            xyp = builder.or_(builder.or_(field(11, 0x7FF), builder.shl(field(0, 0x7FF), splat(I64, 8, 16))),
                              builder.shl(builder.lshr(w, splat(I64, 8, 28)), splat(I64, 8, 32)))
            events8_codegen(context, builder, sig.args[2], args[2], args[3], t, xyp)
            other = builder.icmp_unsigned(">=", w, splat(I64, 8, 0x20000000))
            return builder.zext(builder.bitcast(other, ir.IntType(8)), I64)
        return types.uint64(src, q, out8, j, base), codegen


@njit(cache=True, nogil=True)
def _evt2_fill_kernel(words, words8, prev, loop, out8, trig, want_triggers):
    """Decode one chunk (``words``, and ``words8`` the same bytes as uint8) into ``out8``, the bytes
    of an ``EVENT_DTYPE`` array (and ``trig``), from TIME_HIGH payload ``prev`` and loop ``loop``.

    Runs of 8 CD words go through ``_decode8``; any other word, and a group holding one, word by
    word. Writes stop at the room of ``out8`` / ``trig`` (the scan pass counted them exactly).
    """
    k = 0
    j = 0
    room = out8.size // 13
    n = words.shape[0]
    base = (loop << 34) + (prev << 6)
    i = 0
    while i < n:
        if i + 8 <= n and k + 8 <= room:
            if _decode8(words8, 4 * i, out8, 13 * k, np.uint64(base)) == 0:
                i += 8
                k += 8
                continue
        w = words[i]
        typ = w >> 28
        if typ <= 1:
            if k < room:
                q = 13 * k
                put_event(out8, q, np.uint64(base + ((w >> 22) & 0x3F)),
                          np.uint64(((w >> 11) & 0x7FF) | ((w & 0x7FF) << 16)), np.uint8(typ))
                k += 1
        elif typ == 8:
            th = np.int64(w & 0x0FFFFFFF)
            if th < prev and ((prev - th) << 6) >= 17179859120:
                loop += 1
            prev = th
            base = (loop << 34) + (prev << 6)
        elif typ == 10 and want_triggers and j < trig.shape[0]:
            tr = trig[j]
            tr["t"] = base + ((w >> 22) & 0x3F)
            tr["id"] = (w >> 8) & 0x1F
            tr["value"] = w & 1
            j += 1
        i += 1


def _decode(words, state, want_triggers, n_chunks=None, threads=1):
    """Decode ``words`` continuing ``state`` = int64 [started, TIME_HIGH payload, loop] (updated in place).

    The words are cut into ``n_chunks`` pieces (default: one per thread, one for small inputs)
    decoded on ``threads`` threads; the split never changes the result.
    Returns ``(events, triggers)`` (triggers is None unless ``want_triggers``).
    """
    if not state[0]:
        first = int(_evt2_first_time_high_kernel(words))
        if first < 0:
            return np.empty(0, EVENT_DTYPE), (np.empty(0, raw.TRIGGER_DTYPE) if want_triggers else None)
        words = words[first:]
        state[:] = (1, int(words[0]) & 0x0FFFFFFF, 0)
    n = words.shape[0]
    if n_chunks is None:
        n_chunks = max(1, min(threads, n // _MIN_CHUNK_WORDS))
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    chunks = [words[bounds[c]:bounds[c + 1]] for c in range(n_chunks)]
    stats = np.empty((n_chunks, 5), np.int64)
    for _ in map_ordered(lambda c: _evt2_scan_kernel(chunks[c], stats[c]), range(n_chunks), min(threads, n_chunks)):
        pass
    ev_off = np.zeros(n_chunks + 1, np.int64)
    tr_off = np.zeros(n_chunks + 1, np.int64)
    ev_off[1:] = np.cumsum(stats[:, 0])
    tr_off[1:] = np.cumsum(stats[:, 1])
    start = []
    prev, loop = int(state[1]), int(state[2])
    for c in range(n_chunks):  # chain the loop counter through the chunks' first/last TIME_HIGH
        start.append((prev, loop))
        first = int(stats[c, 2])
        if first >= 0:
            if first < prev and ((prev - first) << 6) >= _LOOP_THRESHOLD:
                loop += 1
            loop += int(stats[c, 4])
            prev = int(stats[c, 3])
    state[1], state[2] = prev, loop
    out = np.empty(int(ev_off[-1]), EVENT_DTYPE)
    trig = np.empty(int(tr_off[-1]) if want_triggers else 0, raw.TRIGGER_DTYPE)

    def fill(c):
        tr = trig[tr_off[c]:tr_off[c + 1]] if want_triggers else trig
        _evt2_fill_kernel(chunks[c], chunks[c].view(np.uint8), start[c][0], start[c][1],
                          out[ev_off[c]:ev_off[c + 1]].view(np.uint8), tr, want_triggers)

    for _ in map_ordered(fill, range(n_chunks), min(threads, n_chunks)):
        pass
    return out, (trig if want_triggers else None)


def read(path, *, triggers: bool = False, threads=None):
    """Decode the CD events of an EVT 2.0 RAW file.

    Parameters
    ----------
    path : str or os.PathLike
    triggers : bool, default False
        Also return the external trigger words as a ``TRIGGER_DTYPE`` array (``t`` µs, ``id``, ``value``).
    threads : int, optional
        Decoding threads (default: the usable CPUs, at most 8), at most one per 256 Ki words.
        The result does not depend on it.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,)
        CD events in file order, ``t`` in µs (loop rule applied), ``x``/``y`` as stored, ``p`` = 1 for ON.
        With ``triggers=True``: the tuple ``(events, triggers)``.

    Raises
    ------
    FormatError
        Empty file, header line without line end, a header declaring another encoding.
    """
    header = raw.read_header(path)
    raw.check_encoding(path, header, NAME)
    words = raw.load_words(path, header.data_offset, WORD)
    events, trig = _decode(words, np.zeros(3, np.int64), bool(triggers), threads=resolve_threads(threads))
    return (events, trig) if triggers else events


def iter_blocks(path, block_bytes: int, *, threads=None):
    """Yield the CD events decoded from successive blocks of about ``block_bytes`` bytes.

    Decoder state (time base, loop counter) carries across blocks, so the concatenation equals
    ``read(path)``.
    """
    header = raw.read_header(path)
    raw.check_encoding(path, header, NAME)
    threads = resolve_threads(threads)
    state = np.zeros(3, np.int64)
    for words in raw.iter_word_blocks(path, header.data_offset, WORD, block_bytes):
        events, _ = _decode(words, state, False, threads=threads)
        if events.size:
            yield events


def inspect(path):
    """Header metadata and the sensor size (declared or inferred from the camera); no event count."""
    return raw.info(path, raw.read_header(path), NAME)


@njit(cache=True)
def _evt2_encode_kernel(t, x, y, p, out):
    """Words for sorted events; out must hold 1 + 2·n + 2·(t[-1] >> 34) words. Returns the count."""
    out[0] = np.uint32(0x80000000)  # TIME_HIGH 0: the reader's loop counter starts here
    k = 1
    cur = np.int64(0)
    loop = np.int64(0)
    for i in range(t.shape[0]):
        ti = t[i]
        while loop < (ti >> 34):  # a drop from the largest to the smallest payload is one loop
            out[k] = np.uint32(0x8FFFFFFF)
            out[k + 1] = np.uint32(0x80000000)
            k += 2
            loop += 1
            cur = 0
        th = (ti >> 6) & 0x0FFFFFFF
        if th != cur:
            out[k] = np.uint32(0x80000000 | th)
            k += 1
            cur = th
        out[k] = np.uint32((np.int64(p[i]) << 28) | ((ti & 0x3F) << 22) | (np.int64(x[i]) << 11) | np.int64(y[i]))
        k += 1
    return k


def write(path, events, sensor_size=None) -> None:
    """Write ``events`` as an EVT 2.0 RAW file.

    Parameters
    ----------
    path : str or os.PathLike
    events : ndarray[EVENT_DTYPE], shape (N,)
        Sorted by ``t`` (non-decreasing), ``0 <= t < 2^54`` µs, ``x``, ``y`` < 2048, ``p`` in {0, 1}.
    sensor_size : tuple (W, H, P), optional
        Written as ``% format EVT2;height=H;width=W`` and ``% geometry WxH``; events must lie inside.

    The header is ``% evt 2.0``, ``% format …``, (``% geometry …``), ``% end``; the data starts with
    TIME_HIGH 0 and has one TIME_HIGH word per 64 µs period that holds events. Crossing a multiple
    of 2^34 µs writes TIME_HIGH 0x0FFFFFFF then TIME_HIGH 0 (one reader loop each), so every
    ``t`` below 2^54 µs reads back exactly. Raises ``ValueError`` (naming the first bad index) for
    unsorted or out-of-range events.
    """
    events = writable_events(events)
    if sensor_size is not None:
        sensor_size = check_sensor_size(sensor_size)
        check_bounds(events, sensor_size)
    raw.check_writable(events, MAX_T, "EVT 2.0")
    n = events.size
    loops = int(events["t"][-1]) >> 34 if n else 0
    out = np.empty(1 + 2 * n + 2 * loops, WORD)
    k = _evt2_encode_kernel(np.ascontiguousarray(events["t"]), np.ascontiguousarray(events["x"]),
                            np.ascontiguousarray(events["y"]), np.ascontiguousarray(events["p"]), out)
    atomic_write(path, [raw.header_bytes("2.0", "EVT2", sensor_size), memoryview(out[:k]).cast("B")])
