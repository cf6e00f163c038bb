"""DVS128 Gesture label files (``userXX_<lighting>_labels.csv``).

Format: a header line ``class,startTime_usec,endTime_usec`` then one row per gesture instance,
three decimal integers: the class (1..11 in the dataset) and the window ``[start, end)`` in µs,
in the timebase of the recording's events. A class may occur more than once in a file.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError

__all__ = ["LABEL_DTYPE", "read_gesture_labels"]

LABEL_DTYPE = np.dtype([("class", "<i4"), ("start_us", "<i8"), ("end_us", "<i8")])
"""One labelled window: ``class`` (int32), ``start_us`` and ``end_us`` (int64 µs)."""

_HEADER = ("class", "startTime_usec", "endTime_usec")
_MAX_BYTES = 16 << 20


def read_gesture_labels(path) -> np.ndarray:
    """Read a DVS128 Gesture ``*_labels.csv`` file (a path, or its content as ``bytes``).

    Returns
    -------
    ndarray[LABEL_DTYPE], shape (K,)
        Rows in file order (repeated classes kept). Blank lines, surrounding spaces, a UTF-8 BOM and
        ``\\r\\n`` line ends are accepted. No check that ``start_us < end_us`` or that windows do
        not overlap: the published files contain odd rows and callers decide what to do with them.

    Raises
    ------
    FormatError
        Missing or different header, a row without exactly three integer fields, a value that does
        not fit the field type, or a file over 16 MiB; the message names the byte offset of the line.
    """
    if isinstance(path, (bytes, bytearray)):
        data, path = bytes(path), None
    else:
        if os.stat(path).st_size > _MAX_BYTES:
            raise FormatError(path, 0, f"label file larger than {_MAX_BYTES} bytes; not a DVS128 Gesture label CSV")
        with open(path, "rb") as f:
            data = f.read()
    if len(data) > _MAX_BYTES:
        raise FormatError(path, 0, f"label file larger than {_MAX_BYTES} bytes; not a DVS128 Gesture label CSV")
    rows = []
    offset = 0
    header_seen = False
    for raw in data.splitlines(keepends=True):
        line = raw.decode("utf-8", "replace").strip().lstrip("\ufeff").strip()
        here, offset = offset, offset + len(raw)
        if not line:
            continue
        fields = [s.strip() for s in line.split(",")]
        if not header_seen:
            if tuple(fields) != _HEADER:
                raise FormatError(path, here, f"expected the header {','.join(_HEADER)!r}, found {line[:80]!r}")
            header_seen = True
            continue
        try:
            if len(fields) != 3:
                raise ValueError
            values = tuple(int(s) for s in fields)
        except ValueError:
            raise FormatError(path, here, f"expected three integers 'class,start_us,end_us', found {line[:80]!r}") from None
        if not (-2**31 <= values[0] < 2**31 and all(-2**63 <= v < 2**63 for v in values[1:])):
            raise FormatError(path, here, f"value out of range in {line[:80]!r}")
        rows.append(values)
    if not header_seen:
        raise FormatError(path, 0, f"empty label file; expected the header {','.join(_HEADER)!r}")
    return np.array(rows, dtype=LABEL_DTYPE) if rows else np.zeros(0, LABEL_DTYPE)
