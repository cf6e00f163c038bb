"""EVT 2.0 RAW: real sample, pure-Python reference decoder vs the fast path, writer round trips,
bad input, streaming."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurodata
from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _rawheader, evt2
from tests.helpers import column_digests, event_arrays, run_without_jit

SAMPLE = "prophesee/gen3_sparklers.evt2.raw"
LOOP = 1 << 34
HEADER = b"% evt 2.0\n% end\n"


# ---------------------------------------------------------------- reference (the specification)
def reference_decode(words):
    """openeb's EVT2 decoder, one word at a time: returns (events as list of tuples, triggers)."""
    events, triggers = [], []
    started = False
    prev = 0
    loop = 0
    for w in (int(v) for v in words):
        kind = w >> 28
        if not started:
            if kind != 0x8:
                continue
            started = True
            prev = w & 0x0FFFFFFF
            continue
        base = loop * LOOP + prev * 64
        if kind in (0x0, 0x1):
            events.append((base + ((w >> 22) & 0x3F), (w >> 11) & 0x7FF, w & 0x7FF, kind))
        elif kind == 0x8:
            new = w & 0x0FFFFFFF
            max_timestamp = ((1 << 28) - 1) << 6
            if new < prev and (prev - new) * 64 >= max_timestamp - 10000:
                loop += 1
            prev = new
        elif kind == 0xA:
            triggers.append((base + ((w >> 22) & 0x3F), (w >> 8) & 0x1F, w & 1))
    ev = np.array(events, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    tr = np.array(triggers, dtype=[("t", "<i8"), ("id", "u1"), ("value", "u1")])
    return ev.astype(EVENT_DTYPE), tr.astype(_rawheader.TRIGGER_DTYPE)


def write_words(path, words, header=HEADER):
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.asarray(words, dtype="<u4").tobytes())
    return path


def th(value):
    return 0x80000000 | (value & 0x0FFFFFFF)


def cd(p, ts, x, y):
    return (p << 28) | (ts << 22) | (x << 11) | y


# ---------------------------------------------------------------- real sample
def test_sample_matches_reference(samples_dir, reference):
    ev = neurodata.read(samples_dir / SAMPLE, format="evt2")
    ref = reference[SAMPLE]
    assert ev.dtype == EVENT_DTYPE
    assert ev.size == ref["events"] == 521252
    assert column_digests(ev) == ref["sha256"]
    assert [list(map(int, e)) for e in ev[:3]] == ref["first"]


def test_sample_streams_in_blocks(samples_dir):
    path = samples_dir / SAMPLE
    blocks = list(evt2.iter_blocks(path, 65536))
    assert len(blocks) > 10
    assert np.array_equal(np.concatenate(blocks), evt2.read(path))


def test_sample_reference_decoder_agrees(samples_dir):
    path = samples_dir / SAMPLE
    header = _rawheader.read_header(path)
    words = np.fromfile(path, dtype="<u4", offset=header.data_offset)
    ref, _ = reference_decode(words[:40000])
    fast, _ = evt2._decode(words[:40000], np.zeros(3, np.int64), False, n_chunks=5)
    assert np.array_equal(fast, ref)


def test_sample_detect_and_inspect(samples_dir):
    from neurodata.formats._base import read_head

    path = samples_dir / SAMPLE
    assert evt2.detect(read_head(path))
    info = neurodata.inspect(path, format="evt2")
    assert info.format == "evt2"
    assert info.sensor_size == (640, 480, 2)  # no geometry line: inferred from the camera
    assert info.metadata["sensor_size_inferred"] is True
    assert "hal_plugin_gen3_fx3" in info.metadata["sensor_size_source"]
    assert info.metadata["serial_number"] == "00000157"
    assert info.data_offset == 166


@pytest.mark.parametrize("head, expected", [
    (b"% evt 2.0\n", True),
    (b"% Date x\n% format EVT2;height=480;width=640\n% end\n\x00\x00\x00\x80", True),
    (b"% evt 3.0\n% end\n", False),
    (b"% format EVT21;height=720;width=1280\n% end\n", False),
    (b"% Data file containing Event2D events.\n% Version 2\n% Height 240\n\x00\x08", False),
    (b"\x00\x00\x00\x80\x01\x02", False),
    (b"", False),
])
def test_detect(head, expected):
    assert evt2.detect(head) is expected


def test_registry_detects_written_file(tmp_path):
    from neurodata.formats import detect_format

    path = tmp_path / "x.bin"  # no .raw suffix: detection by the header
    evt2.write(path, make_events([1, 2], [3, 4], [5, 6], [0, 1]))
    assert detect_format(path) == "evt2"
    assert np.array_equal(neurodata.read(path), evt2.read(path))


