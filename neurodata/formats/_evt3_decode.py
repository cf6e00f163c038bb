"""EVT 3.0 decoding: the stateful word decoder (see :mod:`neurodata.formats.evt3` for the rules),
its counting pass, and the cut of long inputs into pieces decoded on threads.

A piece starts at a TIME_HIGH word whose value differs from the previous TIME_HIGH: there the
decoder resets ``time_low``, so the state entering the piece is exactly the last row word
(ADDR_Y / EM row), the vector base (last VECT_BASE_X plus 12 / 8 per later VECT_12 / VECT_8),
the previous TIME_HIGH and the loop count (from a pass over the earlier pieces' TIME_HIGH words).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..events import EVENT_DTYPE
from . import _rawheader as raw
from ._parallel import map_ordered

_MIN_CHUNK_WORDS = 1 << 19
# decoder state vector (int64): started, row, is_cd, vbase, time_high, time_low, loop
_STATE_SIZE = 7


@njit(cache=True, nogil=True)
def _evt3_bound_kernel(words):
    """Upper bounds (events, triggers): ADDR_X words + set vector bits, EXT_TRIGGER words."""
    n_ev = 0
    n_tr = 0
    for i in range(words.shape[0]):
        w = np.int64(words[i])
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
    return n_ev, n_tr


@njit(cache=True, nogil=True)
def _evt3_time_kernel(words):
    """(first TIME_HIGH, last TIME_HIGH, loops): -1 values when there is none; ``loops`` counts
    the TIME_HIGH words after the first that drop by >= 2048 from the previous one (the decoder's
    loop increments). Blocks of 128 words are tested with a vectorisable count first."""
    loops = 0
    first = -1
    th = -1
    n = words.shape[0]
    for b in range(0, n, 128):
        e = min(b + 128, n)
        c = 0
        for i in range(b, e):
            c += (words[i] & 0xF000) == 0x8000
        if c:
            for i in range(b, e):
                if (words[i] >> 12) == 8:
                    h = np.int64(words[i] & 0xFFF)
                    loops += th >= h + 2048
                    first = h if first < 0 else first
                    th = h
    return first, th, loops


@njit(cache=True, nogil=True)
def _evt3_decode_kernel(words, height, state, out, trig, want_triggers):
    """Run the state machine over ``words`` from ``state`` (updated in place); ``height`` < 0 = unknown.

    ``out`` / ``trig`` must hold at least the events / triggers these words produce (the bound of
    ``_evt3_bound_kernel``); a record is stored at ``out[k]`` for every ADDR_X, ADDR_Y and TIME_LOW
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
    entering ``words`` with ``state``): row from the last ADDR_Y word, is_cd from the last ADDR_Y /
    EM row word (an EM word clears is_cd but keeps the row), and vbase from the last VECT_BASE_X
    plus 12 / 8 per VECT_12 / VECT_8 word after it; scans backwards from ``s``. A value whose word
    does not occur in ``words[:s]`` keeps the entering state's."""
    need_row = True
    need_cd = True
    need_vbase = True
    inc = 0
    i = s - 1
    while i >= 0 and (need_row or need_cd or need_vbase):
        w = np.int64(words[i])
        typ = w >> 12
        if typ == 0 and need_row:
            state[1] = w & 0xFFF
            need_row = False
        if typ <= 1 and need_cd:
            state[2] = 1 if typ == 0 else 0
            need_cd = False
        if typ == 3 and need_vbase:
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
    last = len(pieces) - 1
    scans = list(map_ordered(lambda c: _evt3_bound_kernel(pieces[c]) + (_evt3_time_kernel(pieces[c]) if c < last
                                                                         else (-1, -1, 0)),
                             range(len(pieces)), len(pieces)))
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
