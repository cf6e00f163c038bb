"""Equivalence with tonic 1.7 and SpikingJelly 2.0 where their parameters map (marker ``peers``)."""
from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.functional.frames import to_frame
from neurodata.functional.images import to_binary_representation
from neurodata.functional.surfaces import to_averaged_time_surface, to_time_surface
from neurodata.functional.voxel import to_voxel_grid
from tests.helpers import event_arrays, random_events

pytestmark = pytest.mark.peers
SENSOR = (9, 6, 2)


@pytest.fixture(scope="module")
def tonic():
    return pytest.importorskip("tonic", reason="tonic not installed")


def _stub_modules():
    """Stand-ins for ``torchvision``/``torchaudio``, which ``spikingjelly.datasets`` imports at top
    level but the integration functions never use."""
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.datasets = types.ModuleType("torchvision.datasets")
    tv.datasets.DatasetFolder = type("DatasetFolder", (), {})
    tv.datasets.utils = types.ModuleType("torchvision.datasets.utils")
    for name in ("extract_archive", "download_url", "check_integrity", "verify_str_arg"):
        setattr(tv.datasets.utils, name, lambda *a, **k: None)
    return {"torchvision": tv, "torchvision.transforms": tv.transforms,
            "torchvision.datasets": tv.datasets, "torchvision.datasets.utils": tv.datasets.utils,
            "torchaudio": types.ModuleType("torchaudio")}


@pytest.fixture(scope="module")
def sj_utils():
    """``spikingjelly.datasets.utils``; stubs stand in for torchvision/torchaudio only where the real
    ones cannot be imported, and are removed from ``sys.modules`` afterwards."""
    pytest.importorskip("spikingjelly", reason="SpikingJelly not installed")
    stubs = _stub_modules()
    added = []
    for top in ("torchvision", "torchaudio"):
        try:
            importlib.import_module(top)
        except Exception:
            for k in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
                del sys.modules[k]
            for k, mod in stubs.items():
                if k == top or k.startswith(top + "."):
                    sys.modules[k] = mod
                    added.append(k)
    try:
        return importlib.import_module("spikingjelly.datasets.utils")
    except Exception as e:  # pragma: no cover
        pytest.skip(f"spikingjelly.datasets cannot be imported: {e}")
    finally:
        for k in added:
            sys.modules.pop(k, None)


events = event_arrays(max_x=8, max_y=5, max_t=400, max_n=120).filter(len)


@settings(max_examples=120, deadline=None)
@given(ev=events, window=st.sampled_from([1, 7, 50, 64.5, 500]), overlap_frac=st.sampled_from([0, 0.3, 0.9]),
       inc=st.booleans(), start=st.sampled_from([None, 0, 13]), end=st.sampled_from([None, 300, 450]))
def test_tonic_time_window(tonic, ev, window, overlap_frac, inc, start, end):
    overlap = type(window)(window * overlap_frac) if isinstance(window, int) else window * overlap_frac
    ref = tonic.transforms.ToFrame(SENSOR, time_window=window, overlap=overlap, include_incomplete=inc,
                                   start_time=start, end_time=end)(ev.copy())
    out = to_frame(ev, SENSOR, time_window=window, overlap=overlap, include_incomplete=inc,
                   start_time=start, end_time=end, dtype=np.int64)
    np.testing.assert_array_equal(out, ref)


@settings(max_examples=120, deadline=None)
@given(ev=events, count=st.integers(1, 150), overlap_frac=st.sampled_from([0, 0.5, 0.9]), inc=st.booleans())
def test_tonic_event_count(tonic, ev, count, overlap_frac, inc):
    overlap = int(count * overlap_frac)
    ref = tonic.transforms.ToFrame(SENSOR, event_count=count, overlap=overlap, include_incomplete=inc)(ev.copy())
    out = to_frame(ev, SENSOR, event_count=count, overlap=overlap, include_incomplete=inc, dtype=np.int64)
    np.testing.assert_array_equal(out, ref)


def test_tonic_empty_input_is_transposed_zeros(tonic):
    """tonic returns (1, P, W, H) float64 zeros for empty input; ours is (1, P, H, W): both all zero."""
    ev = random_events(0, sensor_size=SENSOR)
    ref = tonic.transforms.ToFrame(SENSOR, time_window=10)(ev)
    out = to_frame(ev, SENSOR, time_window=10)
    assert ref.shape == (1, 2, 9, 6) and out.shape == (1, 2, 6, 9) and not ref.any() and not out.any()


def _sj_dict(ev):
    return {k: ev[k].astype(np.int64) for k in "txyp"}


def _sj_or_none(fn, *args):
    try:
        return fn(*args)
    except (IndexError, ValueError):
        return None


