"""AEDAT 4.0 direct path (``_aedat4_decode.read_direct``): LZ4 frames decoded by liblz4's block
functions straight into the output, checked against the struct-only reference decoder of
``test_aedat4.py`` and against the per-packet path (``NEURODATA_AEDAT4_DECODER=generic``), which
must agree on every result and every error (file, offset, message)."""
from __future__ import annotations

import struct

import lz4.frame
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _aedat4_decode, aedat4
from tests.formats.test_aedat4 import evts, make_file, reference_read, stream_xml
from tests.helpers import random_events, run_without_jit

ENV = "NEURODATA_AEDAT4_DECODER"
HSET = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.skipif(not aedat4.direct_available(1), reason="no liblz4 block functions found")


@pytest.fixture
def direct(monkeypatch):
    """Records, per read, whether the direct path produced the result (False: it fell back)."""
    calls = []
    real = aedat4.read_direct

    def spy(*a, **k):
        out = real(*a, **k)
        calls.append(out is not None)
        return out
    monkeypatch.setattr(aedat4, "read_direct", spy)
    return calls


def outcome(path, **kw):
    try:
        return aedat4.read(path, **kw)
    except FormatError as e:
        return ("FormatError", e.path, e.offset, str(e))


def generic_outcome(path, monkeypatch, **kw):
    with monkeypatch.context() as m:
        m.setenv(ENV, "generic")
        return outcome(path, **kw)


def assert_same(a, b):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
    else:
        assert a.dtype == b.dtype == EVENT_DTYPE
        np.testing.assert_array_equal(a, b)


def manual_evts(raw, *, pad=0, shift=0, absent=False, trailing=b""):
    """A size-prefixed EVTS flatbuffer laid out by hand: ``pad`` bytes before the event vector,
    ``shift`` more to misalign it, no vector field when ``absent``, ``trailing`` bytes after it."""
    n = len(raw) // 16
    body = bytearray(struct.pack("<I", 16) + b"EVTS")
    body += struct.pack("<HHH", 4, 4, 0) if absent else struct.pack("<HHH", 6, 8, 4)
    body += b"\0\0" + struct.pack("<i", 8)            # table at 16, vtable at 8
    if not absent:
        vec = 24 + pad + shift
        body += struct.pack("<I", vec - 20) + bytes(pad + shift) + struct.pack("<I", n) + raw
    return struct.pack("<I", len(body)) + bytes(body) + trailing


def dv_raw(ev):
    raw = np.zeros(ev.size, aedat4.DV_EVENT)
    raw["t"], raw["x"], raw["y"], raw["on"] = ev["t"], ev["x"], ev["y"], ev["p"]
    return raw.tobytes()


