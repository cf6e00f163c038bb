"""Prophesee DAT: real N-CARS sample, detection against RAW files, pure-Python reference decoder vs the
fast path (versions 1/2, larger records, 32-bit wraps), writer round trips, bad input, streaming."""
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import neurodata
from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _records, dat, detect_format, iter_events
from neurodata.formats._base import read_head
from tests.helpers import column_digests, run_without_jit

SAMPLE = "prophesee/ncars_sample_td.dat"
HEADER = b"% Data file containing Event2D events.\n% Version 2\n"


# ---------------------------------------------------------------- reference (the specification)
def reference_decode(data: bytes, data_offset: int, event_size: int = 8, version: int = 2):
    """One record at a time with struct; t unwrapped when it drops by more than 2**31."""
    rows = []
    prev, wraps = None, 0
    for j in range(data_offset, len(data) - event_size + 1, event_size):
        t, w = struct.unpack("<II", data[j:j + 8])
        if prev is not None and prev - t > 2**31:
            wraps += 1
        prev = t
        if version == 2:
            rows.append((t + wraps * 2**32, w & 0x3FFF, (w >> 14) & 0x3FFF, (w >> 28) & 1))
        else:
            rows.append((t + wraps * 2**32, w & 0x1FF, (w >> 9) & 0xFF, (w >> 17) & 1))
    return np.array(rows, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")]).astype(EVENT_DTYPE)


def random_body(rng, n, event_size=8):
    t = (np.cumsum(rng.integers(0, 2**29, n)) + int(rng.integers(0, 2**32))) & 0xFFFFFFFF
    rec = rng.integers(0, 256, (n, event_size), dtype=np.uint8)
    rec[:, :4] = t.astype("<u4").view(np.uint8).reshape(n, 4)
    return rec.tobytes()


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)


# ---------------------------------------------------------------- real sample, detection
def test_sample_matches_reference(samples_dir, reference):
    ev = neurodata.read(samples_dir / SAMPLE)
    ref = reference[SAMPLE]
    assert ev.dtype == EVENT_DTYPE and ev.size == ref["events"]
    assert column_digests(ev) == ref["sha256"]
    assert [list(map(int, e)) for e in ev[:3]] == ref["first"]
    info = neurodata.inspect(samples_dir / SAMPLE)
    assert (info.format, info.sensor_size, info.event_count) == ("dat", None, ref["events"])
    assert ["% " + h for h in info.metadata["header"]] == ref["header"]
    assert (info.metadata["event_type"], info.metadata["event_size"]) == (ref["event_type"], ref["event_size"])
    data = (samples_dir / SAMPLE).read_bytes()
    np.testing.assert_array_equal(ev, reference_decode(data, info.data_offset))


def test_detection(samples_dir):
    assert detect_format(samples_dir / SAMPLE) == "dat"
    assert dat.detect(read_head(samples_dir / SAMPLE))
    for raw in ("prophesee/gen3_sparklers.evt2.raw", "prophesee/gen41_pedestrians.evt3.raw"):
        assert not dat.detect(read_head(samples_dir / raw))
    assert not dat.detect(b"% Date 2020-01-01\n% format EVT3;height=720;width=1280\n% Version 2\n")
    assert dat.detect(b"% Version 2\n% Date 2020-01-01 00:00:00\n\x00\x08")


# ---------------------------------------------------------------- fast path vs reference
@pytest.mark.parametrize("event_size, version", [(8, 2), (12, 2), (8, 1), (9, 1)])
@pytest.mark.parametrize("threads", [1, 3])
def test_generated_files_match_reference(tmp_path, small_chunks, event_size, version, threads):
    rng = np.random.default_rng(event_size + 10 * version)
    header = f"% Data file containing EventCD events.\n% Version {version}\n% Height 7\n% Width 9\n".encode()
    header += bytes([0x0C, event_size])
    data = header + random_body(rng, 2500, event_size)
    path = tmp_path / "g.dat"
    path.write_bytes(data)
    ref = reference_decode(data, len(header), event_size, version)
    assert (np.diff(ref["t"]) >= 0).all() and ref["t"][-1] > 2**32  # wrapped and unwrapped
    with pytest.raises(FormatError, match="outside the sensor"):  # random x, y vs Width 9, Height 7
        dat.read_dat(path, threads=threads)
    np.testing.assert_array_equal(dat.read_dat(path, threads=threads, ignore_bounds=True), ref)
    np.testing.assert_array_equal(np.concatenate(list(dat.iter_blocks(path, 100, ignore_bounds=True))), ref)
    info = dat.inspect(path)
    assert (info.sensor_size, info.event_count, info.metadata["version"]) == ((9, 7, 2), 2500, version)


