"""N-MNIST reader, 8-record vector path: groups of 8 records are decoded at once (byte shuffles,
one 104-byte store) and a group holding an overflow marker is decoded again record by record.
Files larger than one window are decoded from a memory map in one range per thread, window by
window, placed by a marker count of the earlier ranges. Checked against the pure-Python reference
at group, range, chunk and window edges, with the output room of a range exactly full, threads 1
vs N, and with NUMBA_DISABLE_JIT."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import _records, nmnist
from tests.formats.test_nmnist import reference_decode
from tests.helpers import run_without_jit

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MARKER = bytes(nmnist.MARKER_RECORD)


def records(rng, n, markers=()):
    """``n`` random 5-byte records (no y == 240), then markers put at the given indices."""
    rec = rng.integers(0, 256, (n, 5), dtype=np.uint8)
    rec[rec[:, 1] == 240, 1] = 17
    for i in markers:
        if 0 <= i < n:
            rec[i] = np.frombuffer(MARKER, np.uint8)
    return rec


def edges(n, step=8):
    """Record indices at and around every multiple of ``step`` below ``n``."""
    return sorted({i for k in range(0, n + step, step) for i in (k - 1, k, k + 1) if 0 <= i < n})


@SETTINGS
@given(n=st.sampled_from([0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099]),
       marker_at=st.lists(st.integers(0, 4100), max_size=6),
       edge_markers=st.sampled_from([None, 0, 7, 8]),
       run=st.integers(0, 20), threads=st.integers(1, 3),
       window=st.sampled_from([5 * 9, 5 * 700, 5 * 1024, 1 << 20]), seed=st.integers(0, 2**16))
def test_groups_match_reference(tmp_path, monkeypatch, n, marker_at, edge_markers, run, threads, window, seed):
    """Markers anywhere (group starts/ends, runs of consecutive markers, first/last record), with
    windows and chunks cut at odd places: ``read_nmnist`` and ``iter_blocks`` equal the reference."""
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 40)
    monkeypatch.setattr(_records, "WINDOW_BYTES", window)
    rng = np.random.default_rng(seed)
    where = set(marker_at)
    if edge_markers is not None:  # a marker at this offset of every group (0: starts, 7: ends)
        where |= set(range(edge_markers, n, 8 if edge_markers < 8 else 64))
    start = int(rng.integers(0, max(1, n)))
    where |= set(range(start, start + run))  # a run of consecutive markers
    data = records(rng, n, where).tobytes()
    path = tmp_path / "g.bin"
    path.write_bytes(data)
    ref = reference_decode(data)
    ev = nmnist.read_nmnist(path, threads=threads)
    assert ev.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(ev, ref)
    parts = list(nmnist.iter_blocks(path, window, threads=threads))
    np.testing.assert_array_equal(np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE), ref)


@pytest.mark.parametrize("k", range(8))
def test_one_marker_at_each_offset_of_a_group(tmp_path, k):
    """A marker at offset ``k`` of the second group: the group is redone record by record and
    every later timestamp gets 2**13 µs; the groups around it stay on the vector path."""
    rng = np.random.default_rng(k)
    data = records(rng, 40, [8 + k]).tobytes()
    path = tmp_path / "k.bin"
    path.write_bytes(data)
    ev = nmnist.read_nmnist(path, threads=1)
    ref = reference_decode(data)
    np.testing.assert_array_equal(ev, ref)
    assert ev.size == 39 and (ev["t"][8 + k:] >= 8192).all()


@pytest.mark.parametrize("markers", [[], [0], [7], [0, 7], list(range(8)), [3, 4, 5]])
def test_kernel_never_writes_past_the_room(markers):
    """A chunk whose output room is exactly its event count (what ``_decode_window`` gives every
    chunk but the last): nothing is written past it, the events are the reference's."""
    rng = np.random.default_rng(len(markers))
    n = 64 + 5
    where = [60 + m for m in markers if 60 + m < n] + [8 * i + 3 for i in range(0, 7, 3)]
    data = records(rng, n, where).tobytes()
    ref = reference_decode(data)
    room = ref.size
    big = np.full(13 * (room + 16), 0xA5, np.uint8)
    written = nmnist._decode_kernel(np.frombuffer(data, np.uint8), big[:13 * room], 3)
    assert written == room
    assert (big[13 * room:] == 0xA5).all(), "wrote past the room"
    ev = big[:13 * room].view(EVENT_DTYPE)
    np.testing.assert_array_equal(ev["t"], ref["t"] + 3 * 8192)
    np.testing.assert_array_equal(ev[["x", "y", "p"]], ref[["x", "y", "p"]])


