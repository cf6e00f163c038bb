"""Detection targets (Prophesee automotive boxes) and their batch collate.

``BOX_DTYPE``: one record per box, the Prophesee toolbox's field names (``ts`` → ``t`` and
``confidence`` → ``class_confidence`` renamed as its ``npy_events_tools.parse_header`` does):
``t`` int64 µs (the recording's timebase), ``x``, ``y`` (top-left corner, pixels), ``w``, ``h``
float32, ``class_id`` uint32, ``class_confidence`` float32, ``track_id`` uint32.

``read_boxes(data, where, num_classes)`` loads a ``*_bbox.npy`` file with ``allow_pickle=False``
(an object array is refused) and converts it to ``BOX_DTYPE``; ``detection_collate`` batches
``(events, boxes)`` samples.
"""
from __future__ import annotations

import io

import numpy as np
import torch

from ..collate import concat_events
from ..errors import FormatError

__all__ = ["BOX_DTYPE", "read_boxes", "detection_collate"]

BOX_DTYPE = np.dtype([("t", "<i8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                      ("class_id", "<u4"), ("class_confidence", "<f4"), ("track_id", "<u4")])
_RENAMES = {"ts": "t", "confidence": "class_confidence"}
_REQUIRED = ("t", "x", "y", "w", "h", "class_id")
_DEFAULTS = {"class_confidence": 1.0, "track_id": 0}


def read_boxes(data, where: str, num_classes: int) -> np.ndarray:
    """The boxes of a ``*_bbox.npy`` file (bytes or path) as ``BOX_DTYPE``, stably sorted by ``t``.

    Fields ``t`` (or ``ts``), ``x``, ``y``, ``w``, ``h`` and ``class_id`` are required;
    ``class_confidence`` (or ``confidence``) defaults to 1.0 and ``track_id`` to 0 when absent.
    ``t`` must hold whole, non-negative µs and ``class_id`` must be below ``num_classes``.
    Raises ``FormatError`` naming ``where`` otherwise (and for pickled object arrays).
    """
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        raw = np.load(src, allow_pickle=False)
    except ValueError as e:
        raise FormatError(where, None, f"not a plain .npy array of boxes ({e}); pickled object "
                                       "arrays are refused") from None
    if raw.ndim != 1 or raw.dtype.names is None:
        raise FormatError(where, None, f"expected a 1-D structured array of boxes, got dtype {raw.dtype} "
                                       f"and shape {raw.shape}")
    names = {_RENAMES.get(n, n): n for n in raw.dtype.names}
    missing = [f for f in _REQUIRED if f not in names]
    if missing:
        raise FormatError(where, None, f"box fields {missing} missing; the file has {list(raw.dtype.names)}")
    t = raw[names["t"]]
    if t.dtype.kind not in "iuf" or (t.dtype.kind == "f" and not (np.isfinite(t) & (t == np.round(t))).all()):
        raise FormatError(where, None, f"box timestamps ({t.dtype}) are not whole µs")
    out = np.empty(raw.shape[0], BOX_DTYPE)
    for field in BOX_DTYPE.names:
        out[field] = raw[names[field]] if field in names else _DEFAULTS[field]
    if (out["t"] < 0).any():  # also uint64 values beyond int64
        raise FormatError(where, None, "box timestamps are negative")
    bad = np.asarray(raw[names["class_id"]]).astype(np.int64)
    bad = (bad < 0) | (bad >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise FormatError(where, None,
                          f"box {i} has class_id {raw[names['class_id']][i]}, expected 0…{num_classes - 1}")
    return out[np.argsort(out["t"], kind="stable")]


def detection_collate(batch) -> dict:
    """Batch ``(events, boxes)`` samples (boxes: ``BOX_DTYPE``-like records) for detection.

    Returns a dict of tensors: the events as ``neurodata.collate.concat_events`` lays them out
    (``t, x, y, p`` int64, ``batch`` (index of each event's sample), ``offsets`` (B + 1,)), and
    the boxes joined the same way: ``boxes`` float32 (K, 4) as ``x, y, w, h``, ``box_class`` int64
    (K,), ``box_t`` int64 (K,), ``box_batch`` int64 (K,) and ``box_offsets`` int64 (B + 1,).
    """
    out = concat_events([(events, 0) for events, _ in batch])
    del out["labels"]
    boxes = [np.asarray(b) for _, b in batch]
    counts = np.array([b.shape[0] for b in boxes], dtype=np.int64)
    flat = np.concatenate(boxes) if boxes else np.zeros(0, BOX_DTYPE)
    xywh = np.stack([flat[k].astype(np.float32) for k in ("x", "y", "w", "h")], axis=1).reshape(-1, 4)
    out.update({
        "boxes": torch.from_numpy(xywh),
        "box_class": torch.from_numpy(flat["class_id"].astype(np.int64)),
        "box_t": torch.from_numpy(flat["t"].astype(np.int64)),
        "box_batch": torch.from_numpy(np.repeat(np.arange(len(boxes), dtype=np.int64), counts)),
        "box_offsets": torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
    })
    return out