def test_read_across_many_windows(tmp_path, monkeypatch, small_chunks):
    monkeypatch.setattr(_records, "WINDOW_BYTES", 8 * 40)
    data = HEADER + b"\x00\x08" + random_body(np.random.default_rng(4), 3000)
    path = tmp_path / "w.dat"
    path.write_bytes(data)
    np.testing.assert_array_equal(dat.read_dat(path, threads=2), reference_decode(data, len(HEADER) + 2))


def test_version_option_overrides_header(tmp_path):
    data = HEADER + b"\x00\x08" + struct.pack("<II", 5, (1 << 17) | (3 << 9) | 4)
    path = tmp_path / "v.dat"
    path.write_bytes(data)
    np.testing.assert_array_equal(dat.read_dat(path, version=1), make_events([5], [4], [3], [1]))
    np.testing.assert_array_equal(dat.read_dat(path), reference_decode(data, len(HEADER) + 2))


def test_headerless_file_assumes_type_0_size_8(tmp_path):
    path = tmp_path / "nohead.dat"
    path.write_bytes(struct.pack("<IIII", 1, 7 | (2 << 14) | (1 << 28), 2, 8))
    np.testing.assert_array_equal(dat.read_dat(path), make_events([1, 2], [7, 8], [2, 0], [1, 0]))


@pytest.mark.parametrize("height, expect", [("7", (9, 7, 2)), ("0", None), ("1²8", None), ("x", None)])
def test_width_height_lines(tmp_path, height, expect):
    path = tmp_path / "wh.dat"
    path.write_bytes(f"% Version 2\n% Height {height}\n% Width 9\n".encode() + b"\x00\x08")
    assert dat.inspect(path).sensor_size == expect


def test_header_only_file_is_zero_events(tmp_path):
    path = tmp_path / "h.dat"
    path.write_bytes(HEADER + b"\x00\x08")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dat.read_dat(path).size == 0
    assert dat.inspect(path).event_count == 0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("content, offset, match", [
    (b"", 0, "empty file"),
    (HEADER, len(HEADER), "ends inside the 2-byte event type/size"),
    (HEADER + b"\x00", len(HEADER), "ends inside the 2-byte event type/size"),
    (HEADER + b"\x00\x04", len(HEADER) + 1, "event size 4 < 8"),
    (HEADER + b"\x0e\x08" + bytes(8), len(HEADER), r"event type 0x0E \(external trigger\)"),
    (b"% Version 7\n\x00\x08", 0, "expected 1 or 2"),
    (b"% Data file containing", 0, "no line end"),
])
def test_bad_input_raises_format_error(tmp_path, content, offset, match):
    path = tmp_path / "bad.dat"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=match) as e:
        dat.read_dat(path)
    assert e.value.offset == offset and e.value.path == str(path)


def test_event_outside_declared_sensor(tmp_path, small_chunks):
    header = HEADER + b"% Height 10\n% Width 20\n\x00\x08"
    body = struct.pack("<IIIIII", 1, 19 | (9 << 14), 2, 20 | (3 << 14), 3, 1 | (10 << 14))
    path = tmp_path / "oob.dat"
    path.write_bytes(header + body)
    with pytest.raises(FormatError, match=r"oob\.dat at byte \d+: event \(x=20, y=3\) outside") as e:
        dat.read_dat(path)
    assert e.value.offset == len(header) + 8
    with pytest.raises(FormatError):
        list(dat.iter_blocks(path, 8))
    np.testing.assert_array_equal(dat.read_dat(path, ignore_bounds=True),
                                  make_events([1, 2, 3], [19, 20, 1], [9, 3, 10], [0, 0, 0]))


