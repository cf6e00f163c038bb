"""The AEDAT 3.1 writer (``neurodata.formats.aedat31.write`` documents the behaviour)."""
from __future__ import annotations

import struct
from datetime import datetime

import numpy as np

from ..events import check_bounds, check_sensor_size
from ._base import atomic_write, writable_events

_HEADER = struct.Struct("<hhiiiiii")  # 28-byte packet header
_POLARITY = 1
_NAMES = {(128, 128): "DVS128", (240, 180): "DAVIS240C", (346, 260): "DAVIS346", (640, 480): "DVXplorer"}


def write_aedat31(path, events, sensor_size, packet_events, source_id, source_name, start_time) -> None:
    events = writable_events(events)
    t, x, y, p = (events[f] for f in ("t", "x", "y", "p"))
    if int(packet_events) != packet_events or packet_events < 1:
        raise ValueError(f"packet_events must be a positive int, got {packet_events!r}")
    if not -32768 <= int(source_id) <= 32767:
        raise ValueError(f"source_id must fit int16, got {source_id!r}")
    if events.size:
        if t.min() < 0:
            i = int(np.argmax(t < 0))
            raise ValueError(f"events['t'][{i}] = {t[i]} is negative; AEDAT 3.1 timestamps are >= 0")
        if t.max() >= 1 << 62:
            raise ValueError(f"events['t'] up to {t.max()} does not fit AEDAT 3.1 (t < 2**62)")
        if max(int(x.max()), int(y.max())) > 0x7FFF:
            raise ValueError("events x/y must be <= 32767 to fit AEDAT 3.1 polarity events")
    if sensor_size is not None:
        sensor_size = check_sensor_size(sensor_size)
        check_bounds(events, sensor_size)
    if source_name is None:
        wh = (128, 128) if sensor_size is None else sensor_size[:2]
        source_name = _NAMES.get(wh, "Unknown")
    if any(c in str(source_name) for c in "\r\n#"):
        raise ValueError(f"source_name must not contain line ends or '#', got {source_name!r}")
    stamp = (start_time or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M:%S (TZ%z)")
    header = (f"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source {int(source_id)}: {source_name}\r\n"
              f"#Start-Time: {stamp}\r\n#!END-HEADER\r\n").encode("latin-1")
    body = np.empty(events.size, [("data", "<u4"), ("ts", "<i4")])
    body["data"] = (x.astype(np.uint32) << 17) | (y.astype(np.uint32) << 2) | ((p > 0).astype(np.uint32) << 1) | 1
    body["ts"] = (t & 0x7FFFFFFF).astype(np.int32)
    ovf = t >> 31
    cuts = np.flatnonzero(ovf[1:] != ovf[:-1]) + 1
    starts = []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, events.size]):
        starts.extend(range(int(a), int(b), int(packet_events)))
    edges = [*starts, events.size]

    def chunks():
        yield header
        for a, b in zip(edges[:-1], edges[1:]):
            n = b - a
            yield _HEADER.pack(_POLARITY, int(source_id), 8, 4, int(ovf[a]), n, n, n)
            yield body[a:b].tobytes()

    atomic_write(path, chunks())


