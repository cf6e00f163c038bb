"""AEDAT 4.0 reader/writer and the minimal flatbuffer module.

``reference_read`` below decodes with ``struct`` only (its own flatbuffer walking, independent of
``neurodata.formats._flatbuffers``), one packet and one event at a time.
"""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import lz4.frame
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurodata
from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _flatbuffers as fb
from neurodata.formats import aedat4
from neurodata.formats._aedat4_layout import compress
from tests.helpers import column_digests, event_arrays, random_events

SAMPLE = "aedat4/dvxplorer_sample.aedat4"
MAGIC = b"#!AER-DAT4.0\r\n"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- reference decoder
def _field(buf, tab, slot):
    vt = tab - struct.unpack_from("<i", buf, tab)[0]
    vsize = struct.unpack_from("<H", buf, vt)[0]
    if 4 + 2 * slot >= vsize:
        return None
    off = struct.unpack_from("<H", buf, vt + 4 + 2 * slot)[0]
    return tab + off if off else None


def _vector(buf, tab, slot):
    f = _field(buf, tab, slot)
    if f is None:
        return None, 0
    vec = f + struct.unpack_from("<I", buf, f)[0]
    return vec + 4, struct.unpack_from("<I", buf, vec)[0]


def _decompress(compression, payload):
    if compression in (1, 2):
        return lz4.frame.decompress(payload)
    if compression in (3, 4):
        return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    return payload


def reference_packets(path):
    """(compression, streams {id: type}, [(stream id, compressed payload)]): payloads are
    decompressed by the consumer only for the stream it reads, as the reader does."""
    data = open(path, "rb").read()
    assert data[:14] == MAGIC
    n = struct.unpack_from("<I", data, 14)[0]
    ioh = data[18:18 + n]
    tab = struct.unpack_from("<I", ioh, 0)[0]
    f = _field(ioh, tab, 0)
    compression = struct.unpack_from("<i", ioh, f)[0] if f else 0
    f = _field(ioh, tab, 1)
    fdp = struct.unpack_from("<q", ioh, f)[0] if f else -1
    s, ln = _vector(ioh, tab, 2)
    root = ET.fromstring(ioh[s:s + ln].decode("utf-8", "replace"))
    streams = {}
    for node in root.iter("node"):
        for a in node.findall("attr"):
            if a.get("key") == "typeIdentifier":
                streams[int(node.get("name"))] = a.text
    end = fdp if 18 + n <= fdp <= len(data) else len(data)
    pos = 18 + n
    packets = []
    while pos < end:
        sid, size = struct.unpack_from("<iI", data, pos)
        packets.append((sid, data[pos + 8:pos + 8 + size]))
        pos += 8 + size
    return compression, streams, packets


def reference_read(path, stream_id=None):
    compression, streams, packets = reference_packets(path)
    if stream_id is None:
        evts = sorted(k for k, v in streams.items() if v == "EVTS")
        stream_id = evts[0] if evts else None
    rows = []
    for sid, payload in packets:
        if sid != stream_id:
            continue
        buf = _decompress(compression, payload)[4:]
        assert buf[4:8] == b"EVTS"
        start, count = _vector(buf, struct.unpack_from("<I", buf, 0)[0], 0)
        for i in range(count):
            t, x, y, on = struct.unpack_from("<qhhB", buf, start + 16 * i)
            rows.append((t, x, y, int(on != 0)))
    return make_events(*zip(*rows)) if rows else np.zeros(0, EVENT_DTYPE)


def reference_tables(path, type_id, names):
    """Rows of every IMUS/TRIG table (slots in ``names`` order; t int64, then the given formats)."""
    compression, streams, packets = reference_packets(path)
    rows = []
    for sid, payload in packets:
        if streams.get(sid) != type_id:
            continue
        buf = _decompress(compression, payload)[4:]
        start, count = _vector(buf, struct.unpack_from("<I", buf, 0)[0], 0)
        for i in range(count):
            at = start + 4 * i
            tab = at + struct.unpack_from("<I", buf, at)[0]
            row = []
            for slot, (name, fmt) in enumerate(names):
                f = _field(buf, tab, slot)
                row.append(struct.unpack_from("<" + fmt, buf, f)[0] if f else 0)
            rows.append(tuple(row))
    return rows


