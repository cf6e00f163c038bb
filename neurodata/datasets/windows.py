"""Time windows of long recordings as a dataset view that never loads a whole recording.

``WindowedDataset(base, window_us, stride_us=None, *, around_labels=False)`` turns the samples of
an events dataset (``base.store`` is its ``EventsStore``) into windows:

- **fixed windows** (default): for a sample whose events span ``[t_min, t_max]``, windows
  ``[s, s + window_us)`` with ``s = t_min + k · stride_us`` for ``k = 0 … floor((t_max − t_min) /
  stride_us)``, so every event lies in at least one window when ``stride_us <= window_us``
  (``stride_us`` defaults to ``window_us``: no overlap; ``stride_us < window_us``: overlap).
  With ``drop_incomplete=True`` only windows that end by the last event (``s + window_us <=
  t_max + 1``) are kept. A sample without events has no windows.
- **windows around labels** (``around_labels=True``, datasets with time-stamped annotations such
  as Gen1 boxes): one window ``[τ − window_us, τ)`` per distinct annotation time ``τ`` of each
  sample, i.e. the events that precede the label, ending at it.

Each item is ``(events, target)``: the events of the window with ``t`` counted from the window
start ``s`` (``t − s``, so ``0 <= t < window_us``); the target is the base sample's label, or, for
annotated datasets, the annotations with ``s <= t < s + window_us`` (fixed windows) or ``t == τ``
(around labels), their ``t`` shifted by ``−s`` too. ``metadata(j)`` names the base sample, the
window in the sample's timebase and the total offset to the recording's clock.

Windows are read with ``EventsStore.read_window``: with the cache's time index (see
``neurodata/_timeindex.py``), a window costs the chunks that hold it, not the recording. The base
dataset's own ``transform`` is not applied; pass ``transform`` / ``target_transform`` here.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["WindowedDataset", "fixed_window_starts"]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int (µs), got {value!r}")
    return int(value)


def fixed_window_starts(t_min: int, t_max: int, window_us: int, stride_us: int,
                        drop_incomplete: bool = False) -> np.ndarray:
    """Window starts ``t_min + k·stride_us``, ``k = 0 … floor((t_max − t_min) / stride_us)``
    (int64); with ``drop_incomplete`` only those with ``start + window_us <= t_max + 1``."""
    return _window_starts(np.array([t_min]), np.array([t_max]), window_us, stride_us, drop_incomplete)[1]


def _window_starts(t_min: np.ndarray, t_max: np.ndarray, window_us: int, stride_us: int,
                  drop_incomplete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``fixed_window_starts`` for many spans at once: ``(counts (S,), starts)``, the starts of span
    ``j`` being ``starts[sum(counts[:j]) : sum(counts[:j + 1])]`` (int64; no loop over the spans)."""
    lo, hi = np.asarray(t_min, np.int64), np.asarray(t_max, np.int64)
    w, s = int(window_us), int(stride_us)
    counts = np.maximum((hi - lo) // s + 1, 0)
    if drop_incomplete:  # lo + k*s + w <= hi + 1  <=>  k <= (hi + 1 - w - lo) // s
        counts = np.minimum(counts, np.maximum((hi + 1 - w - lo) // s + 1, 0))
    k = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return counts, np.repeat(lo, counts) + k * s


class WindowedDataset(torch.utils.data.Dataset):
    """Windows of the samples of ``base`` (see the module docstring for the exact rules).

    Parameters
    ----------
    base : EventDataset
        Any events dataset of this package (it has a ``store``, an ``EventsStore``).
    window_us : int
        Window length in µs (> 0).
    stride_us : int, optional
        Fixed windows only: distance between window starts (default ``window_us``).
    around_labels : bool
        One window ending at each distinct annotation time (needs a dataset with annotations).
    drop_incomplete : bool
        Fixed windows only: keep only windows that end by the sample's last event.
    transform, target_transform : callables applied to the window's events / target.

    Attributes
    ----------
    samples : ndarray[int64] (M,)
        Base sample of each window.
    starts : ndarray[int64] (M,)
        Window start in the base sample's timebase (µs); the window is ``[start, start + window_us)``.
    """

    def __init__(self, base, window_us: int, stride_us: int | None = None, *, around_labels: bool = False,
                 drop_incomplete: bool = False, transform=None, target_transform=None):
        store = getattr(base, "store", None)
        if store is None or not hasattr(store, "read_window"):
            raise TypeError(f"base must be an events dataset with an EventsStore (.store), got {type(base).__name__}")
        self.base, self.store = base, store
        self.window_us = _positive_int(window_us, "window_us")
        self.around_labels = bool(around_labels)
        if self.around_labels and (stride_us is not None or drop_incomplete):
            raise ValueError("stride_us and drop_incomplete apply to fixed windows; "
                             "leave them out with around_labels=True")
        if self.around_labels and not store.has_annotations:
            raise ValueError(f"around_labels=True needs time-stamped annotations; {type(base).__name__} has none")
        self.stride_us = None if self.around_labels else _positive_int(self.window_us if stride_us is None else stride_us,
                                                                     "stride_us")
        self.drop_incomplete = bool(drop_incomplete)
        self.transform, self.target_transform = transform, target_transform
        self.samples, self.starts = self._around_labels() if self.around_labels else self._fixed()

    def _spans(self):
        st = self.store
        if st.has_time_index:
            empty = np.diff(st.offsets) == 0
            return st.t_min, st.t_max, empty
        # caches written before the time index: one pass over the samples (their spans)
        t_min, t_max, empty = (np.zeros(len(st), np.int64), np.zeros(len(st), np.int64), np.zeros(len(st), bool))
        for i in range(len(st)):
            t = st[i][0]["t"]
            empty[i] = t.size == 0
            if t.size:
                t_min[i], t_max[i] = t.min(), t.max()
        return t_min, t_max, empty

    def _fixed(self):
        t_min, t_max, empty = self._spans()
        kept = np.flatnonzero(~np.asarray(empty, bool))
        counts, starts = _window_starts(t_min[kept], t_max[kept], self.window_us, self.stride_us,
                                       self.drop_incomplete)
        return np.repeat(kept, counts).astype(np.int64), starts

    def _around_labels(self):
        t, offsets = self.store.annotation_times()
        samples, starts = [], []
        for i in range(len(self.store)):
            taus = np.unique(t[offsets[i]:offsets[i + 1]])
            samples.append(np.full(taus.size, i, np.int64))
            starts.append(taus - self.window_us)
        return _cat(samples), _cat(starts)

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    def _window(self, j):
        n = len(self)
        j = int(j)
        if not -n <= j < n:
            raise IndexError(f"window index {j} out of range for {n} windows")
        j %= n
        return j, int(self.samples[j]), int(self.starts[j])

    def __getitem__(self, j):
        j, i, s = self._window(j)
        events = self.store.read_window(i, s, s + self.window_us)
        events["t"] -= s
        if self.store.has_annotations:
            ann = self.store.annotations(i)
            t = ann["t"].astype(np.int64)
            keep = (t == s + self.window_us) if self.around_labels else ((t >= s) & (t < s + self.window_us))
            target = ann[keep]
            target["t"] = t[keep] - s
        else:
            target = int(self.store.labels[i])
        if self.transform is not None:
            events = self.transform(events)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return events, target

    def metadata(self, j) -> dict:
        """``sample`` (base index), ``t_start``/``t_stop`` (the window in the sample's timebase),
        ``source`` and ``t_offset`` (base offset + ``t_start``: µs from the recording's clock)."""
        j, i, s = self._window(j)
        base = self.base.metadata(i) if hasattr(self.base, "metadata") else {"source": "", "t_offset": 0}
        return {**base, "sample": i, "t_start": s, "t_stop": s + self.window_us,
                "t_offset": int(base.get("t_offset", 0)) + s}

    @property
    def targets(self) -> np.ndarray:
        """The base label of every window (int64, (M,))."""
        return np.asarray(self.store.labels)[self.samples]

    @property
    def sensor_size(self) -> tuple:
        return self.base.sensor_size

    @property
    def classes(self) -> tuple:
        return self.base.classes

    def __repr__(self) -> str:
        mode = "around_labels" if self.around_labels else f"stride_us={self.stride_us}"
        return f"WindowedDataset({type(self.base).__name__}, window_us={self.window_us}, {mode}, windows={len(self)})"


def _cat(parts) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
