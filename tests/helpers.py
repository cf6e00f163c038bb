"""Helpers shared by the tests: canonical column digests and hypothesis strategies for events."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurodata.events import EVENT_DTYPE, make_events


def column_digests(events) -> dict:
    """sha256 of each column in canonical form, as in ``shared/samples/REFERENCE.json``."""
    return {
        "t": hashlib.sha256(events["t"].astype("<i8").tobytes()).hexdigest(),
        "x": hashlib.sha256(events["x"].astype("<u2").tobytes()).hexdigest(),
        "y": hashlib.sha256(events["y"].astype("<u2").tobytes()).hexdigest(),
        "p": hashlib.sha256(events["p"].astype("u1").tobytes()).hexdigest(),
    }


@st.composite
def event_arrays(draw, max_x=127, max_y=127, max_t=10**7, max_n=300, sorted_t=True, min_t=0):
    """Random ``EVENT_DTYPE`` arrays: coordinates within bounds, ``t`` in ``[min_t, max_t]``."""
    n = draw(st.integers(0, max_n))
    t = draw(hnp.arrays(np.int64, n, elements=st.integers(min_t, max_t)))
    if sorted_t:
        t = np.sort(t)
    x = draw(hnp.arrays(np.uint16, n, elements=st.integers(0, max_x)))
    y = draw(hnp.arrays(np.uint16, n, elements=st.integers(0, max_y)))
    p = draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 1)))
    return make_events(t, x, y, p)


def random_events(n, sensor_size=(128, 128, 2), duration_us=10**6, seed=0, sorted_t=True):
    """Uniformly random events (numpy Generator ``seed``), sorted by ``t`` unless told otherwise."""
    rng = np.random.default_rng(seed)
    W, H, P = sensor_size
    t = rng.integers(0, duration_us, n, dtype=np.int64)
    if sorted_t:
        t.sort()
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"] = t
    ev["x"] = rng.integers(0, W, n)
    ev["y"] = rng.integers(0, H, n)
    ev["p"] = rng.integers(0, max(P, 2), n) if P > 1 else rng.integers(0, 2, n)
    return ev


TEARDOWN_ABORT = "terminate called without an active exception"


def run_without_jit(code: str, *args, timeout=300):
    """Run ``python -c code *args`` with ``NUMBA_DISABLE_JIT=1`` (every numba kernel as plain
    Python, the vector intrinsics' numpy stand-ins) and assert it succeeds; return the process."""
    return run_subprocess([sys.executable, "-c", code, *map(str, args)], cwd=None,
                          env={"NUMBA_DISABLE_JIT": "1"}, timeout=timeout)


def run_subprocess(args, cwd, env=None, attempts=1, timeout=600):
    """Run ``args`` in ``cwd`` with extra ``env`` and assert it succeeds; return the process.

    With ``attempts > 1``, a run that died of the C++ abort seen (now and then, only under a full
    test run, never reproduced alone) when torchrun workers exit is launched again — any other
    failure, or that abort on every attempt, fails."""
    env = {**os.environ, **(env or {})}
    for attempt in range(attempts):
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
        if proc.returncode == 0 or TEARDOWN_ABORT not in proc.stderr:
            break
        warnings.warn(f"subprocess aborted at exit ({TEARDOWN_ABORT!r}); attempt {attempt + 1} of {attempts}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
