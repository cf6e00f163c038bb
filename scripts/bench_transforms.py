"""Benchmark area ``transforms``: representations (and filters) against tonic and SpikingJelly.

``run(args)`` calls every function in ``CASES``; each takes ``args`` and returns rows
(``case``, ``impl``, ``median_s``, ``rate``, ``rate_unit``, ``note``). To add a case, write a
function and append it to ``CASES``. Inputs are synthetic uniform events (fixed seed), sorted by t.
"""
from __future__ import annotations

import numpy as np

from _benchutil import spikingjelly_datasets_utils, synthetic_events, timed_row

OURS = "neurodata"
SENSOR = (128, 128, 2)


def int_fields(ev):
    """tonic's own dtype (int64 fields): its voxel grid and HATS misbehave on uint8/uint16 fields."""
    out = np.zeros(len(ev), [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for k in "xytp":
        out[k] = ev[k]
    return out


def _tonic():
    try:
        import tonic

        return tonic
    except ImportError:
        return None


# ------------------------------------------------------------------------------------- cases
def case_frames(args):
    from neurodata.functional.frames import to_frame

    n = 200_000 if args.quick else 10_000_000
    reps = args.repeats or (2 if args.quick else 5)
    ev = synthetic_events(n)
    label = f"frames n_time_bins=20 {n / 1e6:g}M ev 128x128x2"
    rows = [timed_row(f"{label} 1 thread", OURS, lambda: to_frame(ev, SENSOR, n_time_bins=20, num_threads=1), n, reps),
            timed_row(f"{label} 2 threads", OURS, lambda: to_frame(ev, SENSOR, n_time_bins=20, num_threads=2), n, reps)]
    tonic = _tonic()
    peer_reps = max(1, min(reps, 3))
    tf = tonic.transforms.ToFrame(SENSOR, n_time_bins=20) if tonic else None
    tonic_row = timed_row(f"{label} 1 thread", "tonic", (lambda: tf(ev)) if tonic else None, n, peer_reps)
    sj = spikingjelly_datasets_utils()
    d = {k: ev[k].astype(np.int64) for k in "txyp"}
    sj_fn = (lambda: sj.integrate_events_by_fixed_frames_number(d, "time", 20, 128, 128)) if sj else None
    sj_row = timed_row(f"{label} 1 thread", "spikingjelly", sj_fn, n, peer_reps, note="split_by='time'")
    rows += [tonic_row, sj_row]
    rows += [dict(r, case=f"{label} 2 threads") for r in (tonic_row, sj_row)]
    return rows


def case_voxel(args):
    from neurodata.functional.voxel import to_voxel_grid

    n = 50_000 if args.quick else 1_000_000
    reps = args.repeats or (2 if args.quick else 5)
    ev = synthetic_events(n)
    case = f"voxel grid 10 bins {n / 1e6:g}M ev 128x128"
    tonic = _tonic()
    tev = int_fields(ev)
    tv = tonic.transforms.ToVoxelGrid(SENSOR, 10) if tonic else None
    return [timed_row(case, OURS, lambda: to_voxel_grid(ev, SENSOR, 10), n, reps),
            timed_row(case, "tonic", (lambda: tv(tev)) if tonic else None, n, max(1, min(reps, 3)),
                note="int64 fields (uint8 p wraps in tonic)")]


def case_time_surface(args):
    from neurodata.functional.surfaces import to_time_surface

    reps = args.repeats or (2 if args.quick else 5)
    tonic = _tonic()
    rows = []
    # (events, dt): 100 windows of 10 ms, and 1000 windows of 1 ms, over 1 s
    for n, dt in ((50_000, 10_000), (20_000, 1_000)) if args.quick else ((1_000_000, 10_000), (300_000, 1_000)):
        ev = synthetic_events(n)
        case = f"time surface dt={dt // 1000}ms tau=5ms {n / 1e6:g}M ev 1s"
        ts = tonic.transforms.ToTimesurface(SENSOR, dt=dt, tau=5_000) if tonic else None
        tonic_row = timed_row(f"{case} 1 thread", "tonic", (lambda: ts(ev)) if tonic else None, n,
                              max(1, min(reps, 3)))
        for threads in (1, 2):
            label = f"{case} {threads} thread{'s' if threads > 1 else ''}"
            rows += [timed_row(label, OURS, lambda: to_time_surface(ev, SENSOR, dt, 5_000, num_threads=threads),
                               n, reps),
                     dict(tonic_row, case=label)]
        rows += _surface_floor(f"{case} 1 thread", ev, to_time_surface(ev, SENSOR, dt, 5_000).shape, reps)
    return rows


def _surface_floor(case, ev, shape, reps):
    """Two parts any time surface of ``ev`` with output ``shape`` (float32) must pay: a fresh output
    written once (the kernel zeroes each new page on first touch), and one store at a data-dependent
    pixel per event (measured as our event count image: one increment per event, no windows)."""
    from neurodata.functional.images import to_event_count_image

    return [timed_row(case, "floor: new output written once", lambda: np.empty(shape, np.float32).fill(0),
                      len(ev), reps, note=f"np.empty({shape}, float32).fill(0)"),
            timed_row(case, "floor: one scattered store per event", lambda: to_event_count_image(ev, SENSOR),
                      len(ev), reps, note="to_event_count_image of the same events")]


def case_hats(args):
    from neurodata.functional.surfaces import to_averaged_time_surface

    n = 500 if args.quick else 4_000
    reps = args.repeats or (2 if args.quick else 5)
    sensor = (32, 32, 2)
    ev = synthetic_events(n, sensor_size=sensor, duration_us=100_000)
    tev = int_fields(ev)
    case = f"HATS cell 8 surface 5 {n} ev 32x32"
    kw = dict(cell_size=8, surface_size=5, time_window=10_000, tau=1_000, decay="exp")
    tonic = _tonic()
    th = tonic.transforms.ToAveragedTimesurface(sensor, **kw) if tonic else None
    return [timed_row(case, OURS, lambda: to_averaged_time_surface(ev, sensor, **kw), n, reps),
            timed_row(case, "tonic", (lambda: th(tev)) if tonic else None, n, 1,
                note="O(N^2) per cell; int64 fields")]


def case_filters(args):
    from bench_transforms_filters import filter_cases

    return filter_cases(args)


CASES = [case_frames, case_voxel, case_time_surface, case_hats, case_filters]


def run(args) -> list[dict]:
    rows = []
    for case in CASES:
        rows += case(args)
    return rows