def test_dat_file_is_not_claimed(samples_dir):
    from neurodata.formats._base import read_head

    head = read_head(samples_dir / "prophesee/ncars_sample_td.dat")
    assert not evt2.detect(head)


# ---------------------------------------------------------------- fast path == reference
_KINDS = [0x0, 0x1, 0x8, 0xA, 0xD, 0xE, 0xF, 0x2, 0x5, 0xC]


@st.composite
def word_streams(draw):
    """Structured streams: CD words, TIME_HIGH (forward, backwards, wrapping), triggers, others."""
    n = draw(st.integers(0, 300))
    kinds = draw(st.lists(st.sampled_from(_KINDS), min_size=n, max_size=n))
    words = []
    th_value = draw(st.integers(0, (1 << 28) - 1))
    for k in kinds:
        payload = draw(st.integers(0, (1 << 28) - 1))
        if k == 0x8:
            step = draw(st.sampled_from(["next", "same", "back", "wrap", "random"]))
            if step == "next":
                th_value = (th_value + draw(st.integers(1, 5))) & 0x0FFFFFFF
            elif step == "back":
                th_value = max(th_value - draw(st.integers(1, 1000)), 0)
            elif step == "wrap":
                th_value = draw(st.integers(0, 200))
            elif step == "random":
                th_value = payload
            words.append(th(th_value))
            if step == "wrap":  # make the wrap detectable next time too
                th_value = (1 << 28) - 1 - draw(st.integers(0, 200))
        else:
            words.append((k << 28) | payload)
    return np.array(words, dtype=np.uint32)


@settings(max_examples=150, deadline=None)
@given(word_streams(), st.integers(1, 9))
def test_fast_path_equals_reference_structured(words, n_chunks):
    ref_ev, ref_tr = reference_decode(words)
    ev, tr = evt2._decode(words, np.zeros(3, np.int64), True, n_chunks=n_chunks, threads=min(n_chunks, 3))
    assert np.array_equal(ev, ref_ev)
    assert np.array_equal(tr, ref_tr)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, (1 << 32) - 1), max_size=400), st.integers(1, 6))
def test_fast_path_equals_reference_random_words(values, n_chunks):
    words = np.array(values, dtype=np.uint32)
    ref_ev, ref_tr = reference_decode(words)
    ev, tr = evt2._decode(words, np.zeros(3, np.int64), True, n_chunks=n_chunks)
    assert np.array_equal(ev, ref_ev)
    assert np.array_equal(tr, ref_tr)


def test_read_file_equals_reference_with_triggers(tmp_path):
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 32, 20000, dtype=np.uint64).astype(np.uint32)
    words[:50] &= 0x1FFFFFFF  # CD words before the first TIME_HIGH are skipped
    path = write_words(tmp_path / "r.raw", words)
    ref_ev, ref_tr = reference_decode(words)
    ev, tr = neurodata.read(path, format="evt2", triggers=True)
    assert np.array_equal(ev, ref_ev) and np.array_equal(tr, ref_tr)
    assert ref_tr.size > 0 and ref_ev.size > 0
    assert np.array_equal(neurodata.read(path, format="evt2"), ref_ev)


def test_loop_rule_and_backwards_time():
    max_th = (1 << 28) - 1
    # threshold MaxTimestamp - 10000 µs = 268435298.75 payload steps of 64 µs
    words = np.array([
        cd(1, 5, 1, 1),               # before the first TIME_HIGH: skipped
        th(max_th - 10), cd(1, 3, 2, 2),
        th(147), cd(0, 1, 3, 3),      # drop of 268435298 steps: just below the threshold, no loop
        th(max_th), th(156), cd(1, 0, 4, 4),  # drop of 268435299 steps: one loop
        th(40), cd(1, 63, 5, 5),      # small step back: t decreases, no loop
    ], dtype=np.uint32)
    ev, _ = evt2._decode(words, np.zeros(3, np.int64), False)
    assert ev["t"].tolist() == [(max_th - 10) * 64 + 3, 147 * 64 + 1, LOOP + 156 * 64, LOOP + 40 * 64 + 63]
    assert ev["x"].tolist() == [2, 3, 4, 5]
    assert ev["p"].tolist() == [1, 0, 1, 1]
    ref, _ = reference_decode(words)
    assert np.array_equal(ev, ref)


# ---------------------------------------------------------------- writer round trips
@settings(max_examples=80, deadline=None)
@given(event_arrays(max_x=2047, max_y=2047, max_t=3 * LOOP, max_n=200))
def test_round_trip(tmp_path_factory, events):
    path = tmp_path_factory.mktemp("rt") / "e.raw"
    neurodata.write(path, events, format="evt2")
    back = neurodata.read(path, format="evt2")
    assert back.dtype == EVENT_DTYPE
    assert np.array_equal(back, events)


