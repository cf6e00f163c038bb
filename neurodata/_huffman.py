"""Huffman coding of events: the ``"huffman"`` layout of the events cache (``docs/cache.md``).

Each event becomes three symbols of a 4096-letter alphabet, each coded with its own canonical
Huffman code of at most 12 bits (``MAX_BITS``), fitted per block of samples; symbol 4095
(``ESCAPE``) is followed by raw bits:

- **dt**: ``d = t - t_prev`` (int64, wrapping; ``t_prev = 0`` at a sample's first event). Symbol
  ``d`` when ``0 <= d < 128`` (``DT_DIRECT``); for ``d >= 128`` with highest set bit ``k``
  (7..62), symbol ``128 + 4 (k - 7) + s`` (``s``: the two bits below the highest), then the
  ``k - 2`` low bits raw; for ``d < 0``, ``ESCAPE`` and the 64 bits of ``d``.
- **x**: symbol ``x`` when ``x < 4095``, else ``ESCAPE`` and ``x`` in 16 bits.
- **yp**: ``v = y << pb | p`` (``pb`` = bits of the block's largest ``p``, 0 when every ``p`` is
  0); symbol ``v`` when ``v < 4095``, else ``ESCAPE`` and ``v`` in ``16 + pb`` bits.

Bits are written least significant first (bit ``i`` of a stream is bit ``i % 8`` of byte
``i // 8``), like deflate: raw fields as integers, Huffman codes starting with their first
(most significant) bit. Codes are canonical (deflate's rule: shorter codes first, then by symbol)
and given by their lengths alone (0 = symbol unused). Rows are cut into *segments* at every sample
start and every ``rows_per_segment`` rows; a segment holds three byte-aligned, zero-padded
streams (dt, x, yp) that the decoder reads side by side.

Why: the order-0 statistics of these symbols are what a general-purpose compressor fails to
exploit after byte shuffling (N-MNIST-sized data: 1.81 bytes/event here against 2.14 for
shuffle + deflate), and a table-driven decoder reads an event in a few nanoseconds, against the
hundreds of microseconds that inflating two 4096-row chunks costs a random read.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from isal.isal_zlib import crc32
from numba import njit

__all__ = ["SYMBOLS", "ESCAPE", "MAX_BITS", "TABLES", "symbol_counts", "code_lengths", "encoder", "decoder",
           "encode", "encode_block", "decode", "dt_extra", "DT_TABLE", "OK", "BAD_CODE", "BAD_LENGTH", "OUT_OF_BOUNDS"]

SYMBOLS = 4096
ESCAPE = SYMBOLS - 1
MAX_BITS = 12
TABLES = 3  # dt, x, yp
DT_DIRECT = 128
OK, BAD_CODE, BAD_LENGTH, OUT_OF_BOUNDS = 0, 1, 2, 3
_MASK = np.uint64(SYMBOLS - 1)


@njit(cache=True, nogil=True, inline="always")
def _bit_length(u):
    n = 0
    while u:
        u >>= np.uint64(1)
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _dt_symbol(d):
    """``(symbol, extra bits, their count)`` of the time delta ``d`` (int64)."""
    if 0 <= d < DT_DIRECT:
        return d, np.uint64(0), 0
    if d < 0:
        return ESCAPE, np.uint64(d), 64
    k = _bit_length(np.uint64(d)) - 1  # 7..62
    low = np.uint64(d) & ((np.uint64(1) << np.uint64(k - 2)) - np.uint64(1))
    return DT_DIRECT + (k - 7) * 4 + ((d >> (k - 2)) & 3), low, k - 2


@njit(cache=True, nogil=True)
def symbol_counts(ev, counts, pb):
    """Histogram ``(3, 4096)`` int64 of the dt, x and yp symbols of the samples joined in ``ev``
    (EVENT_DTYPE; sample sizes ``counts``), with ``pb`` polarity bits."""
    hist = np.zeros((TABLES, SYMBOLS), np.int64)
    i = 0
    for c in counts:
        prev = np.int64(0)
        for _ in range(c):
            t = ev[i]["t"]
            d = t - prev
            prev = t
            hist[0, _dt_symbol(d)[0]] += 1
            x = np.int64(ev[i]["x"])
            hist[1, min(x, ESCAPE)] += 1
            v = (np.int64(ev[i]["y"]) << pb) | np.int64(ev[i]["p"])
            hist[2, min(v, ESCAPE)] += 1
            i += 1
    return hist


@njit(cache=True, nogil=True)
def _tree_depths(w):
    """Depths of the leaves of a Huffman tree over the ascending weights ``w`` (two queues)."""
    n = w.shape[0]
    weight = np.empty(2 * n - 1, np.int64)
    parent = np.empty(2 * n - 1, np.int64)
    weight[:n] = w
    leaf, node, nxt = 0, n, n
    for _ in range(n - 1):
        pick = np.empty(2, np.int64)
        for k in range(2):
            if leaf < n and (node >= nxt or weight[leaf] <= weight[node]):
                pick[k] = leaf
                leaf += 1
            else:
                pick[k] = node
                node += 1
        weight[nxt] = weight[pick[0]] + weight[pick[1]]
        parent[pick[0]] = nxt
        parent[pick[1]] = nxt
        nxt += 1
    depth = np.zeros(2 * n - 1, np.int64)
    for k in range(2 * n - 3, -1, -1):
        depth[k] = depth[parent[k]] + 1
    return depth[:n]


@njit(cache=True, nogil=True)
def code_lengths(hist):
    """Huffman code lengths (uint8, 0 for a symbol whose count is not positive) of ``hist`` (4096,),
    at most ``MAX_BITS``: counts are halved (rounding up) until the tree is shallow enough. A lone
    symbol gets length 1."""
    lengths = np.zeros(SYMBOLS, np.uint8)
    used = np.nonzero(hist > 0)[0]
    if used.shape[0] == 1:
        lengths[used[0]] = 1
    if used.shape[0] < 2:
        return lengths
    order = used[np.argsort(hist[used], kind="mergesort")]
    w = hist[order].copy()
    while True:
        depth = _tree_depths(w)
        if depth.max() <= MAX_BITS:
            break
        w = (w + 1) >> 1  # keeps the order; all equal eventually gives depth ceil(log2 n) <= 12
    for k in range(order.shape[0]):
        lengths[order[k]] = depth[k]
    return lengths


@njit(cache=True, nogil=True)
def _canonical(lengths):
    """Deflate's canonical codes of ``lengths``, bit-reversed for the LSB-first stream (uint64)."""
    bl_count = np.zeros(MAX_BITS + 1, np.int64)
    for s in range(SYMBOLS):
        bl_count[lengths[s]] += 1
    bl_count[0] = 0
    next_code = np.zeros(MAX_BITS + 2, np.int64)
    code = 0
    for b in range(1, MAX_BITS + 1):
        code = (code + bl_count[b - 1]) << 1
        next_code[b] = code
    rev = np.zeros(SYMBOLS, np.uint64)
    for s in range(SYMBOLS):
        n = lengths[s]
        if n:
            c = next_code[n]
            next_code[n] += 1
            r = 0
            for _ in range(n):
                r = (r << 1) | (c & 1)
                c >>= 1
            rev[s] = r
    return rev


