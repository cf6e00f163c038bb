"""AEDAT 3.1 reader/writer and the DVS128 Gesture label reader.

The reference decoder below walks the file with ``struct`` one packet and one event at a time,
exactly as the libcaer headers describe it; the fast path must agree with it on every file.
"""
from __future__ import annotations

import ast
import importlib.util
import pathlib
import struct
import typing

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurodata
from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import aedat31
from neurodata.formats.gesture_labels import LABEL_DTYPE, read_gesture_labels
from tests.helpers import event_arrays, random_events

HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- reference and helpers
def reference_read(path, source=None):
    """Slow, obviously correct decoder: struct-unpack every packet header and polarity event."""
    data = open(path, "rb").read()
    j = data.index(b"#!END-HEADER") + len(b"#!END-HEADER")
    j += 2 if data[j:j + 2] == b"\r\n" else (1 if data[j:j + 1] in (b"\r", b"\n") else 0)
    rows = []
    while j < len(data):
        etype, esrc, esize, _tsoff, ovf, cap, num, _valid = struct.unpack_from("<hhiiiiii", data, j)
        j += 28
        if etype == 1 and (source is None or esrc == source):
            for k in range(num):
                d, ts = struct.unpack_from("<Ii", data, j + 8 * k)
                if d & 1:
                    rows.append(((ovf << 31) | ts, (d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, (d >> 1) & 1))
        j += cap * esize
    if not rows:
        return np.zeros(0, EVENT_DTYPE)
    return make_events(*zip(*rows))


def packet(etype, payload, *, source=1, size=8, overflow=0, capacity=None, number=None, valid=None):
    """One raw packet: the 28-byte header then ``payload`` (capacity * size bytes)."""
    capacity = len(payload) // size if capacity is None else capacity
    number = capacity if number is None else number
    valid = number if valid is None else valid
    return struct.pack("<hhiiiiii", etype, source, size, 4, overflow, capacity, number, valid) + payload


def polarity_payload(x, y, p, ts, valid_bits):
    d = (np.asarray(x, np.uint32) << 17) | (np.asarray(y, np.uint32) << 2) | (np.asarray(p, np.uint32) << 1) \
        | np.asarray(valid_bits, np.uint32)
    rec = np.empty(len(d), [("d", "<u4"), ("t", "<i4")])
    rec["d"], rec["t"] = d, ts
    return rec.tobytes()


def write_raw(path, *packets, header=HEADER):
    path.write_bytes(header + b"".join(packets))
    return path


@st.composite
def packet_files(draw):
    """A mix of polarity packets (invalid events, eventNumber < eventCapacity, TS overflow) and
    other packet types (special 0, frame-like 2, IMU6 3) with arbitrary payload bytes."""
    out = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["polarity", "polarity", "special", "frame", "imu6"]))
        if kind == "polarity":
            cap = draw(st.integers(0, 40))
            num = draw(st.integers(0, cap))
            n = cap
            x = draw(st.lists(st.integers(0, 0x7FFF), min_size=n, max_size=n))
            y = draw(st.lists(st.integers(0, 0x7FFF), min_size=n, max_size=n))
            p = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
            ts = draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n))
            valid = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
            ovf = draw(st.integers(0, 3))
            declared = draw(st.sampled_from([None, 0, num]))  # eventValid may disagree with the bits
            out.append(packet(1, polarity_payload(x, y, p, ts, valid), overflow=ovf, number=num, valid=declared))
        else:
            size = {"special": 8, "frame": draw(st.integers(1, 64)), "imu6": 36}[kind]
            etype = {"special": 0, "frame": 2, "imu6": 3}[kind]
            cap = draw(st.integers(0, 5))
            body = draw(st.binary(min_size=cap * size, max_size=cap * size))
            out.append(packet(etype, body, size=size, number=draw(st.integers(0, cap))))
    return out


# --------------------------------------------------------------------------- round trips
@SETTINGS
@given(ev=event_arrays(max_x=0x7FFF, max_y=0x7FFF, max_t=2**33, max_n=200),
       packet_events=st.integers(1, 64))
def test_round_trip_across_overflow(tmp_path, ev, packet_events):
    path = tmp_path / "r.aedat"
    aedat31.write(path, ev, packet_events=packet_events)
    got = aedat31.read(path)
    np.testing.assert_array_equal(got, ev)
    np.testing.assert_array_equal(reference_read(path), ev)


