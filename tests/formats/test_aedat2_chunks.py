"""AEDAT 2.0 reader: chunks decoded at their own record index, then compacted and wrap-corrected
only when an earlier chunk skipped records or wrapped; checked against the struct reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodata.formats import _records, aedat2
from tests.formats.test_aedat2 import DAVIS_HEADER, reference_decode


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 600), skip=st.sampled_from([0.0, 0.01, 0.5, 1.0]), wrap=st.sampled_from([0.0, 0.02, 0.3]),
       threads=st.integers(1, 4), window=st.sampled_from([8 * 7, 8 * 64, 1 << 20]), seed=st.integers(0, 2**16))
def test_chunks_match_reference(tmp_path, monkeypatch, n, skip, wrap, threads, window, seed):
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)
    monkeypatch.setattr(_records, "WINDOW_BYTES", window)
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 512, n, dtype=np.uint32) << 22) | (rng.integers(0, 1024, n, dtype=np.uint32) << 12) \
        | (rng.integers(0, 2, n, dtype=np.uint32) << 11)
    a[rng.random(n) < skip] |= np.uint32(0x80000400)           # APS/IMU-like records: not events
    steps = np.where(rng.random(n) < wrap, rng.integers(2**31 + 1, 2**32, n), rng.integers(0, 1000, n))
    t = ((np.cumsum(steps) + int(rng.integers(0, 2**32))) & 0xFFFFFFFF).astype(np.uint32)
    body = np.stack([a, t], 1).astype(">u4").tobytes()
    path = tmp_path / "c.aedat"
    path.write_bytes(DAVIS_HEADER + body)
    ref, _ = reference_decode(DAVIS_HEADER + body, len(DAVIS_HEADER), "davis")
    np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=threads), ref)
    blocks = list(aedat2.iter_blocks(path, 8 * 13, threads=threads))
    np.testing.assert_array_equal(np.concatenate(blocks) if blocks else ref[:0], ref)


@pytest.mark.parametrize("threads", [2, 4])
def test_wraps_in_every_chunk_accumulate(tmp_path, monkeypatch, threads):
    """Each chunk but the last wraps once and skips one record: later chunks move and gain 2**32."""
    monkeypatch.setattr(_records.Workers, "MIN_CHUNK_BYTES", 16)
    n = 400
    a = np.arange(n, dtype=np.uint32) % 1024 << 12
    raw = np.arange(n, dtype=np.int64) * 1000
    per = n // threads
    for c in range(threads):
        raw[c * per:c * per + per // 2] += 3 * 10**9                # then a drop of ~3e9 > 2**31: a wrap
        a[c * per + 1] |= np.uint32(0x400)                          # a special event: skipped
    body = np.stack([a, raw.astype(np.uint32)], 1).astype(">u4").tobytes()
    path = tmp_path / "w.aedat"
    path.write_bytes(DAVIS_HEADER + body)
    ref, _ = reference_decode(DAVIS_HEADER + body, len(DAVIS_HEADER), "davis")
    assert ref.size == n - threads and ref["t"][-1] > threads * 2**32
    np.testing.assert_array_equal(aedat2.read_aedat2(path, threads=threads), ref)
