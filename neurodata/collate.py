"""Collate functions for ``torch.utils.data.DataLoader`` (batch axis first).

- ``pad_frames``: ``(frames (T_i, P, H, W), label)`` samples → ``frames (B, T_max, P, H, W)`` padded
  with zeros at the end, ``labels (B,)``, ``lengths (B,)`` and ``mask (B, T_max)`` (True = real step).
- ``concat_events``: ``(events, label)`` samples → one flat batch: ``t, x, y, p`` (int64 tensors),
  ``batch`` (index of each event's sample), ``offsets (B + 1,)`` and ``labels``; the input of
  ``neurodata.functional.torch_frames`` for integration on the GPU.
- ``sparse_frames``: ``(frames, label)`` samples → a sparse COO tensor ``(B, T_max, P, H, W)`` built
  from each sample's non-zeros (the dense batch is never materialised) and ``labels``.

Frames of one batch must share ``(P, H, W)`` (``ValueError`` otherwise: nothing is broadcast);
their dtypes are promoted to a common one (``torch.result_type`` rules: uint8 with float32 gives
float32), never cast down.
"""
from __future__ import annotations

import numpy as np
import torch

from .events import EVENT_DTYPE, as_events
from .events import concat_events as join_events
from .functional.torch_frames import cpu_zeros

__all__ = ["pad_frames", "concat_events", "sparse_frames"]


def _labels(batch):
    return torch.as_tensor([int(lbl) for _, lbl in batch], dtype=torch.int64)


def _frames(batch) -> tuple[list, tuple, torch.dtype]:
    """The samples' frames as tensors, their common ``(P, H, W)`` and their promoted dtype."""
    frames = [torch.as_tensor(np.ascontiguousarray(f) if isinstance(f, np.ndarray) else f) for f, _ in batch]
    shapes = {tuple(f.shape[1:]) for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames of one batch must have the same (P, H, W); got {sorted(shapes)}")
    dtype = frames[0].dtype if frames else torch.float32
    for f in frames[1:]:
        dtype = torch.promote_types(dtype, f.dtype)
    return frames, (shapes.pop() if shapes else ()), dtype


def pad_frames(batch):
    """Returns ``(frames, labels, lengths, mask)`` (see module docstring)."""
    frames, shape, dtype = _frames(batch)
    lengths = torch.as_tensor([f.shape[0] for f in frames], dtype=torch.int64)
    t_max = int(lengths.max()) if len(frames) else 0
    out = cpu_zeros((len(frames), t_max, *shape), dtype) if frames else torch.zeros(0)
    for i, f in enumerate(frames):
        out[i, : f.shape[0]] = f
    mask = torch.arange(t_max)[None, :] < lengths[:, None]
    return out, _labels(batch), lengths, mask


def concat_events(batch):
    """Returns a dict ``t, x, y, p, batch, offsets, labels`` of tensors (see module docstring)."""
    events = [as_events(e) for e, _ in batch]
    counts = np.array([e.shape[0] for e in events], dtype=np.int64)
    flat = join_events(events) if events else np.empty(0, EVENT_DTYPE)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return {
        "t": torch.from_numpy(flat["t"].astype(np.int64)),
        "x": torch.from_numpy(flat["x"].astype(np.int64)),
        "y": torch.from_numpy(flat["y"].astype(np.int64)),
        "p": torch.from_numpy(flat["p"].astype(np.int64)),
        "batch": torch.from_numpy(np.repeat(np.arange(len(events), dtype=np.int64), counts)),
        "offsets": torch.from_numpy(offsets.astype(np.int64)),
        "labels": _labels(batch),
    }


def sparse_frames(batch):
    """Returns ``(sparse (B, T_max, P, H, W) COO tensor, labels)`` (see module docstring)."""
    frames, shape, dtype = _frames(batch)
    idx, vals, t_max = [], [], 0
    for b, f in enumerate(frames):
        t_max = max(t_max, f.shape[0])
        nz = f.nonzero(as_tuple=False)
        idx.append(torch.cat([torch.full((nz.shape[0], 1), b, dtype=torch.int64), nz], 1))
        vals.append(f[tuple(nz.T)].to(dtype))
    indices = torch.cat(idx).T if idx else torch.zeros((5, 0), dtype=torch.int64)
    values = torch.cat(vals) if vals else torch.zeros(0)
    sparse = torch.sparse_coo_tensor(indices, values, (len(batch), t_max, *shape),
                                     check_invariants=False).coalesce()  # valid by construction
    return sparse, _labels(batch)