# --------------------------------------------------------------------------- building test files
def stream_xml(*streams):
    """``streams``: (id, name, type, size or None)."""
    out = ['<dv version="2.0"><node name="outInfo" path="/outInfo/">']
    for sid, name, typ, size in streams:
        out.append(f'<node name="{sid}" path="/outInfo/{sid}/"><attr key="originalOutputName" type="string">{name}</attr>'
                   f'<attr key="typeIdentifier" type="string">{typ}</attr><node name="info" path="/i/">')
        if size:
            out.append(f'<attr key="sizeX" type="int">{size[0]}</attr><attr key="sizeY" type="int">{size[1]}</attr>')
        out.append('<attr key="source" type="string">test</attr></node></node>')
    out.append("</node></dv>")
    return "".join(out).encode()


def evts(x, y, t=None, on=None):
    n = len(x)
    raw = np.zeros(n, aedat4.DV_EVENT)
    raw["t"] = np.arange(n) if t is None else t
    raw["x"], raw["y"] = x, y
    raw["on"] = 1 if on is None else on
    return fb.build([fb.StructVector(raw.tobytes(), n, 8)], identifier=b"EVTS", size_prefixed=True)


def make_file(path, packets, *, compression=1, xml=None, fdp=-1, tail=b"", raw_payloads=False):
    """A file from ``packets`` [(stream id, flatbuffer bytes)], compressed unless ``raw_payloads``."""
    xml = stream_xml((0, "events", "EVTS", (64, 48))) if xml is None else xml
    ioh = fb.build([fb.Struct("i", compression), fb.Struct("q", fdp), fb.String(xml)], identifier=b"IOHE")
    body = b""
    offsets = []
    for sid, data in packets:
        if not raw_payloads:
            data = compress(data, {2: 1, 4: 3}.get(compression, compression))
        offsets.append(18 + len(ioh) + len(body))
        body += struct.pack("<iI", sid, len(data)) + data
    path.write_bytes(MAGIC + struct.pack("<I", len(ioh)) + ioh + body + tail)
    return offsets


# --------------------------------------------------------------------------- the real sample
def test_sample_digests(samples_dir, reference):
    ref = reference[SAMPLE]
    ev = neurodata.read(samples_dir / SAMPLE)
    assert neurodata.formats.detect_format(samples_dir / SAMPLE) == "aedat4"
    assert ev.dtype == EVENT_DTYPE and ev.size == ref["events"]
    assert column_digests(ev) == ref["sha256"]
    assert ev[:3].tolist() == [tuple(r) for r in ref["first"]]
    assert ev[-3:].tolist() == [tuple(r) for r in ref["last"]]
    np.testing.assert_array_equal(aedat4.read(samples_dir / SAMPLE, threads=2, stream="events"), ev)
    blocks = list(aedat4.iter_blocks(samples_dir / SAMPLE, 20_000))
    assert len(blocks) > 5
    np.testing.assert_array_equal(np.concatenate(blocks), ev)


def test_sample_inspect_and_side_streams(samples_dir, reference):
    path = samples_dir / SAMPLE
    info = neurodata.inspect(path)
    assert info.format == "aedat4" and info.sensor_size == (320, 240, 2)
    assert info.event_count == reference[SAMPLE]["events"]  # from the file data table
    assert info.metadata["compression"] == "lz4" and info.metadata["camera"] == "DVXplorer_DXB00010"
    assert info.metadata["file_data_position"] == reference[SAMPLE]["file_data_position"]
    assert [(s["id"], s["name"], s["type"], s["size"]) for s in info.metadata["streams"]] == [
        (0, "events", "EVTS", (320, 240)), (2, "imu", "IMUS", None), (3, "triggers", "TRIG", None)]
    got = aedat4.read(path, imu=True, triggers=True)
    assert isinstance(got, aedat4.Aedat4Streams)
    assert got.triggers.size == 0 and got.triggers.dtype == aedat4.TRIGGER_DTYPE
    names = [(n, "q" if n == "t" else "f") for n in aedat4.IMU_DTYPE.names]
    want = reference_tables(path, "IMUS", names)
    assert len(want) == got.imu.size > 0
    np.testing.assert_array_equal(got.imu, np.array(want, aedat4.IMU_DTYPE))
    g = np.sqrt(got.imu["accelerometer_x"] ** 2 + got.imu["accelerometer_y"] ** 2 + got.imu["accelerometer_z"] ** 2)
    assert 0.8 < np.median(g) < 1.2  # the camera sat still: about 1 g
    assert aedat4.read(path, imu=True).triggers is None