def test_kernel_room_shorter_than_the_records():
    """Room for fewer events than the file holds (a file that grew between two passes): the
    kernel stops at the room, whole groups or not, without writing past it."""
    rng = np.random.default_rng(3)
    data = records(rng, 100).tobytes()
    ref = reference_decode(data)
    for room in (0, 1, 7, 8, 9, 50):
        big = np.full(13 * 120, 0x5A, np.uint8)
        assert nmnist._decode_kernel(np.frombuffer(data, np.uint8), big[:13 * room], 0) == room
        assert (big[13 * room:] == 0x5A).all()
        np.testing.assert_array_equal(big[:13 * room].view(EVENT_DTYPE), ref[:room])


def test_threads_identical_with_many_markers(tmp_path, monkeypatch):
    """Several windows and chunks, a marker every ~30 records: threads 1, 2, 3 give the same
    array as the reference."""
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 1 << 12)
    monkeypatch.setattr(_records, "WINDOW_BYTES", 5 * 20_011)
    rng = np.random.default_rng(11)
    n = 60_000
    data = records(rng, n, rng.integers(0, n, n // 30)).tobytes()
    path = tmp_path / "many.bin"
    path.write_bytes(data)
    ref = reference_decode(data)
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(nmnist.read_nmnist(path, threads=threads), ref)


def test_large_marker_counts_round_trip(tmp_path, monkeypatch):
    """Timestamps past 2**32 µs (2**19 markers before the last events): the vector path adds the
    marker offset in 64 bits, in every chunk and window."""
    monkeypatch.setattr(_records, "WINDOW_BYTES", 1 << 18)
    rng = np.random.default_rng(2)
    t = np.sort(rng.integers(0, 2**32 + 2**31, 3000))
    ev = make_events(t, rng.integers(0, 34, t.size), rng.integers(0, 34, t.size), rng.integers(0, 2, t.size))
    path = tmp_path / "long.bin"
    nmnist.write_nmnist(path, ev)
    for threads in (1, 3):
        np.testing.assert_array_equal(nmnist.read_nmnist(path, threads=threads), ev)


def test_without_jit_matches_reference(tmp_path):
    """With NUMBA_DISABLE_JIT=1 the kernels run as Python (the 8-record decoder falls back to
    numpy) and give the reference result, vector groups, redone groups and tail alike, read in
    one window and in mapped ranges of small windows."""
    rng = np.random.default_rng(9)
    data = records(rng, 8 * 9 + 5, [0, 15, 16, 40, 41, 76]).tobytes()
    path = tmp_path / "nojit.bin"
    path.write_bytes(data)
    np.save(tmp_path / "ref.npy", reference_decode(data))
    code = ("import sys, numpy as np; from neurodata.formats import _records, nmnist; "
            "ref = np.load(sys.argv[2]); "
            "assert np.array_equal(nmnist.read_nmnist(sys.argv[1], threads=1), ref), 'one window'; "
            "_records.WINDOW_BYTES, _records.Workers.MIN_CHUNK_BYTES = 5 * 11, 40; "
            "assert np.array_equal(nmnist.read_nmnist(sys.argv[1], threads=2), ref), 'mapped ranges'; "
            "print('ok')")
    assert run_without_jit(code, path, tmp_path / "ref.npy").stdout.strip() == "ok"
