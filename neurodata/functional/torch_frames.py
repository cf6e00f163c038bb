"""Batched frames on any torch device: ``(B, T, P, H, W)`` by scatter-add, equal to the CPU path.

The input is a batch of samples concatenated into columns (``t``, ``x``, ``y``, ``p``) plus a
per-event sample index, as an event collate produces. Each sample is binned exactly as
:func:`neurodata.functional.frames.to_frame` bins it alone (``n_time_bins`` / ``n_event_bins``),
with int64 arithmetic on the device, so integration can run on the GPU inside a training loop.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from ..events import check_sensor_size

__all__ = ["cpu_zeros", "to_frame_batch"]


def cpu_zeros(shape, dtype: torch.dtype) -> torch.Tensor:
    """``torch.zeros(shape, dtype=dtype)`` on the CPU, allocated by numpy where numpy has the dtype:
    numpy asks Linux for transparent huge pages on large buffers and torch does not, so a fresh
    512 MiB batch filled once took 76 instead of 275 ms here (page faults)."""
    try:
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:  # bfloat16 and others numpy lacks
        return torch.zeros(shape, dtype=dtype)
    return torch.from_numpy(np.zeros(shape, np_dtype))

_DTYPES = (torch.uint8, torch.int16, torch.int32, torch.int64, torch.float32, torch.float64)
_INT_MAX = {torch.uint8: 255, torch.int16: 32767, torch.int32: 2**31 - 1}


def _time_bins(t, seg_first, seg_last, sample, T):
    """``min(T-1, T*(t - t0) // D)`` per event (0 when ``D == 0``), exact in int64.

    ``T*(t - t0)`` may overflow int64, so a float64 estimate is corrected by one comparison with
    the exact integer edges ``e_b = b*(D//T) + ceil(b*(D%T)/T)`` (``b*(D%T) < T**2`` fits).
    """
    t0 = seg_first[sample]
    D = seg_last[sample] - t0
    d = t - t0
    Dpos = D.clamp(min=1)
    est = torch.floor(T * d.double() / Dpos.double()).clamp(0, T - 1).long()
    q, r = torch.div(Dpos, T, rounding_mode="floor"), Dpos % T

    def edge(b):
        return b * q + torch.div(b * r + T - 1, T, rounding_mode="floor")

    est = est - (d < edge(est)).long()
    est = est + ((est + 1 < T) & (d >= edge(est + 1))).long()
    return torch.where(D > 0, est, torch.zeros_like(est))


def to_frame_batch(t, x, y, p, sample, sensor_size, *, n_time_bins=None, n_event_bins=None,
                   batch_size=None, dtype=torch.float32, on_out_of_bounds="raise") -> torch.Tensor:
    """Integrate a concatenated batch of events into frames ``(B, T, P, H, W)``.

    Parameters
    ----------
    t, x, y, p : 1-D integer tensors of equal length N, on one device
        ``t`` in µs; ``p`` in ``0..P-1`` (1 = ON) or any value when ``P == 1`` (merged).
    sample : 1-D integer tensor, shape (N,)
        The sample of each event, non-decreasing: each sample's events are contiguous, in their
        own order (``n_time_bins`` needs each sample's ``t`` sorted).
    sensor_size : (W, H, P)
    n_time_bins, n_event_bins : int
        Exactly one; the per-sample rules of ``to_frame`` (``overlap`` = 0).
    batch_size : int, optional
        ``B``; default ``sample.max() + 1`` (0 for no events).
    dtype : uint8, int16, int32, int64, float32 (default) or float64; integers saturate.
    on_out_of_bounds : 'raise' or 'drop'

    Validation (bounds, order) and the default ``batch_size`` synchronise with the device. Counts
    are scatter-added into int32 (int64 from 2**31 events), so the result does not depend on the
    device or on the order of atomic adds.
    """
    W, H, P = check_sensor_size(sensor_size)
    if (n_time_bins is None) == (n_event_bins is None):
        raise ValueError("give exactly one of n_time_bins, n_event_bins")
    T = n_time_bins if n_event_bins is None else n_event_bins
    if not isinstance(T, numbers.Integral) or isinstance(T, bool) or T < 1:
        name = "n_time_bins" if n_event_bins is None else "n_event_bins"
        raise ValueError(f"{name} must be a positive int, got {T!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    if on_out_of_bounds not in ("raise", "drop"):
        raise ValueError(f"on_out_of_bounds must be 'raise' or 'drop', got {on_out_of_bounds!r}")
    cols = [torch.as_tensor(c) for c in (t, x, y, p, sample)]
    n = cols[0].shape[0]
    for name, c in zip(("t", "x", "y", "p", "sample"), cols):
        if c.ndim != 1 or c.shape[0] != n:
            raise ValueError(f"{name} must be 1-D with length {n}, got shape {tuple(c.shape)}")
        if c.is_floating_point() or c.is_complex():
            raise TypeError(f"{name} must be an integer or bool tensor, got {c.dtype}")
    t, x, y, p, sample = (c.long() for c in cols)
    device = t.device
    B = int(sample.max().item()) + 1 if (batch_size is None and n) else int(batch_size or 0)
    oob = (x < 0) | (x >= W) | (y < 0) | (y >= H) | (sample < 0) | (sample >= B)
    if P > 1:
        oob |= (p < 0) | (p >= P)
    if on_out_of_bounds == "drop":
        keep = ~oob
        t, x, y, p, sample = t[keep], x[keep], y[keep], p[keep], sample[keep]
        oob = torch.zeros_like(keep[keep])
        n = t.shape[0]
    same = sample[1:] == sample[:-1]
    unordered = sample[1:] < sample[:-1]
    if n_event_bins is None:
        unordered |= same & (t[1:] < t[:-1])
    if n and bool((oob.any() | unordered.any()).item()):
        if oob.any():
            i = int(torch.nonzero(oob)[0])
            raise ValueError(f"event {i} (x={int(x[i])}, y={int(y[i])}, p={int(p[i])}, sample="
                             f"{int(sample[i])}) lies outside sensor_size (W={W}, H={H}, P={P}) or "
                             f"batch_size {B}; pass on_out_of_bounds='drop' to drop it")
        i = int(torch.nonzero(unordered)[0]) + 1
        raise ValueError(f"event {i}: sample must be non-decreasing and t sorted within each sample "
                         "(n_time_bins); sort the batch by (sample, t)")
    counts = torch.bincount(sample, minlength=B)[:B]
    first = torch.cumsum(counts, 0) - counts
    k = torch.arange(n, device=device) - first[sample]
    if n_event_bins is None:
        seg_first = t[first.clamp(max=max(n - 1, 0))] if n else t.new_zeros(B)
        seg_last = t[(first + counts - 1).clamp(min=0)] if n else t.new_zeros(B)
        bins = _time_bins(t, seg_first, seg_last, sample, T)
    else:
        bins = torch.div(T * k, counts[sample], rounding_mode="floor")
    c = p if P > 1 else torch.zeros_like(p)
    flat = (((sample * T + bins) * P + c) * H + y) * W + x
    acc_dtype = torch.int64 if n >= 2**31 - 1 else torch.int32
    cpu = device.type == "cpu"
    size = B * T * P * H * W
    acc = cpu_zeros(size, acc_dtype) if cpu else torch.zeros(size, dtype=acc_dtype, device=device)
    acc.index_add_(0, flat, torch.ones(n, dtype=acc_dtype, device=device))
    if dtype in _INT_MAX:
        acc = acc.clamp_(max=_INT_MAX[dtype])
    if dtype != acc_dtype:
        acc = (cpu_zeros(size, dtype) if cpu else torch.empty(size, dtype=dtype, device=device)).copy_(acc)
    return acc.reshape(B, T, P, H, W)