@pytest.mark.parametrize("t", [
    [],
    [0],
    [LOOP - 1, LOOP, LOOP + 1],
    [LOOP - 64, LOOP + 5 * 64],
    [5, 7 * LOOP + 3],                     # gap of several loops
    [LOOP - 1, 2 * LOOP - 1, 2 * LOOP],
    [evt2.MAX_T],
])
def test_round_trip_edges(tmp_path, t):
    n = len(t)
    ev = make_events(np.array(t, np.int64), np.full(n, 2047), np.arange(n) % 2048, np.arange(n) % 2)
    path = tmp_path / "e.raw"
    evt2.write(path, ev, sensor_size=(2048, 2048, 2))
    back = evt2.read(path)
    assert np.array_equal(back, ev)
    info = neurodata.inspect(path, format="evt2")
    assert info.format == "evt2" and info.sensor_size == (2048, 2048, 2)
    assert info.metadata["sensor_size_inferred"] is False
    head = path.read_bytes()[:200]
    assert head.startswith(b"% evt 2.0\n% format EVT2;height=2048;width=2048\n% geometry 2048x2048\n% end\n")
    first = np.frombuffer(path.read_bytes()[info.data_offset:info.data_offset + 4], "<u4")[0]
    assert first >> 28 == 0x8  # data starts with a TIME_HIGH


@pytest.mark.parametrize("field, value, match", [
    ("t", -1, "t must be >= 0"),
    ("t", evt2.MAX_T + 1, "subtract an offset"),
    ("x", 2048, "'x'"),
    ("y", 4000, "'y'"),
    ("p", 2, "'p'"),
])
def test_writer_rejects_out_of_range(tmp_path, field, value, match):
    ev = make_events([0, 1, 2], [1, 2, 3], [1, 2, 3], [0, 1, 0])
    ev[field][-1 if field == "t" and value > 0 else 0] = value
    if field == "t" and value < 0:
        ev["t"][:] = [-1, 0, 1]
    with pytest.raises(ValueError, match=match):
        evt2.write(tmp_path / "e.raw", ev)
    assert not (tmp_path / "e.raw").exists()


def test_writer_rejects_unsorted_naming_index(tmp_path):
    ev = make_events([0, 5, 9, 3, 10], [1] * 5, [1] * 5, [1] * 5)
    with pytest.raises(ValueError, match=r"t\[3\] = 3 < t\[2\] = 9"):
        evt2.write(tmp_path / "e.raw", ev)


def test_writer_checks_sensor_size(tmp_path):
    ev = make_events([0, 1], [10, 700], [1, 2], [0, 1])
    with pytest.raises(ValueError, match="outside sensor_size"):
        evt2.write(tmp_path / "e.raw", ev, sensor_size=(640, 480, 2))


# ---------------------------------------------------------------- bad input
def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.raw"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file") as exc:
        evt2.read(path)
    assert exc.value.offset == 0 and str(path) in str(exc.value)


def test_truncated_header_line(tmp_path):
    path = tmp_path / "cut.raw"
    path.write_bytes(b"% evt 2.0\n% serial_numb")
    with pytest.raises(FormatError, match="no line end") as exc:
        evt2.read(path)
    assert exc.value.offset == 10


def test_header_only_is_empty(tmp_path):
    path = tmp_path / "h.raw"
    path.write_bytes(HEADER)
    assert evt2.read(path).size == 0
    assert list(evt2.iter_blocks(path, 64)) == []


def test_trailing_partial_word_warns_and_is_ignored(tmp_path):
    words = [th(10), cd(1, 1, 2, 3), cd(0, 2, 4, 5)]
    path = tmp_path / "odd.raw"
    path.write_bytes(HEADER + np.array(words, "<u4").tobytes() + b"\x01\x02\x03")
    with pytest.warns(RuntimeWarning, match=r"3 trailing byte\(s\) at offset 28"):
        ev = evt2.read(path)
    assert ev["t"].tolist() == [641, 642]


def test_other_encoding_is_rejected(tmp_path):
    path = write_words(tmp_path / "e3.raw", [th(1)], header=b"% evt 3.0\n% end\n")
    with pytest.raises(FormatError, match="format='evt3'"):
        evt2.read(path)


def test_data_looking_like_a_header_line(tmp_path):
    # without '% end', a first word whose bytes start with '% ' is data when the line is not text
    word = 0x80002025  # TIME_HIGH with payload 0x2025: bytes 25 20 00 80
    path = tmp_path / "w.raw"
    path.write_bytes(b"% evt 2.0\n" + np.array([word, cd(1, 0, 1, 1)], "<u4").tobytes())
    assert evt2.read(path)["t"].tolist() == [0x2025 * 64]


