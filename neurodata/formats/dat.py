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

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..errors import FormatError
from ..events import EVENT_DTYPE, check_bounds, check_sensor_size, empty_events
from ._base import FileInfo, atomic_write, parse_prefixed_header, writable_events
from ._records import Workers, iter_windows, record_layout, unwrap_check
from ._unaligned import I64, ZERO, events8_codegen, load_bytes, put_event, shuffle_lanes, splat, vector_arg

_VECTOR = sys.byteorder == "little"  # the vector path reads the file's little-endian bytes directly

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


if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 runs the kernels as Python: no intrinsics
    def _decode8(src, q, out8, j, base, xs, xm, ys, ym, ps, W, H):
        """Numpy stand-in for the intrinsic below (same results)."""
        r = src[int(q):int(q) + 64].view("<u4").astype(np.uint64).reshape(8, 2)
        t, w = r[:, 0], r[:, 1]
        x, y = (w >> np.uint64(xs)) & np.uint64(xm), (w >> np.uint64(ys)) & np.uint64(ym)
        ev = out8[int(j):int(j) + 104].view(EVENT_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = t + np.uint64(base), x, y, (w >> np.uint64(ps)) & np.uint64(1)
        high = int(np.packbits(t >= 1 << 31, bitorder="little")[0])
        return np.uint64(high | (int(((x >= W) | (y >= H)).any()) << 8))
else:
    @intrinsic
    def _decode8(typingctx, src, q, out8, j, base, xs, xm, ys, ym, ps, W, H):
        """Decode the 8 records at byte ``q`` of ``src`` as events at byte ``j`` of ``out8``
        (``t`` + ``base``; fields by shifts and masks); return a ``uint64`` whose bits 0-7 are bit 31
        of the 8 timestamps and bit 8 is set when an ``x >= W`` or ``y >= H``. One load, two byte
        shuffles, one 104-byte store (see ``_unaligned``); the caller guarantees ``q + 64 <=
        src.size`` and ``j + 104 <= out8.size``."""
        def codegen(context, builder, sig, args):
            v = load_bytes(context, builder, sig.args[0], args[0], args[1], 64)
            t = shuffle_lanes(builder, v, [(8 * k, 8 * k + 1, 8 * k + 2, 8 * k + 3) + (ZERO,) * 4 for k in range(8)])
            w = shuffle_lanes(builder, v, [(8 * k + 4, 8 * k + 5, 8 * k + 6, 8 * k + 7) + (ZERO,) * 4
                                           for k in range(8)])
            base, xs, xm, ys, ym, ps, W, H = (
                vector_arg(builder, context.cast(builder, args[i], sig.args[i], types.uint64)) for i in range(4, 12))
            x = builder.and_(builder.lshr(w, xs), xm)
            y = builder.and_(builder.lshr(w, ys), ym)
            p = builder.and_(builder.lshr(w, ps), splat(I64, 8, 1))
            xyp = builder.or_(builder.or_(x, builder.shl(y, splat(I64, 8, 16))), builder.shl(p, splat(I64, 8, 32)))
            events8_codegen(context, builder, sig.args[2], args[2], args[3], builder.add(t, base), xyp)
            high = builder.icmp_unsigned(">=", t, splat(I64, 8, 1 << 31))
            out = builder.or_(builder.icmp_unsigned(">=", x, W), builder.icmp_unsigned(">=", y, H))
            i8 = ir.IntType(8)
            flags = builder.zext(builder.bitcast(high, i8), I64)
            any_out = builder.zext(builder.icmp_unsigned("!=", builder.bitcast(out, i8), ir.Constant(i8, 0)), I64)
            return builder.or_(flags, builder.shl(any_out, ir.Constant(I64, 8)))
        return types.uint64(src, q, out8, j, base, xs, xm, ys, ym, ps, W, H), codegen


@njit(cache=True, nogil=True)
def _decode_kernel(src, w32, layout, limits, prev_t, wraps, out8, vector):
    """Decode the records of ``w32`` (``uint32`` pairs t, w; ``src`` the same bytes as uint8)
    into ``out8``, the bytes of an ``EVENT_DTYPE`` array (one event per record, at most
    ``out8.size // 13``).

    ``layout = (x shift, x mask, y shift, y mask, p shift)``; ``wraps`` wraps precede the first
    record; ``t = stored + wraps * 2**32``. Groups of 8 records go through ``_decode8`` (with
    ``vector``) and are kept when no timestamp in them can wrap (a wrap needs bit 31 set in the
    record before and clear in the next) and every ``x < limits[0]``, ``y < limits[1]``; other
    records are decoded one by one. Returns ``(wraps among these records, max x, max y)`` over the
    records decoded one by one (-1 for none): the maxima reach the limits exactly when some event does.
    """
    xs, xm, ys, ym, ps = layout
    W, H = limits
    w0 = wraps
    mx = np.int64(-1)
    my = np.int64(-1)
    n = min(w32.size // 2, out8.size // 13)
    i = 0
    while i < n:
        if vector and i + 8 <= n:
            f = _decode8(src, 8 * i, out8, 13 * i, np.uint64(wraps) << np.uint64(32), xs, xm, ys, ym, ps, W, H)
            seq = (np.uint64(1) if prev_t >= 2147483648 else np.uint64(0)) | ((f & np.uint64(0xFF)) << np.uint64(1))
            if (f >> np.uint64(8)) == 0 and (seq & ~(seq >> np.uint64(1)) & np.uint64(0xFF)) == 0:
                prev_t = np.int64(w32[2 * (i + 7)])
                i += 8
                continue
        t = np.int64(w32[2 * i])
        if prev_t - t > 2147483648:
            wraps += 1
        prev_t = t
        w = w32[2 * i + 1]
        x = np.int64((w >> xs) & xm)
        y = np.int64((w >> ys) & ym)
        mx = max(mx, x)
        my = max(my, y)
        q = 13 * i
        put_event(out8, q, np.uint64(t + (wraps << 32)), np.uint64(x | (y << 16)), np.uint8((w >> ps) & 1))
        i += 1
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
    limits = (hdr.sensor_size[0], hdr.sensor_size[1]) if check and hdr.sensor_size is not None else (1 << 16, 1 << 16)
    prev_t, wraps = -1, 0
    for r0, view in iter_windows(path, hdr.data_offset, rec, n, window_bytes):
        w32 = _words(view, rec)
        k = w32.size // 2
        b = workers.bounds(k, 8)
        firsts = [prev_t] + [int(w32[2 * (int(i) - 1)]) for i in b[1:-1]]
        out, pos = out_for(k)
        src = w32.view(np.uint8)
        res = workers.map(lambda c: _decode_kernel(src[8 * b[c]:8 * b[c + 1]], w32[2 * b[c]:2 * b[c + 1]], layout,
                                                   limits, firsts[c], wraps,
                                                   out[pos + b[c]:pos + b[c + 1]].view(np.uint8), _VECTOR), b.size - 1)
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
    events = writable_events(events)
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