# --------------------------------------------------------------------------- agreement with the reference
@HSET
@given(n=st.integers(0, 3000), packet_events=st.integers(1, 700), compression=st.sampled_from(["lz4", "none"]),
       n_imu=st.integers(0, 40), threads=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_matches_reference_with_other_streams_interleaved(tmp_path, direct, n, packet_events, compression, n_imu,
                                                         threads, seed):
    direct.clear()  # the fixture outlives hypothesis examples
    ev = random_events(n, sensor_size=(64, 48, 2), seed=seed, duration_us=10**6)
    imu = np.zeros(n_imu, aedat4.IMU_DTYPE)
    imu["t"] = np.sort(np.random.default_rng(seed).integers(0, 10**6, n_imu))
    path = tmp_path / "m.aedat4"
    aedat4.write(path, ev, (64, 48, 2), compression=compression, packet_events=packet_events, imu=imu,
                 triggers=np.zeros(3, aedat4.TRIGGER_DTYPE))
    got = aedat4.read(path, threads=threads)
    assert direct == [True]
    np.testing.assert_array_equal(got, ev)
    np.testing.assert_array_equal(got, reference_read(path))
    np.testing.assert_array_equal(aedat4.decode(path.read_bytes(), threads=threads), ev)


@pytest.mark.parametrize("compression", ["lz4", "none"])
def test_threads_and_chunks_give_identical_results(tmp_path, monkeypatch, direct, compression):
    monkeypatch.setattr(_aedat4_decode, "_CHUNK_BYTES", 5000)  # many kernel calls and page releases
    ev = random_events(200_000, sensor_size=(640, 480, 2), seed=5)
    path = tmp_path / "t.aedat4"
    aedat4.write(path, ev, (640, 480, 2), compression=compression, packet_events=1500)
    for threads in (1, 2, 3, 5):
        out = aedat4.read(path, threads=threads)
        assert out.flags.c_contiguous and out.flags.owndata
        np.testing.assert_array_equal(out, ev)
    np.testing.assert_array_equal(aedat4.decode(bytearray(path.read_bytes()), threads=2), ev)
    assert all(direct) and len(direct) == 5


# --------------------------------------------------------------------------- LZ4 frame variants
BLOCKS = [lz4.frame.BLOCKSIZE_MAX64KB, lz4.frame.BLOCKSIZE_MAX256KB, lz4.frame.BLOCKSIZE_MAX1MB,
          lz4.frame.BLOCKSIZE_MAX4MB]


def raw_frame(data, block_size, linked, checksums, store_size):
    """An LZ4 frame of stored (uncompressed) blocks, built by hand."""
    flg = 0x40 | (0 if linked else 0x20) | (0x14 if checksums else 0) | (0x08 if store_size else 0)
    desc = bytes([flg, block_size << 4]) + (struct.pack("<Q", len(data)) if store_size else b"")
    out = bytearray(struct.pack("<I", 0x184D2204) + desc + bytes([(xxh32_reference(desc) >> 8) & 0xFF]))
    step = 1 << (8 + 2 * block_size)
    for i in range(0, len(data), step):
        chunk = data[i:i + step]
        out += struct.pack("<I", len(chunk) | 1 << 31) + chunk
        out += struct.pack("<I", xxh32_reference(chunk)) if checksums else b""
    out += bytes(4) + (struct.pack("<I", xxh32_reference(data)) if checksums else b"")
    return bytes(out)


def reheader(f, flg=None, bd=None, size=None, dict_id=None):
    """Frame ``f`` (no dictionary id) with another descriptor and a matching header checksum."""
    body = f[6 + (10 if f[4] & 8 else 2) - 1:]
    flg = f[4] if flg is None else flg
    size = struct.unpack_from("<Q", f, 6)[0] if size is None and f[4] & 8 else size
    desc = bytes([flg, f[5] if bd is None else bd]) + (struct.pack("<Q", size or 0) if flg & 8 else b"")
    desc += struct.pack("<I", dict_id or 0) if flg & 1 else b""
    return bytearray(f[:4] + desc + bytes([(xxh32_reference(desc) >> 8) & 0xFF]) + body)


@pytest.mark.parametrize("block_size", BLOCKS)
@pytest.mark.parametrize("linked, checksums, store_size", [(True, False, False), (False, False, True),
                                                           (True, True, True), (False, True, False)])
@pytest.mark.parametrize("stored", [False, True])
def test_lz4_frame_options(tmp_path, direct, block_size, linked, checksums, store_size, stored):
    rng = np.random.default_rng(block_size + 7 * linked + 3 * checksums)
    n = 20_000 if stored else 90_000  # 0.3 / 1.4 MiB of structs: several blocks, linked ones reach back
    ev = make_events(np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 64, n), rng.integers(0, 48, n),
                     rng.integers(0, 2, n))
    opts = dict(block_size=block_size, block_linked=linked, content_checksum=checksums,
                block_checksum=checksums, store_size=store_size)
    parts = [ev[:1], ev[1:n * 2 // 3], ev[n * 2 // 3:]]
    payloads = [evts(p["x"], p["y"], p["t"], p["p"]) for p in parts]
    frames = [raw_frame(p, block_size, linked, checksums, store_size) if stored else lz4.frame.compress(p, **opts)
              for p in payloads]
    assert [lz4.frame.decompress(f) for f in frames] == payloads
    path = tmp_path / "f.aedat4"
    make_file(path, [(0, f) for f in frames], raw_payloads=True)
    got = aedat4.read(path, threads=2)
    assert direct == [True]
    np.testing.assert_array_equal(got, ev)


@pytest.mark.parametrize("compression", [1, 0])
@pytest.mark.parametrize("layout, used", [
    (dict(), True), (dict(shift=4), True), (dict(absent=True), True), (dict(trailing=b"tail" * 9), True),
    (dict(pad=300), False),  # the vector count lies past the bytes the count pass decodes: fallback
])
def test_flatbuffer_layouts(tmp_path, direct, compression, layout, used):
    ev = random_events(700, sensor_size=(64, 48, 2), seed=1)
    raw = b"" if layout.get("absent") else dv_raw(ev)
    packets = [(0, manual_evts(dv_raw(ev[:5]))), (0, manual_evts(raw, **layout)), (0, evts([1], [2], [3]))]
    path = tmp_path / "l.aedat4"
    make_file(path, packets, compression=compression)
    want = reference_read(path)
    assert want.size == 5 + (0 if layout.get("absent") else 700) + 1
    np.testing.assert_array_equal(aedat4.read(path), want)
    assert direct == [used or compression == 0]  # stored payloads are read whole: no count limit


def test_empty_packets_and_other_streams(tmp_path, direct):
    xml = stream_xml((0, "events", "EVTS", (64, 48)), (1, "imu", "IMUS", None), (2, "more", "EVTS", (64, 48)))
    packets = [(1, b"\0" * 40), (0, evts([], [])), (2, evts([7], [7])), (0, evts([1, 2], [3, 4])),
               (0, manual_evts(b"", absent=True)), (1, b"junk"), (0, evts([5], [6], t=[9]))]
    path = tmp_path / "e.aedat4"
    make_file(path, packets, xml=xml)
    assert aedat4.read(path, threads=2).tolist() == [(0, 1, 3, 1), (1, 2, 4, 1), (9, 5, 6, 1)]
    assert aedat4.read(path, stream=2).tolist() == [(0, 7, 7, 1)]
    assert direct == [True, True]  # the IMUS packets (not even flatbuffers) are never decoded
    make_file(path, [(0, evts([], []))] * 3, xml=xml)
    assert aedat4.read(path).size == 0


def test_zstd_and_generic_setting_use_the_packet_path(tmp_path, monkeypatch, direct):
    ev = random_events(5000, sensor_size=(64, 48, 2), seed=2)
    path = tmp_path / "z.aedat4"
    aedat4.write(path, ev, (64, 48, 2), compression="zstd", packet_events=333)
    np.testing.assert_array_equal(aedat4.read(path, threads=2), ev)
    aedat4.write(path, ev, (64, 48, 2), packet_events=333)
    monkeypatch.setenv(ENV, "generic")
    np.testing.assert_array_equal(aedat4.read(path, threads=2), ev)
    assert direct == []


def test_missing_lz4_functions_warn_and_fall_back(tmp_path, monkeypatch, direct):
    ev = random_events(500, sensor_size=(64, 48, 2), seed=3)
    path = tmp_path / "w.aedat4"
    aedat4.write(path, ev, (64, 48, 2))
    monkeypatch.setattr(_aedat4_decode, "_lz4_functions", lambda: None)
    _aedat4_decode._warn_no_lz4.cache_clear()
    with pytest.warns(RuntimeWarning, match="per-packet path"):
        np.testing.assert_array_equal(aedat4.read(path), ev)
    _aedat4_decode._warn_no_lz4.cache_clear()
    assert direct == []


# --------------------------------------------------------------------------- bad input: the same errors
def _frames(opts):
    rng = np.random.default_rng(0)
    good = [evts([1, 2, 3], [4, 5, 6]), evts(rng.integers(0, 64, 20_000), rng.integers(0, 48, 20_000)),
            evts([9], [10])]  # the middle one: 5 blocks of 64 KiB
    return [bytearray(lz4.frame.compress(g, **opts)) for g in good]


def _set(frame, at, value):
    frame[at] = value
    return frame


def _hc(f):
    return 4 + (10 if f[4] & 8 else 2)  # the header checksum byte; blocks start after it


CORRUPTIONS = {  # name: (frame options, mutation of the middle frame)
    "header checksum": ({}, lambda f: _set(f, _hc(f), f[_hc(f)] ^ 1)),
    "version bits": ({}, lambda f: reheader(f, flg=f[4] ^ 0xC0)),
    "reserved bit": ({}, lambda f: reheader(f, flg=f[4] | 2)),
    "reserved bd bits": ({}, lambda f: reheader(f, bd=f[5] | 1)),
    "block size id": ({}, lambda f: reheader(f, bd=0x30)),
    "dictionary id": ({}, lambda f: reheader(f, flg=f[4] | 1, dict_id=1234)),
    "content size": ({}, lambda f: reheader(f, size=struct.unpack_from("<Q", f, 6)[0] + 16)),
    "compressed data": ({}, lambda f: _set(f, _hc(f) + 9, f[_hc(f) + 9] ^ 0x55)),
    "match offset": ({}, lambda f: f[:_hc(f) + 5] + bytes([0x0F, 0xFF, 0xFF]) + f[_hc(f) + 8:]),
    "block checksum": (dict(block_checksum=True), lambda f: _set(f, len(f) - 6, f[-6] ^ 1)),
    "content checksum": (dict(content_checksum=True), lambda f: _set(f, len(f) - 1, f[-1] ^ 1)),
    "no end mark": ({}, lambda f: f[:-4]),
    "block past the end": ({}, lambda f: f[:_hc(f) + 1] + struct.pack("<I", 10**6) + f[_hc(f) + 5:]),
    "block over its maximum": (dict(block_size=lz4.frame.BLOCKSIZE_MAX256KB), lambda f: reheader(f, bd=0x40)),
    "empty frame": ({}, lambda f: f[:_hc(f) + 1] + bytes(4)),
    "skippable frame": ({}, lambda f: struct.pack("<II", 0x184D2A50, 0) + f),
    "trailing garbage": ({}, lambda f: f + b"garbage"),
    "x outside": ({}, lambda f: bytearray(lz4.frame.compress(evts([1, 99], [2, 2])))),
    "flatbuffer identifier": ({}, lambda f: bytearray(lz4.frame.compress(b"\x20\0\0\0" + bytes(4) + b"EVTZ"
                                                                          + bytes(24)))),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_payloads_give_the_packet_paths_errors(tmp_path, monkeypatch, direct, name):
    opts, mutate = CORRUPTIONS[name]
    frames = _frames(opts)
    frames[1] = mutate(frames[1])
    path = tmp_path / "c.aedat4"
    make_file(path, [(0, bytes(f)) for f in frames], raw_payloads=True)
    got = outcome(path, threads=2)
    assert_same(got, generic_outcome(path, monkeypatch, threads=2))
    readable = name in ("trailing garbage", "dictionary id")  # lz4.frame.decompress accepts both
    assert direct == [readable]
    if not readable:
        assert got[0] == "FormatError" and got[1] == str(path)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), compression=st.sampled_from(["lz4", "none"]), checksums=st.booleans())
def test_mutated_payloads_agree_with_the_packet_path(tmp_path, monkeypatch, data, compression, checksums):
    """Bytes changed only inside packet payloads (the packet list stays valid), so the direct path
    sees every kind of corrupt frame and flatbuffer; both paths must agree."""
    ev = random_events(300, sensor_size=(64, 48, 2), seed=data.draw(st.integers(0, 99)))
    opts = dict(block_checksum=checksums, content_checksum=checksums, store_size=not checksums)
    payloads = [evts(p["x"], p["y"], p["t"], p["p"]) for p in np.array_split(ev, 6)]
    if compression == "lz4":
        payloads = [lz4.frame.compress(p, **opts) for p in payloads]
    payloads = [bytearray(p) for p in payloads]
    for _ in range(data.draw(st.integers(1, 4))):
        k = data.draw(st.integers(0, len(payloads) - 1))
        i = data.draw(st.integers(0, len(payloads[k]) - 1))
        payloads[k][i] = data.draw(st.integers(0, 255))
    path = tmp_path / "h.aedat4"
    make_file(path, [(0, bytes(p)) for p in payloads], compression={"lz4": 1, "none": 0}[compression],
              raw_payloads=True)
    got = outcome(path, threads=data.draw(st.integers(1, 3)))
    assert_same(got, generic_outcome(path, monkeypatch))


# --------------------------------------------------------------------------- pieces
def xxh32_reference(data: bytes) -> int:
    """XXH32, seed 0, straight from the xxHash specification."""
    p1, p2, p3, p4, p5, m = 2654435761, 2246822519, 3266489917, 668265263, 374761393, 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    def rnd(acc, lane):
        return rotl((acc + lane * p2) & m, 13) * p1 & m

    n, i = len(data), 0
    if n >= 16:
        v = [(p1 + p2) & m, p2, 0, (-p1) & m]
        while i + 16 <= n:
            v = [rnd(v[j], int.from_bytes(data[i + 4 * j:i + 4 * j + 4], "little")) for j in range(4)]
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        h = p5
    h = (h + n) & m
    while i + 4 <= n:
        h = rotl((h + int.from_bytes(data[i:i + 4], "little") * p3) & m, 17) * p4 & m
        i += 4
    while i < n:
        h = rotl((h + data[i] * p5) & m, 11) * p1 & m
        i += 1
    h ^= h >> 15
    h = h * p2 & m
    h ^= h >> 13
    h = h * p3 & m
    return h ^ (h >> 16)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200), offset=st.integers(0, 7))
