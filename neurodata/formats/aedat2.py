"""jAER AEDAT 2.0 (and 1.0) ``.aedat``: ``#`` header lines, then big-endian address/timestamp records.

Version 2.0 records are 8 bytes (``uint32`` address, ``uint32`` timestamp µs), version 1.0
records 6 bytes (``uint16`` address, ``uint32`` timestamp). The address layout follows the
``# AEChip:`` class (or the ``chip=`` option):

- DVS128 family: ``x = (a >> 1) & 0x7F``, ``y = (a >> 8) & 0x7F``, ON when bit 0 == 0; bit 15
  set marks a special (external) event, skipped.
- DAVIS family: a polarity event has bit 31 == 0 and bit 10 == 0; ``x = (a >> 12) & 0x3FF``,
  ``y = (a >> 22) & 0x1FF``, ON = bit 11. Bit 31 == 1 records are APS (bits 10-11 = 0/1) or IMU
  (bits 10-11 = 3) samples, never events; bit 31 == 0 with bit 10 == 1 are special events.

Timestamps are read as ``uint32`` and unwrapped: whenever a record's timestamp is more than
``2**31`` below the previous record's (any record kind), ``2**32`` is added from there on.
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
import warnings

import numpy as np
from numba import njit

from ..events import check_bounds, check_sensor_size, empty_events
from ._aedat2_header import (DAVIS, DVS128, FIELD_SIZES, IMU_DTYPE, check_16bit, chip_class_for, chip_size,
                             header_bytes, parse_header, raise_outside)
from ._aedat2_imu import read_imu
from ._base import FileInfo, atomic_write, writable_events
from ._records import Workers, iter_windows, record_layout, shrink, unwrap_check
from ._unaligned import _store, put_event

NAME = "aedat2"
SUFFIXES = (".aedat",)

__all__ = ["read_aedat2", "write_aedat2", "IMU_DTYPE"]


def detect(head: bytes) -> bool:
    """True for ``#!AER-DAT1.x`` / ``#!AER-DAT2.x`` first lines (3.1 and 4.0 are other formats)."""
    return head.startswith((b"#!AER-DAT1.", b"#!AER-DAT2."))


_U = np.uint64
_BLOCK = 512  # records per block: 4 KiB of input, checked once, then decoded without branches


@njit(cache=True, nogil=True, inline="always")
def _bswap(v):
    """Byte-swap a ``uint32`` (the records are big-endian, the words are read natively)."""
    return ((v >> 24) & 0xFF) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | ((v << 24) & 0xFF000000)


@njit(cache=True, nogil=True, inline="always")
def _fields(a, layout):
    """``(x, y, p)`` as ``uint64`` of the byte-swapped address ``a`` of a polarity record."""
    a = _U(a)
    if layout == 0:
        return (a >> _U(1)) & _U(0x7F), (a >> _U(8)) & _U(0x7F), (~a) & _U(1)
    return (a >> _U(12)) & _U(0x3FF), (a >> _U(22)) & _U(0x1FF), (a >> _U(11)) & _U(1)


@njit(cache=True, nogil=True, inline="always")
def _put_block(w32, s, e, out8, o, base, layout, check, mx, my):
    """Records ``s..e-1`` (all polarity, no wrap) to events ``o...``: ``t = raw + base``.

    Two 8-byte stores per 13-byte event; the second spills 3 zero bytes into the next event's
    ``t``, which is written after it (the caller keeps the chunk's last event out of here).
    """
    j = o * _U(13)
    for i in range(_U(s), _U(e)):
        x, y, p = _fields(_bswap(w32[_U(2) * i]), layout)
        if check:
            mx, my = max(mx, x), max(my, y)
        _store(out8, j, _U(np.int64(_bswap(w32[_U(2) * i + _U(1)])) + base), 8)
        _store(out8, j + _U(8), x | (y << _U(16)) | (p << _U(32)), 8)
        j += _U(13)
    return mx, my


@njit(cache=True, nogil=True, inline="always")
def _put_block_as(w32, s, e, out8, o, base, layout, check, mx, my):
    """``_put_block`` with ``layout`` and ``check`` as constants (four loops without branches)."""
    if layout == 0:
        if check:
            return _put_block(w32, s, e, out8, o, base, 0, True, mx, my)
        return _put_block(w32, s, e, out8, o, base, 0, False, mx, my)
    if check:
        return _put_block(w32, s, e, out8, o, base, 1, True, mx, my)
    return _put_block(w32, s, e, out8, o, base, 1, False, mx, my)


