"""neurodata._huffman: the Huffman coding of the events cache's default layout.

Round trips of any events (escapes: negative and huge deltas, coordinates >= 4095, polarities up
to 255), optimal length-limited codes (checked against a textbook heap Huffman), and damaged
streams: the decoder reports them and never reads or writes outside its arrays.
"""
from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurodata import _huffman as hf
from neurodata.events import EVENT_DTYPE, make_events

DT_TABLE = hf.DT_TABLE


def _encode(samples, rows_per_segment):
    ev = np.concatenate(samples) if samples else np.zeros(0, EVENT_DTYPE)
    counts = np.array([s.shape[0] for s in samples], np.int64)
    return ev, counts, hf.encode_block(ev, counts, 0, rows_per_segment)


def _decode(block, counts, sizes, words=None):
    """Decode a whole block as the cache reader does (segment table with a totals row)."""
    n = int(counts.sum())
    S = block.seg_rows.shape[0]
    segs = np.zeros((S + 1, 5), np.int64)
    segs[:S, 0], segs[:S, 1:4] = block.seg_rows, block.seg_bytes
    segs[S] = [n, block.data.shape[0], block.data.shape[0], block.data.shape[0], 1]
    starts = np.concatenate([[0], np.cumsum(counts)])
    reset = np.isin(segs[:S, 0], starts).astype(np.uint8)
    if words is None:
        words = np.zeros(block.data.shape[0] // 8 + 5, np.uint64)
        words.view(np.uint8)[:block.data.shape[0]] = block.data
    out = np.zeros(n, EVENT_DTYPE)
    status, seg = hf.decode(words, 0, segs, reset, 0, S, hf.decoder(block.lengths)[None],
                            np.array([block.p_bits], np.uint8), DT_TABLE, 0, False, *sizes, out)
    return status, seg, out


@st.composite
def samples_and_sensor(draw):
    wide = draw(st.booleans())
    W = draw(st.integers(1, 65535 if wide else 300))
    H = draw(st.integers(1, 65535 if wide else 300))
    P = draw(st.sampled_from([1, 2]))
    out = []
    for _ in range(draw(st.integers(0, 5))):
        n = draw(st.integers(0, 60))
        unsorted = draw(st.booleans())
        t = draw(hnp.arrays(np.int64, n, elements=st.integers(-2**63 if unsorted else 0, 2**63 - 1)
                            if draw(st.booleans()) else st.integers(0, 5000)))
        if not unsorted:
            t = np.sort(t)
        x = draw(hnp.arrays(np.uint16, n, elements=st.integers(0, W - 1)))
        y = draw(hnp.arrays(np.uint16, n, elements=st.integers(0, H - 1)))
        p = draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 255 if P == 1 else 1)))
        out.append(make_events(t, x, y, p))
    return out, (W, H, P)


@settings(max_examples=150, deadline=None)
@given(samples_and_sensor(), st.sampled_from([1, 2, 7, 4096]))
def test_round_trip(data, rows_per_segment):
    samples, sizes = data
    ev, counts, block = _encode(samples, rows_per_segment)
    status, seg, out = _decode(block, counts, sizes)
    assert (status, seg) == (hf.OK, -1)
    assert np.array_equal(out, ev)
    # segments: every sample start and every multiple of rows_per_segment, nothing else
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1][counts > 0]
    cuts = np.union1d(starts, np.arange(0, ev.shape[0], rows_per_segment))
    assert np.array_equal(block.seg_rows, cuts)
    assert (np.diff(block.seg_bytes.ravel()) >= 0).all()


def test_escapes_and_sizes():
    ev = make_events([5, 5 + 2**40, 3, 3 + 127, 3 + 128, 2**62], [0, 4094, 4095, 65535, 7, 1],
                     [0, 65535, 4095, 1, 2047, 3], [0, 1, 255, 2, 0, 9])
    ev2, counts, block = _encode([ev], 4096)
    assert block.p_bits == 8 and block.lengths.max() <= hf.MAX_BITS
    status, _, out = _decode(block, counts, (65536, 65536, 1))
    assert status == hf.OK and np.array_equal(out, ev)


def _heap_huffman_cost(counts):
    """Total bits of an optimal (unlimited) Huffman code: the sum of the merged weights."""
    h = [int(c) for c in counts if c > 0]
    if len(h) < 2:
        return sum(h)
    heapq.heapify(h)
    cost = 0
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        cost += a + b
        heapq.heappush(h, a + b)
    return cost


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0005, 1.0), st.integers(1, 40), st.booleans())
def test_code_lengths_are_optimal_prefix_codes(seed, density, magnitude, skewed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 2**magnitude + 1, hf.SYMBOLS)
    if skewed:  # geometric-like tails, as time deltas have
        counts = np.maximum(1, counts >> np.minimum(63, rng.integers(0, 64, hf.SYMBOLS)))
    counts[rng.random(hf.SYMBOLS) > density] = 0
    L = hf.code_lengths(counts).astype(np.int64)
    used = counts > 0
    assert ((L > 0) == used).all() or used.sum() == 0
    assert L.max(initial=0) <= hf.MAX_BITS
    assert (2.0 ** -L[L > 0]).sum() <= 1.0
    if used.sum() >= 2:
        cost = int((counts * L).sum())
        best = _heap_huffman_cost(counts)
        assert cost >= best
        if cost > best:  # only the 12-bit limit may cost bits: then an unlimited code needs > 12
            assert _depth_unlimited(counts) > hf.MAX_BITS


