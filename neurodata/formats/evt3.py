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
TIME_HIGH are skipped. The decoder is sequential; a stateless pass (on a thread pool of ``nogil``
kernels for large inputs) first bounds the event count (ADDR_X words plus vector bits) so the
output is allocated once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..events import EVENT_DTYPE, as_events, check_bounds, check_sensor_size
from . import _rawheader as raw
from ._base import atomic_write
from ._parallel import map_ordered, resolve_threads

NAME = "evt3"
SUFFIXES = (".raw",)
WORD = np.dtype("<u2")
MAX_T = (1 << 44) - 1  # writer limit: 2^20 time loops of 2^24 µs (203 days)
_MIN_CHUNK_WORDS = 1 << 19

# decoder state vector (int64): started, row, is_cd, vbase, time_high, time_low, loop
_STATE_SIZE = 7


def detect(head: bytes) -> bool:
    """True when ``head`` starts with a RAW header declaring EVT 3.0 (``% evt 3.0`` or ``% format EVT3``)."""
    return raw.detect_encoding(head) == NAME


@njit(cache=True, nogil=True)
def _evt3_scan_kernel(words):
    """Stateless pass: (event bound, trigger bound, first TIME_HIGH, last TIME_HIGH, loops).

    The event bound counts ADDR_X words plus set vector bits, the trigger bound EXT_TRIGGER words;
    the TIME_HIGH values are -1 when there is none; ``loops`` counts the TIME_HIGH words after the
    first that drop by >= 2048 from the previous one (the decoder's loop increments).
    """
    n_ev = 0
    n_tr = 0
    loops = 0
    first = -1
    th = -1
    for i in range(words.shape[0]):
        w = np.int32(words[i])
        typ = w >> 12
        m = w & 0xFFF
        if typ == 5:
            m &= 0xFF
        elif typ != 4:
            m = 0
        m = m - ((m >> 1) & 0x555)
        m = (m & 0x333) + ((m >> 2) & 0x333)
        m = (m + (m >> 4)) & 0xF0F
        n_ev += ((m + (m >> 8)) & 0x1F) + (typ == 2)
        n_tr += typ == 10
        if typ == 8:
            h = w & 0xFFF
            loops += th >= h + 2048
            first = h if first < 0 else first
            th = h
    return n_ev, n_tr, first, th, loops


@njit(cache=True, nogil=True)
def _evt3_bound_kernel(words):
    """Upper bounds (events, triggers): ADDR_X words + set vector bits, EXT_TRIGGER words."""
    n_ev, n_tr, _, _, _ = _evt3_scan_kernel(words)
    return n_ev, n_tr


