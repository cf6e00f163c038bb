"""AEDAT 2.0 reader, block fast path: blocks of 512 records that hold only polarity records and
cannot hold a wrap (bit 31 the same in every timestamp, and set if set in the record before) are
decoded without per-record checks (two 8-byte stores per event); every other block record by record. Checked against the struct reference at block, chunk and
window edges, for both address layouts, with and without the sensor-bounds check."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodata.errors import FormatError
from neurodata.events import EVENT_DTYPE
from neurodata.formats import _records, aedat2
from tests.formats.test_aedat2 import DAVIS_HEADER, DVS_HEADER, davis_imu, reference_decode
from tests.helpers import run_without_jit

BLOCK = aedat2._BLOCK
DAVIS240_HEADER = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C\r\n"
DVS_SMALL_HEADER = DVS_HEADER + b"# SensorSize: 100x90\r\n"   # DVS128 layout, checked sensor


def polarity_addresses(rng, n, layout, w=None, h=None):
    """Random polarity addresses (no special/APS/IMU bits) inside ``w x h``."""
    if layout == "dvs128":
        x, y = rng.integers(0, w or 128, n, dtype=np.uint32), rng.integers(0, h or 128, n, dtype=np.uint32)
        return (y << 8) | (x << 1) | rng.integers(0, 2, n, dtype=np.uint32)
    x, y = rng.integers(0, w or 1024, n, dtype=np.uint32), rng.integers(0, h or 512, n, dtype=np.uint32)
    return (y << 22) | (x << 12) | (rng.integers(0, 2, n, dtype=np.uint32) << 11)


def body_of(a, t):
    return np.stack([np.asarray(a, np.uint32), np.asarray(t, np.uint32)], 1).astype(">u4").tobytes()


def edges(n, step=BLOCK):
    """Record indices at and around every multiple of ``step`` below ``n``."""
    return sorted({i for k in range(0, n + step, step) for i in (k - 1, k, k + 1) if 0 <= i < n})


# Timestamp steps: small ones, plus at chosen records a wrap (a drop of more than 2**31), a drop
# of exactly 2**31 (no wrap), a forward jump of more than 2**31, or a start just below 2**31 / 2**32.
JUMPS = {"wrap": -(2**31 + 1), "drop_2_31": -(2**31), "jump": 2**31 + 7}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.sampled_from([1, 2, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 1, 3000]),
       layout=st.sampled_from(["dvs128", "davis"]),
       t0=st.sampled_from([0, 2**31 - 700, 2**32 - 700, 123456789]),
       special_at=st.lists(st.integers(0, 3000), max_size=4), special_edges=st.booleans(),
       jumps=st.lists(st.tuples(st.integers(0, 3000), st.sampled_from(sorted(JUMPS))), max_size=3),
       edge_jump=st.sampled_from([None] + sorted(JUMPS)),
       threads=st.integers(1, 3), window=st.sampled_from([8 * 700, 8 * 1536, 1 << 20]),
       seed=st.integers(0, 2**16))
def test_blocks_match_reference(tmp_path, monkeypatch, n, layout, t0, special_at, special_edges, jumps,
                                edge_jump, threads, window, seed):
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)
    monkeypatch.setattr(_records, "WINDOW_BYTES", window)
    rng = np.random.default_rng(seed)
    a = polarity_addresses(rng, n, layout)
    skip = [i for i in special_at if i < n] + (edges(n)[::3] if special_edges else [])
    a[skip] |= np.uint32(0x8000 if layout == "dvs128" else 0x80000400)
    steps = rng.integers(0, 3, n).astype(np.int64)
    steps[0] = t0
    at_starts = [(k, edge_jump) for k in range(BLOCK, n, BLOCK) if edge_jump]  # prev_t hand-off
    for i, kind in jumps + at_starts:
        if 0 < i < n:
            steps[i] = JUMPS[kind]
    t = np.cumsum(steps) & 0xFFFFFFFF
    header = DVS_HEADER if layout == "dvs128" else DAVIS_HEADER
    path = tmp_path / "b.aedat"
    path.write_bytes(header + body_of(a, t))
    ref, _ = reference_decode(header + body_of(a, t), len(header), layout)
    ev = aedat2.read_aedat2(path, threads=threads)
    np.testing.assert_array_equal(ev, ref)
    np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=1), ev)
    blocks = list(aedat2.iter_blocks(path, 8 * 1000, threads=threads))
    np.testing.assert_array_equal(np.concatenate(blocks) if blocks else ref[:0], ref)


@pytest.mark.parametrize("kind", sorted(JUMPS))
@pytest.mark.parametrize("layout", ["dvs128", "davis"])
@pytest.mark.parametrize("threads", [1, 2])
def test_jump_at_every_block_start(tmp_path, monkeypatch, kind, layout, threads):
    """A block whose own timestamps share bit 31 still wraps when the record before it (the
    previous block's last, or the previous chunk's) is more than 2**31 above its first."""
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)
    n = 6 * BLOCK + 3
    a = polarity_addresses(np.random.default_rng(1), n, layout)
    steps = np.ones(n, np.int64)
    steps[BLOCK::BLOCK] = JUMPS[kind]
    t = np.cumsum(steps) & 0xFFFFFFFF
    header = DVS_HEADER if layout == "dvs128" else DAVIS_HEADER
    path = tmp_path / "j.aedat"
    path.write_bytes(header + body_of(a, t))
    ref, _ = reference_decode(header + body_of(a, t), len(header), layout)
    np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=threads), ref)


@pytest.mark.parametrize("layout", ["dvs128", "davis"])
def test_threads_give_identical_results_on_a_large_file(tmp_path, monkeypatch, layout):
    """Several windows of several chunks; wraps, special records and bit-31 crossings throughout."""
    monkeypatch.setattr(_records, "WINDOW_BYTES", 8 * 20_000)
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 1024)
    rng = np.random.default_rng(7)
    n = 100_003
    a = polarity_addresses(rng, n, layout)
    a[rng.random(n) < 0.0005] |= np.uint32(0x8000 if layout == "dvs128" else 0x80000400)
    t = np.cumsum(rng.integers(0, 2**18, n)) & 0xFFFFFFFF      # 3 wraps, 6 bit-31 crossings
    header = DVS_HEADER if layout == "dvs128" else DAVIS_HEADER
    path = tmp_path / "big.aedat"
    path.write_bytes(header + body_of(a, t))
    ref, _ = reference_decode(header + body_of(a, t), len(header), layout)
    assert (np.diff(ref["t"]) >= 0).all() and ref["t"][-1] > 3 * 2**32
    for threads in (1, 2, 3, 8):
        np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=threads), ref)


@pytest.mark.parametrize("header, w, h, layout", [(DAVIS240_HEADER, 240, 180, "davis"),
                                                  (DVS_SMALL_HEADER, 100, 90, "dvs128")])
@pytest.mark.parametrize("where", [0, BLOCK - 1, BLOCK, 1500, 2999])
@pytest.mark.parametrize("dirty_block", [False, True])
def test_bounds_check_in_fast_and_slow_blocks(tmp_path, monkeypatch, header, w, h, layout, where, dirty_block):
    """The first event outside the sensor raises at its byte offset, whichever path decoded it."""
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)
    rng = np.random.default_rng(where)
    n = 3000
    a = polarity_addresses(rng, n, layout, w, h)
    a[0] = (a[0] & ~np.uint32(0xFFFF if layout == "dvs128" else 0xFFFFF800)) | (
        ((h - 1) << 8 | (w - 1) << 1) if layout == "dvs128" else ((h - 1) << 22 | (w - 1) << 12))
    if dirty_block:   # a special record in the same block sends it through the record-by-record path
        near = where + 1 if where + 1 < n and (where + 1) % BLOCK else where - 1
        a[near] |= np.uint32(0x8000 if layout == "dvs128" else 0x80000400)
    t = np.arange(n, dtype=np.uint32) * 3
    path = tmp_path / "in.aedat"
    path.write_bytes(header + body_of(a, t))
    ref, _ = reference_decode(header + body_of(a, t), len(header), layout)
    assert ref["x"].max() == w - 1 and ref["y"].max() == h - 1
    np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=2), ref)    # the edges are inside
    bad = a.copy()
    bad[where] = (h << 8 | (w - 1) << 1) if layout == "dvs128" else ((h - 1) << 22 | w << 12)
    path.write_bytes(header + body_of(bad, t))
    with pytest.raises(FormatError, match=r"outside the") as e:
        aedat2.read_aedat2(path, threads=2)
    assert e.value.offset == len(header) + 8 * where
    np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=2, ignore_bounds=True),
                                  reference_decode(header + body_of(bad, t), len(header), layout)[0])


def test_kernel_writes_only_its_slice(monkeypatch):
    """Decoding into the middle of a larger array leaves the bytes around it untouched (the
    8-byte stores of the fast path spill into the next event, never past the slice), and output
    room for fewer events than records bounds what is decoded."""
    rng = np.random.default_rng(3)
    n = 2 * BLOCK + 5
    raw = np.frombuffer(body_of(polarity_addresses(rng, n, "davis"), np.arange(n) * 5), np.uint8).copy()
    w32, w64 = aedat2._words(raw, 8)
    ref, _ = reference_decode(raw.tobytes(), 0, "davis")
    for room in (n, n - 1, BLOCK, 1):
        big = np.zeros(room + 4, EVENT_DTYPE)
        big.view(np.uint8)[:] = 0xAB
        out = big[2:2 + room]
        res = aedat2._decode_kernel(w32, w64, aedat2.DAVIS, -1, 0, out.view(np.uint8), True,
                                    aedat2._A_SHIFT, BLOCK)
        assert int(res[0]) == room and int(res[1]) == 0
        np.testing.assert_array_equal(out, ref[:room])
        assert (big[:2].view(np.uint8) == 0xAB).all() and (big[2 + room:].view(np.uint8) == 0xAB).all()
        assert (int(res[2]), int(res[3])) == (int(ref["x"][:room].max()), int(ref["y"][:room].max()))


@pytest.mark.parametrize("tail", [b"", b"\x00\x01\x02", b"\x80\x00\x0c\x00\x00\x00\x00"])
def test_large_file_ending_inside_an_imu_group_or_a_record(tmp_path, monkeypatch, tail):
    """Many clean blocks, then an IMU group cut after 4 of its 7 records, then maybe a partial record."""
    monkeypatch.setattr(_records, "WINDOW_BYTES", 8 * 1000)
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)
    rng = np.random.default_rng(11)
    n = 5 * BLOCK
    a = list(polarity_addresses(rng, n, "davis"))
    a[100:100] = [davis_imu(c, 1000 * c - 3000) for c in range(7)]    # one whole IMU sample
    a += [davis_imu(c, 7) for c in range(4)]                          # cut short by the end of file
    t = np.arange(len(a)) * 11 + 2**31 - 5 * BLOCK                    # crosses bit 31 on the way
    data = DAVIS_HEADER + body_of(a, t) + tail
    path = tmp_path / "cut.aedat"
    path.write_bytes(data)
    ref_ev, ref_imu = reference_decode(data, len(DAVIS_HEADER), "davis")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev, imu = aedat2.read_aedat2(path, imu=True, threads=2)
    assert any("partial record" in str(w.message) for w in caught) == bool(tail)
    assert ev.size == n and imu.size == 1 == ref_imu.size
    np.testing.assert_array_equal(ev, ref_ev)
    np.testing.assert_array_equal(imu, ref_imu)


def test_pure_python_kernel_without_jit(tmp_path):
    """With NUMBA_DISABLE_JIT=1 the kernel runs as Python (the unaligned-store helper falls back
    to numpy byte copies) and gives the reference result, fast and slow blocks alike."""
    rng = np.random.default_rng(5)
    n = BLOCK + 40
    a = polarity_addresses(rng, n, "davis", 240, 180)
    a[BLOCK + 3] |= np.uint32(0x80000400)
    t = (np.arange(n) * 7 + 2**32 - 3 * BLOCK) & 0xFFFFFFFF           # a wrap in the second block
    path = tmp_path / "nojit.aedat"
    data = DAVIS240_HEADER + body_of(a, t)
    path.write_bytes(data)
    ref, _ = reference_decode(data, len(DAVIS240_HEADER), "davis")
    np.save(tmp_path / "ref.npy", ref)
    code = ("import sys, numpy as np; from neurodata.formats import aedat2; "
            "ev = aedat2.read_aedat2(sys.argv[1], threads=1); "
            "assert np.array_equal(ev, np.load(sys.argv[2])), 'differs'; print('ok')")
    assert run_without_jit(code, path, tmp_path / "ref.npy", timeout=120).stdout.strip() == "ok"