@SETTINGS
@given(ev=event_arrays(max_x=127, max_y=127, max_t=2**32 + 10, max_n=100, sorted_t=False))
def test_round_trip_unsorted_and_packet_overflow_shared(tmp_path, ev):
    path = tmp_path / "u.aedat"
    aedat31.write(path, ev, sensor_size=(128, 128, 2), packet_events=7)
    np.testing.assert_array_equal(aedat31.read(path), ev)
    data = path.read_bytes()
    j = data.index(b"#!END-HEADER\r\n") + 14
    k = 0
    while j < len(data):  # every packet's events share the packet's eventTSOverflow
        _, _, size, _, ovf, cap, num, valid = struct.unpack_from("<hhiiiiii", data, j)
        assert size == 8 and cap == num == valid and 1 <= num <= 7
        assert np.all(ev["t"][k:k + num] >> 31 == ovf)
        k += num
        j += 28 + 8 * cap
    assert k == ev.size


@pytest.mark.parametrize("ev", [np.zeros(0, EVENT_DTYPE),
                                make_events([5], [3], [4], [1]),
                                make_events([0, 2**31 - 1, 2**31, 2**62 - 1], [0x7FFF] * 4, [0x7FFF] * 4, [1, 0, 1, 0])])
def test_edge_cases(tmp_path, ev):
    path = tmp_path / "e.aedat"
    neurodata.write(path, ev, "aedat31")
    got = neurodata.read(path)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, ev)


def test_writer_rejects_unrepresentable(tmp_path):
    with pytest.raises(ValueError, match="negative"):
        aedat31.write(tmp_path / "n.aedat", make_events([1, -1], [0, 0], [0, 0], [0, 0]))
    with pytest.raises(ValueError, match="32767"):
        aedat31.write(tmp_path / "n.aedat", make_events([1], [40000], [0], [0]))
    with pytest.raises(ValueError, match="2\\*\\*62"):
        aedat31.write(tmp_path / "n.aedat", make_events([2**62], [0], [0], [0]))
    with pytest.raises(ValueError, match="outside"):
        aedat31.write(tmp_path / "n.aedat", make_events([1], [200], [0], [0]), sensor_size=(128, 128, 2))
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- mixed packets vs reference
@SETTINGS
@given(packets=packet_files(), block=st.integers(1, 400))
def test_mixed_packets_match_reference(tmp_path, packets, block):
    path = write_raw(tmp_path / "m.aedat", *packets)
    want = reference_read(path)
    np.testing.assert_array_equal(aedat31.read(path), want)
    blocks = list(aedat31.iter_blocks(path, block))
    got = np.concatenate(blocks) if blocks else np.zeros(0, EVENT_DTYPE)
    np.testing.assert_array_equal(got, want)