@njit(cache=True, nogil=True)
def encoder(lengths):
    """The codes uint64 ``(3, 4096)`` (bit-reversed, for ``encode``) of three length tables."""
    codes = np.zeros((TABLES, SYMBOLS), np.uint64)
    for k in range(TABLES):
        codes[k] = _canonical(lengths[k])
    return codes


@njit(cache=True, nogil=True)
def decoder(lengths):
    """Lookup tables uint16 ``(3, 4096)`` for ``decode``: the entry at the next 12 stream bits is
    ``symbol | length << 12`` (length 0: no code starts with these bits)."""
    table = np.zeros((TABLES, SYMBOLS), np.uint16)
    for k in range(TABLES):
        rev = _canonical(lengths[k])
        for s in range(SYMBOLS):
            n = np.int64(lengths[k, s])
            if n:
                for j in range(np.int64(rev[s]), SYMBOLS, 1 << n):
                    table[k, j] = s | (n << MAX_BITS)
    return table


def dt_extra() -> np.ndarray:
    """uint64 ``(2, 4096)``: per dt symbol the base and the number of extra bits, ``d = base +
    extra`` (direct symbols: base = symbol, no bits; escape: base 0, 64 bits)."""
    table = np.zeros((2, SYMBOLS), np.uint64)
    table[0, :DT_DIRECT] = np.arange(DT_DIRECT, dtype=np.uint64)
    for k in range(7, 63):
        for sub in range(4):
            table[:, DT_DIRECT + (k - 7) * 4 + sub] = ((4 | sub) << (k - 2), k - 2)
    table[1, ESCAPE] = 64
    return table


