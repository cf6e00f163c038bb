"""EVT 3.0 fast paths: the blockwise counting / summary kernel against plain references on
streams spanning many blocks, piece cuts after every word type, threads=1 vs threads=N, inputs
too small to cut, heights above 4096, and the vector writes near the end of a piece's slice."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurodata
from neurodata.events import EVENT_DTYPE
from neurodata.formats import _evt3_decode as dec
from neurodata.formats import evt3
from tests.formats.test_evt3 import reference_decode, word

TYPES = list(range(16))


def _regional_stream(rng, n, regions=6):
    """Words in regions of different type mixes (some without rows, vector bases or TIME_HIGH),
    so blocks of ``dec._BLOCK`` words take every branch of the blockwise kernels."""
    out = [word(0x8, int(rng.integers(0, 4096)))]
    th = 0
    for _ in range(regions):
        p = rng.dirichlet(np.ones(16)) * (rng.random(16) < 0.6)
        p[2] += 0.2  # always some ADDR_X
        p /= p.sum()
        size = int(rng.integers(0, max(1, n // regions) + 1))
        kinds = rng.choice(16, size, p=p)
        for k in kinds:
            if k == 0x8:
                th = (th + int(rng.integers(0, 3))) % 4096 if rng.random() < 0.9 else int(rng.integers(0, 4096))
                out.append(word(0x8, th))
            else:
                out.append(word(int(k), int(rng.integers(0, 4096))))
    return np.array(out, np.uint16)


def _ref_tail(words):
    row, is_cd, vbase, inc = -1, -1, None, 0
    for w in (int(v) for v in words):
        kind, payload = w >> 12, w & 0xFFF
        if kind == 0x0:
            row, is_cd = payload, 1
        elif kind == 0x1:
            is_cd = 0
        elif kind == 0x3:
            vbase = payload
        elif kind in (0x4, 0x5):
            step = 12 if kind == 0x4 else 8
            if vbase is None:
                inc += step
            else:
                vbase += step
    return row, is_cd, (inc if vbase is None else vbase), int(vbase is not None)


def _ref_time(words):
    first, th, loops = -1, -1, 0
    for w in (int(v) for v in words):
        if w >> 12 == 0x8:
            h = w & 0xFFF
            loops += th >= h + 2048
            first = h if first < 0 else first
            th = h
    return first, th, loops


def _ref_bound(words):
    w = words.astype(np.int64)
    kind = w >> 12
    bits = [bin(int(v)).count("1") for v in np.where(kind == 4, w & 0xFFF, np.where(kind == 5, w & 0xFF, 0))]
    return int((kind == 2).sum()) + sum(bits), int((kind == 0xA).sum())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 5 * dec._BLOCK))
def test_blockwise_kernels_equal_references(seed, n):
    words = _regional_stream(np.random.default_rng(seed), n)
    assert dec._evt3_scan_kernel(words) == _ref_scan(words)
    assert dec._evt3_scan_kernel(words)[:2] == _ref_bound(words)
    # block edges fall elsewhere in the stream
    for cut in (1, dec._BLOCK - 1, dec._BLOCK + 1):
        assert dec._evt3_scan_kernel(words[cut:]) == _ref_scan(words[cut:])


def _ref_scan(words):
    return _ref_bound(words) + _ref_time(words) + _ref_tail(words)


def _tail(words):
    return dec._evt3_scan_kernel(words)[5:]


def test_scan_kernel_row_and_vector_base_edges():
    empty = np.zeros(0, np.uint16)
    assert dec._evt3_scan_kernel(empty) == (0, 0, -1, -1, 0, -1, -1, 0, 0)
    # a vector base far back, behind blocks of vectors only: their increments all count
    words = np.array([word(0x3, 100), word(0x0, 7)] + [word(0x4, 1), word(0x5, 1)] * (3 * dec._BLOCK), np.uint16)
    assert _tail(words) == (7, 1, 100 + 20 * 3 * dec._BLOCK, 1)
    words = np.array([word(0x1, 0)] + [word(0x5, 0)] * (2 * dec._BLOCK + 5), np.uint16)
    assert _tail(words) == (-1, 0, 8 * (2 * dec._BLOCK + 5), 0)
    # row, EM row and vector base in different blocks; in one block the EM word after the ADDR_Y
    x = [word(0x2, 1)] * (dec._BLOCK - 1)
    words = np.array([word(0x0, 7)] + x + [word(0x1, 0)] + x + [word(0x3, 5)] + x, np.uint16)
    assert _tail(words) == (7, 0, 5, 1) == _ref_tail(words)
    words = np.array([word(0x0, 7)] + x + [word(0x0, 9), word(0x1, 0)] + x, np.uint16)
    assert _tail(words) == (9, 0, 0, 0) == _ref_tail(words)
    # a vector base followed by vectors in its block and in later blocks
    words = np.array([word(0x3, 5), word(0x4, 0)] + x + [word(0x5, 3)] * 3, np.uint16)
    assert _tail(words) == (-1, -1, 5 + 12 + 24, 1) == _ref_tail(words)


def test_scan_kernel_loop_edges():
    """Loops are drops of >= 2048 between consecutive TIME_HIGH words (2048 counts, 2047 not)."""
    ths = [4000, 1952, 1000, 3047, 999, 3000, 953, 953, 4095, 0]
    words = np.array([w for h in ths for w in (word(0x8, h), word(0x2, 1))], np.uint16)
    assert dec._evt3_scan_kernel(words)[2:5] == (4000, 0, 3) == _ref_time(words)
    words = np.insert(words, 1, word(0x0, 1))
    ref = reference_decode(words)[0]
    assert ref.size == len(ths) and np.array_equal(_decode(words, None, 3, 2)[0], ref)


def _decode(words, height, threads, min_chunk):
    state = np.zeros(evt3._STATE_SIZE, np.int64)
    ev, tr = evt3._decode(words, -1 if height is None else height, state, True, threads=threads, min_chunk=min_chunk)
    return ev, tr, state


@pytest.mark.parametrize("before_cut", TYPES)
def test_cut_after_each_word_type(before_cut):
    """Pieces start at TIME_HIGH changes; the word just before each cut is of type ``before_cut``."""
    rng = np.random.default_rng(before_cut)
    body = []
    th = 5
    for _ in range(40):
        body += [int(w) for w in _regional_stream(rng, 60, regions=2)[1:] if w >> 12 != 0x8]
        th = (th + 1) % 4096
        body += [word(before_cut, int(rng.integers(0, 4096))), word(0x8, th)]
    words = np.array([word(0x8, 5), word(0x3, 11), word(0x0, 3)] + body, np.uint16)
    ref_ev, ref_tr = reference_decode(words, 300)
    one = _decode(words, 300, 1, 1 << 20)
    for threads in (2, 3):
        starts = dec._plan(words[1:], np.array([1, 0, 0, 0, 5, 0, 0]), threads * dec._PIECES_PER_THREAD, 16)
        assert len(starts) > 4
        if before_cut != 0x8:  # (with 0x8 a cut may also fall on the TIME_HIGH word before)
            assert all(words[1:][s - 1] >> 12 == before_cut for s in starts[1:])
        ev, tr, state = _decode(words, 300, threads, 16)
        assert np.array_equal(ev, ref_ev) and np.array_equal(tr, ref_tr)
        assert np.array_equal(state, one[2])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 6000), st.sampled_from([2, 3, 8]),
       st.sampled_from([None, 1, 300, 4096, 70000]))
def test_threads_equal_one_piece_and_reference(seed, n, threads, height):
    words = _regional_stream(np.random.default_rng(seed), n)
    ref_ev, ref_tr = reference_decode(words, None if height is not None and height >= 4096 else height)
    ev1, tr1, s1 = _decode(words, height, 1, 1 << 20)
    evn, trn, sn = _decode(words, height, threads, 32)
    assert np.array_equal(ev1, ref_ev) and np.array_equal(tr1, ref_tr)
    assert np.array_equal(evn, ref_ev) and np.array_equal(trn, ref_tr)
    assert np.array_equal(s1, sn)


def test_too_small_to_cut_is_one_piece():
    words = _regional_stream(np.random.default_rng(3), 500)
    state = np.zeros(evt3._STATE_SIZE, np.int64)
    rest = words[dec._evt3_start_kernel(words, state):]
    assert dec._plan(rest, state, 8, rest.size // 2 + 1) == [0]
    assert np.array_equal(_decode(words, None, 8, rest.size // 2 + 1)[0], reference_decode(words)[0])


def test_vectors_filling_a_slice_to_its_end():
    """A piece whose last events come from vector words with few bits set: the 12 / 8 candidate
    records would pass the end of its slice, so they are written one by one."""
    words = [word(0x8, 1), word(0x0, 2)]
    for th in range(2, 40):
        words += [word(0x3, 0x800 | th), word(0x4, 0b1), word(0x5, 0b10), word(0x2, 9), word(0x4, 0x800),
                  word(0x8, th)]
    words = np.array(words, np.uint16)
    ref_ev, _ = reference_decode(words)
    for threads in (1, 2, 5):
        assert np.array_equal(_decode(words, None, threads, 6)[0], ref_ev)
    # dropped rows: bounds exceed the events, pieces leave gaps that are closed
    words[1] = word(0x0, 900)
    ref_ev, _ = reference_decode(words, 480)
    assert np.array_equal(_decode(words, 480, 4, 6)[0], ref_ev)


@pytest.mark.parametrize("vectorize", [False, True])
def test_read_large_file_threads_equal(tmp_path, vectorize):
    """A written file above the default piece size: cut for real, same events on 1, 2, 3 threads."""
    rng = np.random.default_rng(11)
    if vectorize:  # groups of equal (t, y, p) with x in a 32-pixel window: runs of vectors
        g = 200_000
        on = rng.random((g, 32)) < 0.35
        gi, off = np.nonzero(on)
        t, y, p, x0 = (np.sort(rng.integers(0, 3 * (1 << 24), g)), rng.integers(0, 480, g),
                       rng.integers(0, 2, g), rng.integers(0, 600, g))
        ev = np.empty(gi.size, EVENT_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = t[gi], x0[gi] + off, y[gi], p[gi]
    else:
        n = 600_000
        ev = np.empty(n, EVENT_DTYPE)
        ev["t"] = np.sort(rng.integers(0, 3 * (1 << 24), n))
        ev["x"] = rng.integers(0, 640, n)
        ev["y"] = rng.integers(0, 480, n)
        ev["p"] = rng.integers(0, 2, n)
    path = tmp_path / "big.raw"
    neurodata.write(path, ev, "evt3", sensor_size=(640, 480, 2), vectorize=vectorize)
    info = evt3.inspect(path)
    words = np.fromfile(path, "<u2", offset=info.data_offset)
    state = np.zeros(evt3._STATE_SIZE, np.int64)
    rest = words[dec._evt3_start_kernel(words, state):]
    assert len(dec._plan(rest, state, 2 * dec._PIECES_PER_THREAD, dec._MIN_CHUNK_WORDS)) > 1
    if vectorize:
        assert ((words >> 12) == 4).sum() > 50_000
    for threads in (1, 2, 3):
        assert np.array_equal(evt3.read(path, threads=threads), ev)
