"""Frames as a coalesced torch sparse COO tensor, built without the dense tensor."""
from __future__ import annotations

import numpy as np
import torch
from numba import njit

from .frames import check_frame_dtype, frame_mode, frame_ranges, validate_events

__all__ = ["to_sparse", "check_sparse_dtype"]

_TORCH_DTYPES = {
    torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32, torch.int64: np.int64,
    torch.float32: np.float32, torch.float64: np.float64,
}
_BY_NAME = {str(d).removeprefix("torch."): d for d in _TORCH_DTYPES}


@njit(cache=True)
def _sparse_counts_kernel(x, y, p, lo, hi, W, H, P):
    """Sorted flat keys ``f*P*H*W + (c*H + y)*W + x`` of the non-zero cells and their counts.

    One frame at a time: counts go to a ``P*H*W`` scratch, the touched cells are listed, sorted,
    emitted and reset. Memory: one frame plus the output, never ``F*P*H*W``.
    """
    frame = P * H * W
    total = 0
    for f in range(lo.shape[0]):
        total += hi[f] - lo[f]
    keys = np.empty(total, np.int64)
    counts = np.empty(total, np.int64)
    scratch = np.zeros(frame, np.int64)
    touched = np.empty(frame, np.int64)
    nnz = 0
    for f in range(lo.shape[0]):
        nt = 0
        for i in range(lo[f], hi[f]):
            c = np.int64(p[i]) if P > 1 else 0
            pix = (c * H + np.int64(y[i])) * W + np.int64(x[i])
            if scratch[pix] == 0:
                touched[nt] = pix
                nt += 1
            scratch[pix] += 1
        cells = np.sort(touched[:nt])
        for k in range(nt):
            pix = cells[k]
            keys[nnz] = f * frame + pix
            counts[nnz] = scratch[pix]
            scratch[pix] = 0
            nnz += 1
    return keys[:nnz], counts[:nnz]


def check_sparse_dtype(dtype) -> torch.dtype:
    """The torch dtype :func:`to_sparse` takes for ``dtype`` (a torch dtype or its name), else ``ValueError``."""
    dtype = _BY_NAME.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {list(_BY_NAME)} (torch dtype or name), got {dtype!r}")
    return dtype


def to_sparse(events, sensor_size, *, dtype=torch.float32, on_out_of_bounds="raise",
              **mode) -> torch.Tensor:
    """The frames of :func:`neurodata.functional.frames.to_frame` as a sparse COO tensor.

    ``mode`` takes the same keywords as ``to_frame`` (``n_time_bins=...``, ``time_window=...``,
    ...). Returns a coalesced ``torch.sparse_coo_tensor`` of shape ``(T, P, H, W)``: indices
    ``(4, nnz)`` int64 in lexicographic order, values the counts in ``dtype`` (uint8, int16, int32,
    int64, float32 or float64, as torch dtypes or names; integers saturate). ``.to_dense()`` equals
    ``to_frame``'s output.
    """
    dtype = check_sparse_dtype(dtype)
    np_dtype = check_frame_dtype(_TORCH_DTYPES[dtype])
    fm = frame_mode(**mode)
    ev, (W, H, P) = validate_events(events, sensor_size, need_sorted=fm.needs_sorted,
                                    on_out_of_bounds=on_out_of_bounds)
    ranges = frame_ranges(ev, fm)
    keys, counts = _sparse_counts_kernel(ev["x"], ev["y"], ev["p"], ranges.lo, ranges.hi, W, H, P)
    if np_dtype.kind in "iu":
        counts = np.minimum(counts, np.iinfo(np_dtype).max)
    indices = np.stack(np.unravel_index(keys, (ranges.lo.shape[0], P, H, W))).astype(np.int64)
    values = torch.from_numpy(counts.astype(np_dtype))
    return torch.sparse_coo_tensor(torch.from_numpy(indices), values,
                                   size=(ranges.lo.shape[0], P, H, W), is_coalesced=True,
                                   check_invariants=False)
