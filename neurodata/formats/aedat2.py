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

import numpy as np
from numba import njit

from ..errors import FormatError
from ..events import as_events, check_bounds, check_sensor_size, empty_events
from ._aedat2_header import CHIP_CLASSES, IMU_DTYPE, chip_class_for, parse_header
from ._aedat2_imu import read_imu
from ._base import FileInfo, atomic_write
from ._records import Workers, iter_windows, record_layout, shrink, unwrap_check

NAME = "aedat2"
SUFFIXES = (".aedat",)

__all__ = ["read_aedat2", "write_aedat2", "IMU_DTYPE"]

DVS128, DAVIS = 0, 1


def detect(head: bytes) -> bool:
    """True for ``#!AER-DAT1.x`` / ``#!AER-DAT2.x`` first lines (3.1 and 4.0 are other formats)."""
    return head.startswith((b"#!AER-DAT1.", b"#!AER-DAT2."))


@njit(cache=True, nogil=True)
def _bswap(v):
    """Byte-swap a ``uint32`` (the records are big-endian, the words are read natively)."""
    return ((v >> 24) & 0xFF) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | ((v << 24) & 0xFF000000)


@njit(cache=True, nogil=True)
def _decode_kernel(w32, layout, prev_t, wraps, out):
    """Decode the polarity events among the records of ``w32`` into ``out`` (from index 0).

    ``wraps`` timestamp wraps precede the first record; ``t = raw + wraps * 2**32``. Returns
    ``(events written, wraps among these records, max x, max y)`` (-1: no event); ``out`` has
    room for every polarity record.
    """
    o = np.uint64(0)
    w0 = wraps
    mx = np.int64(-1)
    my = np.int64(-1)
    n = w32.size // 2
    if layout == 0:
        for i in range(n):
            a = _bswap(w32[2 * i])
            t = np.int64(_bswap(w32[2 * i + 1]))
            if prev_t - t > 2147483648:
                wraps += 1
            prev_t = t
            if a & 0x8000 or o >= out.size:
                continue
            x = np.int64((a >> 1) & 0x7F)
            y = np.int64((a >> 8) & 0x7F)
            mx = max(mx, x)
            my = max(my, y)
            out[o]["t"] = t + (wraps << 32)
            out[o]["x"] = x
            out[o]["y"] = y
            out[o]["p"] = 1 - (a & 1)
            o += np.uint64(1)
    else:
        for i in range(n):
            a = _bswap(w32[2 * i])
            t = np.int64(_bswap(w32[2 * i + 1]))
            if prev_t - t > 2147483648:
                wraps += 1
            prev_t = t
            if a & 0x80000400 or o >= out.size:
                continue
            x = np.int64((a >> 12) & 0x3FF)
            y = np.int64((a >> 22) & 0x1FF)
            mx = max(mx, x)
            my = max(my, y)
            out[o]["t"] = t + (wraps << 32)
            out[o]["x"] = x
            out[o]["y"] = y
            out[o]["p"] = (a >> 11) & 1
            o += np.uint64(1)
    return o, wraps - w0, mx, my


