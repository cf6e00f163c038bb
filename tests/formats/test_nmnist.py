"""N-MNIST / N-Caltech101 ATIS binary: real samples, MATLAB reference, pure-Python reference decoder
vs the fast path, writer round trips with overflow markers, bad input, streaming."""
import csv
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurodata
from neurodata import formats
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _records, detect_format, iter_events, nmnist
from tests.helpers import column_digests, event_arrays

SAMPLES = ("nmnist/nmnist_sample_a.bin", "nmnist/nmnist_train1_label5.bin")


# ---------------------------------------------------------------- reference (the specification)
def reference_decode(data: bytes) -> np.ndarray:
    """Read_Ndataset.m, one record at a time: y == 240 is a marker adding 2**13 µs to later events."""
    rows = []
    markers = 0
    for j in range(0, len(data) - len(data) % 5, 5):
        b0, b1, b2, b3, b4 = data[j:j + 5]
        if b1 == 240:
            markers += 1
            continue
        t = ((b2 & 0x7F) << 16) | (b3 << 8) | b4
        rows.append((t + markers * 8192, b0, b1, b2 >> 7))
    return np.array(rows, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")]).astype(EVENT_DTYPE)


def random_records(rng, n, marker_rate=0.01):
    rec = rng.integers(0, 256, (n, 5), dtype=np.uint8)
    rec[rec[:, 1] == 240, 1] = 0
    rec[rng.random(n) < marker_rate, 1] = 240
    return rec.tobytes()


@pytest.fixture
def small_chunks(monkeypatch):
    """Split even small windows into several chunks, so the multi-chunk path is exercised."""
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)


# ---------------------------------------------------------------- real samples
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_matches_reference_digests(samples_dir, reference, name):
    ev = neurodata.read(samples_dir / name)
    ref = reference[name]
    assert ev.dtype == EVENT_DTYPE
    assert ev.size == ref["events"]
    assert column_digests(ev) == ref["sha256"]
    assert [list(map(int, e)) for e in ev[:3]] == ref["first"]
    info = neurodata.inspect(samples_dir / name)
    assert (info.format, info.sensor_size, info.event_count) == ("nmnist", None, ref["events"])


