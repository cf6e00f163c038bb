"""Long recordings: the cache's time index (O(slice) window reads), annotations, and
``WindowedDataset`` (fixed windows with overlap, windows around labels) against plain slicing."""
import pickle

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.cache import EventsStore, EventsWriter, check_cache
from neurodata.datasets.windows import WindowedDataset, fixed_window_starts
from neurodata.events import make_events

SENSOR = (32, 24, 2)


def _events(t, seed=0):
    rng = np.random.default_rng(seed)
    t = np.asarray(t, np.int64)
    return make_events(t, rng.integers(0, 32, t.size), rng.integers(0, 24, t.size), rng.integers(0, 2, t.size))


def _write(path, samples, chunk=8, annotations=None, labels=None, compression="huffman"):
    with EventsWriter(path, key="k", sensor_size=SENSOR, class_names=("a", "b", "c"), chunk_events=chunk,
                      compression=compression) as w:
        for i, ev in enumerate(samples):
            kw = {} if annotations is None else {"annotations": annotations[i]}
            w.append(ev, labels[i] if labels else i % 3, source=f"s{i}", t_offset=1000 * i, **kw)
    return EventsStore(path, "k")


def _record(store):
    """Log the rows ``(first, end)`` of every read of ``store``'s coded events (``huffman`` layout)."""
    store._file()
    hf, log = store._hf, []
    real = hf.read_segments

    def read_segments(s0, s1, rows, *args):
        log.append((int(hf.rows[s0]), int(hf.rows[s1])))
        return real(s0, s1, rows, *args)
    hf.read_segments = read_segments
    return log


def _mask(ev, a, b):
    return ev[(ev["t"] >= a) & (ev["t"] < b)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-50, 3000), max_size=90), min_size=1, max_size=4),
       st.integers(1, 9), st.lists(st.tuples(st.integers(-100, 3100), st.integers(0, 800)), min_size=1, max_size=6))
def test_window_reads_equal_masking_and_touch_only_their_chunks(tmp_path_factory, ts, chunk, windows):
    samples = [_events(sorted(t), seed=k) for k, t in enumerate(ts)]
    store = _write(tmp_path_factory.mktemp("w") / "c.h5", samples, chunk=chunk)
    log = _record(store)
    for i, ev in enumerate(samples):
        a_row, b_row = store.offsets[i], store.offsets[i + 1]
        for start, length in windows:
            log.clear()
            got = store.read_window(i, start, start + length)
            want = _mask(ev, start, start + length)
            assert np.array_equal(got, want)
            lo, hi = store.window_rows(i, start, start + length)
            assert a_row <= lo <= hi <= b_row
            assert hi - lo <= len(want) + 2 * chunk                    # the window plus one chunk each side
            assert all(s == (lo, hi) for s in log) and (log or hi == lo)  # nothing else is read


def test_a_window_of_a_long_recording_reads_a_few_chunks(tmp_path):
    t = np.arange(0, 2_000_000, 20)                                      # 100 000 events over 2 s
    store = _write(tmp_path / "c.h5", [_events(t)], chunk=4096)
    log = _record(store)
    got = store.read_window(0, 1_000_000, 1_050_000)
    assert np.array_equal(got, _mask(_events(t), 1_000_000, 1_050_000)) and len(got) == 2500
    (lo, hi), = set(log)
    assert hi - lo <= 2500 + 2 * 4096 and hi - lo < 100_000 // 8         # chunk-aligned, a small part
    assert lo % 4096 == 0 and (hi % 4096 == 0 or hi == 100_000)
    log.clear()
    store[0]
    assert set(log) == {(0, 100_000)}                                    # a full read, for comparison


