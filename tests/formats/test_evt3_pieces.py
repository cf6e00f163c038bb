"""EVT 3.0 decoding in pieces (threads): equal to the one-piece decode and to the pure-Python
reference, whatever the cut points, including loops, vectors, EM rows and repeated TIME_HIGHs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.formats import _evt3_decode as dec
from neurodata.formats import evt3
from tests.formats.test_evt3 import reference_decode, word


def _stream(rng, n):
    """Random but decodable words: time moving forward with loops, rows, ADDR_X, vectors."""
    out = [word(0x8, int(rng.integers(0, 4096)))]
    th = 0
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            th = (th + int(rng.integers(0, 3))) % 4096 if rng.random() < 0.9 else int(rng.integers(0, 4096))
            out.append(word(0x8, th))
        elif r < 0.25:
            out.append(word(0x6, int(rng.integers(0, 4096))))
        elif r < 0.4:
            out.append(word(0x0, int(rng.integers(0, 4096))))
        elif r < 0.42:
            out.append(word(0x1, 0))
        elif r < 0.47:
            out.append(word(0x3, int(rng.integers(0, 4096))))
        elif r < 0.55:
            out.append(word(int(rng.choice([0x4, 0x5])), int(rng.integers(0, 4096))))
        elif r < 0.57:
            out.append(word(0xA, int(rng.integers(0, 4096))))
        else:
            out.append(word(0x2, int(rng.integers(0, 4096))))
    return np.array(out, np.uint16)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3000), st.sampled_from([2, 3, 5]),
       st.sampled_from([None, 300, 2048]), st.integers(0, 40))
def test_pieces_equal_reference(seed, n, threads, height, lead):
    rng = np.random.default_rng(seed)
    words = np.concatenate([rng.integers(0, 1 << 16, lead).astype(np.uint16), _stream(rng, n)])
    h = -1 if height is None else height
    state = np.zeros(evt3._STATE_SIZE, np.int64)
    ev, tr = evt3._decode(words, h, state, True, threads=threads, min_chunk=16)
    ref_ev, ref_tr = reference_decode(words, height)
    assert np.array_equal(ev, ref_ev) and np.array_equal(tr, ref_tr)
    one = np.zeros(evt3._STATE_SIZE, np.int64)
    evt3._decode(words, h, one, True)
    assert np.array_equal(state, one)  # the state after the last piece is the serial one


def test_plan_cuts_at_time_high_changes():
    rng = np.random.default_rng(1)
    words = _stream(rng, 20000)
    state = np.zeros(evt3._STATE_SIZE, np.int64)
    rest = words[dec._evt3_start_kernel(words, state):]
    starts = dec._plan(rest, state, 4, 1000)
    assert len(starts) == 4
    for s in starts[1:]:
        assert rest[s] >> 12 == 8
        prev = [w & 0xFFF for w in rest[:s] if w >> 12 == 8]
        assert (prev[-1] if prev else state[4]) != rest[s] & 0xFFF


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_read_threads_equal(tmp_path, threads):
    rng = np.random.default_rng(7)
    words = _stream(rng, 200_000)
    path = tmp_path / "s.raw"
    path.write_bytes(b"% evt 3.0\n% end\n" + words.tobytes())
    assert np.array_equal(evt3.read(path, threads=threads), reference_decode(words)[0])