@njit(cache=True, nogil=True)
def _evt3_decode_kernel(words, height, state, out, trig, want_triggers):
    """Run the state machine over ``words`` from ``state`` (updated in place); ``height`` < 0 = unknown.

    ``out`` / ``trig`` must hold at least the events / triggers these words produce (the bound of
    ``_evt3_scan_kernel``); a record is stored at ``out[k]`` for every ADDR_X, ADDR_Y and TIME_LOW
    word and kept (``k += 1``) only for a valid ADDR_X: no branch on the common word types.
    Returns (events written, triggers written).
    """
    n = words.shape[0]
    started = state[0]
    row = state[1]
    is_cd = state[2]
    vbase = state[3]
    time_high = state[4]
    time_low = state[5]
    loop = state[6]
    i = 0
    if not started:  # everything before the first TIME_HIGH is skipped
        while i < n and (words[i] >> 12) != 8:
            i += 1
        if i < n:
            started = 1
            time_high = np.int64(words[i] & 0xFFF)
            time_low = 0
            i += 1
    hlim = height if height >= 0 else 4096  # rows are < 4096
    valid = is_cd != 0 and row < hlim
    tbase = (loop << 24) + (time_high << 12)
    t = tbase + time_low
    kmax = out.shape[0]
    k = 0
    j = 0
    while i < n:
        w = np.int64(words[i])
        i += 1
        typ = w >> 12
        v = w & 0xFFF
        if (0x45 >> typ) & 1:  # ADDR_Y (0), ADDR_X (2), TIME_LOW (6): branch-free
            if k < kmax:
                rec = out[k]
                rec["t"] = t
                rec["x"] = w & 0x7FF
                rec["y"] = row & 0x7FF
                rec["p"] = (w >> 11) & 1
                k += (typ == 2) & valid
            is_tl = typ == 6
            time_low = v if is_tl else time_low
            t = tbase + v if is_tl else t
            is_y = typ == 0
            valid = (v < hlim) if is_y else valid
            row = v if is_y else row
            is_cd = 1 if is_y else is_cd
        elif typ == 8:
            if time_high >= v + 2048:
                loop += 1
            if v != time_high:
                time_low = 0
            time_high = v
            tbase = (loop << 24) + (time_high << 12)
            t = tbase + time_low
        elif typ == 4 or typ == 5:
            if valid:
                m = v if typ == 4 else v & 0xFF
                x0 = vbase & 0xF7FF
                pol = (vbase >> 11) & 1
                y = row & 0x7FF
                while m:
                    b = 0
                    while not (m >> b) & 1:
                        b += 1
                    m &= m - 1
                    rec = out[k]
                    rec["t"] = t
                    rec["x"] = (x0 + b) & 0xFFFF
                    rec["y"] = y
                    rec["p"] = pol
                    k += 1
            vbase += 12 if typ == 4 else 8
        elif typ == 3:
            vbase = v
        elif typ == 1:
            is_cd = 0
            valid = False
        elif typ == 10 and want_triggers:
            tr = trig[j]
            tr["t"] = t
            tr["id"] = (w >> 8) & 0xF
            tr["value"] = w & 1
            j += 1
    state[0] = started
    state[1] = row
    state[2] = is_cd
    state[3] = vbase
    state[4] = time_high
    state[5] = time_low
    state[6] = loop
    return k, j


@njit(cache=True)
def _evt3_start_kernel(words, state):
    """Index after the first TIME_HIGH word (applied to ``state``: started, time_high, time_low
    = 0), or ``len(words)`` when there is none; 0 when ``state`` is already started."""
    if state[0]:
        return 0
    for i in range(words.shape[0]):
        if (words[i] >> 12) == 8:
            state[0] = 1
            state[4] = words[i] & 0xFFF
            state[5] = 0
            return i + 1
    return words.shape[0]


@njit(cache=True, nogil=True)
def _evt3_split_kernel(words, lo, hi, th):
    """First index ``s`` in ``[lo, hi)`` of a TIME_HIGH word whose value differs from the TIME_HIGH
    before it (``th`` when ``words[:s]`` holds none); -1 if there is none.

    At such a word ``time_low`` is reset, so the decoder state just before it is the last row
    word, the vector base, the previous TIME_HIGH and the loop count: see ``_evt3_row_kernel``.
    """
    for i in range(lo - 1, -1, -1):
        if (words[i] >> 12) == 8:
            th = np.int64(words[i] & 0xFFF)
            break
    for i in range(lo, hi):
        if (words[i] >> 12) == 8:
            h = np.int64(words[i] & 0xFFF)
            if h != th:
                return i
            th = h
    return -1


@njit(cache=True, nogil=True)
def _evt3_row_kernel(words, s, state):
    """Set ``state``'s row, is_cd and vbase to their values after ``words[:s]`` (a started decoder
    entering ``words`` with ``state``): the last ADDR_Y / EM row word, and the last VECT_BASE_X plus
    12 / 8 per VECT_12 / VECT_8 word after it; scans backwards from ``s``."""
    need_row = True
    need_vbase = True
    inc = 0
    i = s - 1
    while i >= 0 and (need_row or need_vbase):
        w = np.int64(words[i])
        typ = w >> 12
        if typ <= 1 and need_row:
            state[1] = w & 0xFFF if typ == 0 else state[1]
            state[2] = 1 if typ == 0 else 0
            need_row = False
        elif typ == 3 and need_vbase:
            state[3] = (w & 0xFFF) + inc
            need_vbase = False
        elif need_vbase and (typ == 4 or typ == 5):
            inc += 12 if typ == 4 else 8
        i -= 1
    if need_vbase:
        state[3] += inc