def test_sample_matches_reference_decoder(samples_dir):
    np.testing.assert_array_equal(aedat4.read(samples_dir / SAMPLE), reference_read(samples_dir / SAMPLE))


# --------------------------------------------------------------------------- round trips
@SETTINGS
@given(ev=event_arrays(max_x=32767, max_y=32767, min_t=-2**62, max_t=2**62, max_n=150, sorted_t=False),
       compression=st.sampled_from(["lz4", "zstd", "none"]), packet_events=st.integers(1, 40))
def test_round_trip(tmp_path, ev, compression, packet_events):
    path = tmp_path / "r.aedat4"
    aedat4.write(path, ev, compression=compression, packet_events=packet_events)
    np.testing.assert_array_equal(aedat4.read(path), ev)
    np.testing.assert_array_equal(reference_read(path), ev)
    info = aedat4.inspect(path)
    assert info.event_count == ev.size and info.metadata["compression"] == compression
    blocks = list(aedat4.iter_blocks(path, 50))
    np.testing.assert_array_equal(np.concatenate(blocks) if blocks else np.zeros(0, EVENT_DTYPE), ev)


@pytest.mark.parametrize("ev", [np.zeros(0, EVENT_DTYPE), make_events([7], [1], [2], [1]),
                                make_events([0, 1], [32767, 0], [32767, 5], [0, 1])])
def test_edge_cases(tmp_path, ev):
    path = tmp_path / "e.aedat4"
    neurodata.write(path, ev, "aedat4")
    np.testing.assert_array_equal(neurodata.read(path), ev)
    size = (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1, 2) if ev.size else (1, 1, 2)
    assert neurodata.inspect(path).sensor_size == size


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_imu=st.integers(0, 600), n_trig=st.integers(0, 300), seed=st.integers(0, 2**16))
def test_imu_and_trigger_round_trip(tmp_path, n_imu, n_trig, seed):
    rng = np.random.default_rng(seed)
    imu = np.zeros(n_imu, aedat4.IMU_DTYPE)
    for name in aedat4.IMU_DTYPE.names:
        imu[name] = np.sort(rng.integers(0, 10**9, n_imu)) if name == "t" else rng.normal(size=n_imu)
    trig = np.zeros(n_trig, aedat4.TRIGGER_DTYPE)
    trig["t"], trig["source"] = np.sort(rng.integers(0, 10**9, n_trig)), rng.integers(-128, 128, n_trig)
    ev = random_events(500, seed=seed, duration_us=10**9)
    path = tmp_path / "s.aedat4"
    aedat4.write(path, ev, (128, 128, 2), imu=imu, triggers=trig)
    got = aedat4.read(path, imu=True, triggers=True)
    np.testing.assert_array_equal(got.events, ev)
    np.testing.assert_array_equal(got.imu, imu)
    np.testing.assert_array_equal(got.triggers, trig)


def test_decode_from_memory(tmp_path, samples_dir):
    data = (samples_dir / SAMPLE).read_bytes()
    np.testing.assert_array_equal(neurodata.formats.read_bytes(data, "aedat4"), aedat4.read(samples_dir / SAMPLE))
    got = aedat4.decode(data, imu=True)
    assert got.imu.size == aedat4.read(samples_dir / SAMPLE, imu=True).imu.size
    with pytest.raises(FormatError) as e:
        aedat4.decode(data[:-5000])
    assert e.value.path is None and "<buffer>" in str(e.value)
    ev = random_events(300_000, sensor_size=(640, 480, 2), seed=9)
    path = tmp_path / "m.aedat4"
    aedat4.write(path, ev, (640, 480, 2), compression="none")  # > 4 MiB: threaded path
    np.testing.assert_array_equal(aedat4.decode(bytearray(path.read_bytes()), threads=2), ev)


