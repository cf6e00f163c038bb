"""EVT 3.0 RAW: real sample, pure-Python reference state machine vs the fast path, writer round
trips (ADDR_X and vectors), bad input, streaming with state carried across blocks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurodata
from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _evt3_decode, _rawheader, evt3
from tests.helpers import column_digests, event_arrays

SAMPLE = "prophesee/gen41_pedestrians.evt3.raw"
LOOP = 1 << 24
HEADER = b"% evt 3.0\n% end\n"


# ---------------------------------------------------------------- reference (the specification)
def reference_decode(words, height=None):
    """openeb's EVT3 state machine, one word at a time: returns (events, triggers)."""
    events, triggers = [], []
    started = False
    row, is_cd, vbase = 0, False, 0
    time_high = time_low = loop = 0
    for w in (int(v) for v in words):
        kind, payload = w >> 12, w & 0xFFF
        if not started:
            if kind != 0x8:
                continue  # everything before the first TIME_HIGH is skipped
            started = True
            time_high, time_low = payload, 0
            continue
        t = loop * LOOP + time_high * 4096 + time_low
        valid = is_cd and (height is None or row < height)
        if kind == 0x0:
            row, is_cd = payload, True
        elif kind == 0x1:
            is_cd = False
        elif kind == 0x2:
            if valid:
                events.append((t, payload & 0x7FF, row & 0x7FF, payload >> 11))
        elif kind == 0x3:
            vbase = payload
        elif kind in (0x4, 0x5):
            mask = payload if kind == 0x4 else payload & 0xFF
            if valid:
                for bit in range(12):
                    if mask >> bit & 1:
                        events.append((t, ((vbase & 0xF7FF) + bit) % 65536, row & 0x7FF, (vbase >> 11) & 1))
            vbase += 12 if kind == 0x4 else 8
        elif kind == 0x6:
            time_low = payload
        elif kind == 0x8:
            if time_high - payload >= 2048:
                loop += 1
            if payload != time_high:
                time_low = 0
            time_high = payload
        elif kind == 0xA:
            triggers.append((t, (w >> 8) & 0xF, w & 1))
    ev = np.array(events, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    tr = np.array(triggers, dtype=[("t", "<i8"), ("id", "u1"), ("value", "u1")])
    return ev.astype(EVENT_DTYPE), tr.astype(_rawheader.TRIGGER_DTYPE)


def fast_decode(words, height=None, triggers=True):
    h = -1 if height is None else height
    return evt3._decode(np.asarray(words, np.uint16), h, np.zeros(evt3._STATE_SIZE, np.int64), triggers)


def write_words(path, words, header=HEADER):
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.asarray(words, dtype="<u2").tobytes())
    return path


def word(kind, payload):
    return (kind << 12) | (payload & 0xFFF)


# ---------------------------------------------------------------- real sample
def test_sample_matches_reference(samples_dir, reference):
    ev = neurodata.read(samples_dir / SAMPLE, format="evt3")
    ref = reference[SAMPLE]
    assert ev.dtype == EVENT_DTYPE
    assert ev.size == ref["events"] == 5000
    assert column_digests(ev) == ref["sha256"]
    assert [list(map(int, e)) for e in ev[-3:]] == ref["last"]


def test_sample_streams_in_blocks(samples_dir):
    path = samples_dir / SAMPLE
    blocks = list(evt3.iter_blocks(path, 1000))
    assert len(blocks) > 10
    assert np.array_equal(np.concatenate(blocks), evt3.read(path))


def test_sample_reference_decoder_agrees(samples_dir):
    path = samples_dir / SAMPLE
    header = _rawheader.read_header(path)
    words = np.fromfile(path, dtype="<u2", offset=header.data_offset)
    ref, _ = reference_decode(words, height=720)
    assert np.array_equal(evt3.read(path), ref)


