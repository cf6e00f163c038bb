"""Timing helpers for the benchmark areas: median of repeats and peak RSS in a child process."""
from __future__ import annotations

import gc
import multiprocessing as mp
import resource
import statistics
import time


def median_time(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rss_child(q, setup, fn):
    import os
    state = setup() if setup else None
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(state) if setup else fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.put((peak - base) / 1024.0)


def peak_rss_mib(fn, setup=None) -> float:
    """Growth of peak RSS (MiB) while ``fn`` runs in a fresh forked process (after ``setup``)."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_rss_child, args=(q, setup, fn))
    p.start()
    val = q.get()
    p.join()
    return val