def test_trailing_partial_record_warns(tmp_path):
    path = tmp_path / "cut.dat"
    body = struct.pack("<II", 3, 1 | (2 << 14))
    path.write_bytes(HEADER + b"\x00\x08" + body + b"\x01\x02\x03")
    with pytest.warns(UserWarning, match=rf"cut\.dat.*3 bytes at byte {len(HEADER) + 10}"):
        ev = dat.read_dat(path)
    np.testing.assert_array_equal(ev, make_events([3], [1], [2], [0]))


# ---------------------------------------------------------------- writer
@st.composite
def dat_events(draw, max_x, max_y):
    steps = draw(st.lists(st.integers(0, 2**31 - 1), max_size=200))
    t = np.cumsum(np.array([0] + steps[1:], np.int64))[: len(steps)] + draw(st.integers(0, 2**32 - 1))
    n = t.size
    col = lambda hi: draw(st.lists(st.integers(0, hi), min_size=n, max_size=n))  # noqa: E731
    return make_events(t, col(max_x), col(max_y), col(1))


@settings(max_examples=60, deadline=None)
@given(dat_events(2**14 - 1, 2**14 - 1))
def test_round_trip_v2_across_32_bit_wraps(tmp_path_factory, ev):
    path = tmp_path_factory.mktemp("rt") / "rt.dat"
    neurodata.write(path, ev, "dat")
    np.testing.assert_array_equal(neurodata.read(path), ev)
    data = path.read_bytes()
    np.testing.assert_array_equal(reference_decode(data, dat.inspect(path).data_offset), ev)


@settings(max_examples=30, deadline=None)
@given(dat_events(511, 255))
def test_round_trip_v1(tmp_path_factory, ev):
    path = tmp_path_factory.mktemp("rt") / "rt1.dat"
    dat.write_dat(path, ev, version=1)
    np.testing.assert_array_equal(dat.read_dat(path), ev)


def test_writer_header_and_edges(tmp_path):
    import datetime
    for i, ev in enumerate([make_events([], [], [], []), make_events([0], [0], [0], [0]),
                            make_events([2**32 - 1, 2**32, 2**32 + 2**31 - 1, 2**33 - 5, 2**33 + 5],
                                        [16383, 0, 5, 6, 7], [16383, 1, 6, 7, 8], [1, 0, 1, 1, 0])]):
        path = tmp_path / f"e{i}.dat"
        dat.write_dat(path, ev, sensor_size=(16384, 16384, 2) if i == 2 else None,
                      date=datetime.datetime(2024, 1, 2, 3, 4, 5))
        np.testing.assert_array_equal(dat.read_dat(path), ev)
    data = (tmp_path / "e2.dat").read_bytes()
    assert data.startswith(b"% Data file containing Event2D events.\n% Version 2\n"
                           b"% Date 2024-01-02 03:04:05\n% Height 16384\n% Width 16384\n\x00\x08")
    assert dat.inspect(tmp_path / "e2.dat").sensor_size == (16384, 16384, 2)
    assert b"% Height" not in (tmp_path / "e1.dat").read_bytes()


@pytest.mark.parametrize("ev, kw, match", [
    (make_events([0], [16384], [0], [0]), {}, r"events\[0\] has x=16384"),
    (make_events([0], [0], [256], [0]), {"version": 1}, r"y < 256"),
    (make_events([-5], [0], [0], [0]), {}, "negative"),
    (make_events([2**32 - 1, 2**32 + 2**31], [0, 0], [0, 0], [0, 0]), {}, r"events\[1\].*jumps"),
])
def test_writer_rejects_unrepresentable_events(tmp_path, ev, kw, match):
    path = tmp_path / "bad.dat"
    with pytest.raises(ValueError, match=match):
        dat.write_dat(path, ev, **kw)
    assert not path.exists()


# ---------------------------------------------------------------- streaming
def test_iter_events_concatenates_to_read(tmp_path):
    path = tmp_path / "s.dat"
    path.write_bytes(HEADER + b"\x00\x08" + random_body(np.random.default_rng(2), 3000))
    full = neurodata.read(path)
    for kw in ({"chunk_events": 256}, {"chunk_us": 10**10}):
        np.testing.assert_array_equal(np.concatenate(list(iter_events(path, **kw))), full)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([8, 10, 16]))