def test_sample_inspect(samples_dir):
    info = neurodata.inspect(samples_dir / SAMPLE, format="evt3")
    assert info.format == "evt3"
    assert info.sensor_size == (1280, 720, 2)
    assert info.metadata["sensor_size_inferred"] is True
    assert "hal_plugin_gen41_evk3" in info.metadata["sensor_size_source"]
    assert info.metadata["encoding"] == "evt3"


@pytest.mark.parametrize("head, expected", [
    (b"% evt 3.0\n", True),
    (b"% format EVT3;height=720;width=1280\n% geometry 1280x720\n% end\n\x00\x80", True),
    (b"% evt 2.0\n% end\n", False),
    (b"% Data file containing Event2D events.\n% Version 2\n\x00\x08", False),
    (b"\x00\x80", False),
])
def test_detect(head, expected):
    assert evt3.detect(head) is expected


def test_dat_file_is_not_claimed(samples_dir):
    from neurodata.formats._base import read_head

    assert not evt3.detect(read_head(samples_dir / "prophesee/ncars_sample_td.dat"))


# ---------------------------------------------------------------- fast path == reference
@st.composite
def word_streams(draw):
    """Structured streams: rows (CD, EM, beyond the height), ADDR_X, vectors, time (forward,
    backwards, looping), triggers, OTHERS/CONTINUED and unused types."""
    n = draw(st.integers(0, 300))
    words = []
    for _ in range(n):
        kind = draw(st.sampled_from([0x0, 0x0, 0x1, 0x2, 0x2, 0x2, 0x3, 0x4, 0x5, 0x6, 0x6, 0x8, 0x8,
                                     0xA, 0xE, 0x7, 0xF, 0x9, 0xB, 0xC, 0xD]))
        payload = draw(st.integers(0, 0xFFF))
        if kind == 0x0:
            payload = draw(st.sampled_from([payload, payload & 0x3FF, 0x2FF, 0x300, 0x301]))
        words.append(word(kind, payload))
    return np.array(words, dtype=np.uint16)


@settings(max_examples=150, deadline=None)
@given(word_streams(), st.sampled_from([None, 1, 300, 768, 2048]))
def test_fast_path_equals_reference_structured(words, height):
    ref_ev, ref_tr = reference_decode(words, height)
    ev, tr = fast_decode(words, height)
    assert np.array_equal(ev, ref_ev)
    assert np.array_equal(tr, ref_tr)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), max_size=600), st.sampled_from([None, 480]))
def test_fast_path_equals_reference_random_words(values, height):
    words = np.array(values, dtype=np.uint16)
    ref_ev, ref_tr = reference_decode(words, height)
    ev, tr = fast_decode(words, height)
    assert np.array_equal(ev, ref_ev)
    assert np.array_equal(tr, ref_tr)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), max_size=300))
def test_count_bound_is_an_upper_bound(values):
    words = np.array(values, dtype=np.uint16)
    expect = sum(1 for w in values if w >> 12 == 2)
    expect += sum(bin(w & 0xFFF).count("1") for w in values if w >> 12 == 4)
    expect += sum(bin(w & 0xFF).count("1") for w in values if w >> 12 == 5)
    n_ev, n_tr = _evt3_decode._evt3_scan_kernel(words)[:2]  # (events, triggers) upper bounds
    assert n_ev == expect
    assert n_tr == sum(1 for w in values if w >> 12 == 0xA)
    assert reference_decode(words)[0].size <= n_ev


def test_large_random_file_equals_reference(tmp_path):
    rng = np.random.default_rng(5)
    words = rng.integers(0, 1 << 16, 60000).astype(np.uint16)
    path = write_words(tmp_path / "r.raw", words,
                       header=b"% evt 3.0\n% format EVT3;height=500;width=900\n% end\n")
    ref_ev, ref_tr = reference_decode(words, height=500)
    ev, tr = neurodata.read(path, format="evt3", triggers=True)
    assert np.array_equal(ev, ref_ev) and np.array_equal(tr, ref_tr)
    assert ref_ev.size > 1000 and ref_tr.size > 100
    # the options override the header's geometry
    assert np.array_equal(evt3.read(path, height=2048), reference_decode(words, 2048)[0])
    assert np.array_equal(evt3.read(path, sensor_size=(900, 100, 2)), reference_decode(words, 100)[0])