@njit(cache=True, nogil=True)
def _decode_kernel(w32, w64, layout, prev_t, wraps, out8, check, a_shift, block):
    """Decode the polarity events among the records of ``w32`` into ``out8`` (from event 0).

    ``w32``: the records as native ``uint32`` words (address, timestamp); ``w64``: the same
    memory as one ``uint64`` per record, the address word at bit ``a_shift`` (0 or 32); ``out8``:
    the bytes of an ``EVENT_DTYPE`` array; at most ``min(records, out8.size // 13)`` records are
    decoded, in blocks of ``block`` records. ``prev_t`` is the raw timestamp of the record before (-1: none) and ``wraps`` the
    timestamp wraps before the first record: ``t = raw + wraps * 2**32``. Returns ``(events
    written, wraps among these records, max x, max y)``; the maxima are over the events written
    and only computed when ``check`` (-1 without events or check).

    Block by block: two vectorised reductions over a block (OR and AND of its words) show whether
    it holds only polarity records and whether bit 31 is the same in all its timestamps and, if
    set in ``prev_t``, set in them too. That rules out a wrap (a drop of more than ``2**31`` goes
    from bit 31 set to clear), so such a block is decoded without per-record branches; any other
    block record by record.
    """
    n = min(w32.size // 2, w64.size, out8.size // 13)
    t_shift = _U(32) - _U(a_shift)
    skip = _U(0x8000 if layout == 0 else 0x80000400)
    skip_raw = _U(_bswap(np.uint32(skip))) << _U(a_shift)
    t_bit31 = _U(0x80) << t_shift  # bit 31 of a timestamp is bit 7 of its first (big-endian) byte
    o = _U(0)
    w0 = wraps
    mx = _U(0)
    my = _U(0)
    s = 0
    while s < n:
        e = min(n - 1, s + block)  # the last record never goes to _put_block (its spill)
        if e > s:
            vor = _U(0)
            vand = ~_U(0)
            for i in range(_U(s), _U(e)):
                vor |= w64[i]
                vand &= w64[i]
            if prev_t >= 0:  # a wrap needs bit 31 set before and clear after (see above)
                vor |= _U(_bswap(np.uint32(prev_t))) << t_shift
            if (vor & skip_raw) == 0 and ((vor ^ vand) & t_bit31) == 0:
                mx, my = _put_block_as(w32, s, e, out8, o, np.int64(wraps) << 32, layout, check, mx, my)
                o += _U(e - s)
                prev_t = np.int64(_bswap(w32[2 * e - 1]))
                s = e
                continue
        else:
            e = n
        for i in range(_U(s), _U(e)):
            a = _bswap(w32[_U(2) * i])
            t = np.int64(_bswap(w32[_U(2) * i + _U(1)]))
            if prev_t - t > 2147483648:
                wraps += 1
            prev_t = t
            if _U(a) & skip:
                continue
            x, y, p = _fields(a, layout)
            mx, my = max(mx, x), max(my, y)
            j = o * _U(13)
            put_event(out8, j, _U(t + (wraps << 32)), x | (y << _U(16)), np.uint8(p))
            o += _U(1)
        s = e
    if o == 0 or not check:
        return o, wraps - w0, -1, -1
    return o, wraps - w0, np.int64(mx), np.int64(my)


def _words(view, rec):
    """The raw big-endian words of a window as native ``uint32`` pairs (address, timestamp) and
    as one ``uint64`` per record (the address word at bit ``_A_SHIFT``).

    Version 1.0 records (16-bit address) are widened into a compact copy of the window.
    """
    if rec == 6:
        wide = np.zeros((view.size // 6, 8), np.uint8)
        wide[:, 2:] = view.reshape(-1, 6)
        view = wide.reshape(-1)
    w32 = view.view(np.uint32)
    if sys.byteorder != "little":
        w32 = w32.byteswap()
    return w32, w32.view(np.uint64)


_A_SHIFT = 0 if sys.byteorder == "little" else 32


def _raw_t(w32, i):
    return int(_bswap(w32[2 * i + 1]))


def _open(path, chip, version):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"AEDAT 2.0 file not found: {os.fspath(path)}")
    header = parse_header(path, version=version)
    layout = header.resolve_layout(chip)
    n, _ = record_layout(path, header.data_offset, header.record_size, "AEDAT")
    # no chip named anywhere: DVS128 is only assumed while every address fits 16 bits
    guess = chip is None and header.chip_class is None and header.record_size == 8
    return header, (layout, guess), n


def _windows(path, header, layout, n, workers, out_for, window_bytes=None, check=True):
    """Decode window by window; ``out_for(k)`` gives ``(out, pos)`` with room for ``k`` events
    at ``pos``. Yields ``(out, pos, written)`` after each window.

    Chunk ``c`` of a window is decoded at ``pos`` + its first record's index in the window (a
    record is at most one event) as if no wrap came before it in the window. Only when an
    earlier chunk skipped records (special/APS/IMU) or wrapped are its events then moved down
    (in order, so moves never overwrite events still to move) and their ``t`` raised by
    ``2**32`` per earlier wrap: the same result as a serial pass, with no counting pass.
    """
    rec = header.record_size
    layout, guess = layout
    check = check and header.sensor_size is not None and \
        any(s < f for s, f in zip(header.sensor_size, FIELD_SIZES[layout]))
    prev_t, wraps = -1, 0
    for r0, view in iter_windows(path, header.data_offset, rec, n, window_bytes):
        if guess:
            check_16bit(path, header, view, r0)
        w32, w64 = _words(view, rec)
        k = w64.size
        b = workers.bounds(k, rec)
        firsts = [prev_t] + [_raw_t(w32, int(i) - 1) for i in b[1:-1]]
        out, pos = out_for(k)
        res = workers.map(lambda c: _decode_kernel(
            w32[2 * b[c]:2 * b[c + 1]], w64[b[c]:b[c + 1]], layout, firsts[c], wraps,
            out[pos + b[c]:pos + b[c + 1]].view(np.uint8), check, _A_SHIFT, _BLOCK), b.size - 1)
        if check:
            W, H, _ = header.sensor_size
            if max(r[2] for r in res) >= W or max(r[3] for r in res) >= H:
                raise_outside(path, header, layout, view, r0)
        o, extra = pos + int(res[0][0]), int(res[0][1])
        for c in range(1, b.size - 1):
            m = int(res[c][0])
            src = out[pos + b[c]:pos + b[c] + m]
            if extra:
                src["t"] += extra << 32
            if o != pos + b[c]:
                out[o:o + m].view(np.uint8)[:] = src.view(np.uint8)  # o < source start: a safe forward copy
            o += m
            extra += int(res[c][1])
        prev_t, wraps = _raw_t(w32, k - 1), wraps + extra
        yield out, pos, o - pos


def read(path, **options):
    """Read a jAER AEDAT 2.0 / 1.0 file (see ``read_aedat2``)."""
    return read_aedat2(path, **options)


def read_aedat2(path, *, chip=None, imu: bool = False, version=None, ignore_bounds=False,
                threads=None):
    """Decode the polarity events (and optionally IMU samples) of a jAER AEDAT 2.0/1.0 file.

    Parameters
    ----------
    path : str or os.PathLike
    chip : {"dvs128", "davis"} or str, optional
        Address layout, or a jAER chip class name. Default: from the ``# AEChip:`` header line;
        without one, DVS128 when every address fits 16 bits, else ``FormatError``.
    imu : bool
        Also return the DAVIS IMU samples (see ``IMU_DTYPE``); incomplete 7-record groups are dropped.
    version : {1, 2}, optional
        Force the record size (1: 6 bytes, 2: 8 bytes); default from ``#!AER-DATx.y``, 1.0 when
        the header has no version line.
    ignore_bounds : bool
        Keep polarity events outside the sensor size of the chip class (or ``# SensorSize:``
        line); by default such an event raises ``FormatError``.
    threads : int, optional
        Decoding threads; the result never depends on it.

    Returns
    -------
    events : ndarray[EVENT_DTYPE], shape (N,)
        Polarity events in file order, coordinates as stored, ``p`` 1 = ON, ``t`` µs (unwrapped).
    imu : ndarray[IMU_DTYPE], shape (M,)
        Only with ``imu=True``: then ``(events, imu)`` is returned.

    Raises
    ------
    FormatError
        No AEDAT header, a header line without line end, an unknown chip class without
        ``chip=``, wide addresses without chip information, an event outside the chip's sensor.
        A trailing partial record is ignored with a ``UserWarning``.
    """
    header, layout, n = _open(path, chip, version)
    out = empty_events(n)
    written = 0

    def out_for(k):
        return out, written

    with Workers(threads) as workers:
        for _, _, w in _windows(path, header, layout, n, workers, out_for, check=not ignore_bounds):
            written += w
    events = shrink(out, written)
    if not imu:
        return events
    if layout[0] != DAVIS or header.record_size != 8:
        return events, np.zeros(0, IMU_DTYPE)
    return events, read_imu(path, header.data_offset, n)


def iter_blocks(path, block_bytes: int, *, chip=None, version=None, ignore_bounds=False,
                threads=None):
    """Yield the polarity events decoded from windows of about ``block_bytes`` bytes."""
    header, layout, n = _open(path, chip, version)

    def out_for(k):
        return empty_events(k), 0

    with Workers(threads) as workers:
        for out, _, w in _windows(path, header, layout, n, workers, out_for, block_bytes,
                                  check=not ignore_bounds):
            yield out[:w]


def inspect(path) -> FileInfo:
    """Header facts: version, chip class and family, sensor size from the chip, creation time, records.

    ``event_count`` is None: records include special/APS/IMU ones (the count needs a full scan);
    ``metadata["records"]`` is the number of whole records.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"AEDAT 2.0 file not found: {os.fspath(path)}")
    header = parse_header(path)
    n, rest = record_layout(path, header.data_offset, header.record_size, "AEDAT", warn=False)
    meta = dict(header.metadata)
    meta.update(records=n, trailing_bytes=rest, header_lines=len(header.lines))
    return FileInfo(path=os.fspath(path), format=NAME, sensor_size=header.sensor_size,
                    event_count=None, metadata=meta, data_offset=header.data_offset)


def write(path, events, sensor_size=None, **options) -> None:
    """Write events as a jAER AEDAT 2.0 file (see ``write_aedat2``)."""
    write_aedat2(path, events, sensor_size=sensor_size, **options)


def write_aedat2(path, events, sensor_size=None, *, chip=None, created=None) -> None:
    """Write ``events`` (``EVENT_DTYPE``, shape (N,)) as a jAER AEDAT 2.0 file.

    Parameters
    ----------
    chip : {"dvs128", "davis"} or str, optional
        Address layout, or the jAER class name to put in ``# AEChip:``. Default: DVS128 when
        ``sensor_size`` (else the events) fits 128 x 128, DAVIS otherwise. The DAVIS class is
        chosen from ``sensor_size`` (240x180 ``DAVIS240C``, 346x260 ``Davis346B``, 640x480
        ``Davis640``; otherwise the generic ``eu.seebetter.ini.chips.DavisChip``).
    sensor_size : (W, H, P), optional
        Checked against the events; written as ``# SensorSize: WxH`` when the chip class does
        not imply it.
    created : datetime, optional
        Creation time for the header (default: now).

    Records are big-endian ``uint32`` address, ``uint32`` timestamp = ``t mod 2**32``; events
    must be representable: DVS128 ``x, y < 128``, DAVIS ``x < 1024``, ``y < 512``, and ``t``
    such that the reader's unwrapping gives it back: sorted events with ``0 <= t[0] < 2**32``
    and steps below ``2**31`` µs always are; any other input is checked by replaying the
    reader's rule, and the first event that would come back different raises ``ValueError``.
    """
    events = writable_events(events)
    if sensor_size is not None:
        sensor_size = check_sensor_size(sensor_size)
        check_bounds(events, sensor_size)
    cls, layout = chip_class_for(chip, sensor_size, events)
    x = events["x"].astype(np.uint32)
    y = events["y"].astype(np.uint32)
    xmax, ymax = FIELD_SIZES[layout]
    bad = (x >= xmax) | (y >= ymax)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"events[{i}] has x={x[i]}, y={y[i]}: the {'DVS128' if layout == DVS128 else 'DAVIS'} "
                         f"address layout stores x < {xmax}, y < {ymax}; "
                         f"{'pass chip=' + repr('davis') + ' or drop them' if layout == DVS128 else 'drop them'}")
    implied = chip_size(cls)
    if sensor_size is None and implied is not None:  # the reader checks events against the class's sensor
        try:
            check_bounds(events, (*implied, 2))
        except ValueError as e:
            raise ValueError(f"chip {cls} is a {implied[0]}x{implied[1]} sensor: {e}") from None
    unwrap_check(events["t"], 32, "AEDAT 2.0")
    if layout != DVS128 and events.shape[0] and y[0] >> 2 == ord("#"):
        warnings.warn(f"{path}: the first event's address starts with the byte '#' (y = {y[0]}): readers that take "
                      "every line starting with '#' as header (tonic's, SpikingJelly's) will misread the file; "
                      "jAER and neurodata stop at its '#End Of ASCII Header' line", UserWarning, stacklevel=2)
    head = header_bytes(cls, sensor_size, created or _dt.datetime.now().astimezone())

    def chunks(step=1 << 20):
        yield head
        for s in range(0, events.shape[0], step):
            ev = events[s:s + step]
            rec = np.empty((ev.shape[0], 2), ">u4")
            xs, ys, ps = x[s:s + step], y[s:s + step], ev["p"].astype(np.uint32)
            if layout == DVS128:
                rec[:, 0] = (ys << 8) | (xs << 1) | (1 - (ps > 0))
            else:
                rec[:, 0] = (ys << 22) | (xs << 12) | ((ps > 0).astype(np.uint32) << 11)
            rec[:, 1] = (ev["t"] & 0xFFFFFFFF).astype(np.uint32)
            yield rec.tobytes()

    atomic_write(path, chunks())
