"""DAVIS IMU samples in jAER AEDAT 2.0 files (``read_aedat2(..., imu=True)``).

An IMU6 sample is 7 consecutive records with bit 31 = 1 and bits 10-11 = 3 (IMU readout), code
``(a >> 28) & 7`` = 0 accel x, 1 accel y, 2 accel z, 3 temperature, 4 gyro x, 5 gyro y, 6 gyro z,
value ``int16((a >> 12) & 0xFFFF)``. Timestamps follow the reader's unwrapping rule (2**32 added
whenever a record's timestamp is more than 2**31 below the previous record's, any record kind).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._aedat2_header import IMU_DTYPE
from ._records import iter_windows

__all__ = ["read_imu", "imu_samples"]


@njit(cache=True, nogil=True)
def _imu_group_kernel(t, a, out_t, out_v):
    """Group IMU records into samples; returns how many complete samples were written.

    A sample runs from a code-0 record (accel x) to the next code-6 record (gyro z) and is kept
    when all seven codes (bits 28-30) occurred; its ``t`` is the code-0 record's. Records before
    a code-0 record, code-7 records and incomplete groups (e.g. at the end of a file) are dropped.
    """
    n = 0
    mask = 0
    t0 = 0
    vals = np.zeros(7, np.int16)
    for i in range(t.size):
        code = (a[i] >> 28) & 7
        if code == 7:
            mask = 0
            continue
        if code == 0:
            mask = 0
            t0 = t[i]
        elif mask == 0:
            continue
        v = np.int32((a[i] >> 12) & 0xFFFF)
        vals[code] = v - 65536 if v >= 32768 else v
        mask |= 1 << code
        if code == 6:
            if mask == 0x7F:
                out_t[n] = t0
                out_v[n, :] = vals
                n += 1
            mask = 0
    return n


def imu_samples(t, a):
    """``IMU_DTYPE`` samples from the unwrapped timestamps ``t`` and addresses ``a`` of IMU records."""
    out_t = np.empty(t.size // 7 + 1, np.int64)
    out_v = np.empty((t.size // 7 + 1, 7), np.int16)
    n = _imu_group_kernel(t, a, out_t, out_v)
    out = np.empty(n, IMU_DTYPE)
    out["t"] = out_t[:n]
    for k, name in enumerate(IMU_DTYPE.names[1:]):
        out[name] = out_v[:n, k]
    return out


def _imu_records(view, prev_t, wraps):
    """Unwrapped ``t`` and addresses of the IMU records of a window of 8-byte records (numpy).

    Returns ``(t, a, last raw t, wraps)``.
    """
    rec = view.reshape(-1, 8)
    a = rec[:, :4].copy().view(">u4").reshape(-1).astype(np.uint32)
    t = rec[:, 4:].copy().view(">u4").reshape(-1).astype(np.int64)
    prev = np.concatenate(([prev_t], t[:-1]))
    w = wraps + np.cumsum(prev - t > 2**31)
    keep = ((a >> 31) == 1) & (((a >> 10) & 3) == 3)
    return t[keep] + (w[keep] << 32), a[keep], int(t[-1]), int(w[-1])


def read_imu(path, data_offset: int, n_records: int) -> np.ndarray:
    """``IMU_DTYPE`` samples of the ``n_records`` 8-byte records starting at ``data_offset``."""
    ts, addrs = [], []
    prev_t, wraps = -1, 0
    for _, view in iter_windows(path, data_offset, 8, n_records):
        t, a, prev_t, wraps = _imu_records(view, prev_t, wraps)
        ts.append(t)
        addrs.append(a)
    if not ts:
        return np.zeros(0, IMU_DTYPE)
    return imu_samples(np.concatenate(ts), np.concatenate(addrs))