def test_state_machine_details():
    w = word
    words = [
        w(0x2, 5), w(0x0, 1),                 # before the first TIME_HIGH: skipped
        w(0x8, 3),                            # t = 3·4096
        w(0x2, 7),                            # no row yet: nothing
        w(0x0, 10), w(0x2, 0x800 | 7),        # (7, 10, ON)
        w(0x3, 0x800 | 100), w(0x4, 0b101), w(0x5, 0b10000001),  # x 100, 102 then 112, 119; ON
        w(0x1, 10), w(0x2, 9), w(0x4, 1),     # EM row: nothing, base still advances
        w(0x6, 17), w(0x0, 700), w(0x2, 1),   # row 700 >= height 600: dropped
        w(0x0, 0x800 | 5), w(0x2, 2),         # system-type bit set: row 2053 >= height: dropped
        w(0x0, 5), w(0x3, 2040), w(0x4, 0), w(0x4, 1),  # base 2040 + 12 carries into the polarity bit
        w(0xE, 0x014), w(0xF, 0xFFF), w(0x7, 0xF),      # OTHERS/CONTINUED: ignored
        w(0x6, 100), w(0x2, 1), w(0x6, 50), w(0x2, 2),  # TIME_LOW going back: t decreases (no clamp)
        w(0x8, 3), w(0x2, 3),                 # same TIME_HIGH: time_low kept
        w(0x8, 4), w(0x2, 4),                 # new TIME_HIGH: time_low reset to 0
        w(0x8, 4000), w(0x8, 1952), w(0x2, 5),  # drop of 2048: one loop
        w(0x8, 1000), w(0x2, 6),              # drop of 952: no loop, t goes back
        w(0xA, 0x301),                        # trigger id 3, value 1
    ]
    ev, tr = fast_decode(words, height=600)
    base = 3 * 4096
    assert ev.tolist() == [
        (base, 7, 10, 1), (base, 100, 10, 1), (base, 102, 10, 1), (base, 112, 10, 1), (base, 119, 10, 1),
        (base + 17, 2052 - 2048, 5, 1),
        (base + 100, 1, 5, 0), (base + 50, 2, 5, 0), (base + 50, 3, 5, 0), (4 * 4096, 4, 5, 0),
        (LOOP + 1952 * 4096, 5, 5, 0), (LOOP + 1000 * 4096, 6, 5, 0),
    ]
    assert tr.tolist() == [(LOOP + 1000 * 4096, 3, 1)]
    ref_ev, ref_tr = reference_decode(words, 600)
    assert np.array_equal(ev, ref_ev) and np.array_equal(tr, ref_tr)


# ---------------------------------------------------------------- writer round trips
@settings(max_examples=80, deadline=None)
@given(event_arrays(max_x=2047, max_y=2047, max_t=3 * LOOP, max_n=200), st.booleans())
def test_round_trip(tmp_path_factory, events, vectorize):
    path = tmp_path_factory.mktemp("rt") / "e.raw"
    neurodata.write(path, events, format="evt3", vectorize=vectorize)
    back = neurodata.read(path, format="evt3")
    assert back.dtype == EVENT_DTYPE
    assert np.array_equal(back, events)


