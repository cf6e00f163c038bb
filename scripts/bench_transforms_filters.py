"""Filter and augmentation cases for ``scripts/bench.py transforms`` (wired in by ``bench_transforms``).

``filter_cases(args) -> list[dict]``: rows ``case``, ``impl`` ("neurodata" / "tonic"), ``median_s``,
``rate`` (M ev/s of input), ``rate_unit``. Input: uniform random events on a 128x128x2 sensor over
1 s, sorted by ``t`` (300 k events; 30 k with ``--quick``). Each implementation gets a warm-up
call first (numba compiles or loads its cache there).
"""
from __future__ import annotations

from _benchutil import median_time, synthetic_events


def _cases(sensor):
    from neurodata.functional import augment as A, filters as F

    def tonic(name):
        def call(*a, **k):
            import tonic.functional as tf
            return getattr(tf, name)(*a, **k)
        return call

    def tonic_hot(ev):
        import tonic.functional as tf
        return tf.drop_pixel_numpy(ev, tf.identify_hot_pixel(ev, 20))

    return [
        ("denoise filter_time=10ms", lambda ev: F.denoise(ev, 10_000), lambda ev: tonic("denoise_numpy")(ev, 10_000)),
        ("refractory_period 1ms", lambda ev: F.refractory_period(ev, 1000),
         lambda ev: tonic("refractory_period_numpy")(ev, 1000)),
        ("decimation n=5", lambda ev: F.decimate(ev, 5), lambda ev: tonic("decimate_numpy")(ev, 5)),
        ("drop hot pixels 20 Hz", lambda ev: F.drop_hot_pixels(ev, 20), tonic_hot),
        ("drop_event p=0.3", lambda ev: A.drop_event(ev, 0.3, rng=0), lambda ev: tonic("drop_event_numpy")(ev, 0.3)),
        ("spatial_jitter var=1", lambda ev: A.spatial_jitter(ev, sensor, rng=0),
         lambda ev: tonic("spatial_jitter_numpy")(ev.copy(), sensor, 1, 1, 0, True)),
        ("time_jitter std=100us", lambda ev: A.time_jitter(ev, 100.0, rng=0),
         lambda ev: tonic("time_jitter_numpy")(ev.copy(), 100.0, False, True)),
        ("downsample 1/4 dedup", lambda ev: A.downsample(ev, sensor, spatial_factor=0.25, deduplicate=True), None),
    ]


def filter_cases(args) -> list[dict]:
    n = 30_000 if getattr(args, "quick", False) else 300_000
    reps = getattr(args, "repeats", None) or (3 if getattr(args, "quick", False) else 11)
    peer_reps = 1 if getattr(args, "quick", False) else 3
    sensor = (128, 128, 2)
    ev = synthetic_events(n, sensor)
    try:
        import tonic.functional  # noqa: F401
        have_tonic = True
    except ImportError:
        have_tonic = False
    rows = []
    for case, ours, theirs in _cases(sensor):
        label = f"{case}, {n // 1000}k ev"
        med = median_time(lambda: ours(ev), repeats=reps, warmup=1)
        rows.append({"case": label, "impl": "neurodata", "median_s": med, "rate": n / med / 1e6, "rate_unit": "M ev/s"})
        if theirs is None:
            continue
        if not have_tonic:
            rows.append({"case": label, "impl": "tonic", "median_s": None, "note": "tonic not installed"})
            continue
        try:
            med = median_time(lambda: theirs(ev), repeats=peer_reps, warmup=0)
            rows.append({"case": label, "impl": "tonic", "median_s": med, "rate": n / med / 1e6, "rate_unit": "M ev/s"})
        except Exception as exc:  # a peer failure is reported, not fatal
            rows.append({"case": label, "impl": "tonic", "median_s": None, "note": f"failed: {type(exc).__name__}"})
    return rows


if __name__ == "__main__":  # standalone: python scripts/bench_transforms_filters.py [--quick]
    import argparse
    import sys

    from bench import format_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    print(format_table(filter_cases(ap.parse_args(sys.argv[1:]))))