@settings(max_examples=150, deadline=None)
@given(ev=events, M=st.integers(1, 12), split_by=st.sampled_from(["number", "time"]))
def test_spikingjelly_frames_number(sj_utils, ev, M, split_by):
    ref = _sj_or_none(sj_utils.integrate_events_by_fixed_frames_number, _sj_dict(ev), split_by, M, 6, 9)
    out = to_frame(ev, SENSOR, frames_number=M, split_by=split_by, dtype=np.float64)
    assert out.sum() == len(ev)
    if ref is not None:  # where SpikingJelly raises (an empty window), ours is the documented extension
        assert ref.dtype == np.float64
        np.testing.assert_array_equal(out, ref)


def test_spikingjelly_frames_number_returns_on_dense_input(sj_utils):
    ev = random_events(20000, sensor_size=SENSOR, duration_us=10**5, seed=7)
    for M in (1, 4, 16):
        for split_by in ("number", "time"):
            ref = sj_utils.integrate_events_by_fixed_frames_number(_sj_dict(ev), split_by, M, 6, 9)
            np.testing.assert_array_equal(to_frame(ev, SENSOR, frames_number=M, split_by=split_by), ref)


@settings(max_examples=150, deadline=None)
@given(ev=events, duration=st.integers(1, 500))
def test_spikingjelly_duration(sj_utils, ev, duration):
    ref = _sj_or_none(sj_utils.integrate_events_by_fixed_duration, _sj_dict(ev), duration, 6, 9)
    out = to_frame(ev, SENSOR, duration=duration, dtype=np.float64)
    assert out.sum() == len(ev)
    if ref is not None:
        np.testing.assert_array_equal(out, ref)
    else:  # SpikingJelly raises when all events share one timestamp (zero frames)
        assert ev["t"][0] == ev["t"][-1] and out.shape[0] == 1


@settings(max_examples=100, deadline=None)
@given(ev=events.filter(lambda e: e["t"][-1] > e["t"][0]), B=st.integers(1, 8))
def test_tonic_voxel_grid(tonic, ev, B):
    """tonic normalises with B (not B - 1) and drops weight beyond bin B-1: ours with B+1 bins, cut.
    Its input converted as docs/migration.md says (by field name, to int64): on our uint8 ``p``,
    tonic's ``p[p == 0] = -1`` raises under numpy 2."""
    from numpy.lib import recfunctions as rfn

    tonic_ev = rfn.require_fields(ev, np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")]))
    assert all(np.array_equal(tonic_ev[k], ev[k]) for k in "txyp")
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0" and (ev["p"] == 0).any():
        with pytest.raises(OverflowError):
            tonic.transforms.ToVoxelGrid(SENSOR, B)(ev.copy())
    ref = tonic.transforms.ToVoxelGrid(SENSOR, B)(tonic_ev)
    out = to_voxel_grid(ev, SENSOR, B + 1, dtype=np.float64)[:B]
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(ev=events, dt=st.sampled_from([5, 40, 100]), tau=st.sampled_from([10, 300.0]))
def test_tonic_time_surface(tonic, ev, dt, tau):
    ref = tonic.transforms.ToTimesurface(SENSOR, dt=dt, tau=tau)(ev.copy())
    out = to_time_surface(ev, SENSOR, dt, tau, dtype=np.float64)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(ev=event_arrays(max_x=19, max_y=9, max_t=3000, max_n=150), decay=st.sampled_from(["exp", "lin"]))
def test_tonic_averaged_time_surface(tonic, ev, decay):
    """tonic casts t to float32 (exact below 2**24 µs) and needs int fields (uint16 offsets wrap)."""
    sensor = (20, 10, 2)
    tonic_ev = np.zeros(len(ev), [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for k in "xytp":
        tonic_ev[k] = ev[k]
    kw = dict(cell_size=5, surface_size=3, time_window=500, tau=100, decay=decay)
    ref = tonic.transforms.ToAveragedTimesurface(sensor, **kw)(tonic_ev)
    out = to_averaged_time_surface(ev, sensor, **kw)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5)


@settings(max_examples=40, deadline=None)
@given(ev=events, n_frames=st.integers(1, 3), n_bits=st.sampled_from([2, 4, 8]))
def test_tonic_bina_rep(tonic, ev, n_frames, n_bits):
    """Same frames in, same Bina-Rep out (tonic packs frames; we bin with our exact n_time_bins)."""
    frames = to_frame(ev, SENSOR, n_time_bins=n_frames * n_bits)
    ref = tonic.transforms.ToBinaRep(n_frames=n_frames, n_bits=n_bits)(frames)
    np.testing.assert_allclose(to_binary_representation(ev, SENSOR, n_frames, n_bits), ref, rtol=1e-6)