@settings(max_examples=80, deadline=None)
@given(event_arrays(max_x=40, max_y=3, max_t=50, max_n=300))
def test_round_trip_dense_vectors(tmp_path_factory, events):
    """Few distinct (t, y, p): long runs of increasing x, encoded as VECT_12/VECT_8 words."""
    order = np.lexsort((events["x"], events["p"], events["y"], events["t"]))
    events = events[order]
    path = tmp_path_factory.mktemp("v") / "e.raw"
    evt3.write(path, events, sensor_size=(64, 4, 2), vectorize=True)
    assert np.array_equal(evt3.read(path), events)
    words = np.fromfile(path, "<u2", offset=evt3.inspect(path).data_offset)
    assert np.array_equal(reference_decode(words, 4)[0], events)


def test_vectorize_writes_vectors(tmp_path):
    x = np.array([3, 4, 9, 14, 15, 30, 31, 32, 33, 60, 2047], np.uint16)
    n = x.size
    ev = make_events(np.full(n, 77), x, np.full(n, 5), np.ones(n))
    path = tmp_path / "v.raw"
    evt3.write(path, ev, vectorize=True)
    words = np.fromfile(path, "<u2", offset=evt3.inspect(path).data_offset)
    kinds = set((words >> 12).tolist())
    assert {0x3, 0x4, 0x5} <= kinds and 0x2 not in kinds
    assert np.array_equal(evt3.read(path), ev)


@pytest.mark.parametrize("t", [
    [],
    [0],
    [LOOP - 1, LOOP, LOOP + 1],
    [LOOP - 4096, LOOP + 4096 * 5 + 3],
    [5, 9 * LOOP + 3],                 # gap of several loops
    [LOOP - 1, 2 * LOOP - 1, 2 * LOOP],
    [evt3.MAX_T],
])
@pytest.mark.parametrize("vectorize", [False, True])
def test_round_trip_edges(tmp_path, t, vectorize):
    n = len(t)
    ev = make_events(np.array(t, np.int64), np.full(n, 2047), np.arange(n) % 2048, np.arange(n) % 2)
    path = tmp_path / "e.raw"
    evt3.write(path, ev, sensor_size=(2048, 2048, 2), vectorize=vectorize)
    assert np.array_equal(evt3.read(path), ev)
    info = evt3.inspect(path)
    assert info.sensor_size == (2048, 2048, 2) and info.metadata["sensor_size_source"] == "geometry"
    head = b"% evt 3.0\n% format EVT3;height=2048;width=2048\n% geometry 2048x2048\n% end\n"
    assert path.read_bytes().startswith(head)
    first = np.frombuffer(path.read_bytes()[info.data_offset:info.data_offset + 2], "<u2")[0]
    assert first >> 12 == 0x8


