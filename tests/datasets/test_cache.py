"""neurodata.cache: schema round trip, build protocol (locks, kills, corruption, staleness), readers."""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.cache import (FRAMES_SCHEMA_VERSION, SCHEMA_VERSION, EventsStore, EventsWriter, FramesStore, cache_root,
                             check_cache, content_key, frames_key, get_or_build, write_events_cache, write_frames_cache)
from neurodata.errors import CacheError
from neurodata.events import EVENT_DTYPE
from tests.helpers import event_arrays, random_events

SENSOR = (34, 34, 2)
CLASSES = [str(d) for d in range(10)]
COMPRESSION = pytest.mark.parametrize("compression", ["huffman", "gzip", None])


def make_samples(n=40, seed=0, sensor=SENSOR):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ev = random_events(int(rng.integers(0, 3000)), sensor, duration_us=300_000, seed=seed * 1000 + i)
        out.append((ev, i % 10, {"source": f"Train/{i % 10}/{i:05d}.bin", "t_offset": 1000 * i}))
    return out


def build_events(path, samples, key="k", **kw):
    return write_events_cache(path, samples, key=key, sensor_size=kw.pop("sensor_size", SENSOR),
                              class_names=CLASSES, **kw)


def assert_same(store, samples):
    assert len(store) == len(samples)
    for i, (ev, label, meta) in enumerate(samples):
        got, got_label = store[i]
        assert got.dtype == EVENT_DTYPE and np.array_equal(got, ev) and got_label == label


# --- schema -------------------------------------------------------------------------------------
@COMPRESSION
def test_round_trip_and_attributes(tmp_path, compression):
    samples = make_samples()
    samples[3] = (samples[3][0][:0], 3, samples[3][2])  # an empty sample
    ev = samples[5][0].copy()
    ev["t"] = ev["t"][::-1]  # unsorted timestamps survive (signed deltas)
    samples[5] = (ev, 5, samples[5][2])
    n = build_events(tmp_path / "c.h5", samples, source_checksums={"train.zip": "md5:" + "0" * 32},
                     attrs={"orientation": "as stored", "split": "train"}, compression=compression)
    assert n == len(samples)
    assert store_attr(tmp_path / "c.h5", "compression") == (compression or "none")
    store = EventsStore(tmp_path / "c.h5", key="k")
    assert_same(store, samples)
    assert store[-1][1] == samples[-1][1]
    with pytest.raises(IndexError, match="out of range"):
        store[len(samples)]
    assert store.labels.dtype == np.int64 and list(store.labels) == [s[1] for s in samples]
    assert store.sensor_size == SENSOR and store.class_names == tuple(CLASSES)
    assert store.source_checksums == {"train.zip": "md5:" + "0" * 32}
    assert store.extra == {"orientation": "as stored", "split": "train"}
    assert store.attrs["schema_version"] == SCHEMA_VERSION and store.attrs["complete"] == 1
    assert list(store.meta("source")) == [s[2]["source"] for s in samples]
    assert list(store.meta("t_offset")) == [s[2]["t_offset"] for s in samples]
    # columns are read once per process: metadata of every sample read each whole column per call
    names = store.meta_names()
    store._file = None  # any further read from the file would fail
    assert [store.meta("source")[i] for i in range(len(samples))] == [s[2]["source"] for s in samples]
    assert store.meta_names() == names
    import pickle

    assert pickle.loads(pickle.dumps(store))._meta == {}  # not sent along to DataLoader workers


def store_attr(path, name):
    with h5py.File(path, "r") as f:
        return f.attrs[name]


def test_huffman_layout_as_documented(tmp_path):
    """The default layout's datasets (decoded with h5py alone in docs/cache.md, run by test_docs)."""
    samples = make_samples(12)
    samples[4] = (samples[4][0][:0], 4, samples[4][2])
    build_events(tmp_path / "c.h5", samples, chunk_events=256)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["compression"] == "huffman" and "events/dt" not in f
        code, segs = f["events/code"], f["events/segments"][:]
        assert code.dtype == np.uint8 and code.chunks is None and code.compression is None
        off, M = f["offsets"][:], f.attrs["num_rows"]
        cuts = np.union1d(off[:-1][np.diff(off) > 0], np.arange(0, M, 256))  # sample starts, every 256 rows
        assert np.array_equal(segs[:-1, 0], cuts) and segs[-1].tolist() == [M, code.shape[0], code.shape[0],
                                                                             code.shape[0], 1]
        assert f["events/segment_crc32"].shape == (len(cuts),)
        assert f["events/block_lengths"].shape == (1, 3, 4096) and f["events/block_p_bits"][:].tolist() == [1]


@pytest.mark.parametrize("compression", ["gzip", None])
def test_readable_with_h5py_alone_as_documented(tmp_path, compression):
    samples = make_samples(12)
    build_events(tmp_path / "c.h5", samples, compression=compression)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f.attrs["format"] == "neurodata-events" and f.attrs["complete"] == 1
        for name in ("events/dt", "events/xyp"):  # the documented layouts
            ds = f[name]
            if compression is None:
                assert ds.chunks is None and ds.compression is None and not ds.shuffle
            else:
                assert ds.chunks == (4096,) and ds.compression == "gzip" and ds.compression_opts == 1 and ds.shuffle
        off = f["offsets"][:]
        for i, (ev, label, meta) in enumerate(samples):
            a, b = off[i], off[i + 1]
            t = np.cumsum(f["events/dt"][a:b].astype(np.int64))
            assert np.array_equal(t, ev["t"])
            assert f.attrs["xyp_bits"] == 8
            xyp = f["events/xyp"][a:b]
            assert np.array_equal(xyp & 0xFF, ev["x"]) and np.array_equal((xyp >> 8) & 0xFF, ev["y"])
            assert np.array_equal(xyp >> 16, ev["p"])
            assert f["labels"][i] == label
            assert f["meta/source"][i].decode() == meta["source"] and f["meta/t_offset"][i] == meta["t_offset"]
        assert list(f.attrs["sensor_size"]) == list(SENSOR)
        assert [c.decode() if isinstance(c, bytes) else c for c in f.attrs["class_names"]] == CLASSES


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(event_arrays(max_x=33, max_y=33, max_n=50),
                          event_arrays(max_x=33, max_y=33, max_n=50, sorted_t=False, min_t=-2**62, max_t=2**62)),
                max_size=6),
       st.sampled_from([1, 3, 64]), st.sampled_from(["huffman", "gzip", None]))