def test_unsorted_samples_and_caches_without_index_fall_back_to_masking(tmp_path):
    ev = _events([5, 3, 9, 1, 7, 7, 2])
    store = _write(tmp_path / "u.h5", [ev], chunk=2)
    assert store.t_sorted.tolist() == [False] and store.t_min.tolist() == [1] and store.t_max.tolist() == [9]
    assert np.array_equal(store.read_window(0, 3, 8), _mask(ev, 3, 8))   # stored order kept
    assert store.window_rows(0, 3, 8) == (0, 7)
    sorted_ev = _events(np.arange(0, 100, 3))
    path = tmp_path / "old.h5"
    _write(path, [sorted_ev], chunk=4, compression="gzip")  # the index is optional in the column layouts
    with h5py.File(path, "a") as f:                                      # a file from before the index
        del f["time_index"]
        assert check_cache(path, "k") is not None  # in a newer file that is damage (index_crc32)
        del f.attrs["index_crc32"]                 # which older files do not have
    assert check_cache(path, "k") is None
    old = EventsStore(path, "k")
    assert not old.has_time_index and old.window_rows(0, 10, 20) == (0, len(sorted_ev))
    assert np.array_equal(old.read_window(0, 10, 20), _mask(sorted_ev, 10, 20))
    win = WindowedDataset(_Base(old), 10)
    assert len(win) == 10 and np.array_equal(win[1][0]["t"], _mask(sorted_ev, 10, 20)["t"] - 10)


def test_a_damaged_time_index_is_not_served(tmp_path):
    path = tmp_path / "d.h5"
    _write(path, [_events(np.arange(50))], chunk=4)
    with h5py.File(path, "a") as f:
        data = f["time_index/chunk_t"][:-1]
        del f["time_index/chunk_t"]
        f["time_index/chunk_t"] = data
    assert "time_index" in check_cache(path, "k")


class _Base:
    """The smallest base a WindowedDataset accepts: a store (plus metadata, like EventDataset)."""

    def __init__(self, store):
        self.store, self.sensor_size, self.classes = store, SENSOR, ("a", "b", "c")

    def metadata(self, i):
        return {"source": self.store.meta("source")[i], "t_offset": int(self.store.meta("t_offset")[i])}


