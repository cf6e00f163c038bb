"""Thread-level parallelism for decoders whose heavy parts release the GIL (numba ``nogil``
kernels, LZ4/Zstd decompression, ``os.pread``).

Threads, not processes or numba ``parallel=True``: a pool lives only for one call, so nothing
survives a ``fork`` (PyTorch DataLoader workers) and concurrent calls from several threads are safe.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

__all__ = ["resolve_threads", "map_ordered"]

MAX_THREADS = 8


def resolve_threads(threads) -> int:
    """``threads`` as a positive int; None means the CPUs this process may use (at most 8)."""
    if threads is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            n = os.cpu_count() or 1
        return max(1, min(n, MAX_THREADS))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


def map_ordered(fn, items, threads: int, ahead: int | None = None):
    """Yield ``fn(item)`` for each item, in order, computing up to ``ahead`` items concurrently
    on ``threads`` threads (inline when ``threads == 1``). An exception in ``fn`` propagates at
    its item's turn; pending work is cancelled."""
    if threads <= 1:
        for it in items:
            yield fn(it)
        return
    ahead = ahead or 2 * threads
    with ThreadPoolExecutor(threads) as ex:
        pending = deque()
        try:
            for it in items:
                pending.append(ex.submit(fn, it))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