def _words(view, rec):
    """The raw big-endian words of a window as native ``uint32`` pairs (address, timestamp).

    Version 1.0 records (16-bit address) are widened into a compact copy of the window.
    """
    if rec == 6:
        wide = np.zeros((view.size // 6, 8), np.uint8)
        wide[:, 2:] = view.reshape(-1, 6)
        view = wide.reshape(-1)
    w32 = view.view(np.uint32)
    return w32 if sys.byteorder == "little" else w32.byteswap()


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
    prev_t, wraps = -1, 0
    for r0, view in iter_windows(path, header.data_offset, rec, n, window_bytes):
        if guess:
            _check_16bit(path, header, view, r0)
        w32 = _words(view, rec)
        k = w32.size // 2
        b = workers.bounds(k, rec)
        parts = [w32[2 * b[c]:2 * b[c + 1]] for c in range(b.size - 1)]
        firsts = [prev_t] + [_raw_t(w32, int(i) - 1) for i in b[1:-1]]
        out, pos = out_for(k)
        res = workers.map(lambda c: _decode_kernel(parts[c], layout, firsts[c], wraps,
                                                   out[pos + b[c]:pos + b[c + 1]]),
                          len(parts))
        if check and header.sensor_size is not None:
            W, H, _ = header.sensor_size
            if max(r[2] for r in res) >= W or max(r[3] for r in res) >= H:
                _raise_outside(path, header, layout, view, r0)
        o, extra = pos + int(res[0][0]), int(res[0][1])
        for c in range(1, len(parts)):
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


def _raise_outside(path, header, layout, view, r0):
    """``FormatError`` at the first polarity record of the window outside the declared sensor."""
    W, H, _ = header.sensor_size
    a = _bswap_np(view, header.record_size)
    if layout == DVS128:
        ok = (a & 0x8000) == 0
        x, y = (a >> 1) & 0x7F, (a >> 8) & 0x7F
    else:
        ok = (a & 0x80000400) == 0
        x, y = (a >> 12) & 0x3FF, (a >> 22) & 0x1FF
    i = int(np.argmax(ok & ((x >= W) | (y >= H))))
    raise FormatError(path, header.data_offset + (r0 + i) * header.record_size,
                      f"event (x={x[i]}, y={y[i]}) outside the {W}x{H} sensor of "
                      f"{header.chip_class or 'the SensorSize line'}; pass chip= for another layout, "
                      "or ignore_bounds=True to read the coordinates as stored")


def _bswap_np(view, rec):
    """Addresses of the records of a window (numpy, for error paths)."""
    if rec == 8:
        return view.reshape(-1, 8)[:, :4].copy().view(">u4").reshape(-1).astype(np.uint32)
    return view.reshape(-1, 6)[:, :2].copy().view(">u2").reshape(-1).astype(np.uint32)


def _check_16bit(path, header, view, r0):
    high = view.reshape(-1, 8)[:, :2].any(axis=1)
    if high.any():
        i = int(np.argmax(high))
        raise FormatError(
            path, header.data_offset + (r0 + i) * 8,
            "address wider than 16 bits in a file without '# AEChip:' line: the DVS128 layout "
            "does not apply; pass chip='davis' (or chip='dvs128' to ignore the high bits)")


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
    events = as_events(events)
    if sensor_size is not None:
        sensor_size = check_sensor_size(sensor_size)
        check_bounds(events, sensor_size)
    cls, layout = chip_class_for(chip, sensor_size, events)
    x = events["x"].astype(np.uint32)
    y = events["y"].astype(np.uint32)
    xmax, ymax = (128, 128) if layout == DVS128 else (1024, 512)
    bad = (x >= xmax) | (y >= ymax)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"events[{i}] has x={x[i]}, y={y[i]}: the {'DVS128' if layout == DVS128 else 'DAVIS'} "
                         f"address layout stores x < {xmax}, y < {ymax}; pass chip='davis' or drop them")
    unwrap_check(events["t"], 32, "AEDAT 2.0")
    lines = ["#!AER-DAT2.0",
             "# This is a raw AE data file created by neurodata",
             "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
             "# Timestamps tick is 1 us"]
    created = created or _dt.datetime.now().astimezone()
    lines.append(f"# created {created.strftime('%a %b %d %H:%M:%S %Z %Y').replace('  ', ' ')}")
    lines.append(f"# Creation time: System.currentTimeMillis() {int(created.timestamp() * 1000)}")
    lines.append(f"# AEChip: {cls}")
    implied = CHIP_CLASSES.get(cls.rsplit(".", 1)[-1].lower())
    if sensor_size is not None and (implied is None or implied != sensor_size[:2]):
        lines.append(f"# SensorSize: {sensor_size[0]}x{sensor_size[1]}")
    head = "".join(line + "\r\n" for line in lines).encode("ascii")

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
