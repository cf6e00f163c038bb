"""Timing helpers for the benchmark areas: median of repeats and peak RSS in a child process."""
from __future__ import annotations

import gc
import importlib
import sys
import types
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


def timed_row(case, impl, fn, n, repeats, note=None, unit="M ev/s"):
    """A benchmark row: median wall time of ``fn`` over ``repeats`` and the rate ``n / median / 1e6``.

    ``fn=None`` (peer missing) or an ImportError gives a row with ``median_s=None`` saying so.
    """
    if fn is None:
        return {"case": case, "impl": impl, "median_s": None, "note": note or "not installed"}
    try:
        med = median_time(fn, repeats=repeats, warmup=1)
    except ImportError as e:
        return {"case": case, "impl": impl, "median_s": None, "note": f"not installed ({e})"}
    r = {"case": case, "impl": impl, "median_s": med, "rate": n / med / 1e6, "rate_unit": unit}
    if note:
        r["note"] = note
    return r


def synthetic_events(n, sensor_size=(128, 128, 2), duration_us=10**6, seed=0):
    """``n`` uniformly random events (fixed seed), sorted by ``t``, as ``neurodata.EVENT_DTYPE``."""
    import numpy as np

    from neurodata.events import EVENT_DTYPE

    rng = np.random.default_rng(seed)
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    ev["x"] = rng.integers(0, sensor_size[0], n)
    ev["y"] = rng.integers(0, sensor_size[1], n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def spikingjelly_datasets_utils():
    """``spikingjelly.datasets.utils``, with stand-ins for torchvision/torchaudio if those are broken."""
    try:
        importlib.import_module("spikingjelly")
    except ImportError:
        return None
    added = []
    for top in ("torchvision", "torchaudio"):
        try:
            importlib.import_module(top)
        except Exception:
            for k in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
                del sys.modules[k]
            mod = types.ModuleType(top)
            sys.modules[top] = mod
            added.append(top)
            if top == "torchvision":
                mod.transforms = types.ModuleType("torchvision.transforms")
                mod.datasets = types.ModuleType("torchvision.datasets")
                mod.datasets.DatasetFolder = type("DatasetFolder", (), {})
                mod.datasets.utils = types.ModuleType("torchvision.datasets.utils")
                for name in ("extract_archive", "download_url", "check_integrity", "verify_str_arg"):
                    setattr(mod.datasets.utils, name, lambda *a, **k: None)
                for sub in ("transforms", "datasets"):
                    sys.modules[f"torchvision.{sub}"] = getattr(mod, sub)
                sys.modules["torchvision.datasets.utils"] = mod.datasets.utils
                added += ["torchvision.transforms", "torchvision.datasets", "torchvision.datasets.utils"]
    try:
        return importlib.import_module("spikingjelly.datasets.utils")
    except Exception:
        return None
    finally:
        for k in added:
            sys.modules.pop(k, None)