def test_xxh32(data, offset):
    buf = np.frombuffer(bytes(offset) + data, np.uint8)
    assert _aedat4_decode._xxh32(buf, offset, len(data)) == xxh32_reference(data)


def test_xxh32_known_values():
    for text, want in [(b"", 0x02CC5D05), (b"a", 0x550D7456), (b"abc", 0x32D153FF)]:
        assert xxh32_reference(text) == want
        assert _aedat4_decode._xxh32(np.frombuffer(text, np.uint8), 0, len(text)) == want


def test_kernels_as_python_with_numba_disabled(tmp_path):
    """``NUMBA_DISABLE_JIT=1`` runs the direct path's kernels as plain Python (small files)."""
    path = tmp_path / "j.aedat4"
    ev = random_events(700, sensor_size=(64, 48, 2), seed=6)
    parts = np.array_split(ev, 3)
    frames = [lz4.frame.compress(evts(p["x"], p["y"], p["t"], p["p"]), block_linked=k != 1, content_checksum=k == 2,
                                 block_checksum=k == 2) for k, p in enumerate(parts)]
    make_file(path, [(0, f) for f in frames], raw_payloads=True)
    script = ("import sys, numpy as np\nfrom neurodata.formats import aedat4\ncalls, real = [], aedat4.read_direct\n"
              "def spy(*a):\n    out = real(*a)\n    calls.append(out is not None)\n    return out\n"
              "aedat4.read_direct = spy\nnp.save(sys.argv[2], aedat4.read(sys.argv[1], threads=2))\n"
              "assert calls == [True], calls\n")
    run_without_jit(script, path, tmp_path / "o.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), ev)


def collect_blocks(path, block_bytes, **kw):
    blocks, error = [], None
    try:
        for b in aedat4.iter_blocks(path, block_bytes, **kw):
            blocks.append(b)
    except FormatError as e:
        error = (e.path, e.offset, str(e))
    return blocks, error


@pytest.mark.parametrize("corrupt", [None, "payload", "coordinate"])
def test_iter_blocks_agree_with_the_packet_path(tmp_path, monkeypatch, direct, corrupt):
    ev = random_events(60_000, sensor_size=(64, 48, 2), seed=8)
    path = tmp_path / "i.aedat4"
    aedat4.write(path, ev, (64, 48, 2), packet_events=1000)
    if corrupt:
        raw = bytearray(path.read_bytes())
        r = aedat4._Reader(path)
        at = int(r.pk_pos[37]) + 8
        if corrupt == "payload":
            raw[at + 30] ^= 0xFF
        else:
            frame = lz4.frame.compress(evts([1, 70], [2, 2]))  # trailing bytes after a frame are ignored
            raw[at:at + len(frame)] = frame
        path.write_bytes(bytes(raw))
    got = collect_blocks(path, 100_000, threads=2)
    with monkeypatch.context() as m:
        m.setenv(ENV, "generic")
        want = collect_blocks(path, 100_000, threads=2)
    assert [b.size for b in got[0]] == [b.size for b in want[0]] and len(got[0]) >= 3
    for a, b in zip(got[0], want[0]):
        np.testing.assert_array_equal(a, b)
    assert got[1] == want[1] and (got[1] is None) == (corrupt is None)
    if corrupt is None:
        np.testing.assert_array_equal(np.concatenate(got[0]), ev)
    assert direct.count(False) == (corrupt is not None) and len(direct) > 3
