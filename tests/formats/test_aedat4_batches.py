"""AEDAT 4.0 reader: per-batch decoding on worker threads (convert-in-cache, recycled buffers),
checked against the struct-only reference decoder of ``test_aedat4.py``."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, make_events
from neurodata.formats import aedat4
from tests.formats.test_aedat4 import bad, evts, make_file, reference_read
from tests.helpers import random_events


def test_corrupt_packet_in_a_batch_wins_over_an_earlier_bad_coordinate(tmp_path):
    """Errors keep the precedence of validating a whole batch before converting it."""
    p = tmp_path / "e.aedat4"
    good, outside = evts([1, 2], [3, 4]), evts([5, 64], [6, 7])
    offs = make_file(p, [(0, good), (0, outside), (0, good[:11])], compression=0, raw_payloads=True)
    bad(p, offs[2] + 8, "too short")
    offs = make_file(p, [(0, good), (0, outside), (0, good)], compression=0, raw_payloads=True)
    bad(p, offs[1] + 8, "event 1 of the packet")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_many_batches_of_changing_density(tmp_path, threads):
    """Batches whose event counts rise and fall, so recycled buffers are both reused and grown."""
    rng = np.random.default_rng(3)
    parts = []
    t0 = 0
    for k, n in enumerate([90_000, 300_000, 20_000, 250_000, 60_000]):
        if k % 2:  # compresses very well: many events per payload byte
            parts.append(make_events(np.full(n, t0), np.full(n, k), np.zeros(n), np.ones(n)))
        else:
            parts.append(make_events(t0 + np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 640, n),
                                     rng.integers(0, 480, n), rng.integers(0, 2, n)))
        t0 += 10**6
    ev = np.concatenate(parts)
    path = tmp_path / "d.aedat4"
    aedat4.write(path, ev, (640, 480, 2), packet_events=4096)
    np.testing.assert_array_equal(reference_read(path), ev)
    out = aedat4.read(path, threads=threads)
    assert out.dtype == EVENT_DTYPE and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ev)
    blocks = list(aedat4.iter_blocks(path, 1 << 18, threads=threads))
    assert len(blocks) > 3 and all(b.base is None and b.flags.owndata for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), ev)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 30_000), packet_events=st.integers(1, 5000), seed=st.integers(0, 2**16))
def test_small_batches_match_reference(tmp_path, monkeypatch, n, packet_events, seed):
    """Tiny batch and threading thresholds force many batches through the threaded path."""
    monkeypatch.setattr(aedat4, "_BATCH_BYTES", 4096)
    monkeypatch.setattr(aedat4, "_INLINE_BELOW", 0)
    ev = random_events(n, sensor_size=(64, 48, 2), seed=seed)
    path = tmp_path / "s.aedat4"
    aedat4.write(path, ev, (64, 48, 2), packet_events=packet_events)
    np.testing.assert_array_equal(aedat4.read(path, threads=2), reference_read(path))