def test_parallel_path_and_iter_events(tmp_path):
    ev = random_events(400_000, sensor_size=(640, 480, 2), seed=4)
    path = tmp_path / "big.aedat4"
    aedat4.write(path, ev, (640, 480, 2), compression="none", packet_events=3000)  # > 4 MiB of payload
    np.testing.assert_array_equal(aedat4.read(path, threads=2), ev)
    np.testing.assert_array_equal(aedat4.read(path, threads=1), ev)
    chunks = list(neurodata.iter_events(path, chunk_events=150_000))
    assert [c.size for c in chunks] == [150_000, 150_000, 100_000]
    np.testing.assert_array_equal(np.concatenate(chunks), ev)


def test_output_grows_when_later_packets_compress_better(tmp_path):
    rng = np.random.default_rng(0)
    noisy = make_events(np.sort(rng.integers(0, 10**6, 70_000)), rng.integers(0, 640, 70_000),
                        rng.integers(0, 480, 70_000), rng.integers(0, 2, 70_000))
    flat = make_events(np.full(400_000, 10**6), np.zeros(400_000), np.zeros(400_000), np.ones(400_000))
    ev = np.concatenate([noisy, flat])
    path = tmp_path / "g.aedat4"
    aedat4.write(path, ev, (640, 480, 2), packet_events=4096)
    np.testing.assert_array_equal(aedat4.read(path, threads=1), ev)


# --------------------------------------------------------------------------- stream choice and layout rules
def test_stream_selection_and_file_data_position(tmp_path):
    xml = stream_xml((0, "events", "EVTS", (64, 48)), (1, "imu", "IMUS", None), (5, "second", "EVTS", (64, 48)))
    path = tmp_path / "s.aedat4"
    make_file(path, [(0, evts([1, 2], [3, 4])), (5, evts([9], [9], t=[77])), (0, evts([5], [6], t=[8]))], xml=xml)
    assert aedat4.read(path)["x"].tolist() == [1, 2, 5]
    for sel in (5, "second", "5"):
        assert aedat4.read(path, stream=sel).tolist() == [(77, 9, 9, 1)]
    np.testing.assert_array_equal(aedat4.read(path, stream=5), reference_read(path, 5))
    with pytest.raises(ValueError, match="not events"):
        aedat4.read(path, stream="imu")
    with pytest.raises(ValueError, match="no stream 7"):
        aedat4.read(path, stream=7)
    # packets stop at file_data_position; a position outside the file is ignored
    tail = b"not a packet at all"
    offs = make_file(path, [(0, evts([1], [1]))], fdp=10**9, tail=b"")
    assert aedat4.read(path).size == 1
    data = path.read_bytes()
    make_file(path, [(0, evts([1], [1]))], fdp=len(data), tail=tail)
    assert aedat4.read(path).size == 1 and offs
    assert aedat4.inspect(path).event_count is None  # the "table" is garbage: no cheap count
    no_events = tmp_path / "n.aedat4"
    make_file(no_events, [(1, b"")], xml=stream_xml((1, "imu", "IMUS", None)), compression=0, raw_payloads=True)
    assert aedat4.read(no_events).size == 0


def test_zstd_frames_without_content_size(tmp_path):
    p = tmp_path / "z.aedat4"
    data = zstandard.ZstdCompressor(write_content_size=False).compress(evts([1, 2], [3, 4]))
    make_file(p, [(0, data)], compression=4, raw_payloads=True)
    assert aedat4.read(p)["x"].tolist() == [1, 2]
    make_file(p, [(0, data[:-3])], compression=4, raw_payloads=True)
    bad(p, len(p.read_bytes()) - len(data) + 3, "corrupt Zstd")


# --------------------------------------------------------------------------- bad input
def bad(path, offset, match, **kw):
    with pytest.raises(FormatError, match=match) as e:
        aedat4.read(path, **kw)
    assert e.value.path == str(path) and e.value.offset == offset, (e.value.offset, offset)
    return e.value


