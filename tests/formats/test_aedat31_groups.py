"""AEDAT 3.1 reader, 8-event vector path: the events of a polarity packet go 8 at a time through
byte shuffles and one 104-byte store while the packet has room for 8 more; a group holding an
invalid event is decoded again one by one. Checked against the struct reference at group, packet,
thread and window edges, with eventNumber < eventCapacity, eventValid disagreeing with the valid
bits, negative int32 timestamps, threads 1 vs N, and with NUMBA_DISABLE_JIT."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE
from neurodata.formats import aedat31
from tests.formats.test_aedat31 import packet, polarity_payload, reference_read, write_raw
from tests.helpers import run_without_jit

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 64, 65, 200]


def pol_packet(rng, cap, *, number=None, invalid=(), valid=None, overflow=0, ts=None, source=1):
    """A polarity packet of ``cap`` random events; ``invalid``: indices whose valid bit is 0."""
    x, y = rng.integers(0, 0x8000, cap), rng.integers(0, 0x8000, cap)
    p = rng.integers(0, 2, cap)
    ts = rng.integers(-2**31, 2**31, cap) if ts is None else ts
    bits = np.ones(cap, np.uint32)
    bits[[i for i in invalid if 0 <= i < cap]] = 0
    return packet(1, polarity_payload(x, y, p, ts, bits), source=source, overflow=overflow, number=number,
                  valid=valid)


@st.composite
def group_files(draw):
    """Polarity packets (and a skipped special packet) with invalid events at group edges."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    out = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 5)) == 0:
            out.append(packet(0, bytes(8 * 3), size=8))
            continue
        cap = draw(st.sampled_from(SIZES))
        number = draw(st.sampled_from([None, max(0, cap - 1), cap // 2, max(0, cap - 9)]))
        k = cap if number is None else number
        invalid = set(draw(st.lists(st.integers(0, 210), max_size=3)))
        edge = draw(st.sampled_from([None, 0, 7, 8]))
        if edge is not None:
            invalid |= set(range(edge, cap, 16))
        n_valid = k - len([i for i in invalid if i < k])
        valid = draw(st.sampled_from([None, 0, n_valid, max(0, n_valid - 1), n_valid + 3]))
        ts = draw(st.sampled_from(["random", "small"]))
        out.append(pol_packet(rng, cap, number=number, invalid=invalid, valid=valid,
                              overflow=draw(st.sampled_from([0, 1, 2**31 - 1])),
                              ts=None if ts == "random" else rng.integers(0, 1000, cap)))
    return out


@SETTINGS
@given(packets=group_files(), threads=st.integers(1, 3), window=st.sampled_from([64, 700, 32 << 20]))
def test_groups_match_reference(tmp_path, monkeypatch, packets, threads, window):
    """Every packet shape (sizes around multiples of 8, invalid events at group starts/ends,
    eventNumber < eventCapacity, eventValid too small/large/0), split across threads and windows:
    ``read``, ``decode`` and ``iter_blocks`` equal the reference."""
    monkeypatch.setattr(aedat31, "_PARALLEL_MIN_EVENTS", 1)
    monkeypatch.setattr(aedat31, "_WINDOW_BYTES", window)
    path = write_raw(tmp_path / "g.aedat", *packets)
    ref = reference_read(path)
    ev = aedat31.read(path, threads=threads)
    assert ev.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(ev, ref)
    np.testing.assert_array_equal(aedat31.decode(path.read_bytes(), threads=threads), ref)
    parts = list(aedat31.iter_blocks(path, 300, threads=threads))
    np.testing.assert_array_equal(np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE), ref)


@pytest.mark.parametrize("k", range(8))
def test_one_invalid_event_at_each_offset_of_a_group(tmp_path, k):
    """An invalid event at offset ``k`` of the second group: that group is redone one by one,
    later events move down by one; negative timestamps keep their sign under the overflow."""
    rng = np.random.default_rng(k)
    path = write_raw(tmp_path / "k.aedat", pol_packet(rng, 40, invalid=[8 + k], overflow=3))
    ev = aedat31.read(path, threads=1)
    np.testing.assert_array_equal(ev, reference_read(path))
    assert ev.size == 39


def test_kernel_stays_inside_each_packet_region():
    """The first pass gives each packet room for ``eventValid`` events; a packet with more valid
    events than that writes only its room (and counts the rest): nothing lands outside."""
    rng = np.random.default_rng(4)
    packets = [pol_packet(rng, 24, valid=9), pol_packet(rng, 17, valid=8, invalid=[2]),
               pol_packet(rng, 33, valid=33, invalid=[32]), pol_packet(rng, 8, valid=7)]
    data = b"".join(packets)
    sizes = [24, 17, 33, 8]
    pos = np.cumsum([0] + [28 + 8 * s for s in sizes[:-1]]).astype(np.int64)
    num = np.array(sizes, np.int64)
    cap = np.array([9, 8, 32, 7], np.int64)  # the last: room for 7 of 8 valid events, then the end
    off = np.concatenate(([0], np.cumsum(cap[:-1]))).astype(np.int64)
    got = np.zeros(4, np.int64)
    out8 = np.full(13 * (int(cap.sum()) + 8), 0xA5, np.uint8)
    aedat31._decode_kernel(np.frombuffer(data, np.uint8), pos, num, off, cap, 0, 4, out8, got)
    assert got.tolist() == [24, 16, 32, 8]
    assert (out8[13 * int(cap.sum()):] == 0xA5).all(), "wrote past the last region"
    buf = np.frombuffer(data, np.uint8)
    ev = out8[:13 * int(cap.sum())].view(EVENT_DTYPE)
    for j in range(4):  # each region holds the first cap[j] valid events of packet j
        rec = buf[pos[j] + 28:pos[j] + 28 + 8 * num[j]].view([("d", "<u4"), ("t", "<i4")])
        keep = rec[(rec["d"] & 1) == 1][:cap[j]]
        part = ev[off[j]:off[j] + cap[j]]
        np.testing.assert_array_equal(part["t"], keep["t"].astype(np.int64))
        np.testing.assert_array_equal(part["x"], (keep["d"] >> 17) & 0x7FFF)
        np.testing.assert_array_equal(part["y"], (keep["d"] >> 2) & 0x7FFF)
        np.testing.assert_array_equal(part["p"], (keep["d"] >> 1) & 1)


def test_threads_identical_large(tmp_path, monkeypatch):
    """Many packets split across 1, 2 and 3 threads and small windows, with invalid events,
    eventNumber < eventCapacity and overflow changes: identical arrays, equal to the reference."""
    monkeypatch.setattr(aedat31, "_PARALLEL_MIN_EVENTS", 1)
    monkeypatch.setattr(aedat31, "_WINDOW_BYTES", 5000)
    rng = np.random.default_rng(8)
    packets = []
    for i in range(60):
        cap = int(rng.integers(0, 300))
        packets.append(pol_packet(rng, cap, number=int(rng.integers(0, cap + 1)) if i % 3 == 0 else None,
                                  invalid=rng.integers(0, max(cap, 1), int(rng.integers(0, 4))),
                                  overflow=i // 10))
    path = write_raw(tmp_path / "big.aedat", *packets)
    ref = reference_read(path)
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(aedat31.read(path, threads=threads), ref)


def test_without_jit_matches_reference(tmp_path):
    """With NUMBA_DISABLE_JIT=1 the kernels run as Python (the 8-event decoder falls back to
    numpy) and give the reference result: vector groups, redone groups, tails, negative ts."""
    rng = np.random.default_rng(6)
    path = write_raw(tmp_path / "nojit.aedat", pol_packet(rng, 27, invalid=[9], overflow=5),
                     pol_packet(rng, 16, number=13, valid=20), packet(0, bytes(16), size=8),
                     pol_packet(rng, 8))
    np.save(tmp_path / "ref.npy", reference_read(path))
    code = ("import sys, numpy as np; from neurodata.formats import aedat31; "
            "ev = aedat31.read(sys.argv[1], threads=1); "
            "assert np.array_equal(ev, np.load(sys.argv[2])), 'differs'; print('ok')")
    assert run_without_jit(code, path, tmp_path / "ref.npy").stdout.strip() == "ok"