DT_TABLE = dt_extra()


@njit(cache=True, nogil=True)
def _put(words, w, acc, n_acc, value, n):
    """Append the ``n`` (<= 32) low bits of ``value`` (no higher bits set) to the uint64 stream
    ``words`` (next word ``w``, ``n_acc`` < 64 pending bits in ``acc``)."""
    value = np.uint64(value)
    if n_acc + n >= 64:
        words[w] = acc | (value << np.uint64(n_acc))
        w += 1
        acc = (value >> np.uint64(1)) >> np.uint64(63 - n_acc)  # n_acc >= 32: the bits that did not fit
        n_acc = n_acc + n - 64
    else:
        acc |= value << np.uint64(n_acc)
        n_acc += n
    return w, acc, n_acc


@njit(cache=True, nogil=True)
def _put_raw(words, w, acc, n_acc, value, n):
    """``_put`` of the ``n`` (<= 64) low bits of ``value``."""
    value = np.uint64(value)
    if n > 32:
        w, acc, n_acc = _put(words, w, acc, n_acc, value & np.uint64(0xFFFFFFFF), 32)
        n -= 32
        value >>= np.uint64(32)
    if n > 0:
        w, acc, n_acc = _put(words, w, acc, n_acc, value & ((np.uint64(1) << np.uint64(n)) - np.uint64(1)), n)
    return w, acc, n_acc


@njit(cache=True, nogil=True)
def _emit(out, b, words, w, acc, n_acc):
    """Copy a finished stream (``w`` words, then ``n_acc`` bits in ``acc``) to ``out[b:]``
    as bytes, zero-padded to a byte; return the next byte of ``out``."""
    if w:
        out[b:b + 8 * w] = words[:w].view(np.uint8)
        b += 8 * w
    while n_acc > 0:
        out[b] = np.uint8(acc & np.uint64(255))
        acc >>= np.uint64(8)
        n_acc -= 8
        b += 1
    return b


