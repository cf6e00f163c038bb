"""Prophesee DAT (``.dat``: N-CARS, Gen1 automotive ``*_td.dat``): ``% `` header, then 8-byte records.

Header lines start with ``% `` (``% Data file containing ... events.``, ``% Version 2``,
``% Date ...``, optional ``% Height H``, ``% Width W``). When at least one header line exists the
next two bytes are ``uint8 event_type`` and ``uint8 event_size``; then records of ``event_size``
bytes (little-endian ``uint32 t`` µs, ``uint32 w``, any further bytes ignored).

- version 2 (default): ``x = w & 0x3FFF``, ``y = (w >> 14) & 0x3FFF``, ``p = (w >> 28) & 1``;
- version 1 (``% Version 1`` or ``version=1``): ``x = w & 0x1FF``, ``y = (w >> 9) & 0xFF``,
  ``p = (w >> 17) & 1``.

Timestamps are unwrapped: whenever a record's ``t`` is more than ``2**31`` below the previous
record's, ``2**32`` is added from there on (faery's rule).
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
import re

import numpy as np
from numba import njit

from ..errors import FormatError
from ..events import as_events, check_bounds, check_sensor_size, empty_events
from ._base import FileInfo, atomic_write, parse_prefixed_header
from ._records import Workers, iter_windows, record_layout, unwrap_check

NAME = "dat"
SUFFIXES = (".dat",)

__all__ = ["read_dat", "write_dat"]

EVENT_TYPES = {0x00: "Event2D", 0x0C: "EventCD"}
_OTHER_TYPES = {0x0E: "external trigger"}


def detect(head: bytes) -> bool:
    """True for a ``% `` header naming a DAT file (``Data file containing`` or ``% Version``)
    without the ``% evt`` / ``% format`` lines of Prophesee RAW files."""
    if not head.startswith(b"% "):
        return False
    keys = []
    for line in head.split(b"\n"):
        if not line.startswith(b"% "):
            break
        keys.append(line[2:].split(b" ", 1)[0].lower())
    if b"evt" in keys or b"format" in keys or b"end" in keys or b"geometry" in keys:
        return False
    return b"% Data file containing" in head or b"version" in keys


@njit(cache=True, nogil=True)
def _decode_kernel(w32, layout, prev_t, wraps, out):
    """Decode the records of ``w32`` (``uint32`` pairs t, w) into ``out`` (same length).

    ``layout = (x shift, x mask, y shift, y mask, p shift)``; ``wraps`` wraps precede the first
    record; ``t = stored + wraps * 2**32``. Returns ``(wraps among these records, max x, max y)``
    (-1 for no records).
    """
    xs, xm, ys, ym, ps = layout
    w0 = wraps
    mx = np.int64(-1)
    my = np.int64(-1)
    for i in range(min(w32.size // 2, out.size)):
        t = np.int64(w32[2 * i])
        if prev_t - t > 2147483648:
            wraps += 1
        prev_t = t
        w = w32[2 * i + 1]
        x = np.int64((w >> xs) & xm)
        y = np.int64((w >> ys) & ym)
        mx = max(mx, x)
        my = max(my, y)
        out[i]["t"] = t + (wraps << 32)
        out[i]["x"] = x
        out[i]["y"] = y
        out[i]["p"] = (w >> ps) & 1
    return wraps - w0, mx, my


_LAYOUTS = {2: (0, 0x3FFF, 14, 0x3FFF, 28), 1: (0, 0x1FF, 9, 0xFF, 17)}


def _words(view, rec):
    """The (t, w) ``uint32`` pairs of a window: a view for 8-byte records, a compact copy otherwise."""
    if rec != 8:
        view = np.ascontiguousarray(view.reshape(-1, rec)[:, :8]).reshape(-1)
    w32 = view.view(np.uint32)
    return w32 if sys.byteorder == "little" else w32.byteswap()


def _positive_int(text):
    """``int(text)`` for a plain positive decimal (ASCII digits), else None."""
    return int(text) if text and re.fullmatch(r"[0-9]+", text) and int(text) > 0 else None


class _Header:
    """Parsed DAT header: lines, data offset, event type/size, version, sensor size."""

    def __init__(self, path, version=None):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"DAT file not found: {os.fspath(path)}")
        if version not in (None, 1, 2):
            raise ValueError(f"version must be 1, 2 or None, got {version!r}")
        self.lines, off = parse_prefixed_header(path, b"% ")
        size = os.stat(path).st_size
        fields = {}
        for line in self.lines:
            key, _, value = line.strip().partition(" ")
            fields.setdefault(key.lower(), value.strip())
        self.fields = fields
        if self.lines:
            if size < off + 2:
                raise FormatError(path, off, "DAT file ends inside the 2-byte event type/size after "
                                  "its header (truncated?)")
            with open(path, "rb") as f:
                f.seek(off)
                self.event_type, self.event_size = f.read(2)
            off += 2
        elif size == 0:
            raise FormatError(path, 0, "empty file; expected a Prophesee DAT header ('% ' lines) "
                              "or 8-byte records")
        else:
            self.event_type, self.event_size = 0, 8
        self.data_offset = off
        if self.event_size < 8:
            raise FormatError(path, off - 1, f"event size {self.event_size} < 8: DAT records hold at "
                              "least uint32 t and uint32 data")
        if self.event_type not in EVENT_TYPES:
            what = _OTHER_TYPES.get(self.event_type, "unknown")
            raise FormatError(path, off - 2, f"event type 0x{self.event_type:02X} ({what}): only CD "
                              "events (0x00 Event2D, 0x0C EventCD) are decoded")
        declared = fields.get("version")
        if version is None:
            m = re.match(r"\d+", declared or "")
            version = int(m.group()) if m else 2
            if version not in (1, 2):
                raise FormatError(path, 0, f"'% Version {declared}': expected 1 or 2; pass version=")
        self.version = version
        h, w = (_positive_int(fields.get(k)) for k in ("height", "width"))
        self.sensor_size = (w, h, 2) if h and w else None


def _check_bounds(path, hdr, events, r0, mx, my):
    """``FormatError`` at the first event outside the ``% Width``/``% Height`` the header declares."""
    W, H, _ = hdr.sensor_size
    if mx < W and my < H:
        return
    i = int(np.argmax((events["x"] >= W) | (events["y"] >= H)))
    e = events[i]
    raise FormatError(path, hdr.data_offset + (r0 + i) * hdr.event_size,
                      f"event (x={e['x']}, y={e['y']}) outside the sensor the header declares "
                      f"(Width {W}, Height {H}); a version-1 file read as version 2? pass version=1, "
                      "or ignore_bounds=True to read the coordinates as stored")


def read(path, **options):
    """Read a Prophesee DAT file (see ``read_dat``)."""
    return read_dat(path, **options)


def _windows(path, hdr, n, workers, out_for, window_bytes=None, check=True):
    """Decode window by window into ``out_for(k) -> (out, pos)``; yields ``(out, k)``.

    The chunks of a window are decoded in parallel, each assuming no wrap in the chunks before
    it; each reports its own wraps, and a chunk that follows wraps gets ``2**32`` per wrap added
    afterwards (rare: a wrap happens every 71.6 minutes of recording).
    """
    rec, layout = hdr.event_size, _LAYOUTS[hdr.version]
    prev_t, wraps = -1, 0
    for r0, view in iter_windows(path, hdr.data_offset, rec, n, window_bytes):
        w32 = _words(view, rec)
        k = w32.size // 2
        b = workers.bounds(k, 8)
        firsts = [prev_t] + [int(w32[2 * (int(i) - 1)]) for i in b[1:-1]]
        out, pos = out_for(k)
        res = workers.map(lambda c: _decode_kernel(w32[2 * b[c]:2 * b[c + 1]], layout, firsts[c], wraps,
                                                   out[pos + b[c]:pos + b[c + 1]]), b.size - 1)
        before = np.cumsum([r[0] for r in res], dtype=np.int64)
        if check and hdr.sensor_size is not None:
            _check_bounds(path, hdr, out[pos:pos + k], r0, max(r[1] for r in res), max(r[2] for r in res))
        for c in range(1, b.size - 1):
            if before[c - 1]:
                out["t"][pos + b[c]:pos + b[c + 1]] += int(before[c - 1]) << 32
        prev_t, wraps = int(w32[2 * (k - 1)]), wraps + int(before[-1])
        yield out, k


def read_dat(path, *, version=None, ignore_bounds=False, threads=None) -> np.ndarray:
    """Decode a Prophesee DAT file of CD events.

    Parameters
    ----------
    path : str or os.PathLike
    version : {1, 2}, optional
        Bit layout of the data word; default from ``% Version`` (2 when absent).
    ignore_bounds : bool
        Keep events outside the ``% Width``/``% Height`` the header declares (default: such an
        event raises ``FormatError``).
    threads : int, optional
        Decoding threads; the result never depends on it.

    Returns
    -------
    ndarray[EVENT_DTYPE], shape (N,)
        ``t`` µs (unwrapped), ``x``/``y`` as stored, ``p`` 1 = ON. A header-only file gives 0 events.

    Raises
    ------
    FormatError
        Empty file, a header without the type/size bytes, ``event_size < 8``, a non-CD event
        type, an unknown version, an event outside the declared Width/Height. A trailing partial record is ignored with a ``UserWarning``.
    """
    hdr = _Header(path, version)
    n, _ = record_layout(path, hdr.data_offset, hdr.event_size, "DAT")
    out = empty_events(n)
    pos = 0

    def out_for(k):
        return out, pos

    with Workers(threads) as workers:
        for _, k in _windows(path, hdr, n, workers, out_for, check=not ignore_bounds):
            pos += k
    return out


def iter_blocks(path, block_bytes: int, *, version=None, ignore_bounds=False, threads=None):
    """Yield the events decoded from windows of about ``block_bytes`` bytes (wraps carry over)."""
    hdr = _Header(path, version)
    n, _ = record_layout(path, hdr.data_offset, hdr.event_size, "DAT")
    with Workers(threads) as workers:
        for out, _ in _windows(path, hdr, n, workers, lambda k: (empty_events(k), 0), block_bytes,
                               check=not ignore_bounds):
            yield out


def inspect(path) -> FileInfo:
    """Header facts: event type and size, version, date, sensor size (``% Width``/``% Height``).

    ``event_count`` is the number of whole records (every record is an event).
    """
    hdr = _Header(path)
    n, rest = record_layout(path, hdr.data_offset, hdr.event_size, "DAT", warn=False)
    meta = {"header": list(hdr.lines), "version": hdr.version, "event_type": hdr.event_type,
            "event_type_name": EVENT_TYPES[hdr.event_type], "event_size": hdr.event_size,
            "trailing_bytes": rest}
    if "date" in hdr.fields:
        meta["date"] = hdr.fields["date"]
    return FileInfo(path=os.fspath(path), format=NAME, sensor_size=hdr.sensor_size, event_count=n,
                    metadata=meta, data_offset=hdr.data_offset)


def write(path, events, sensor_size=None, **options) -> None:
    """Write events as a Prophesee DAT file (see ``write_dat``)."""
    write_dat(path, events, sensor_size=sensor_size, **options)


def write_dat(path, events, sensor_size=None, *, version: int = 2, date=None) -> None:
    """Write ``events`` (``EVENT_DTYPE``, shape (N,)) as a Prophesee DAT file of type 0x00, size 8.

    Header: ``% Data file containing Event2D events.``, ``% Version <version>``, ``% Date <date>``
    (default now, ``YYYY-MM-DD HH:MM:SS``), and ``% Height``/``% Width`` when ``sensor_size`` is
    given. Records: ``uint32 t mod 2**32``, ``uint32 w`` in the version's layout (version 2:
    ``x, y < 16384``; version 1: ``x < 512``, ``y < 256``). ``t`` must come back from the reader's
    unwrapping, so timestamps past ``2**32`` round-trip: sorted events with ``0 <= t[0] < 2**32``
    and steps below ``2**31`` µs always do; any other input is checked by replaying the reader's
    rule, and the first event that would come back different raises ``ValueError``.
    """
    events = as_events(events)
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    if sensor_size is not None:
        sensor_size = check_sensor_size(sensor_size)
        check_bounds(events, sensor_size)
    xmax, ymax = (1 << 14, 1 << 14) if version == 2 else (512, 256)
    x, y = events["x"], events["y"]
    bad = (x >= xmax) | (y >= ymax)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"events[{i}] has x={x[i]}, y={y[i]}: DAT version {version} stores "
                         f"x < {xmax}, y < {ymax}")
    unwrap_check(events["t"], 32, "DAT")
    date = date or _dt.datetime.now()
    lines = ["Data file containing Event2D events.", f"Version {version}",
             f"Date {date.strftime('%Y-%m-%d %H:%M:%S')}"]
    if sensor_size is not None:
        lines += [f"Height {sensor_size[1]}", f"Width {sensor_size[0]}"]
    head = "".join(f"% {line}\n" for line in lines).encode("ascii") + bytes([0x00, 8])

    def chunks(step=1 << 20):
        yield head
        for s in range(0, events.shape[0], step):
            ev = events[s:s + step]
            rec = np.empty((ev.shape[0], 2), "<u4")
            rec[:, 0] = (ev["t"] & 0xFFFFFFFF).astype(np.uint32)
            xs, ys, ps = (ev[k].astype(np.uint32) for k in ("x", "y", "p"))
            if version == 2:
                rec[:, 1] = xs | (ys << 14) | ((ps > 0).astype(np.uint32) << 28)
            else:
                rec[:, 1] = xs | (ys << 9) | ((ps > 0).astype(np.uint32) << 17)
            yield rec.tobytes()

    atomic_write(path, chunks())