def test_sample_matches_matlab_reader_row_by_row(samples_dir):
    ev = neurodata.read(samples_dir / "nmnist/nmnist_train1_label5.bin")
    with open(samples_dir / "nmnist/nmnist_train1_label5.matlab_reference.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ev.size
    ml = np.array([(int(r["ts"]), int(r["x"]), int(r["y"]), int(r["p"])) for r in rows])
    np.testing.assert_array_equal(ev["t"], ml[:, 0])
    np.testing.assert_array_equal(ev["x"].astype(int) + 1, ml[:, 1])  # MATLAB is 1-based
    np.testing.assert_array_equal(ev["y"].astype(int) + 1, ml[:, 2])
    np.testing.assert_array_equal(ev["p"].astype(int) + 1, ml[:, 3])  # 1 = OFF, 2 = ON


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_slow_reference_agrees(samples_dir, name):
    data = (samples_dir / name).read_bytes()
    np.testing.assert_array_equal(neurodata.read(samples_dir / name), reference_decode(data))


@pytest.mark.parametrize("name", SAMPLES)
def test_detect_format_picks_nmnist(samples_dir, name):
    assert detect_format(samples_dir / name) == "nmnist"
    assert not nmnist.detect((samples_dir / name).read_bytes()[:64])


# ---------------------------------------------------------------- fast path vs reference
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_generated_files_match_reference(tmp_path, small_chunks, seed, threads):
    rng = np.random.default_rng(seed)
    data = random_records(rng, int(rng.integers(1, 3000)), marker_rate=[0, 0.01, 0.3, 1.0][seed])
    path = tmp_path / "r.bin"
    path.write_bytes(data)
    ref = reference_decode(data)
    np.testing.assert_array_equal(nmnist.read_nmnist(path, threads=threads), ref)
    np.testing.assert_array_equal(nmnist.decode(data, threads=threads), ref)  # in memory, same chunking
    blocks = list(nmnist.iter_blocks(path, 5 * 97, threads=threads))  # markers carry across blocks
    np.testing.assert_array_equal(np.concatenate(blocks), ref)
    assert nmnist.inspect(path).event_count == ref.size


def test_read_across_many_windows(tmp_path, monkeypatch, small_chunks):
    """Files larger than one window are memory-mapped and decoded window by window."""
    monkeypatch.setattr(_records, "WINDOW_BYTES", 5 * 64)
    data = random_records(np.random.default_rng(7), 5000, marker_rate=0.05)
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    np.testing.assert_array_equal(nmnist.read_nmnist(path, threads=2), reference_decode(data))


def test_markers_at_chunk_and_window_edges(tmp_path, small_chunks):
    rec = np.zeros((64, 5), np.uint8)
    rec[:, 4] = np.arange(64)
    rec[[0, 1, 15, 16, 31, 63], 1] = 240
    path = tmp_path / "m.bin"
    path.write_bytes(rec.tobytes())
    ref = reference_decode(rec.tobytes())
    for block in (5, 10, 80, 5 * 64):
        np.testing.assert_array_equal(np.concatenate(list(nmnist.iter_blocks(path, block))), ref)
    out = nmnist.read_nmnist(path, threads=4)
    np.testing.assert_array_equal(out, ref)
    assert out["t"][-1] == 62 + 5 * 8192


@pytest.mark.parametrize("where", [[0], [255], [256], [255, 256, 511, 512], [599], list(range(250, 262))])
def test_markers_at_kernel_block_edges(tmp_path, where):
    """The decode kernel works in blocks of 256 records; markers at and around their edges."""
    rec = np.random.default_rng(len(where)).integers(0, 256, (600, 5), dtype=np.uint8)
    rec[rec[:, 1] == 240, 1] = 0
    rec[where, 1] = 240
    path = tmp_path / "b.bin"
    path.write_bytes(rec.tobytes())
    np.testing.assert_array_equal(nmnist.read_nmnist(path, threads=1), reference_decode(rec.tobytes()))


def test_trailing_partial_record_warns_and_decodes_whole_records(tmp_path):
    data = random_records(np.random.default_rng(1), 50) + b"\x01\x02\x03"
    path = tmp_path / "cut.bin"
    path.write_bytes(data)
    with pytest.warns(UserWarning, match=r"cut\.bin.*partial record of 3 bytes at byte 250"):
        ev = neurodata.read(path)
    np.testing.assert_array_equal(ev, reference_decode(data))


def test_decode_in_memory(monkeypatch):
    """``read_bytes`` decodes an archive member in memory (no temporary file); a partial last
    record warns with the member's name."""
    data = random_records(np.random.default_rng(3), 700, marker_rate=0.02)

    def no_file(*a, **k):
        raise AssertionError("read_bytes went through a temporary file")
    monkeypatch.setattr("tempfile.NamedTemporaryFile", no_file)
    np.testing.assert_array_equal(formats.read_bytes(data, "nmnist"), reference_decode(data))
    with pytest.warns(UserWarning, match=r"Train/1/00001\.bin: N-MNIST file ends with a partial record of 2 bytes at byte 3500"):
        ev = formats.read_bytes(data + b"\x00\x01", "nmnist", name="Train/1/00001.bin")  # the member's name reaches it
    np.testing.assert_array_equal(ev, reference_decode(data))
    with pytest.warns(UserWarning, match=r"<buffer>: N-MNIST"):
        assert nmnist.decode(b"\x00").size == 0
    assert nmnist.decode(b"").size == 0 and nmnist.decode(bytearray(data)).size == reference_decode(data).size


def test_zero_length_file_is_zero_events(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert neurodata.read(path).size == 0
    assert neurodata.inspect(path).event_count == 0
    assert list(iter_events(path)) == []


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        nmnist.read_nmnist("/nonexistent/nope.bin")


# ---------------------------------------------------------------- writer
def _events_with_valid_y(draw_arr):
    draw_arr["y"][draw_arr["y"] == 240] = 241
    return draw_arr


@settings(max_examples=80, deadline=None)
@given(event_arrays(max_x=255, max_y=255, max_t=1 << 26).map(_events_with_valid_y))
def test_round_trip(tmp_path_factory, ev):
    path = tmp_path_factory.mktemp("rt") / "rt.bin"
    neurodata.write(path, ev, "nmnist")
    back = neurodata.read(path)
    np.testing.assert_array_equal(back, ev)
    data = path.read_bytes()
    np.testing.assert_array_equal(reference_decode(data), ev)
    markers = len(data) // 5 - ev.size
    # the fewest markers: just enough for the last (largest) timestamp to fit in 23 bits
    expect = max(0, -(-(int(ev["t"].max()) - (2**23 - 1)) // 8192)) if ev.size else 0
    assert markers == expect


def test_round_trip_edges(tmp_path):
    cases = [
        make_events([], [], [], []),
        make_events([0], [0], [0], [0]),
        make_events([2**23 - 1], [255], [255], [1]),
        make_events([2**23 - 1, 2**23, 2**23 + 8191, 2**23 + 8192, 2**30], [1, 2, 3, 4, 5],
                    [239, 241, 0, 255, 7], [1, 0, 1, 0, 1]),
    ]
    for i, ev in enumerate(cases):
        path = tmp_path / f"e{i}.bin"
        nmnist.write_nmnist(path, ev)
        np.testing.assert_array_equal(nmnist.read_nmnist(path), ev)
    # markers are '00 F0 00 00 00' records placed right before the event that needs them
    data = (tmp_path / "e3.bin").read_bytes()
    assert data[5:10] == bytes([0, 240, 0, 0, 0])
    assert data[:5] == bytes([1, 239, 0xFF, 0xFF, 0xFF])


def test_unsorted_events_round_trip_when_representable(tmp_path):
    ev = make_events([500, 100, 2**23 + 10, 2**23 + 5], [1, 2, 3, 4], [1, 2, 3, 4], [0, 1, 0, 1])
    nmnist.write_nmnist(tmp_path / "u.bin", ev)
    np.testing.assert_array_equal(nmnist.read_nmnist(tmp_path / "u.bin"), ev)


@pytest.mark.parametrize("ev, match", [
    (make_events([0], [256], [0], [0]), r"events\[0\] has x=256"),
    (make_events([0, 1], [0, 0], [3, 240], [0, 0]), r"events\[1\] has x=0, y=240"),
    (make_events([5, -1], [0, 0], [0, 0], [0, 0]), r"events\[1\]\['t'\] = -1 < 0"),
    (make_events([2**24, 3], [0, 0], [0, 0], [0, 0]), r"events\[1\]\['t'\] = 3 cannot be stored"),
])
def test_writer_rejects_unrepresentable_events(tmp_path, ev, match):
    path = tmp_path / "bad.bin"
    with pytest.raises(ValueError, match=match):
        nmnist.write_nmnist(path, ev)
    assert not path.exists()


def test_writer_checks_sensor_size(tmp_path):
    with pytest.raises(ValueError, match="outside sensor_size"):
        neurodata.write(tmp_path / "s.bin", make_events([0], [40], [0], [1]), "nmnist",
                        sensor_size=(34, 34, 2))


# ---------------------------------------------------------------- streaming
@pytest.mark.parametrize("chunk", [1, 7, 1000, 10**6])
def test_iter_events_concatenates_to_read(tmp_path, chunk):
    rng = np.random.default_rng(3)
    path = tmp_path / "s.bin"
    path.write_bytes(random_records(rng, 5000, marker_rate=0.02))
    full = neurodata.read(path)
    chunks = list(iter_events(path, chunk_events=chunk))
    assert all(c.size == chunk for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate(chunks), full)
    by_time = list(iter_events(path, chunk_us=50_000))
    np.testing.assert_array_equal(np.concatenate(by_time), full)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 64))
def test_arbitrary_bytes_decode_like_reference(tmp_path_factory, data, block_records):
    path = tmp_path_factory.mktemp("fz") / "f.bin"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = nmnist.read_nmnist(path)
        blocks = list(nmnist.iter_blocks(path, 5 * block_records))
        in_memory = formats.read_bytes(data, "nmnist")
    ref = reference_decode(data)
    np.testing.assert_array_equal(ev, ref)
    np.testing.assert_array_equal(in_memory, ref)
    np.testing.assert_array_equal(np.concatenate(blocks) if blocks else ref[:0], ref)