def test_round_trip_property(samples, chunk, compression):
    with tempfile.TemporaryDirectory() as d:
        rows = [(ev, i, {"source": str(i), "t_offset": -i}) for i, ev in enumerate(samples)]
        write_events_cache(Path(d) / "c.h5", rows, key="k", sensor_size=SENSOR, chunk_events=chunk, threads=2,
                           compression=compression)
        store = EventsStore(Path(d) / "c.h5", "k")
        assert_same(store, rows)
        assert list(store.meta("t_offset")) == [-i for i in range(len(rows))]
        store.close()
        assert sorted(os.listdir(d)) == ["c.h5"]  # no staging file left


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=6))
def test_string_metadata_round_trip(names):
    """String metadata comes back as written (fixed-length UTF-8: non-ASCII and empty strings
    included); a NUL, which HDF5 strings cannot hold, is refused when the sample is appended."""
    samples = [(np.zeros(0, EVENT_DTYPE), 0, {"source": name, "t_offset": 0}) for name in names]
    with tempfile.TemporaryDirectory() as d:
        bad = next((i for i, name in enumerate(names) if "\0" in name), None)
        if bad is not None:
            with pytest.raises(ValueError, match=f"sample {bad}: metadata 'source' holds a NUL"):
                build_events(Path(d) / "c.h5", samples)
            return
        build_events(Path(d) / "c.h5", samples)
        store = EventsStore(Path(d) / "c.h5")
        assert list(store.meta("source")) == names
        store.close()


def test_index_tables_compressed(tmp_path):
    """Index tables of 4 KiB and more (offsets, labels, segment and time indexes, metadata) are
    stored with shuffle + gzip, which h5py alone reads; smaller ones stay contiguous."""
    samples = [(ev, label, {"source": f"Train/{i:05d}.bin", "t_offset": i}) for i, (ev, label, _)
               in enumerate(make_samples(600, seed=2))]
    build_events(tmp_path / "c.h5", samples)
    with h5py.File(tmp_path / "c.h5") as f:
        for name in ("offsets", "labels", "meta/source", "meta/t_offset", "events/segments",
                     "time_index/t_min", "time_index/chunk_t"):
            ds = f[name]
            assert (ds.compression == "gzip" and ds.shuffle) == (ds.size * ds.dtype.itemsize >= 4096), name
        assert f["offsets"].compression == "gzip" and f["events/block_p_bits"].compression is None
        assert h5py.check_string_dtype(f["meta/source"].dtype).length == len("Train/00000.bin")
        assert list(f["meta/source"].asstr()[:]) == [m["source"] for _, _, m in samples]
    assert_same(EventsStore(tmp_path / "c.h5"), samples)


@COMPRESSION
def test_wide_values(tmp_path, compression):
    big = np.zeros(3, EVENT_DTYPE)
    big["t"] = [5, 2**40, 2**40 + 1]  # a delta beyond int32 widens the column
    big["x"] = [0, 300, 639]
    big["y"] = [479, 0, 1]
    samples = [(big, 0, {"source": "a", "t_offset": 0, "score": 0.5}),
               (make_samples(1)[0][0], 1, {"source": "b", "t_offset": 7, "score": 1.5})]
    write_events_cache(tmp_path / "c.h5", samples, key="k", sensor_size=(640, 480, 2), compression=compression)
    store = EventsStore(tmp_path / "c.h5")
    assert_same(store, samples)
    assert list(store.meta("score")) == [0.5, 1.5]
    if compression == "huffman":
        return
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["events/dt"].dtype == np.int64 and f["events/xyp"].dtype == np.uint64
        assert f.attrs["xyp_bits"] == 16
        xyp = f["events/xyp"][:3]
        assert list(xyp & 0xFFFF) == [0, 300, 639] and list((xyp >> 16) & 0xFFFF) == [479, 0, 1]


@COMPRESSION
@pytest.mark.parametrize("block_rows,threads", [(1, 1), (700, 3), (5000, 2), (1 << 21, None)])
def test_iter_samples_equals_getitem(tmp_path, compression, block_rows, threads):
    """A whole pass in blocks (chunks inflated in threads for gzip) gives exactly ``store[i]``:
    empty samples, samples across chunk and block edges, one larger than a block."""
    rng = np.random.default_rng(11)
    sizes = [0, 1, 4095, 4097, 0, 9000, 3, 0, 12_345, 2]
    samples = [(random_events(int(k), SENSOR, duration_us=10**6, seed=int(rng.integers(1 << 30))), i % 10,
                {"source": str(i), "t_offset": 0}) for i, k in enumerate(sizes)]
    build_events(tmp_path / "c.h5", samples, compression=compression, chunk_events=1024)
    store = EventsStore(tmp_path / "c.h5", "k")
    got = list(store.iter_samples(block_rows=block_rows, threads=threads))
    assert len(got) == len(samples)
    for (ev, label), (ref, ref_label, _) in zip(got, samples):
        assert ev.dtype == EVENT_DTYPE and np.array_equal(ev, ref) and label == ref_label


@COMPRESSION
def test_iter_samples_wide_columns(tmp_path, compression):
    big = np.zeros(3, EVENT_DTYPE)
    big["t"] = [5, 2**40, 2**40 + 1]  # int64 deltas, 16-bit coordinates
    big["x"], big["y"] = [0, 300, 639], [479, 0, 1]
    samples = [(big, 0, {}), (random_events(5000, (640, 480, 2), seed=3), 1, {})]
    write_events_cache(tmp_path / "c.h5", samples, key="k", sensor_size=(640, 480, 2), compression=compression)
    got = list(EventsStore(tmp_path / "c.h5").iter_samples(block_rows=2000))
    for (ev, label), (ref, ref_label, _) in zip(got, samples, strict=True):
        assert np.array_equal(ev, ref) and label == ref_label


def test_iter_samples_empty_store(tmp_path):
    build_events(tmp_path / "c.h5", [])
    assert list(EventsStore(tmp_path / "c.h5").iter_samples()) == []


@settings(max_examples=80, deadline=None)
@given(st.one_of(event_arrays(max_x=40, max_y=32, max_n=60), event_arrays(max_x=40, max_y=32, max_n=60, sorted_t=False)),
       st.sampled_from([(34, 30, 2), (40, 25, 1), (41, 33, 2), (41, 33, 1)]), st.data())
def test_append_scan_matches_reference(ev, sensor, data):
    """The writer's one-pass scan: the first event outside ``sensor`` (p unchecked when P == 1)
    and the time index entries (t_min, t_max, sorted) of a slow numpy reference."""
    from neurodata.cache import _scan_sample

    ev["p"] = data.draw(st.lists(st.integers(0, 2), min_size=len(ev), max_size=len(ev)))
    W, H, P = sensor
    out = (ev["x"] >= W) | (ev["y"] >= H) | ((ev["p"] >= P) if P > 1 else False)
    t = ev["t"]
    ref = (int(np.argmax(out)) if out.any() else -1,
           int(t.min()) if t.size else 0, int(t.max()) if t.size else 0, bool(np.all(np.diff(t) >= 0)))
    assert tuple(_scan_sample(ev, W, H, P)) == ref