def test_writer_errors(tmp_path):
    ev = make_events([0, 5, 2], [1, 1, 1], [1, 1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match=r"t\[2\] = 2 < t\[1\] = 5"):
        evt3.write(tmp_path / "e.raw", ev)
    with pytest.raises(ValueError, match="subtract an offset"):
        evt3.write(tmp_path / "e.raw", make_events([evt3.MAX_T + 1], [0], [0], [0]))
    with pytest.raises(ValueError, match="'x'"):
        evt3.write(tmp_path / "e.raw", make_events([0], [2048], [0], [0]))
    with pytest.raises(ValueError, match="outside sensor_size"):
        evt3.write(tmp_path / "e.raw", make_events([0], [5], [480], [0]), sensor_size=(640, 480, 2))
    assert not (tmp_path / "e.raw").exists()


# ---------------------------------------------------------------- bad input
def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.raw"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        evt3.read(path)


def test_truncated_header_line(tmp_path):
    path = tmp_path / "cut.raw"
    path.write_bytes(b"% evt 3.0\n% geometry 1280x7")
    with pytest.raises(FormatError, match="no line end") as exc:
        evt3.read(path)
    assert exc.value.offset == 10


def test_odd_trailing_byte_warns(tmp_path):
    words = [word(0x8, 1), word(0x0, 3), word(0x2, 4)]
    path = tmp_path / "odd.raw"
    path.write_bytes(HEADER + np.array(words, "<u2").tobytes() + b"\x07")
    with pytest.warns(RuntimeWarning, match=r"1 trailing byte\(s\) at offset 22"):
        ev = evt3.read(path)
    assert ev.tolist() == [(4096, 4, 3, 0)]


def test_geometry_options_are_exclusive(tmp_path):
    path = write_words(tmp_path / "g.raw", [word(0x8, 0)])
    with pytest.raises(ValueError, match="not both"):
        evt3.read(path, sensor_size=(10, 10, 2), height=10)
    with pytest.raises(ValueError, match="height"):
        evt3.read(path, height=0)


def test_other_encoding_is_rejected(tmp_path):
    path = write_words(tmp_path / "e2.raw", [0, 0], header=b"% format EVT2;height=480;width=640\n% end\n")
    with pytest.raises(FormatError, match="format='evt2'"):
        evt3.read(path)


# ---------------------------------------------------------------- streaming
def _stream_file(tmp_path, n=6000):
    rng = np.random.default_rng(17)
    kinds = rng.choice([0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0xA, 0xE],
                       n, p=[0.12, 0.02, 0.4, 0.06, 0.08, 0.06, 0.14, 0.06, 0.03, 0.03])
    words = ((kinds << 12) | rng.integers(0, 0x1000, kinds.size)).astype(np.uint16)
    words[:200] &= 0x7FFF  # no TIME_HIGH in the first blocks
    return write_words(tmp_path / "s.raw", words, header=b"% evt 3.0\n% geometry 1000x700\n"), words


@pytest.mark.parametrize("block_bytes", [1, 2, 6, 64, 1001, 1 << 20])
def test_iter_blocks_carries_state(tmp_path, block_bytes):
    path, words = _stream_file(tmp_path, 5000 if block_bytes > 16 else 500)
    ref, _ = reference_decode(words, 700)
    blocks = list(evt3.iter_blocks(path, block_bytes))
    assert np.array_equal(np.concatenate(blocks), ref)
    assert np.array_equal(evt3.read(path), ref)
    got = list(evt3.iter_blocks(path, block_bytes, height=2048))
    assert np.array_equal(np.concatenate(got), reference_decode(words, 2048)[0])


@pytest.mark.parametrize("chunk_events", [1, 13, 1000, 10**6])
def test_iter_events_concatenation_equals_read(tmp_path, chunk_events):
    path, _ = _stream_file(tmp_path)
    full = evt3.read(path)
    chunks = list(neurodata.iter_events(path, chunk_events=chunk_events, format="evt3"))
    assert all(c.size == chunk_events for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), full)


@pytest.mark.parametrize("lines, expected", [
    (b"% geometry 640x480\n% format EVT3;height=720;width=1280\n", ((640, 480), "geometry")),
    (b"% format EVT3;height=720;width=1280\n% plugin_name hal_plugin_gen3_fx3\n", ((1280, 720), "format")),
    (b"% plugin_name hal_plugin_gen3_fx3\n% system_ID 48\n", ((640, 480), "inferred from plugin_name hal_plugin_gen3_fx3")),
    (b"% system_ID 48\n", ((1280, 720), "inferred from system_ID 48")),
    (b"% geometry 0x480\n% system_ID 21\n", ((640, 480), "inferred from system_ID 21")),
    ("% geometry ²x³\n% format EVT3;height=99999999999;width=5\n".encode(), (None, None)),
    (b"% Date 2020\n", (None, None)),
])
def test_geometry_rules(tmp_path, lines, expected):
    path = tmp_path / "g.raw"
    path.write_bytes(b"% evt 3.0\n" + lines + b"% end\n" + np.array([word(0x8, 0)], "<u2").tobytes())
    header = _rawheader.read_header(path)
    assert (header.geometry, header.geometry_source) == expected
    info = evt3.inspect(path)
    assert info.sensor_size == (None if expected[0] is None else expected[0] + (2,))
    assert evt3.read(path).size == 0