def test_arbitrary_bodies_decode_like_reference(tmp_path_factory, body, size):
    path = tmp_path_factory.mktemp("fz") / "f.dat"
    path.write_bytes(HEADER + bytes([0, size]) + body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = dat.read_dat(path)
    np.testing.assert_array_equal(ev, reference_decode(HEADER + bytes([0, size]) + body, len(HEADER) + 2, size))


# ---------------------------------------------------------------- 8-record vector path
def _kernel(data: bytes, limits=(1 << 16, 1 << 16), vector=True, prev_t=-1):
    w32 = np.frombuffer(data, "<u4").copy()
    out = np.zeros(w32.size // 2, EVENT_DTYPE)
    wraps, mx, my = dat._decode_kernel(w32.view(np.uint8), w32, dat._LAYOUTS[2], limits, prev_t, 0,
                                       out.view(np.uint8), vector)
    return out, wraps, mx, my


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 60),
       st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["wrap", "up", "half", "x", "y"])), max_size=4))
def test_vector_groups_equal_reference(seed, n, changes):
    """Groups of 8 with a wrap, an upward bit-31 crossing, a drop of exactly 2**31 or a coordinate
    past the limits at any lane fall back record by record; the result equals the reference and the
    scalar-only kernel, and the maxima reach the limits exactly when an event does."""
    rng = np.random.default_rng(seed)
    t = (np.cumsum(rng.integers(0, 50, n)) + int(rng.integers(0, 2**32 - 3000))).astype(np.int64)
    w = rng.integers(0, 1 << 29, n, dtype=np.int64) & ~((0x3FFF << 14) | 0x3FFF) | rng.integers(0, 300, n) | (rng.integers(0, 200, n) << 14)
    for k, kind in changes:
        if k >= n:
            continue
        if kind == "wrap":
            t[k:] = t[k:] % 1000
        elif kind == "up":
            t[k:] += 2**31 - int(t[k]) % 2**31
        elif kind == "half" and t[k] >= 2**31:
            t[k:] -= 2**31
        elif kind == "x":
            w[k] = (w[k] & ~0x3FFF) | 300
        elif kind == "y":
            w[k] = (w[k] & ~(0x3FFF << 14)) | (200 << 14)
    t &= 0xFFFFFFFF
    data = np.stack([t, w], 1).astype("<u4").tobytes()
    ref = reference_decode(data, 0)
    got, wraps, mx, my = _kernel(data, limits=(300, 200))
    scalar = _kernel(data, limits=(300, 200), vector=False)
    assert np.array_equal(got, ref) and np.array_equal(scalar[0], ref)
    assert wraps == scalar[1]
    assert (mx >= 300) == bool((ref["x"] >= 300).any()) and (my >= 200) == bool((ref["y"] >= 200).any())


def test_vector_group_after_a_record_with_bit_31_set():
    """The record before a group (``prev_t``) counts: bit 31 set there and clear in the group is a
    possible wrap, decided record by record."""
    t = np.arange(8, dtype=np.int64) + 5
    data = np.stack([t, np.zeros(8, np.int64)], 1).astype("<u4").tobytes()
    got, wraps, _, _ = _kernel(data, prev_t=2**32 - 10)
    assert wraps == 1 and got["t"][0] == 2**32 + 5
    got, wraps, _, _ = _kernel(data, prev_t=2**31 - 1)
    assert wraps == 0 and got["t"][0] == 5


def test_vector_path_without_jit(tmp_path):
    """The numpy stand-in of the 8-record decoder (NUMBA_DISABLE_JIT=1) reads the same events."""
    rng = np.random.default_rng(4)
    body = random_body(rng, 100)[:400] + np.stack([np.arange(60) + 7, np.arange(60)], 1).astype("<u4").tobytes()
    path = tmp_path / "v.dat"
    path.write_bytes(HEADER + b"\x00\x08" + body)
    code = "import numpy as np, neurodata, sys; np.save(sys.argv[2], neurodata.read(sys.argv[1]))"
    run_without_jit(code, path, tmp_path / "e.npy")
    ref = reference_decode(path.read_bytes(), len(HEADER) + 2)
    assert np.array_equal(np.load(tmp_path / "e.npy"), ref)
    assert np.array_equal(neurodata.read(path), ref)
