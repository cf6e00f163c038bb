"""Event-array plumbing shared by the functional modules: validation, and the fast copies and
selections of ``neurodata.events`` (``copy_events``, ``select_events``, ``concat_events``).
"""
from __future__ import annotations

import numpy as np

from ..events import as_events, check_bounds, check_sorted, concat_events, copy_events, select_events

__all__ = ["checked_events", "copy_events", "select_events", "concat_events"]


def checked_events(events, sensor_size=None, *, ordered: bool = False) -> np.ndarray:
    """``as_events`` + ``check_bounds`` (when ``sensor_size`` is given) + ``check_sorted`` (when
    ``ordered``): the validation every public filter/augmentation runs before computing."""
    ev = as_events(events)
    if sensor_size is not None:
        check_bounds(ev, sensor_size)
    if ordered:
        check_sorted(ev)
    return ev