@njit(cache=True, nogil=True)
def encode(ev, counts, first_row, rows_per_segment, codes, lengths, pb, out, seg_rows, seg_bytes):
    """Code the samples joined in ``ev`` (EVENT_DTYPE, sample sizes ``counts``) into ``out``
    (uint8, at least ``20 * len(ev) + 3 * segments`` bytes).

    Segments start at every sample start and at every global row that is a multiple of
    ``rows_per_segment`` (``first_row``: the global row of ``ev[0]``); each holds three streams,
    dt, x and yp, one after the other. Fills ``seg_rows[s]`` (local first row) and
    ``seg_bytes[s, 0..2]`` (first byte of each stream) and returns ``(segments, bytes)``.
    """
    R = rows_per_segment
    sd = np.empty(R * 10 // 8 + 2, np.uint64)  # per event at most 76 dt bits, 28 x bits, 36 yp bits
    sx = np.empty(R * 4 // 8 + 2, np.uint64)
    sy = np.empty(R * 5 // 8 + 2, np.uint64)
    nseg = 0
    b = 0
    i = 0
    for c in counts:
        prev = np.int64(0)
        done = 0
        while done < c:
            rows = min(c - done, R - (first_row + i) % R)
            wd = wx = wy = 0
            ad = ax = ay = np.uint64(0)
            nd = nx = ny = 0
            for _ in range(rows):
                t = ev[i]["t"]
                sym, extra, nbits = _dt_symbol(t - prev)
                prev = t
                wd, ad, nd = _put(sd, wd, ad, nd, codes[0, sym], lengths[0, sym])
                if nbits:
                    wd, ad, nd = _put_raw(sd, wd, ad, nd, extra, nbits)
                x = np.int64(ev[i]["x"])
                if x < ESCAPE:
                    wx, ax, nx = _put(sx, wx, ax, nx, codes[1, x], lengths[1, x])
                else:
                    wx, ax, nx = _put(sx, wx, ax, nx, codes[1, ESCAPE], lengths[1, ESCAPE])
                    wx, ax, nx = _put(sx, wx, ax, nx, x, 16)
                v = (np.int64(ev[i]["y"]) << pb) | np.int64(ev[i]["p"])
                if v < ESCAPE:
                    wy, ay, ny = _put(sy, wy, ay, ny, codes[2, v], lengths[2, v])
                else:
                    wy, ay, ny = _put(sy, wy, ay, ny, codes[2, ESCAPE], lengths[2, ESCAPE])
                    wy, ay, ny = _put(sy, wy, ay, ny, v, 16 + pb)
                i += 1
            seg_rows[nseg] = i - rows
            seg_bytes[nseg, 0] = b
            b = _emit(out, b, sd, wd, ad, nd)
            seg_bytes[nseg, 1] = b
            b = _emit(out, b, sx, wx, ax, nx)
            seg_bytes[nseg, 2] = b
            b = _emit(out, b, sy, wy, ay, ny)
            nseg += 1
            done += rows
    return nseg, b


@njit(cache=True, nogil=True)
def _peek(words, pos, last):
    """The 64 stream bits from bit ``pos`` on (``words``: the stream as little-endian uint64;
    a position past word ``last`` reads word ``last`` instead: never outside ``words``)."""
    q = min(np.uint64(pos) >> np.uint64(6), last)
    r = np.uint64(pos & 63)
    return (words[q] >> r) | ((words[q + np.uint64(1)] << np.uint64(1)) << (np.uint64(63) - r))


@njit(cache=True, nogil=True)
def decode(words, bit0, segs, reset, s0, s1, tables, p_bits, dt_table, t_first, has_first, W, H, P, out):
    """Decode segments ``s0..s1-1`` into ``out`` (EVENT_DTYPE, their rows, in order).

    ``segs`` (int64, (S+1, 5)): per segment its first row, the first bytes of its dt, x and yp
    streams and its block; row S holds the totals (rows, bytes, bytes, bytes, blocks). A segment
    ends where the next one's dt stream starts. ``words``: the bytes from byte ``bit0 // 8`` on
    as uint64, with at least 4 zero words after segment ``s1 - 1``'s end. ``reset[s]`` is 1 when
    segment ``s`` starts a sample (``t`` counts from 0). Block ``k`` is coded with
    ``tables[k]`` (``decoder``) and ``p_bits[k]`` polarity bits; ``dt_table``: ``DT_TABLE``.
    With ``has_first``, the first row's ``t`` is ``t_first`` (a read that starts inside a sample).

    Returns ``(status, segment)``: ``OK`` or the first problem (``BAD_CODE``: bits that start no
    code; ``BAD_LENGTH``: a stream not ending in its last byte; ``OUT_OF_BOUNDS``: ``x >= W``,
    ``y >= H`` or, when ``P > 1``, ``p >= P``), as for a damaged file.

    Each stream keeps at least 36 unread bits in a register (refilled from ``words`` when fewer
    remain): enough for a code and the raw bits of an x or yp escape. Damaged input never makes
    it read outside ``words`` or write outside ``out``; it is reported after the segment.
    """
    dt_base = dt_table[0]
    dt_bits = dt_table[1]
    Wu, Hu = np.uint64(W), np.uint64(H)
    pmax = np.uint64(P if P > 1 else 256)
    mask = _MASK
    shift = np.uint64(MAX_BITS)
    one = np.uint64(1)
    last = np.uint64(words.shape[0] - 2)
    i = np.uint64(0)
    t = np.int64(0)
    for s in range(s0, s1):
        p0, p1, p2 = segs[s, 1] * 8 - bit0, segs[s, 2] * 8 - bit0, segs[s, 3] * 8 - bit0
        e0, e1, e2 = p1, p2, segs[s + 1, 1] * 8 - bit0
        a0, a1, a2 = _peek(words, p0, last), _peek(words, p1, last), _peek(words, p2, last)
        n0 = n1 = n2 = 64
        block = segs[s, 4]
        td = tables[block, 0]
        tx = tables[block, 1]
        ty = tables[block, 2]
        pb = np.uint64(p_bits[block])
        pm = (one << pb) - one
        ym = (one << (np.uint64(16) + pb)) - one
        if reset[s]:
            t = np.int64(0)
        no_code = False  # errors are collected without branches and reported per segment
        outside = False
        for _ in range(segs[s + 1, 0] - segs[s, 0]):
            # dt
            e = np.uint64(td[a0 & mask])
            n = e >> shift
            sym = e & mask
            a0 >>= n
            n0 -= np.int64(n)
            p0 += np.int64(n)
            k = np.int64(dt_bits[sym])
            if k == 0:
                d = sym
            else:
                if k > n0:
                    a0 = _peek(words, p0, last)
                    n0 = 64
                if k == 64:  # escape: the delta's 64 bits
                    d = a0
                    a0 = np.uint64(0)
                else:
                    d = dt_base[sym] + (a0 & ((one << np.uint64(k)) - one))
                    a0 >>= np.uint64(k)
                n0 -= k
                p0 += k
            if n0 < 36:
                a0 = _peek(words, p0, last)
                n0 = 64
            t += np.int64(d)
            no_code |= n == 0
            # x (x and yp are written out: a shared helper made the loop 1.7x slower in numba)
            e = np.uint64(tx[a1 & mask])
            n = e >> shift
            x = e & mask
            a1 >>= n
            n1 -= np.int64(n)
            p1 += np.int64(n)
            no_code |= n == 0
            if x == mask:
                x = a1 & np.uint64(0xFFFF)
                a1 >>= np.uint64(16)
                n1 -= 16
                p1 += 16
            if n1 < 36:
                a1 = _peek(words, p1, last)
                n1 = 64
            # yp
            e = np.uint64(ty[a2 & mask])
            n = e >> shift
            yp = e & mask
            a2 >>= n
            n2 -= np.int64(n)
            p2 += np.int64(n)
            no_code |= n == 0
            if yp == mask:
                yp = a2 & ym
                a2 >>= np.uint64(16) + pb
                n2 -= 16 + np.int64(pb)
                p2 += 16 + np.int64(pb)
            if n2 < 36:
                a2 = _peek(words, p2, last)
                n2 = 64
            y = yp >> pb
            p = yp & pm
            outside |= (x >= Wu) | (y >= Hu) | (p >= pmax)
            if i == 0 and has_first:
                t = t_first
            out[i]["t"] = t
            out[i]["x"] = x
            out[i]["y"] = y
            out[i]["p"] = p
            i += one
        if no_code:
            return BAD_CODE, s
        if (p0 + 7) >> 3 != e0 >> 3 or (p1 + 7) >> 3 != e1 >> 3 or (p2 + 7) >> 3 != e2 >> 3:
            return BAD_LENGTH, s
        if outside:
            return OUT_OF_BOUNDS, s
    return OK, -1


class Block(NamedTuple):
    """One coded block (``encode_block``): its code lengths, polarity bits and segments."""

    lengths: np.ndarray    # uint8 (3, 4096)
    p_bits: int
    seg_rows: np.ndarray   # int64 (S,), first row of each segment, relative to the block
    seg_bytes: np.ndarray  # int64 (S, 3), first byte of each stream, relative to the block
    crc: np.ndarray        # uint32 (S,), CRC-32 (zlib's) of each segment's bytes
    data: np.ndarray       # uint8 (B,)


def encode_block(ev: np.ndarray, counts: np.ndarray, first_row: int, rows_per_segment: int) -> Block:
    """Code whole samples (joined in ``ev``, EVENT_DTYPE; sizes ``counts``) with Huffman codes
    fitted to their own symbol counts; ``first_row`` is the global row of ``ev[0]``."""
    n = ev.shape[0]
    p_bits = int(ev["p"].max()).bit_length() if n else 0
    lengths = np.stack([code_lengths(h) for h in symbol_counts(ev, counts, p_bits)])
    codes = encoder(lengths)
    R = int(rows_per_segment)
    most = counts.shape[0] + n // R + 1
    out = np.empty(20 * n + 3 * most, np.uint8)
    seg_rows = np.empty(most, np.int64)
    seg_bytes = np.empty((most, 3), np.int64)
    nseg, size = encode(ev, counts, int(first_row), R, codes, lengths, p_bits, out, seg_rows, seg_bytes)
    ends = np.append(seg_bytes[1:nseg, 0], size)
    crc = np.array([crc32(out[a:b]) for a, b in zip(seg_bytes[:nseg, 0], ends)], np.uint32)
    return Block(lengths, p_bits, seg_rows[:nseg].copy(), seg_bytes[:nseg].copy(), crc, out[:size].copy())