def test_bad_header(tmp_path):
    p = tmp_path / "h.aedat4"
    p.write_bytes(b"#!AER-DAT3.1\r\n" + bytes(40))
    bad(p, 0, "magic")
    p.write_bytes(MAGIC + b"\x01")
    bad(p, 14, "length")
    p.write_bytes(MAGIC + struct.pack("<I", 1000) + bytes(10))
    bad(p, 14, "exceeds")
    p.write_bytes(MAGIC + struct.pack("<I", 8) + struct.pack("<I", 500) + b"IOHE")
    bad(p, 18, "IOHeader flatbuffer")
    p.write_bytes(MAGIC + struct.pack("<I", 8) + struct.pack("<I", 0) + b"XXXX")
    bad(p, 22, "identifier")
    make_file(p, [], compression=9)
    bad(p, 18, "compression 9")
    make_file(p, [], xml=b"<dv><node")
    bad(p, 18, "not valid XML")
    make_file(p, [], xml=b'<!DOCTYPE x [<!ENTITY a "b">]><dv/>')
    bad(p, 18, "DOCTYPE")


def test_bad_packets(tmp_path):
    p = tmp_path / "p.aedat4"
    good = evts([1, 2], [3, 4])
    offs = make_file(p, [(0, good), (0, good)], tail=struct.pack("<iI", 0, 10**6))
    bad(p, offs[-1] + len(lz4.frame.compress(good)) + 8, "runs past the end")
    with pytest.warns(UserWarning, match="allow_truncated"):
        assert aedat4.read(p, allow_truncated=True).size == 4
    offs = make_file(p, [(0, good)], tail=b"\x00\x00\x00")
    bad(p, offs[0] + 8 + len(lz4.frame.compress(good)), "inside a packet header")
    offs = make_file(p, [(0, good), (4, good)])
    bad(p, offs[1], "stream id 4")
    offs = make_file(p, [(0, lz4.frame.compress(good)), (0, b"")], raw_payloads=True)
    bad(p, offs[1] + 8, "zero-length")
    corrupt = bytearray(lz4.frame.compress(good))
    corrupt[8:] = bytes(len(corrupt) - 8)
    offs = make_file(p, [(0, bytes(corrupt))], raw_payloads=True)
    bad(p, offs[0] + 8, "corrupt LZ4")
    offs = make_file(p, [(0, b"\x28\xb5\x2f\xfd" + bytes(20))], compression=3, raw_payloads=True)
    bad(p, offs[0] + 8, "corrupt Zstd")
    offs = make_file(p, [(0, b"garbage!")], compression=3, raw_payloads=True)
    bad(p, offs[0] + 8, "corrupt Zstd")
    lying = bytearray(lz4.frame.compress(good))  # header claims 2**50 bytes of content
    lying[6:14] = (2**50).to_bytes(8, "little")
    offs = make_file(p, [(0, bytes(lying))], raw_payloads=True)
    bad(p, offs[0] + 8, "corrupt LZ4.*declares")


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b[:0], "too short"),
    (lambda b: b[:11], "too short"),
    (lambda b: struct.pack("<I", 10**6) + b[4:], "size prefix"),
    (lambda b: b[:8] + b"EVTZ" + b[12:], "identifier"),
    (lambda b: b[:4] + struct.pack("<I", 10**6) + b[8:], "root table"),
    (lambda b: b[:20] + struct.pack("<i", -10**6) + b[24:], "vtable"),
    (lambda b: b[:12] + struct.pack("<H", 5) + b[14:], "vtable"),
    (lambda b: b[:16] + struct.pack("<H", 400) + b[18:], "field offset"),
    (lambda b: b[:24] + struct.pack("<I", 10**6) + b[28:], "event vector"),
    (lambda b: b[:28] + struct.pack("<I", 2**30) + b[32:], "event vector"),
])
def test_corrupt_flatbuffers(tmp_path, mutate, match):
    good = evts([1, 2], [3, 4])
    assert good[8:12] == b"EVTS" and struct.unpack_from("<I", good, 28)[0] == 2  # layout the mutations assume
    p = tmp_path / "f.aedat4"
    offs = make_file(p, [(0, good), (0, mutate(good))], compression=0, raw_payloads=True)
    err = bad(p, offs[1] + 8, match)
    assert "decompressed packet" in str(err)