def test_writer_validates(tmp_path):
    with EventsWriter(tmp_path / "a.h5", key="k", sensor_size=SENSOR) as w:
        ev = np.zeros(1, EVENT_DTYPE)
        ev["x"] = 34
        with pytest.raises(ValueError, match="outside sensor_size"):
            w.append(ev, 0)
        w.append(ev[:0], 0, extra=1)
        with pytest.raises(ValueError, match="metadata keys"):
            w.append(ev[:0], 0)
    with pytest.raises(ValueError, match="key"):
        EventsWriter(tmp_path / "b.h5", key="", sensor_size=SENSOR)
    with pytest.raises(ValueError, match="compression must be one of"):
        EventsWriter(tmp_path / "c.h5", key="k", sensor_size=SENSOR, compression="lzf")


def test_uncompressed_int32_deltas_and_staging_cleanup(tmp_path):
    samples = make_samples(6)
    build_events(tmp_path / "c.h5", samples, compression=None)
    with h5py.File(tmp_path / "c.h5") as f:  # staged as int64, stored narrow when every delta fits
        assert f["events/dt"].dtype == np.int32 and f["events/xyp"].dtype == np.uint32
        rows = f.attrs["num_rows"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5"]
    assert os.path.getsize(tmp_path / "c.h5") >= 8 * rows  # 4 + 4 bytes per event, uncompressed
    with pytest.raises(RuntimeError, match="boom"):  # an error while writing removes the staging files
        with EventsWriter(tmp_path / "d.h5", key="k", sensor_size=SENSOR, compression=None) as w:
            w.append(samples[0][0], 0)
            assert len(list(tmp_path.glob("d.h5.*.stage"))) == 2
            raise RuntimeError("boom")
    assert not list(tmp_path.glob("*.stage"))


def test_window_reads_uncompressed(tmp_path):
    samples = make_samples(5, seed=4)
    samples = [(np.sort(ev, order="t"), label, meta) for ev, label, meta in samples]
    build_events(tmp_path / "c.h5", samples, compression=None, chunk_events=64)
    store = EventsStore(tmp_path / "c.h5", "k")
    for i, (ev, _, _) in enumerate(samples):
        for lo, hi in [(0, 10), (50_000, 120_000), (299_000, 400_000)]:
            assert np.array_equal(store.read_window(i, lo, hi), ev[(ev["t"] >= lo) & (ev["t"] < hi)])


def test_the_three_layouts_hold_the_same_events(tmp_path):
    samples = make_samples(30, seed=9)
    stores = []
    for name in ("huffman", "gzip", None):
        build_events(tmp_path / f"{name}.h5", samples, compression=name)
        stores.append(EventsStore(tmp_path / f"{name}.h5"))
    sizes = [os.path.getsize(s.path) for s in stores]
    assert sizes[0] < sizes[1] < sizes[2]
    for i in np.random.default_rng(0).integers(0, len(samples), 100):
        (a, la), (b, lb), (c, lc) = (s[i] for s in stores)
        assert np.array_equal(a, b) and np.array_equal(a, c) and la == lb == lc


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURODATA_HOME", str(tmp_path / "env"))
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("NEURODATA_HOME")
    import platformdirs

    assert cache_root() == Path(platformdirs.user_cache_dir("neurodata"))


def test_keys():
    k = content_key("nmnist", split="train", version=1, sensor=(34, 34, 2))
    assert k == content_key("nmnist", version=1, split="train", sensor=[34, 34, 2])
    assert k != content_key("nmnist", split="test", version=1, sensor=(34, 34, 2))
    assert len(k) == 64
    with pytest.raises(TypeError, match="cannot hash"):
        content_key(f=lambda x: x)
    base = frames_key({"frames_number": 16, "split_by": "number"}, "frames-1", "src")
    assert base == frames_key({"split_by": "number", "frames_number": 16}, "frames-1", "src")
    assert base != frames_key({"frames_number": 16, "split_by": "time"}, "frames-1", "src")
    assert base != frames_key({"frames_number": 16, "split_by": "number"}, "frames-2", "src")
    assert base != frames_key({"frames_number": 16, "split_by": "number"}, "frames-1", "other")
    assert base != frames_key({"frames_number": 16.0000001, "split_by": "number"}, "frames-1", "src")
    with pytest.raises(ValueError, match="semantics_version"):
        frames_key({}, "")


# --- build protocol -------------------------------------------------------------------------------
def counting_builder(counter: Path, samples, key="k", delay=0.0):
    def build(tmp):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(delay)
        build_events(tmp, samples, key=key)
    return build


def test_get_or_build_builds_once(tmp_path):
    samples = make_samples(5)
    counter = tmp_path / "count"
    p = tmp_path / "sub" / "c.h5"
    assert get_or_build(p, "k", counting_builder(counter, samples)) == p
    assert get_or_build(p, "k", counting_builder(counter, samples)) == p
    assert len(counter.read_text().split()) == 1
    assert sorted(x.name for x in p.parent.iterdir()) == ["c.h5"]
    assert_same(EventsStore(p, "k"), samples)


def test_failed_build_leaves_nothing(tmp_path):
    p = tmp_path / "c.h5"

    def bad(tmp):
        with EventsWriter(tmp, key="k", sensor_size=SENSOR) as w:
            w.append(make_samples(1)[0][0], 0)
            raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        get_or_build(p, "k", bad)
    assert list(tmp_path.iterdir()) == []

    def incomplete(tmp):
        h5py.File(tmp, "w").close()

    with pytest.raises(CacheError, match="unusable file"):
        get_or_build(p, "k", incomplete)
    assert list(tmp_path.iterdir()) == []


def _build_and_read(path, counter, q):
    try:
        samples = make_samples(30, seed=7)
        get_or_build(path, "k", counting_builder(Path(counter), samples, delay=0.3))
        store = EventsStore(path, "k")
        q.put([hash(store[i][0].tobytes()) for i in range(len(store))])
    except BaseException as e:  # pragma: no cover - reported to the parent
        q.put(repr(e))


def test_four_processes_build_once(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    path, counter = tmp_path / "c.h5", tmp_path / "count"
    procs = [ctx.Process(target=_build_and_read, args=(path, counter, q)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(isinstance(r, list) for r in results), results
    assert all(r == results[0] for r in results)
    assert len(counter.read_text().split()) == 1
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.h5", "count"]


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.datasets.test_cache import make_samples, SENSOR
    from neurodata.cache import EventsWriter, get_or_build

    def slow(tmp):
        print("building", flush=True)
        with EventsWriter(tmp, key="k", sensor_size=SENSOR) as w:
            for ev, label, meta in make_samples(60, seed=11):
                w.append(ev, label, **meta)
                time.sleep(0.005)
    get_or_build(sys.argv[1], "k", slow)
    print("done", flush=True)
""")


@pytest.mark.slow
def test_sigkill_during_build_never_serves_partial_data(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "build.py"
    script.write_text(KILL_SCRIPT.format(root=root))
    path = tmp_path / "cache" / "c.h5"
    expected = make_samples(60, seed=11)
    rng = np.random.default_rng(0)
    temp_seen = 0
    for delay in [*rng.uniform(0.0, 0.4, 6), None]:  # 60 samples take at least 0.3 s to write
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        if delay is not None:  # None: kill while the interpreter starts, before any build
            assert proc.stdout.readline().strip() == "building"
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
        temp_seen += any(x.name.startswith(".c.h5.tmp-") for x in path.parent.iterdir()) if path.parent.exists() else 0
        reason = check_cache(path, "k")
        assert reason in (None, "missing"), reason  # never a partial file under the final name
        if reason is None:
            assert_same(EventsStore(path, "k"), expected)
            path.unlink()
    assert temp_seen >= 3  # most kills hit a build in progress
    # the next run recovers: stale temporary files are removed and the cache is built
    get_or_build(path, "k", lambda tmp: build_events(tmp, expected))
    assert_same(EventsStore(path, "k"), expected)
    assert sorted(x.name for x in path.parent.iterdir()) == ["c.h5"]


def _write_invalid(path, how, samples, compression="gzip"):
    if how == "garbage":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    elif how == "truncated":
        build_events(path, samples, compression=compression)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how in ("incomplete", "schema", "stale", "foreign"):
        build_events(path, samples, key="old" if how == "stale" else "k", compression=compression)
        with h5py.File(path, "a") as f:
            if how == "incomplete":
                del f.attrs["complete"]
            elif how == "schema":
                f.attrs["schema_version"] = SCHEMA_VERSION + 1
            elif how == "foreign":
                f.attrs["format"] = "something-else"


@COMPRESSION
@pytest.mark.parametrize("how", ["garbage", "truncated", "incomplete", "schema", "stale", "foreign"])
def test_invalid_file_detected_and_rebuilt(tmp_path, how, compression):
    samples = make_samples(8)
    path = tmp_path / "c.h5"
    _write_invalid(path, how, samples, compression)
    assert check_cache(path, "k") is not None
    with pytest.raises(CacheError, match="cannot be served"):
        EventsStore(path, key="k")
    counter = tmp_path / "count"
    with pytest.warns(UserWarning, match="removing and rebuilding"):
        get_or_build(path, "k", counting_builder(counter, samples))
    assert len(counter.read_text().split()) == 1
    assert_same(EventsStore(path, "k"), samples)


def test_store_opens_its_file_once(tmp_path, monkeypatch):
    """A store checks and reads its file in one open (it used to open it three times: the check,
    the index, the time index), and ``open_or_build`` serves a good file without a build."""
    import neurodata.cache as cache

    samples = make_samples(5)
    path = tmp_path / "c.h5"
    build_events(path, samples)
    opened, real = [], cache._open
    monkeypatch.setattr(cache, "_open", lambda p, mode="r": opened.append(mode) or real(p, mode))
    store = EventsStore(path, "k")
    assert opened == ["r"] and store.t_min is not None and not store.has_annotations
    opened.clear()
    store = EventsStore.open_or_build(path, "k", lambda: pytest.fail("built again"), sensor_size=SENSOR)
    assert opened == ["r"]
    assert_same(store, samples)


def test_stale_key_not_served(tmp_path):
    old, new = make_samples(4, seed=1), make_samples(6, seed=2)
    path = tmp_path / "c.h5"
    EventsStore.open_or_build(path, "v1", lambda: old, sensor_size=SENSOR)
    with pytest.raises(CacheError, match="stale"):
        EventsStore(path, key="v2")
    with pytest.warns(UserWarning, match="stale"):
        store = EventsStore.open_or_build(path, "v2", lambda: new, sensor_size=SENSOR)
    assert_same(store, new)


# --- frames ---------------------------------------------------------------------------------------
def frames_samples(n=6, shape=(2, 34, 34)):
    rng = np.random.default_rng(0)
    return [(rng.poisson(0.3, (int(T), *shape)).astype(np.float32), i % 3, {"source": f"s{i}", "t_offset": 0})
            for i, T in enumerate(rng.integers(0, 20, n))]


def test_frames_round_trip_and_staleness(tmp_path):
    samples = frames_samples()
    params = {"frames_number": 16, "split_by": "number"}
    key = frames_key(params, "frames-1", "events-key")
    path = tmp_path / f"frames-{key[:16]}.h5"
    store = FramesStore.open_or_build(path, key, lambda: samples, frame_shape=(2, 34, 34), dtype=np.float32,
                                      params=params, semantics_version="frames-1", class_names=["a", "b", "c"])
    assert len(store) == len(samples)
    for i, (fr, label, _) in enumerate(samples):
        got, got_label = store[i]
        assert got.dtype == np.float32 and got.shape == fr.shape and np.array_equal(got, fr) and got_label == label
    assert store.params == params and store.semantics_version == "frames-1" and store.frame_shape == (2, 34, 34)
    other = frames_key({**params, "frames_number": 8}, "frames-1", "events-key")
    with pytest.raises(CacheError, match="stale"):
        FramesStore(path, key=other)
    with pytest.raises(CacheError, match="not a neurodata events cache"):
        EventsStore(path)
    with pytest.raises(ValueError, match="frames must have shape"):
        write_frames_cache(tmp_path / "x.h5", [(np.zeros((2, 1, 34, 34)), 0, {})], key="k", frame_shape=(2, 34, 34),
                           dtype=np.float32, params={}, semantics_version="1")


def _frames_file(path, samples, dtype):
    write_frames_cache(path, samples, key="k", frame_shape=samples[0][0].shape[1:], dtype=dtype,
                       params={}, semantics_version="1")
    return FramesStore(path, key="k")


def _stored(path):
    with h5py.File(path) as f:
        return f["frames"].dtype, f.attrs["schema_version"], f.attrs["dtype"]


def _assert_bits_equal(got, ref, dtype):
    assert got.dtype == dtype and got.shape == ref.shape
    assert got.tobytes() == np.ascontiguousarray(ref, dtype).tobytes()  # bit for bit (-0.0, NaN)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint16, np.uint8])
def test_frames_stored_narrow_served_exact(tmp_path, dtype):
    """Counts are stored as uint8, then uint16, then the served dtype, whichever first holds every
    value written so far; what is read back is always the served dtype, bit for bit."""
    rng = np.random.default_rng(3)
    small = [rng.integers(0, 256, (3, 2, 4, 5)).astype(np.uint8) for _ in range(3)]
    samples = [(fr, i, {}) for i, fr in enumerate(small)]
    store = _frames_file(tmp_path / "a.h5", samples, dtype)
    assert _stored(store.path) == (np.dtype(np.uint8), FRAMES_SCHEMA_VERSION, np.dtype(dtype).str)
    for i, (fr, _, _) in enumerate(samples):
        _assert_bits_equal(store[i][0], fr, dtype)
        assert store[i][0].flags.writeable  # also when served as stored (no cast to copy the bytes)
    if np.dtype(dtype).itemsize < 2:
        return
    # a later sample needing 16 bits widens everything written before
    samples.append((np.full((2, 2, 4, 5), 300, np.uint16), 9, {}))
    samples.append((np.zeros((0, 2, 4, 5), np.uint8), 1, {}))
    store = _frames_file(tmp_path / "b.h5", samples, dtype)
    assert _stored(store.path)[0] == (np.uint16 if np.dtype(dtype).itemsize > 2 else dtype)
    for i, (fr, label, _) in enumerate(samples):
        got, got_label = store[i]
        _assert_bits_equal(got, fr, dtype)
        assert got_label == label


def test_frames_writer_copies_rows(tmp_path):
    """The caller may refill one buffer between appends (one chunk per sample here, so each
    append hands whole chunks to the compression threads)."""
    buf = np.zeros((2, 1, 2, 2), np.uint8)

    def samples():
        for v in range(1, 40):
            buf[:] = v
            yield buf, v % 3, {}
    write_frames_cache(tmp_path / "f.h5", samples(), key="k", frame_shape=(1, 2, 2), dtype=np.uint8, params={},
                       semantics_version="1", chunk_bytes=8)
    store = FramesStore(tmp_path / "f.h5")
    assert [int(store[i][0].min()) for i in range(len(store))] == list(range(1, 40))


@pytest.mark.parametrize("value", [70_000.0, -1.0, 0.5, -0.0, np.nan, np.inf])
def test_frames_not_narrowable_stored_as_served(tmp_path, value):
    fr = np.zeros((2, 1, 3, 3), np.float32)
    fr[1, 0, 2, 2] = value
    samples = [(np.ones_like(fr), 0, {}), (fr, 1, {}), (np.full_like(fr, 7), 2, {})]
    store = _frames_file(tmp_path / "f.h5", samples, np.float32)
    assert _stored(store.path)[0] == np.float32
    for i, (ref, _, _) in enumerate(samples):
        _assert_bits_equal(store[i][0], ref, np.float32)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 1.0, 17.0, 255.0, 256.0, 65535.0, 65536.0, 2.5, -0.0, -3.0]),
                         min_size=4, max_size=4), min_size=1, max_size=6))
def test_frames_any_values_round_trip(values):
    with tempfile.TemporaryDirectory() as d:
        samples = [(np.array(v, np.float32).reshape(4, 1, 1, 1), i, {}) for i, v in enumerate(values)]
        store = _frames_file(Path(d) / "h.h5", samples, np.float32)
        for i, (ref, _, _) in enumerate(samples):
            _assert_bits_equal(store[i][0], ref, np.float32)
        store.close()


def test_frames_dtype_attribute_checked(tmp_path):
    store = _frames_file(tmp_path / "d.h5", [(np.ones((1, 1, 2, 2)), 0, {})], np.float32)
    store.close()
    with h5py.File(store.path, "a") as f:
        f.attrs["dtype"] = "<i1"  # uint8 storage cannot serve a narrower type
    with pytest.raises(CacheError, match="cannot be served as dtype"):
        FramesStore(store.path)
    with h5py.File(store.path, "a") as f:
        f.attrs["schema_version"] = 1  # written before narrow storage: rebuilt, never served as uint8
    assert "schema version 1" in check_cache(store.path, kind="frames")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=8), st.integers(1, 6), st.booleans())
def test_frames_direct_read_equals_h5py(lengths, chunk_rows, wide):
    """The store inflates the chunks holding a sample itself (ISA-L); whatever the chunking (one
    chunk per sample, samples across chunk edges, empty samples) and the stored width (uint8, or
    uint16 whose bytes the shuffle filter split), it returns what h5py reads, which is what was
    written."""
    rng = np.random.default_rng(len(lengths) * 7 + chunk_rows)
    top = 1000 if wide else 200
    samples = [(rng.integers(0, top, (T, 2, 3, 4)).astype(np.float32), i, {}) for i, T in enumerate(lengths)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.h5"
        write_frames_cache(path, samples, key="k", frame_shape=(2, 3, 4), dtype=np.float32, params={},
                           semantics_version="1", chunk_bytes=chunk_rows * 2 * 3 * 4 * 4)
        store = FramesStore(path, key="k")
        store._file()
        needs_16_bits = any(fr.size and fr.max() > 255 for fr, _, _ in samples)
        assert store._chunk is not None and store._ds.dtype == (np.uint16 if needs_16_bits else np.uint8)
        ds = store._ds
        where = [(ds.id.get_chunk_info(k).byte_offset, ds.id.get_chunk_info(k).size)
                 for k in range(ds.id.get_num_chunks())]
        assert store._where is not None and store._where.tolist() == [list(w) for w in where]
        for table in (store._where, None):  # chunks read at the table's positions, then through HDF5's index
            store._where = table
            for i, (ref, label, _) in enumerate(samples):
                a, b = int(store.offsets[i]), int(store.offsets[i + 1])
                got, got_label = store[i]
                assert np.array_equal(got, ref) and np.array_equal(store._ds[a:b], ref) and got_label == label
        store.close()


def _open_fds():
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


@pytest.mark.skipif(_open_fds() is None, reason="needs /proc/self/fd to count descriptors")
def test_stores_dropped_without_close_release_their_descriptors(tmp_path):
    """The descriptors a store reads with (``huffman`` events, frames) are closed when the store is
    garbage-collected, also for pickled copies: a loop that opens datasets does not run out of them."""
    import gc

    events = tmp_path / "e.h5"
    build_events(events, make_samples(4))
    frames = tmp_path / "f.h5"
    write_frames_cache(frames, frames_samples(), key="k", frame_shape=(2, 34, 34), dtype=np.float32, params={},
                       semantics_version="1")
    gc.collect()
    before = _open_fds()
    for _ in range(30):
        for store in (EventsStore(events, "k"), FramesStore(frames, "k")):
            store[0]
            pickle.loads(pickle.dumps(store))[1]
            del store
    gc.collect()
    assert _open_fds() == before


def test_chunk_table_without_chunk_iter(tmp_path):
    """``chunk_table`` asks HDF5 chunk by chunk where ``chunk_iter`` is missing (HDF5 < 1.12.3),
    gives None where neither query exists (HDF5 < 1.10.5) or a chunk was never written, and the
    reader then does not trust a stored table it cannot check."""
    from types import SimpleNamespace

    from neurodata._h5chunks import chunk_table
    from neurodata.cache import _chunk_positions

    with h5py.File(tmp_path / "c.h5", "w") as f:
        ds = f.create_dataset("d", shape=(10, 3), chunks=(3, 3), dtype="u1", compression="gzip", shuffle=True)
        ds[:9] = 7  # chunks 0-2 written, chunk 3 (row 9) never
        full = f.create_dataset("e", data=np.arange(30, dtype="u1").reshape(10, 3), chunks=(3, 3),
                                compression="gzip", shuffle=True)
        expected = [[full.id.get_chunk_info(k).byte_offset, full.id.get_chunk_info(k).size] for k in range(4)]
        assert chunk_table(full).tolist() == expected and chunk_table(ds) is None
        old = SimpleNamespace(get_num_chunks=full.id.get_num_chunks, get_chunk_info=full.id.get_chunk_info)
        assert chunk_table(SimpleNamespace(chunks=full.chunks, shape=full.shape, id=old)).tolist() == expected
        older = SimpleNamespace(chunks=full.chunks, shape=full.shape, ndim=2, id=SimpleNamespace())
        assert chunk_table(older) is None
        table = f.create_dataset("t", data=np.array(expected, np.int64))
        table.attrs["crc32"] = zlib.crc32(np.array(expected, "<i8").tobytes())
        assert _chunk_positions(table, full).tolist() == expected
        assert _chunk_positions(table, older) is None


def test_frames_chunk_table_trusted_only_when_it_matches(tmp_path):
    """``frames_chunks`` (where each chunk lies) is used only when its CRC-32 matches and its
    first and last entries are where HDF5's chunk index puts them; otherwise (deleted, damaged,
    chunks moved by a rewrite) reads go through HDF5's index, with the same result."""
    rng = np.random.default_rng(3)
    samples = [(rng.integers(0, 9, (int(T), 2, 8, 8)).astype(np.float32), i, {}) for i, T in enumerate([4, 0, 4, 7])]
    path = tmp_path / "f.h5"
    write_frames_cache(path, samples, key="k", frame_shape=(2, 8, 8), dtype=np.float32, params={},
                       semantics_version="1", chunk_bytes=4 * 2 * 8 * 8 * 4)

    def reads(expect_table):
        fds = _open_fds()
        store = FramesStore(path, key="k")
        copy = pickle.loads(pickle.dumps(store))  # per process: the copy binds its own descriptor
        for s in (store, copy):
            assert all(np.array_equal(s[i][0], ref) for i, (ref, _, _) in enumerate(samples))
            assert (s._where is not None) == expect_table
            s.close()
        assert _open_fds() == fds  # close() closed the descriptors
    reads(True)
    with h5py.File(path, "a") as f:
        good = f["frames_chunks"][()]
        moved = good.copy()
        moved[0, 0] += 8  # as if a rewrite had moved the first chunk, with a matching CRC
        f["frames_chunks"][...] = moved
        f["frames_chunks"].attrs["crc32"] = zlib.crc32(moved.astype("<i8").tobytes())
    reads(False)
    with h5py.File(path, "a") as f:
        f["frames_chunks"][...] = good
    reads(False)  # the right table under the wrong CRC-32: not trusted either
    with h5py.File(path, "a") as f:
        f["frames_chunks"].attrs["crc32"] = zlib.crc32(good.astype("<i8").tobytes())
    reads(True)
    with h5py.File(path, "a") as f:
        del f["frames_chunks"]  # files written before the table existed
    reads(False)


def test_frames_other_filters_read_through_h5py(tmp_path):
    """A frames dataset stored other than shuffle + deflate (here rewritten without filters, as
    ``h5repack`` can) is read through h5py, with the same result."""
    samples = frames_samples()
    store = _frames_file(tmp_path / "f.h5", samples, np.float32)
    store.close()
    with h5py.File(store.path, "a") as f:
        data = f["frames"][:]
        del f["frames"]
        f.create_dataset("frames", data=data, chunks=(3, *data.shape[1:]))
    store = FramesStore(store.path, key="k")
    store._file()
    assert store._chunk is None
    for i, (ref, label, _) in enumerate(samples):
        assert np.array_equal(store[i][0], ref) and store[i][1] == label


def test_damaged_frames_chunk(tmp_path):
    """A damaged frames chunk raises CacheError (zlib's checksum), naming the sample."""
    rng = np.random.default_rng(5)
    samples = [(rng.integers(0, 9, (4, 2, 8, 8)).astype(np.float32), i, {}) for i in range(3)]
    path = tmp_path / "f.h5"
    write_frames_cache(path, samples, key="k", frame_shape=(2, 8, 8), dtype=np.float32, params={},
                       semantics_version="1", chunk_bytes=4 * 2 * 8 * 8 * 4)  # one chunk per sample
    with h5py.File(path) as f:
        info = f["frames"].id.get_chunk_info(1)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 2)
        fh.write(b"\x00\xff" * (info.size // 2 - 1))
    store = FramesStore(path, key="k")
    with pytest.raises(CacheError, match="sample 1 cannot be read.*damaged"):
        store[1]
    assert np.array_equal(store[0][0], samples[0][0]) and np.array_equal(store[2][0], samples[2][0])


# --- readers in other processes ------------------------------------------------------------------
def identity(x):
    return x


@pytest.mark.slow
@COMPRESSION
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_pickle_and_dataloader_workers(tmp_path, context, compression):
    torch = pytest.importorskip("torch")
    samples = make_samples(24, seed=5)
    build_events(tmp_path / "c.h5", samples, compression=compression)
    store = EventsStore(tmp_path / "c.h5", "k")
    store[0]  # opens a handle in the parent before the workers start
    clone = pickle.loads(pickle.dumps(store))
    assert clone._h5 is None
    assert_same(clone, samples)
    loader = torch.utils.data.DataLoader(store, batch_size=None, num_workers=2, collate_fn=identity,
                                         multiprocessing_context=context)
    got = list(loader)
    assert len(got) == len(samples)
    for (ev, label), (ref, ref_label, _) in zip(got, samples):
        assert np.array_equal(ev, ref) and label == ref_label


@COMPRESSION
def test_damaged_event_bytes(tmp_path, compression):
    """huffman: a damaged segment raises CacheError on read (its CRC-32). gzip: likewise (zlib's
    checksum). None: the columns carry no checksum, but a file cut anywhere inside them is refused
    when opened (HDF5's end-of-file check)."""
    samples = make_samples(20, seed=6)
    path = tmp_path / "c.h5"
    build_events(path, samples, compression=compression)
    with h5py.File(path) as f:
        ds = f["events/code" if compression == "huffman" else "events/xyp"]
        start = ds.id.get_chunk_info(0).byte_offset if compression == "gzip" else ds.id.get_offset()
    if compression == "huffman":
        with open(path, "r+b") as fh:
            fh.seek(start + 2)
            fh.write(b"\xff")
        with pytest.raises(CacheError, match="sample 0 is damaged.*CRC-32"):
            EventsStore(path, "k")[0]
        with pytest.raises(CacheError, match="samples 0..[0-9]+ is damaged"):
            list(EventsStore(path, "k").iter_samples())
        assert_same(_without_first(EventsStore(path, "k")), samples[1:])
    elif compression:
        with open(path, "r+b") as fh:
            fh.seek(start + 2)
            fh.write(b"\xff" * 64)
        with pytest.raises(CacheError, match="sample 0 cannot be read.*damaged"):
            EventsStore(path, "k")[0]
        with pytest.raises(CacheError, match="samples 0..* cannot be read.*damaged"):
            list(EventsStore(path, "k").iter_samples())
    else:
        with open(path, "r+b") as fh:
            fh.truncate(start + 100)
        with pytest.raises(CacheError, match="cannot be served"):
            EventsStore(path, "k")


class _without_first:
    """``store`` without its sample 0 (for reading around a damaged first sample)."""

    def __init__(self, store):
        self.store = store

    def __len__(self):
        return len(self.store) - 1

    def __getitem__(self, i):
        return self.store[i + 1]


@COMPRESSION
def test_writer_copies_appended_events(tmp_path, compression):
    """A caller may reuse its array after ``append``: what was appended is what is stored."""
    samples = make_samples(6, seed=9)
    buf = np.zeros(4000, EVENT_DTYPE)
    with EventsWriter(tmp_path / "c.h5", key="k", sensor_size=SENSOR, compression=compression) as w:
        for ev, label, _ in samples:
            view = buf[:ev.shape[0]]
            view[:] = ev
            w.append(view, label)
            buf[:] = 0  # overwritten before the writer flushes
    assert_same(EventsStore(tmp_path / "c.h5", "k"), samples)


def test_huffman_segment_table_checked(tmp_path):
    """A damaged index (its CRC-32) is refused, and so is one whose CRC matches but whose segment
    table or code lengths cannot be right (a writer bug): never decoded."""
    from neurodata.cache import _index_crc

    samples = make_samples(10, seed=4)
    for how in ("crc", "label", "order", "range", "lengths", "kraft", "start"):
        path = tmp_path / f"{how}.h5"
        build_events(path, samples, chunk_events=512)
        with h5py.File(path, "a") as f:
            if how == "crc":
                f["events/block_p_bits"][0] = 0
            elif how == "label":
                f["labels"][3] += 1
            elif how in ("order", "range", "start"):
                segs = f["events/segments"][:]
                if how == "order":
                    segs[1, 1], segs[2, 1] = segs[2, 1], segs[1, 1]
                elif how == "range":
                    segs[1, 4] = 5
                else:
                    segs[1, 0] += 1
                f["events/segments"][...] = segs
            else:
                lengths = f["events/block_lengths"][:]
                lengths[0, 1, :] = 13 if how == "lengths" else 1
                del f["events/block_lengths"]
                f["events/block_lengths"] = lengths
            if how not in ("crc", "label"):
                f["events"].attrs["index_crc32"] = _index_crc(f)
        reason = check_cache(path, "k")
        assert reason is not None and ("index_crc32" in reason) == (how in ("crc", "label")), (how, reason)
        with pytest.raises(CacheError, match="cannot be served"):
            EventsStore(path, "k")


def test_huffman_reads_without_preadv(tmp_path, monkeypatch):
    """Where ``os.preadv`` is missing (macOS), the reader falls back to ``os.pread``."""
    samples = make_samples(8, seed=12)
    build_events(tmp_path / "c.h5", samples)
    monkeypatch.delattr(os, "preadv", raising=False)
    assert_same(EventsStore(tmp_path / "c.h5", "k"), samples)


def test_huffman_file_fuzz_never_serves_wrong_events(tmp_path):
    """Random bytes of a ``huffman`` cache file flipped: the file is refused, or a read raises
    ``CacheError``, or the read returns exactly the events and label that were written."""
    samples = make_samples(12, seed=21)
    path = tmp_path / "c.h5"
    build_events(path, samples, chunk_events=512)
    data = path.read_bytes()
    with h5py.File(path) as f:  # half of the mutations hit the coded events, the rest anywhere
        code = f["events/code"]
        lo, hi = code.id.get_offset(), code.id.get_offset() + code.shape[0]
    rng = np.random.default_rng(0)
    served = 0
    for trial in range(150):
        mutant = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(lo, hi) if trial % 2 else rng.integers(0, len(data)))
            mutant[pos] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(mutant))
        if check_cache(path, "k") is not None:
            continue
        try:
            store = EventsStore(path, "k")
        except CacheError:
            continue
        for i, (ev, label, _) in enumerate(samples):
            try:
                got, got_label = store[i]
            except CacheError:
                continue
            assert np.array_equal(got, ev) and got_label == label, (trial, i)
            served += 1
        store.close()
    assert served > 0  # most mutations outside a sample leave it readable


def test_sample_index_is_an_integer_and_a_removed_file_is_a_cache_error(tmp_path):
    """Indices are integers (numpy's and 0-d tensors too): 2.7 used to read sample 2. A cache file
    removed after the store was opened ends in ``CacheError`` naming it (a bare h5py error before)."""
    import torch

    path = tmp_path / "e.h5"
    build_events(path, make_samples(4))
    store = EventsStore(path, "k")
    assert store[np.int32(1)][1] == store[torch.tensor(1)][1] == store[1][1]
    for bad in (2.7, slice(1, 3), "1"):
        with pytest.raises(TypeError, match="integer"):
            store[bad]
    fresh = EventsStore(path, "k")
    path.unlink()
    with pytest.raises(CacheError, match="was removed after"):
        fresh[0]
    build_events(path, make_samples(4))  # the store stays usable; a new file at the path is not its file
    with pytest.raises(CacheError, match="was replaced after"):  # (AttributeError on None before)
        fresh[0]


@COMPRESSION
def test_a_file_replaced_after_opening_is_never_read(tmp_path, monkeypatch, compression):
    """The store checks a file once and opens it again lazily (per process): another cache put at
    the path in between was decoded with the old sample index (heap corruption, abort), and a
    relative NEURODATA_HOME followed by os.chdir pointed the store at other files."""
    a, b = make_samples(6, seed=1), make_samples(6, seed=2)
    path = tmp_path / "e.h5"
    build_events(path, a, compression=compression)
    store = EventsStore(path, "k")
    build_events(tmp_path / "other.h5", b, compression=compression)
    os.replace(tmp_path / "other.h5", path)
    with pytest.raises(CacheError, match="was replaced after"):
        store[5]
    monkeypatch.chdir(tmp_path)
    assert cache_root("rel") == tmp_path / "rel" and cache_root("rel").is_absolute()
    monkeypatch.setenv("NEURODATA_HOME", "home")
    assert cache_root() == tmp_path / "home"
    rel = EventsStore("e.h5", "k")
    monkeypatch.chdir(tmp_path.parent)
    assert rel.path == path and np.array_equal(rel[5][0], b[5][0])


def test_dropped_filter_pipeline_is_not_served(tmp_path):
    """One flipped byte in a filter-pipeline message makes HDF5 drop a dataset's filters and serve
    its deflate bytes as events or frames; such a file is refused (a repacked file without filters
    holds raw bytes and is still served: test_frames_other_filters_read_through_h5py)."""
    import re

    rng = np.random.default_rng(0)
    path = tmp_path / "ev.h5"
    build_events(path, make_samples(3), compression="gzip")
    frames = tmp_path / "fr.h5"
    write_frames_cache(frames, [(rng.integers(0, 5, (4, 2, 34, 34)).astype(np.float32), i, {}) for i in range(3)],
                       key="k", frame_shape=(2, 34, 34), dtype=np.float32, params={}, semantics_version="v")
    for src, name, kind in ((path, "events/dt", "events"), (frames, "frames", "frames")):
        data, found = src.read_bytes(), False
        for m in re.finditer(rb"shuffle\x00", data):
            for off in range(m.start() - 40, m.start()):
                bad = bytearray(data)
                bad[off] ^= 0xFF
                out = tmp_path / f"flip-{kind}.h5"
                out.write_bytes(bytes(bad))
                try:
                    with h5py.File(out, "r") as f:
                        found = f[name].id.get_create_plist().get_nfilters() == 0
                except Exception:
                    continue
                if found:
                    break
            if found:
                break
        assert found, kind
        assert "holds compressed bytes" in check_cache(out, "k", kind)
    with h5py.File(frames, "a") as f:  # a damaged frame_shape made reads fail with a reshape ValueError
        f.attrs["frame_shape"] = np.array([2, 65314, 34])
    assert "frame_shape" in check_cache(frames, "k", "frames")


@pytest.mark.parametrize("compression", ["huffman", None])
def test_full_disk_while_staging_leaves_nothing(tmp_path, compression):
    """A write failing with EFBIG (a file-size limit, as a full disk fails with ENOSPC) while the
    staged layouts flush their last rows left the ``.stage`` file behind, still using the space."""
    code = textwrap.dedent(f"""
        import os, resource, signal
        import numpy as np
        from neurodata.cache import get_or_build, write_events_cache
        from neurodata.events import make_events
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        rng = np.random.default_rng(0)
        def samples():
            for i in range(4):
                yield make_events(np.sort(rng.integers(0, 10**7, 5000)), rng.integers(0, 34, 5000),
                                  rng.integers(0, 34, 5000), rng.integers(0, 2, 5000)), i, {{}}
        try:
            get_or_build({str(tmp_path / "c.h5")!r}, "k", lambda tmp: write_events_cache(
                tmp, samples(), key="k", sensor_size=(34, 34, 2), compression={compression!r}))
        except OSError as e:
            print("raised", e.errno, e)
    """)
    env = dict(os.environ, NEURODATA_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "raised 27" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "while building a cache" in proc.stdout and "c.h5" in proc.stdout  # a bare errno before
    assert sorted(os.listdir(tmp_path)) == []


def test_full_disk_while_building_frames_is_an_os_error(tmp_path):
    """HDF5 reports a failed write as RuntimeError ('Can't decrement id ref count (... errno = 27
    ...)'): a frames build out of space now raises OSError naming the cache, and leaves nothing."""
    code = textwrap.dedent(f"""
        import resource, signal
        import numpy as np
        from neurodata.cache import get_or_build, write_frames_cache
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        rng = np.random.default_rng(0)
        samples = [(rng.integers(0, 9, (4, 2, 34, 34)).astype(np.float32), i, {{}}) for i in range(40)]
        try:
            get_or_build({str(tmp_path / "f.h5")!r}, "k", lambda tmp: write_frames_cache(
                tmp, samples, key="k", frame_shape=(2, 34, 34), dtype=np.float32, params={{}},
                semantics_version="1"), kind="frames")
        except OSError as e:
            print("raised", e.errno, e)
    """)
    env = dict(os.environ, NEURODATA_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "raised 27" in proc.stdout and "f.h5" in proc.stdout, \
        proc.stdout + proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == []


def test_gzip_layout_reads_check_each_chunk(tmp_path):
    """A flipped byte in HDF5's chunk index (a key's filter mask, or the chunk offsets after it)
    made h5py skip a chunk's filters or return the fill value: the gzip layout served wrong events
    with no error. Its reads now inflate the chunks themselves (filter mask and length checked), so
    each such flip ends in CacheError, at open or on read."""
    import re

    samples = make_samples(4, seed=3)
    path = tmp_path / "c.h5"
    build_events(path, samples, compression="gzip")
    data = path.read_bytes()
    nodes = [m.start() for m in re.finditer(rb"TREE", data) if m.start() > 4096]  # not the root group's
    refused = 0
    for node in nodes:
        for off in range(node + 24, node + 40):  # the first key: chunk size, filter mask, offsets
            bad = bytearray(data)
            bad[off] ^= 0xFF
            (tmp_path / "bad.h5").write_bytes(bytes(bad))
            try:
                store = EventsStore(tmp_path / "bad.h5", "k")
                got = [store[i][0] for i in range(len(samples))]
                store.close()
            except CacheError:
                refused += 1
                continue
            assert all(np.array_equal(g, s[0]) for g, s in zip(got, samples)), (node, off - node)
    assert refused


@pytest.mark.parametrize("compression", ["huffman", "gzip"])
def test_writer_memory_does_not_grow_with_the_dataset(tmp_path, compression):
    """The time index kept a strided view of each flushed block's t (and the Huffman index each
    block's coded bytes), so a build held every event until close: +1.5 GB for 100 M events."""
    import tracemalloc

    ev = random_events(500_000, (640, 480, 2), duration_us=1_000_000, seed=0)
    with EventsWriter(tmp_path / "warm.h5", key="w", sensor_size=(640, 480, 2), compression=compression) as w:
        w.append(ev[:5000], 0)  # numba compiled before measuring
    tracemalloc.start()
    try:
        with EventsWriter(tmp_path / "c.h5", key="k", sensor_size=(640, 480, 2), compression=compression,
                          threads=1) as w:
            for i in range(40):  # 20 M events, 260 MB as EVENT_DTYPE
                w.append(ev, i % 10)
            held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 60 * 2**20, held  # a few blocks in flight; it was > 260 MB
    assert EventsStore(tmp_path / "c.h5", "k")[39][0].shape == ev.shape


@pytest.mark.parametrize("kind, compression", [("events", "gzip"), ("events", None), ("frames", None)])
def test_index_tables_are_checked_in_every_layout(tmp_path, kind, compression):
    """Outside the huffman layout a flipped label or offset was served without a word (a frames
    cache gave label 2 for a sample written 3); the root attribute index_crc32 now covers the
    index tables. Files written before it (no attribute) are still served."""
    path = tmp_path / "c.h5"
    if kind == "events":
        build_events(path, make_samples(6), compression=compression)
    else:
        rng = np.random.default_rng(0)
        write_frames_cache(path, [(rng.integers(0, 5, (2, 2, 8, 8)).astype(np.float32), i, {}) for i in range(6)],
                           key="k", frame_shape=(2, 8, 8), dtype=np.float32, params={}, semantics_version="v")
    assert check_cache(path, "k", kind) is None
    with h5py.File(path, "a") as f:
        f["labels"][3] = 2
    assert "index_crc32" in check_cache(path, "k", kind)
    with h5py.File(path, "a") as f:
        del f.attrs["index_crc32"]
    assert check_cache(path, "k", kind) is None