# ---------------------------------------------------------------- streaming
def _stream_file(tmp_path, n=5000):
    rng = np.random.default_rng(11)
    words = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    kinds = rng.choice([0, 1, 8, 0xA, 0xE], n, p=[0.4, 0.4, 0.1, 0.05, 0.05]).astype(np.uint32)
    words = (words & 0x0FFFFFFF) | (kinds << 28)
    words[:300] &= 0x1FFFFFFF  # several blocks before the first TIME_HIGH
    wraps = np.flatnonzero(kinds == 8)[::7]
    words[wraps] = th((1 << 28) - 1)
    words[wraps + 1] = th(3)
    return write_words(tmp_path / "s.raw", words), words


@pytest.mark.parametrize("block_bytes", [1, 4, 12, 64, 1000, 1 << 20])
def test_iter_blocks_carries_state(tmp_path, block_bytes):
    path, words = _stream_file(tmp_path, 5000 if block_bytes > 16 else 500)
    ref, _ = reference_decode(words)
    blocks = list(evt2.iter_blocks(path, block_bytes))
    got = np.concatenate(blocks) if blocks else np.empty(0, EVENT_DTYPE)
    assert np.array_equal(got, ref)
    assert np.array_equal(evt2.read(path), ref)


@pytest.mark.parametrize("chunk_events", [1, 7, 1000, 10**6])
def test_iter_events_concatenation_equals_read(tmp_path, chunk_events):
    path, _ = _stream_file(tmp_path)
    full = evt2.read(path)
    chunks = list(neurodata.iter_events(path, chunk_events=chunk_events, format="evt2"))
    assert all(c.size == chunk_events for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), full)


def test_iter_events_by_time(tmp_path):
    ev = make_events(np.arange(0, 10000, 7), np.arange(1429) % 640, np.arange(1429) % 480, np.arange(1429) % 2)
    path = tmp_path / "t.raw"
    evt2.write(path, ev)
    chunks = list(neurodata.iter_events(path, chunk_us=1000, format="evt2"))
    assert np.array_equal(np.concatenate(chunks), ev)
    assert all(np.unique(c["t"] // 1000).size == 1 for c in chunks)


def test_trailing_bytes_warn_once_when_streaming(tmp_path):
    path = tmp_path / "odd.raw"
    path.write_bytes(HEADER + np.array([th(1), cd(1, 0, 1, 1)] * 50, "<u4").tobytes() + b"\x00")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = np.concatenate(list(evt2.iter_blocks(path, 40)))
    assert sum(issubclass(w.category, RuntimeWarning) for w in rec) == 1
    assert got.size == 50


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.sampled_from([0x8, 0xA, 0x2, 0xE, 0xF])), max_size=40),
       st.integers(0, 2**32 - 1), st.integers(1, 5), st.booleans())
def test_runs_of_cd_words_equal_reference(runs, seed, n_chunks, triggers):
    """Mostly-CD streams (the 8-word vector path) with TIME_HIGH, trigger and other words at every
    offset of a group, cut into chunks anywhere: equal to the reference decoder."""
    rng = np.random.default_rng(seed)
    words = [th(int(rng.integers(0, 1 << 28)))]
    for n_cd, kind in runs:
        words += [int(rng.integers(0, 2)) << 28 | int(rng.integers(0, 1 << 28)) for _ in range(n_cd)]
        words.append(th(int(rng.integers(0, 1 << 28))) if kind == 0x8 else kind << 28 | int(rng.integers(0, 1 << 28)))
    words = np.array(words, dtype=np.uint32)
    ref_ev, ref_tr = reference_decode(words)
    ev, tr = evt2._decode(words, np.zeros(3, np.int64), triggers, n_chunks=n_chunks, threads=min(n_chunks, 2))
    assert np.array_equal(ev, ref_ev)
    if triggers:
        assert np.array_equal(tr, ref_tr)


def test_vector_path_without_jit(tmp_path):
    """The numpy stand-in of the 8-word decoder (NUMBA_DISABLE_JIT=1) gives the same events."""
    words = np.array([th(5)] + [(i % 2) << 28 | (i * 7919 % (1 << 28)) for i in range(40)] + [0xA << 28]
                     + [1 << 28 | 12345] * 9, dtype=np.uint32)
    path = tmp_path / "w.raw"
    write_words(path, words)
    code = ("import numpy as np, neurodata, sys; ev = neurodata.read(sys.argv[1]); "
            "np.save(sys.argv[2], ev)")
    run_without_jit(code, path, tmp_path / "e.npy")
    assert np.array_equal(np.load(tmp_path / "e.npy"), reference_decode(words)[0])
    assert np.array_equal(neurodata.read(path), reference_decode(words)[0])