def test_coordinates_outside_declared_sensor(tmp_path):
    p = tmp_path / "c.aedat4"
    offs = make_file(p, [(0, evts([1, 2], [3, 4])), (0, evts([5, 64], [6, 7]))])
    bad(p, offs[1] + 8, "event 1 of the packet")
    offs = make_file(p, [(0, evts([1, -3], [3, 4]))], xml=stream_xml((0, "events", "EVTS", None)))
    bad(p, offs[0] + 8, "event 1")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), compression=st.sampled_from(["none", "lz4"]))
def test_fuzz_mutations_never_crash(tmp_path, data, compression):
    ev = random_events(40, sensor_size=(64, 48, 2), seed=7)
    path = tmp_path / "f.aedat4"
    aedat4.write(path, ev, (64, 48, 2), compression=compression, packet_events=9)
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[:data.draw(st.integers(len(raw) // 2, len(raw)))]
    path.write_bytes(bytes(raw))
    try:
        got = aedat4.read(path)
    except (FormatError, ValueError):
        return
    np.testing.assert_array_equal(got, reference_read(path))


# --------------------------------------------------------------------------- the flatbuffer module
def test_flatbuffer_builder_reader_round_trip():
    buf = fb.build([fb.Struct("i", 3), None, fb.String(b"hello"), fb.Struct("q", -2**40),
                    fb.TableVector([[fb.Struct("q", i), fb.Struct("b", -i)] for i in range(5)])],
                   identifier=b"TEST", size_prefixed=True)
    assert len(buf) % 8 == 0 and struct.unpack_from("<I", buf, 0)[0] == len(buf) - 4
    t = fb.root(buf, size_prefixed=True, identifier=b"TEST")
    assert t.scalar(0, "i") == 3 and t.scalar(1, "i", 42) == 42 and t.string(2) == b"hello"
    assert t.scalar(3, "q") == -2**40 and t.scalar(9, "q", 7) == 7
    start, n = t.vector(4, 4)
    cols = fb.table_vector_columns(buf, start, n, t.end, [("a", 0, "<i8", 0), ("b", 1, "i1", 0), ("c", 2, "<f4", 1.5)])
    assert cols.tolist() == [(i, -i, 1.5) for i in range(5)]
    with pytest.raises(fb.FlatbufferError):
        fb.root(buf, size_prefixed=True, identifier=b"NOPE")
    with pytest.raises(fb.FlatbufferError):
        fb.root(buf[:20], size_prefixed=True)
    with pytest.raises(fb.FlatbufferError):
        fb.table_vector_columns(buf, start, n + 1000, t.end, [("a", 0, "<i8", 0)])


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 4))
def test_flatbuffer_reader_never_reads_outside(seed, flips):
    rng = np.random.default_rng(seed)
    buf = bytearray(fb.build([fb.TableVector([[fb.Struct("q", i), fb.Struct("f", 0.5)] for i in range(4)])],
                             identifier=b"IMUS", size_prefixed=True))
    for _ in range(flips):
        buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
    try:
        t = fb.root(bytes(buf), size_prefixed=True, identifier=b"IMUS")
        v = t.vector(0, 4)
        if v:
            fb.table_vector_columns(bytes(buf), v[0], v[1], t.end, [("t", 0, "<i8", 0), ("x", 1, "<f4", 0)])
    except fb.FlatbufferError as e:
        assert 0 <= e.position <= len(buf)


def test_writer_rejects_unrepresentable(tmp_path):
    with pytest.raises(ValueError, match="32767"):
        aedat4.write(tmp_path / "x.aedat4", make_events([0], [40000], [0], [0]))
    with pytest.raises(ValueError, match="compression"):
        aedat4.write(tmp_path / "x.aedat4", make_events([0], [1], [0], [0]), compression="gzip")
    with pytest.raises(ValueError, match="outside"):
        aedat4.write(tmp_path / "x.aedat4", make_events([0], [100], [0], [0]), sensor_size=(64, 48, 2))
    assert not list(tmp_path.iterdir())
