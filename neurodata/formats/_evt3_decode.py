"""EVT 3.0 decoding: the stateful word decoder (see :mod:`neurodata.formats.evt3` for the rules),
its counting pass, and the cut of long inputs into pieces decoded on threads.

A piece starts at a TIME_HIGH word whose value differs from the previous TIME_HIGH: there the
decoder resets ``time_low``, so the state entering the piece is exactly the last row word
(ADDR_Y / EM row), the vector base (last VECT_BASE_X plus 12 / 8 per later VECT_12 / VECT_8),
the previous TIME_HIGH and the loop count. Each piece is summarised on its own, in parallel
(event bound, TIME_HIGH loops, last row and vector base: ``_evt3_scan_kernel``); the states
entering the pieces then follow one from the other, and every piece is decoded straight into its
slice of one output array.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..events import EVENT_DTYPE
from . import _rawheader as raw
from ._parallel import map_ordered

_MIN_CHUNK_WORDS = 1 << 19
_PIECES_PER_THREAD = 4
_BLOCK = 2048  # words per block of the counting passes: a vectorised type count, then detail if needed
_NO_ROW = 0xFFFF  # row value meaning "no CD row" (after an EM row word): never below a height <= 4096
# decoder state vector (int64): started, row, is_cd, vbase, time_high, time_low, loop
_STATE_SIZE = 7


@njit(cache=True, nogil=True)
def _evt3_block_counts(blk):
    """Counts of ADDR_X, VECT_12, VECT_8, EXT_TRIGGER, TIME_HIGH, row (ADDR_Y / EM) and
    VECT_BASE_X words in ``blk`` (at most 65535 words). The counters are 16-bit so that the
    compiler vectorises on narrow lanes (measured 3x faster than 64-bit counters)."""
    one = np.uint16(1)
    c_x = c_12 = c_8 = c_tr = c_th = c_row = c_vb = np.uint16(0)
    for i in range(blk.shape[0]):
        typ = blk[i] >> np.uint16(12)
        c_x = np.uint16(c_x + (one if typ == 2 else 0))
        c_12 = np.uint16(c_12 + (one if typ == 4 else 0))
        c_8 = np.uint16(c_8 + (one if typ == 5 else 0))
        c_tr = np.uint16(c_tr + (one if typ == 10 else 0))
        c_th = np.uint16(c_th + (one if typ == 8 else 0))
        c_row = np.uint16(c_row + (one if typ <= 1 else 0))
        c_vb = np.uint16(c_vb + (one if typ == 3 else 0))
    return c_x, c_12, c_8, c_tr, c_th, c_row, c_vb


@njit(cache=True, nogil=True)
def _evt3_scan_kernel(words):
    """One counting pass: ``(events bound, triggers, first TIME_HIGH, last TIME_HIGH, loops, row,
    is_cd, vbase, has_vbase)`` of ``words``, the last six whatever the decoder state before them.

    - events bound: ADDR_X words + set vector bits (the events when every row is valid);
    - first / last TIME_HIGH: -1 when there is none; loops: the TIME_HIGH words after the first
      that drop by >= 2048 from the previous one (the decoder's loop increments);
    - row: the last ADDR_Y value (-1 if none); is_cd: 1 / 0 when the last ADDR_Y / EM row word
      is an ADDR_Y / EM word (-1 if none);
    - vbase: the last VECT_BASE_X value plus 12 / 8 per later VECT_12 / VECT_8 (``has_vbase``
      1), or with no VECT_BASE_X the increment of all vector words (``has_vbase`` 0).

    Per block of ``_BLOCK`` words a vectorised count (``_evt3_block_counts``) decides which
    word-by-word passes the block needs: vector bits, TIME_HIGH words, the last VECT_BASE_X,
    the last row words (a backwards pass that stops at the last ADDR_Y)."""
    n_ev = 0
    n_tr = 0
    loops = 0
    first = -1
    th = -1
    row = -1
    is_cd = -1
    vbase = 0
    has_vbase = 0
    for b in range(0, words.shape[0], _BLOCK):
        blk = words[b:b + _BLOCK]
        c_x, c_12, c_8, c_tr, c_th, c_row, c_vb = _evt3_block_counts(blk)
        n_ev += c_x
        n_tr += c_tr
        if c_12 or c_8:
            for i in range(blk.shape[0]):
                w = np.int64(blk[i])
                typ = w >> 12
                if typ == 4 or typ == 5:
                    m = w & (0xFFF if typ == 4 else 0xFF)
                    while m:
                        m &= m - 1
                        n_ev += 1
        if c_th:
            for i in range(blk.shape[0]):
                if (blk[i] >> 12) == 8:
                    h = np.int64(blk[i] & 0xFFF)
                    loops += th >= h + 2048
                    first = h if first < 0 else first
                    th = h
        if c_vb:
            after = 0
            for i in range(blk.shape[0] - 1, -1, -1):
                typ = blk[i] >> 12
                if typ == 3:
                    vbase = np.int64(blk[i] & 0xFFF) + after
                    has_vbase = 1
                    break
                after += 12 if typ == 4 else (8 if typ == 5 else 0)
        else:
            vbase += 12 * np.int64(c_12) + 8 * np.int64(c_8)
        if c_row:
            cd_found = False
            for i in range(blk.shape[0] - 1, -1, -1):
                typ = blk[i] >> 12
                if typ <= 1 and not cd_found:
                    is_cd = 1 if typ == 0 else 0
                    cd_found = True
                if typ == 0:
                    row = np.int64(blk[i] & 0xFFF)
                    break
    return n_ev, n_tr, first, th, loops, row, is_cd, vbase, has_vbase


@njit(cache=True, nogil=True)
def _evt3_decode_kernel(words, height, state, out, trig, want_triggers):
    """Run the state machine over ``words`` from ``state`` (updated in place); ``height`` < 0 = unknown.

    ``out`` / ``trig`` must hold at least the events / triggers these words produce (the bounds of
    ``_evt3_scan_kernel``). Hot path, branch-free for ADDR_Y, ADDR_X and TIME_LOW words (random
    mixes of them would defeat branch prediction): the row and ``time_low`` are updated through
    0 / -1 masks looked up per word type, a record is stored at ``out[k]`` for every word while
    ``k < len(out)``, and ``k`` advances for a valid ADDR_X. After an EM row word the row is
    ``_NO_ROW`` (its last ADDR_Y value is kept aside for the state). Other word types take one
    rarely taken branch; a vector word writes all 12 / 8 candidate records and advances ``k`` per
    set bit. Indices are unsigned (no wraparound code). Returns (events written, triggers written).
    """
    n = words.shape[0]
    # state used only off the hot path stays in memory (fewer registers spilled in the loop):
    # 0 started, 1 last ADDR_Y row, 3 vbase, 4 time_high, 6 loop, 7 triggers written
    st = np.zeros(8, np.int64)
    st[:7] = state
    row = state[1] if state[2] else _NO_ROW
    time_low = state[5]
    masks = np.zeros(32, np.int64)  # [type]: -1 for ADDR_Y (sets the row); [16 + type]: for TIME_LOW
    masks[0] = -1
    masks[16 + 6] = -1
    i = 0
    if not st[0]:  # everything before the first TIME_HIGH is skipped
        while i < n and (words[i] >> 12) != 8:
            i += 1
        if i < n:
            st[0] = 1
            st[4] = np.int64(words[i] & 0xFFF)
            time_low = 0
            i += 1
    hlim = min(height, 4096) if height >= 0 else 4096  # rows are < 4096
    tbase = (st[6] << 24) + (st[4] << 12)
    kmax = np.uint64(out.shape[0])
    k = np.uint64(0)
    for ii in range(i, n):
        w = np.uint64(words[np.uint64(ii)])
        typ = w >> np.uint64(12)
        v = np.int64(w & np.uint64(0xFFF))
        m_row = masks[typ]
        m_tl = masks[typ + np.uint64(16)]
        row = (row & ~m_row) | (v & m_row)
        time_low = (time_low & ~m_tl) | (v & m_tl)
        if k < kmax:
            rec = out[k]
            rec["t"] = tbase + time_low
            rec["x"] = w & np.uint64(0x7FF)
            rec["y"] = row & 0x7FF
            rec["p"] = (w >> np.uint64(11)) & np.uint64(1)
        k += np.uint64((typ == 2) & (row < hlim))
        if (0xFFBA >> typ) & 1:  # any type but ADDR_Y (0), ADDR_X (2), TIME_LOW (6)
            ti = np.int64(typ)
            if ti == 8:
                if st[4] >= v + 2048:
                    st[6] += 1
                if v != st[4]:
                    time_low = 0
                st[4] = v
                tbase = (st[6] << 24) + (v << 12)
            elif ti == 4 or ti == 5:
                vbase = st[3]
                nb = 12 if ti == 4 else 8
                if row < hlim:
                    t = tbase + time_low
                    x0 = vbase & 0xF7FF
                    pol = (vbase >> 11) & 1
                    y = row & 0x7FF
                    full = k + np.uint64(nb) <= kmax
                    for b in range(nb):
                        bit = (v >> b) & 1
                        if full or (bit and k < kmax):
                            rec = out[k]
                            rec["t"] = t
                            rec["x"] = (x0 + b) & 0xFFFF
                            rec["y"] = y
                            rec["p"] = pol
                        k += np.uint64(bit)
                st[3] = vbase + nb
            elif ti == 3:
                st[3] = v
            elif ti == 1:  # EM row: CD words emit nothing until the next ADDR_Y
                if row != _NO_ROW:
                    st[1] = row
                row = _NO_ROW
            elif ti == 10 and want_triggers:
                j = st[7]
                tr = trig[j]
                tr["t"] = tbase + time_low
                tr["id"] = (w >> np.uint64(8)) & np.uint64(0xF)
                tr["value"] = w & np.uint64(1)
                st[7] = j + 1
    state[0] = st[0]
    state[1] = st[1] if row == _NO_ROW else row
    state[2] = 0 if row == _NO_ROW else 1
    state[3:5] = st[3:5]
    state[5] = time_low
    state[6] = st[6]
    return np.int64(k), st[7]


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
    word, the vector base, the previous TIME_HIGH and the loop count: see ``_evt3_scan_kernel``.
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


def _plan(words, state, pieces, min_chunk):
    """Piece starts ``[0, s1, ...]``: each later start is a time-high change near an equal share."""
    n = words.shape[0]
    n_chunks = max(1, min(pieces, n // max(1, min_chunk)))
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
    are cut at TIME_HIGH changes into up to ``_PIECES_PER_THREAD * threads`` pieces (more pieces
    than threads keep both busy when one core is shared). Each piece is counted and summarised
    concurrently (event bound, TIME_HIGH loops, last row and vector base); the state entering
    piece ``c`` follows exactly from the state entering piece ``c - 1`` and that piece's summary
    (see ``_evt3_split_kernel``). The pieces are then decoded concurrently straight into their
    slices of one output array.
    """
    words = words[_evt3_start_kernel(words, state):]
    starts = _plan(words, state, threads * _PIECES_PER_THREAD if threads > 1 else 1, min_chunk)
    ends = starts[1:] + [words.shape[0]]
    pieces = [words[a:b] for a, b in zip(starts, ends)]
    scans = list(map_ordered(_evt3_scan_kernel, pieces, threads))
    states = [state.copy()]
    for c in range(len(pieces) - 1):  # the state just before the TIME_HIGH change starting piece c + 1
        _, _, first_th, last_th, loops, row, is_cd, vbase, has_vbase = scans[c]
        prev = states[-1]
        nxt = prev.copy()
        if first_th >= 0:
            nxt[6] = prev[6] + int(prev[4] >= first_th + 2048) + loops
            nxt[4] = last_th
        nxt[5] = 0
        nxt[1] = row if row >= 0 else prev[1]
        nxt[2] = is_cd if is_cd >= 0 else prev[2]
        nxt[3] = vbase if has_vbase else prev[3] + vbase
        states.append(nxt)
    ev_off = np.concatenate([[0], np.cumsum([int(r[0]) for r in scans])])
    tr_off = np.concatenate([[0], np.cumsum([int(r[1]) for r in scans])])
    out = np.empty(int(ev_off[-1]), EVENT_DTYPE)
    trig = np.empty(int(tr_off[-1]) if want_triggers else 0, raw.TRIGGER_DTYPE)

    def run(c):
        t_lo, t_hi = (tr_off[c], tr_off[c + 1]) if want_triggers else (0, 0)
        return _evt3_decode_kernel(pieces[c], height, states[c], out[ev_off[c]:ev_off[c + 1]],
                                   trig[t_lo:t_hi], want_triggers)

    counts = list(map_ordered(run, range(len(pieces)), threads))
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