def test_fixed_windows_with_overlap_equal_slicing_the_recording(tmp_path):
    rng = np.random.default_rng(3)
    samples = [_events(np.sort(rng.integers(100, 5000, 400))), _events([]), _events(np.sort(rng.integers(0, 900, 50)))]
    store = _write(tmp_path / "f.h5", samples, chunk=16)
    win = WindowedDataset(_Base(store), 1000, 400)
    expect = []
    for i, ev in enumerate(samples):
        if len(ev):
            t0, t1 = int(ev["t"].min()), int(ev["t"].max())
            starts = [t0 + k * 400 for k in range((t1 - t0) // 400 + 1)]
            expect += [(i, s) for s in starts]
    assert list(zip(win.samples.tolist(), win.starts.tolist())) == expect    # the empty sample has none
    covered = np.zeros(len(samples[0]), bool)
    for j, (i, s) in enumerate(expect):
        events, label = win[j]
        want = _mask(samples[i], s, s + 1000).copy()
        want["t"] -= s
        assert np.array_equal(events, want) and label == i % 3
        assert win.metadata(j) == {"source": f"s{i}", "t_offset": 1000 * i + s, "sample": i,
                                   "t_start": s, "t_stop": s + 1000}
        if i == 0:
            covered |= (samples[0]["t"] >= s) & (samples[0]["t"] < s + 1000)
    assert covered.all()                                                 # stride <= window covers every event
    assert win.targets.tolist() == [i % 3 for i, _ in expect]
    again = pickle.loads(pickle.dumps(win))
    assert np.array_equal(again[3][0], win[3][0])
    full = WindowedDataset(_Base(store), 1000, 400, drop_incomplete=True)
    assert all(s + 1000 <= int(samples[i]["t"].max()) + 1 for i, s in zip(full.samples, full.starts))


def test_fixed_window_starts_rule():
    assert fixed_window_starts(10, 10, 5, 5).tolist() == [10]
    assert fixed_window_starts(0, 20, 10, 5).tolist() == [0, 5, 10, 15, 20]
    assert fixed_window_starts(0, 20, 10, 5, drop_incomplete=True).tolist() == [0, 5, 10]
    assert fixed_window_starts(0, 19, 10, 10, drop_incomplete=True).tolist() == [0, 10]


def test_windows_around_labels_and_annotations(tmp_path):
    box = np.dtype([("t", "<i8"), ("class_id", "<u4")])
    ann = [np.array([(300, 1), (300, 0), (700, 1)], box), np.zeros(0, box)]
    samples = [_events(np.arange(0, 1000, 7)), _events(np.arange(0, 50))]
    store = _write(tmp_path / "a.h5", samples, chunk=8, annotations=ann)
    assert np.array_equal(store.annotations(0), ann[0]) and len(store.annotations(1)) == 0
    win = WindowedDataset(_Base(store), 100, around_labels=True)
    assert len(win) == 2 and win.starts.tolist() == [200, 600]
    events, target = win[0]
    want = _mask(samples[0], 200, 300).copy()
    want["t"] -= 200
    assert np.array_equal(events, want) and target["class_id"].tolist() == [1, 0] and target["t"].tolist() == [100, 100]
    fixed = WindowedDataset(_Base(store), 500)
    assert [len(fixed[j][1]) for j in range(len(fixed))] == [2, 1, 0]    # boxes inside each window
    with pytest.raises(ValueError, match="stride_us"):
        WindowedDataset(_Base(store), 100, 50, around_labels=True)
    plain = _write(tmp_path / "p.h5", samples)
    with pytest.raises(ValueError, match="annotations"):
        WindowedDataset(_Base(plain), 100, around_labels=True)
    with pytest.raises(ValueError, match="window_us"):
        WindowedDataset(_Base(plain), 0)
    with pytest.raises(ValueError, match="stride_us"):  # 0 was taken as "not given": stride = window
        WindowedDataset(_Base(plain), 100, stride_us=0)
    with pytest.raises(TypeError, match="EventsStore"):
        WindowedDataset(object(), 100)


def test_annotations_must_be_consistent(tmp_path):
    box = np.dtype([("t", "<i8"), ("w", "<f4")])
    with pytest.raises(ValueError, match="every sample or for none"):
        _write(tmp_path / "x.h5", [_events([1]), _events([2])], annotations=[np.zeros(1, box), None])
    with pytest.raises(ValueError, match="differs"):
        _write(tmp_path / "y.h5", [_events([1]), _events([2])],
               annotations=[np.zeros(1, box), np.zeros(1, [("t", "<i4")])])
    with pytest.raises(ValueError, match="integer field 't'"):
        _write(tmp_path / "z.h5", [_events([1])], annotations=[np.zeros(1, [("x", "<f4")])])


@settings(max_examples=200, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(-10**6, 10**6), st.integers(0, 5000)), max_size=20),
       window=st.integers(1, 700), stride=st.integers(1, 700), drop=st.booleans())
def test_window_starts_of_many_spans_follow_the_rule(spans, window, stride, drop):
    """One vectorised pass over all spans (a Python loop per sample took 0.4 s per 100 000)
    gives, span by span, the rule's starts: t_min + k * stride up to t_max, and with
    drop_incomplete only windows ending by t_max + 1."""
    from neurodata.datasets.windows import _window_starts

    t_min = np.array([a for a, _ in spans], np.int64)
    t_max = t_min + np.array([d for _, d in spans], np.int64)
    counts, starts = _window_starts(t_min, t_max, window, stride, drop)
    got = np.split(starts, np.cumsum(counts)[:-1]) if len(spans) else []
    for lo, hi, g in zip(t_min.tolist(), t_max.tolist(), got):
        want = [s for s in range(lo, hi + 1, stride) if not drop or s + window <= hi + 1]
        assert g.tolist() == want
