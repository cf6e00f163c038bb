"""What every format module shares: the ``FileInfo`` record and small byte-level helpers.

A format module ``neurodata/formats/<name>.py`` provides:

- ``NAME`` (str) and ``SUFFIXES`` (tuple of lower-case suffixes, used only as a fallback);
- ``detect(head: bytes) -> bool``: True when the first bytes (up to 64 KiB) are this format;
- ``read(path, **options) -> ndarray[EVENT_DTYPE]``;
- ``write(path, events, sensor_size=None, **options) -> None``;
- ``inspect(path) -> FileInfo``;
- ``iter_blocks(path, block_bytes, **options)``: yield ``EVENT_DTYPE`` arrays in file order, each
  decoded from at most about ``block_bytes`` bytes of the file, so memory stays bounded.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError
from ..events import as_events

HEAD_BYTES = 1 << 16


@dataclass(frozen=True)
class FileInfo:
    """What ``neurodata.inspect`` tells about a file without decoding all of it.

    Attributes
    ----------
    path : str
    format : str
        Registry name of the format (``"nmnist"``, ``"aedat2"``, ``"aedat31"``, ``"aedat4"``,
        ``"dat"``, ``"evt2"``, ``"evt3"``).
    sensor_size : tuple (W, H, P) or None
        None where the file does not say.
    event_count : int or None
        Number of polarity/CD events where it is cheap to know (fixed-size records), else None.
    metadata : dict
        Header fields: camera/chip, start time, streams, version, ... as the format names them.
    data_offset : int
        Byte offset where the event data starts.
    """

    path: str
    format: str
    sensor_size: tuple | None
    event_count: int | None
    metadata: dict = field(default_factory=dict)
    data_offset: int = 0


def file_size(path) -> int:
    return os.stat(path).st_size


def read_head(path, n: int = HEAD_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def parse_prefixed_header(path, prefix: bytes, max_bytes: int = 1 << 20):
    """Split a header made of lines starting with ``prefix`` from the binary data that follows.

    Returns ``(lines, data_offset)`` where ``lines`` are the decoded header lines without the prefix
    and line ending (``\\r\\n`` or ``\\n``) and ``data_offset`` is the first byte of data: the
    first byte of the first line that does not start with ``prefix``. Raises ``FormatError`` when
    the header is longer than ``max_bytes``.
    """
    lines = []
    offset = 0
    with open(path, "rb") as f:
        while True:
            start = f.read(len(prefix))
            if start != prefix:
                break
            rest = f.readline(max_bytes)
            if not rest.endswith(b"\n"):
                raise FormatError(path, offset, f"header line starting with {prefix!r} has no line end")
            line = (start + rest)[len(prefix):].rstrip(b"\r\n")
            lines.append(line.decode("latin-1"))
            offset += len(start) + len(rest)
            if offset > max_bytes:
                raise FormatError(path, offset, f"header longer than {max_bytes} bytes")
    return lines, offset


def load_data(path, offset: int, dtype, count: int = -1) -> np.ndarray:
    """Read ``count`` items of ``dtype`` starting at byte ``offset`` (all whole items when -1)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return np.fromfile(f, dtype=dtype, count=count)


def atomic_write(path, chunks) -> None:
    """Write an iterable of bytes-like ``chunks`` to ``path`` through a temporary file and a rename.

    No partially written file ever exists under the final name.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def writable_events(events) -> np.ndarray:
    """``as_events(events)`` for a writer, which stores one polarity bit: ``p`` must be 0 or 1 (in a
    foreign array also -1 for OFF, or bool), else ``ValueError`` naming the first other value
    (``as_events`` alone reads any ``p > 0`` as ON, so a 2 would be written as 1)."""
    out = as_events(events)
    p = np.asarray((events if isinstance(events, Mapping) else np.asarray(events))["p"])
    bad = ~np.isin(p, (-1, 0, 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"events[{i}]['p'] = {p[i]}: event files store one polarity bit, p in {{0, 1}} "
                         "(1 = ON; in a foreign array -1 or False is OFF too)")
    return out