def test_invalid_events_and_number_below_capacity(tmp_path):
    payload = polarity_payload([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [1, 0, 1, 0, 1], [10, 20, 30, 40, 50], [1, 0, 1, 1, 1])
    path = write_raw(tmp_path / "v.aedat", packet(1, payload, number=4, valid=3),
                     packet(2, bytes(3 * 20), size=20), packet(3, bytes(36), size=36),
                     packet(0, bytes(16)), packet(1, polarity_payload([7], [8], [0], [60], [1]), overflow=1))
    got = aedat31.read(path)
    assert got.tolist() == [(10, 1, 6, 1), (30, 3, 8, 1), (40, 4, 9, 0), ((1 << 31) | 60, 7, 8, 0)]


def test_event_valid_field_disagreeing_with_bits(tmp_path):
    payload = polarity_payload([1, 2, 3], [1, 2, 3], [1, 1, 1], [1, 2, 3], [1, 1, 1])
    path = write_raw(tmp_path / "d.aedat", packet(1, payload, valid=1), packet(1, payload, valid=3))
    assert aedat31.read(path)["t"].tolist() == [1, 2, 3, 1, 2, 3]


def test_no_polarity_packets_is_empty(tmp_path):
    path = write_raw(tmp_path / "s.aedat", packet(12, bytes(64), size=16), packet(0, bytes(8)))
    got = aedat31.read(path)
    assert got.size == 0 and got.dtype == EVENT_DTYPE
    assert aedat31.read(write_raw(tmp_path / "h.aedat")).size == 0


def test_header_with_bare_cr_line_end(tmp_path):
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r#Source 1: DVS128\r\n#!END-HEADER\r\n"
    path = write_raw(tmp_path / "cr.aedat", packet(1, polarity_payload([3], [4], [1], [9], [1])), header=header)
    assert aedat31.read(path).tolist() == [(9, 3, 4, 1)]
    info = neurodata.inspect(path)
    assert info.format == "aedat31" and info.sensor_size == (128, 128, 2)
    assert info.metadata["sources"] == {1: "DVS128"} and info.data_offset == len(header)


def test_sources(tmp_path):
    a = packet(1, polarity_payload([1], [1], [1], [1], [1]), source=1)
    b = packet(1, polarity_payload([2], [2], [0], [2], [1]), source=2)
    path = write_raw(tmp_path / "two.aedat", a, b, a)
    with pytest.raises(ValueError, match="source"):
        aedat31.read(path)
    for s in (1, 2):
        np.testing.assert_array_equal(aedat31.read(path, source=s), reference_read(path, source=s))
    with pytest.raises(ValueError, match="no polarity packets from source 3"):
        aedat31.read(path, source=3)


def test_decode_from_memory(tmp_path):
    ev = random_events(3000, duration_us=2**32, seed=8)
    path = tmp_path / "mem.aedat"
    aedat31.write(path, ev, packet_events=256)
    np.testing.assert_array_equal(neurodata.formats.read_bytes(path.read_bytes(), "aedat31"), ev)
    with pytest.raises(FormatError) as e:
        aedat31.decode(path.read_bytes()[:-5])
    assert e.value.path is None and "<buffer>" in str(e.value)


def test_parallel_path_matches_single_thread(tmp_path):
    ev = random_events(1_300_000, duration_us=2**33, seed=3)
    ev["x"] = np.arange(ev.size) % 0x8000
    path = tmp_path / "big.aedat"
    aedat31.write(path, ev, packet_events=5000)
    np.testing.assert_array_equal(aedat31.read(path, threads=2), ev)
    np.testing.assert_array_equal(aedat31.read(path, threads=1), ev)
    chunks = list(neurodata.iter_events(path, chunk_events=300_000))
    assert [c.size for c in chunks] == [300_000] * 4 + [100_000]
    np.testing.assert_array_equal(np.concatenate(chunks), ev)


def test_iter_events_by_time(tmp_path):
    ev = random_events(5000, duration_us=10**6, seed=1)
    path = tmp_path / "t.aedat"
    aedat31.write(path, ev, packet_events=100)
    chunks = list(neurodata.iter_events(path, chunk_us=50_000))
    np.testing.assert_array_equal(np.concatenate(chunks), ev)
    assert all(c["t"].max() - c["t"].min() < 50_000 for c in chunks)


# --------------------------------------------------------------------------- bad input
def bad(path, offset, match):
    with pytest.raises(FormatError, match=match) as e:
        aedat31.read(path)
    assert e.value.path == str(path) and e.value.offset == offset
    return e.value


def test_wrong_magic_and_missing_end(tmp_path):
    p = tmp_path / "w.aedat"
    p.write_bytes(b"#!AER-DAT2.0\r\n" + bytes(16))
    bad(p, 0, "magic")
    p.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n" + bytes(40))
    bad(p, len(p.read_bytes()), "END-HEADER")
    assert neurodata.formats.detect_format(write_raw(tmp_path / "ok.bin")) == "aedat31"


@pytest.mark.parametrize("fields, match", [
    (dict(size=0), "eventSize 0"),
    (dict(size=-8), "eventSize -8"),
    (dict(capacity=-1), "eventCapacity -1"),
    (dict(number=3), "eventNumber 3"),
    (dict(number=-1), "eventNumber -1"),
    (dict(overflow=-5), "eventTSOverflow -5"),
    (dict(size=12, capacity=1), "expected 8"),
])
def test_garbage_headers(tmp_path, fields, match):
    good = packet(1, polarity_payload([1, 2], [1, 2], [1, 1], [1, 2], [1, 1]))
    args = dict(capacity=2)
    args.update(fields)
    payload = bytes(max(args.get("size", 8), 0) * max(args["capacity"], 0)) if "size" in fields else \
        polarity_payload([1, 2], [1, 2], [1, 1], [1, 2], [1, 1])
    path = write_raw(tmp_path / "g.aedat", good, packet(1, payload, **args))
    bad(path, len(HEADER) + len(good), match)


def test_body_past_end_and_truncation(tmp_path):
    good = packet(1, polarity_payload([1, 2], [1, 2], [1, 1], [1, 2], [1, 1]))
    cut = packet(1, polarity_payload([3, 4, 5], [3, 4, 5], [0, 0, 0], [3, 4, 5], [1, 1, 1]))[:-6]  # 2.25 events
    path = write_raw(tmp_path / "t.aedat", good, cut)
    bad(path, len(HEADER) + len(good), "past the end|remain")
    with pytest.warns(UserWarning, match="allow_truncated"):
        got = aedat31.read(path, allow_truncated=True)
    assert got["t"].tolist() == [1, 2, 3, 4]
    huge = packet(1, b"", capacity=2**30)  # capacity x size far past the end
    bad(write_raw(tmp_path / "h.aedat", good, huge), len(HEADER) + len(good), "past the end|remain")
    partial = write_raw(tmp_path / "p.aedat", good, bytes(10))
    bad(partial, len(HEADER) + len(good), "inside a packet header")
    with pytest.warns(UserWarning):
        assert aedat31.read(partial, allow_truncated=True)["t"].tolist() == [1, 2]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutations_never_crash(tmp_path, data):
    ev = random_events(60, seed=2)
    path = tmp_path / "f.aedat"
    aedat31.write(path, ev, packet_events=16)
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(len(HEADER) - 20, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[:data.draw(st.integers(len(raw) // 2, len(raw)))]
    path.write_bytes(bytes(raw))
    try:
        got = aedat31.read(path)
    except (FormatError, ValueError):
        return
    np.testing.assert_array_equal(got, reference_read(path))


# --------------------------------------------------------------------------- peer
def _spikingjelly_load_aedat_v3():
    """SpikingJelly's ``load_aedat_v3``, taken from its source file: importing
    ``spikingjelly.datasets`` needs torchvision/torchaudio, which this environment lacks."""
    spec = importlib.util.find_spec("spikingjelly")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("SpikingJelly is not installed")
    src = pathlib.Path(spec.submodule_search_locations[0], "datasets", "utils.py")
    tree = ast.parse(src.read_text())
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "load_aedat_v3"]
    if not fn:
        pytest.skip(f"no load_aedat_v3 in {src}")
    namespace = {"struct": struct, "np": np, "Union": typing.Union, "Path": pathlib.Path}
    exec(compile(ast.Module(body=fn, type_ignores=[]), str(src), "exec"), namespace)
    return namespace["load_aedat_v3"]


@pytest.mark.peers
def test_matches_spikingjelly(tmp_path):
    load_aedat_v3 = _spikingjelly_load_aedat_v3()
    ev = random_events(3000, duration_us=2**32, seed=5)
    path = tmp_path / "sj.aedat"
    aedat31.write(path, ev, packet_events=500)
    sj = load_aedat_v3(str(path))
    got = aedat31.read(path)
    for f in "txyp":
        np.testing.assert_array_equal(got[f], sj[f])


# --------------------------------------------------------------------------- labels
def test_gesture_labels_sample(samples_dir):
    labels = read_gesture_labels(samples_dir / "dvsgesture" / "user01_natural_labels.csv")
    assert labels.dtype == LABEL_DTYPE
    assert labels["class"].tolist() == [1, 2, 3, 5, 4, 6, 7, 8, 8, 9, 10, 11]
    assert (labels["class"] == 8).sum() == 2
    assert labels[0].tolist() == (1, 53036986, 59508469)
    assert labels[-1].tolist() == (11, 171367247, 177991967)
    assert (labels["start_us"] < labels["end_us"]).all()
    raw = (samples_dir / "dvsgesture" / "user01_natural_labels.csv").read_bytes()
    np.testing.assert_array_equal(read_gesture_labels(raw), labels)  # archive members arrive as bytes


def test_gesture_labels_variants_and_errors(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes(b"\xef\xbb\xbfclass,startTime_usec,endTime_usec\r\n3, 10 ,20\r\n\r\n3,30,40\r\n")
    assert read_gesture_labels(p).tolist() == [(3, 10, 20), (3, 30, 40)]
    p.write_bytes(b"class,startTime_usec,endTime_usec\n")
    assert read_gesture_labels(p).size == 0
    for content, offset in [(b"cls,start,end\n1,2,3\n", 0), (b"class,startTime_usec,endTime_usec\n1,2\n", 34),
                            (b"class,startTime_usec,endTime_usec\n1,2,x\n", 34), (b"", 0)]:
        p.write_bytes(content)
        with pytest.raises(FormatError) as e:
            read_gesture_labels(p)
        assert e.value.offset == offset and e.value.path == str(p)