def _depth_unlimited(counts):
    h = [(int(c), 0) for c in counts if c > 0]
    heapq.heapify(h)
    while len(h) > 1:
        (a, da), (b, db) = heapq.heappop(h), heapq.heappop(h)
        heapq.heappush(h, (a + b, max(da, db) + 1))
    return h[0][1]


def test_code_lengths_small_alphabets():
    counts = np.zeros(hf.SYMBOLS, np.int64)
    assert hf.code_lengths(counts).sum() == 0
    counts[17] = 5
    assert hf.code_lengths(counts)[17] == 1  # a lone symbol still takes one bit
    counts[:] = 1  # every symbol: exactly 12 bits each
    assert (hf.code_lengths(counts) == 12).all()
    counts = 2 ** np.minimum(np.arange(hf.SYMBOLS), 60)  # skewed: needs the limit
    L = hf.code_lengths(counts)
    assert L.max() == hf.MAX_BITS and (2.0 ** -L.astype(float)).sum() <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1,
                                            max_size=8))
def test_damaged_streams_are_reported_never_read_or_written_outside(seed, flips):
    rng = np.random.default_rng(seed)
    samples = [make_events(np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 34, n), rng.integers(0, 34, n),
                           rng.integers(0, 2, n)) for n in rng.integers(0, 400, 3)]
    ev, counts, block = _encode(samples, 128)
    if block.data.shape[0] == 0:
        return
    data = block.data.copy()
    for pos, value in flips:
        data[pos % data.shape[0]] ^= value
    words = np.zeros(data.shape[0] // 8 + 5, np.uint64)
    words.view(np.uint8)[:data.shape[0]] = data
    guard = words.copy()
    status, seg, out = _decode(block, counts, (34, 34, 2), words)
    assert np.array_equal(words, guard)  # read only
    assert status in (hf.OK, hf.BAD_CODE, hf.BAD_LENGTH, hf.OUT_OF_BOUNDS)
    if status == hf.OK:
        assert (out["x"] < 34).all() and (out["y"] < 34).all() and (out["p"] < 2).all()
    else:
        assert 0 <= seg < block.seg_rows.shape[0]


def test_truncated_stream_reads_stay_inside():
    """Segments that claim more rows than their bytes hold: the reader clamps at the buffer."""
    ev = make_events(np.arange(1000) * 10, np.arange(1000) % 34, np.arange(1000) % 30, np.arange(1000) % 2)
    _, counts, block = _encode([ev], 4096)
    words = np.zeros(block.data.shape[0] // 8 + 5, np.uint64)
    words.view(np.uint8)[:block.data.shape[0]] = block.data
    status, _, _ = _decode(block, np.array([5000]), (34, 34, 2), words)
    assert status == hf.BAD_LENGTH


@pytest.mark.parametrize("W", [34, 128])
def test_stream_sizes_are_code_lengths_plus_extra_bits(W):
    """Each stream holds exactly the code bits of its symbols plus the escapes' and large deltas'
    raw bits, padded to a byte; and the code costs at most one bit per symbol over the entropy."""
    rng = np.random.default_rng(W)
    n = 40_000
    t = np.cumsum(rng.geometric(1 / 40, n))
    t[n // 2:] -= 10**6  # one negative delta: an escape with 64 raw bits
    x = (W / 2 + W / 4 * np.sin(np.arange(n) / 500) + rng.normal(0, 2, n)).clip(0, W - 1)
    ev = make_events(t, x, rng.integers(0, W, n), rng.integers(0, 2, n))
    _, counts, block = _encode([ev], 10**6)
    hist = hf.symbol_counts(ev, counts, 1)
    L = block.lengths.astype(np.int64)
    extra = int((hist[0] * DT_TABLE[1].astype(np.int64)).sum())
    bits = [int((hist[0] * L[0]).sum()) + extra, int((hist[1] * L[1]).sum()), int((hist[2] * L[2]).sum())]
    sizes = np.diff(np.append(block.seg_bytes[0], block.data.shape[0]))
    assert sizes.tolist() == [-(-b // 8) for b in bits]
    for k in range(3):
        p = hist[k][hist[k] > 0] / n
        assert (hist[k] * L[k]).sum() / n <= -(p * np.log2(p)).sum() + 1