def _plan(words, state, threads, min_chunk):
    """Chunk starts ``[0, s1, ...]``: each later start is a time-high change near an equal share."""
    n = words.shape[0]
    n_chunks = max(1, min(threads, n // max(1, min_chunk)))
    starts = [0]
    for c in range(1, n_chunks):
        lo = max(starts[-1] + 1, c * n // n_chunks)
        s = int(_evt3_split_kernel(words, lo, (c + 1) * n // n_chunks, int(state[4])))
        if s > 0:
            starts.append(s)
    return starts


def _decode(words, height, state, want_triggers, threads=1, min_chunk=_MIN_CHUNK_WORDS):
    """Decode ``words`` continuing ``state`` (updated in place); returns ``(events, triggers or None)``.

    With ``threads > 1`` and at least ``2 * min_chunk`` words, the words after the first TIME_HIGH
    are cut at TIME_HIGH changes into pieces decoded concurrently: the state entering a piece is
    exact (see ``_evt3_split_kernel``); the loop count comes from the counting pass.
    """
    words = words[_evt3_start_kernel(words, state):]
    starts = _plan(words, state, threads, min_chunk)
    ends = starts[1:] + [words.shape[0]]
    pieces = [words[a:b] for a, b in zip(starts, ends)]
    scans = list(map_ordered(_evt3_scan_kernel, pieces, len(pieces)))
    states = [state.copy() for _ in pieces]
    loop, th = int(state[6]), int(state[4])
    for c, (_, _, first_th, last_th, loops) in enumerate(scans):
        if c:  # the state just before the TIME_HIGH change that starts piece c
            states[c][4:7] = th, 0, loop
            _evt3_row_kernel(words, starts[c], states[c])
        if first_th >= 0:
            loop += int(th >= first_th + 2048) + int(loops)
            th = int(last_th)
    ev_off = np.concatenate([[0], np.cumsum([int(r[0]) for r in scans])])
    tr_off = np.concatenate([[0], np.cumsum([int(r[1]) for r in scans])])
    out = np.empty(int(ev_off[-1]), EVENT_DTYPE)
    trig = np.empty(int(tr_off[-1]) if want_triggers else 0, raw.TRIGGER_DTYPE)

    def run(c):
        t_lo, t_hi = (tr_off[c], tr_off[c + 1]) if want_triggers else (0, 0)
        return _evt3_decode_kernel(pieces[c], height, states[c], out[ev_off[c]:ev_off[c + 1]],
                                   trig[t_lo:t_hi], want_triggers)

    counts = list(map_ordered(run, range(len(pieces)), len(pieces)))
    state[:] = states[-1]
    n_ev = _compact(out, ev_off, [int(k) for k, _ in counts])
    n_tr = _compact(trig, tr_off, [int(j) for _, j in counts]) if want_triggers else 0
    return _shrink(out, n_ev), (_shrink(trig, n_tr) if want_triggers else None)


def _compact(arr, offsets, counts):
    """Move piece ``c``'s first ``counts[c]`` records (at ``offsets[c]``) down to close the gaps;
    returns the total."""
    pos = 0
    for c, k in enumerate(counts):
        if pos != offsets[c] and k:
            arr[pos:pos + k] = arr[offsets[c]:offsets[c] + k].copy()
        pos += k
    return pos


def _shrink(arr, n):
    """``arr[:n]`` without keeping the unused tail allocated (``realloc``, in place for large blocks)."""
    if n < arr.shape[0]:
        arr.resize(n, refcheck=False)
    return arr


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
        Threads for the counting pass (default: the usable CPUs, at most 8); the state machine
        itself is sequential. The result does not depend on it.

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
    events = as_events(events)
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
