"""The AEDAT 4.0 writer (``neurodata.formats.aedat4.write`` documents the behaviour)."""
from __future__ import annotations

import heapq
import struct

import numpy as np

from ..events import check_bounds, check_sensor_size
from . import _flatbuffers as fb
from ._aedat4_layout import (DV_EVENT, IMU_DTYPE, IMU_FIELDS, MAGIC, MAX_SIDE, TRIGGER_DTYPE, TRIGGER_FIELDS,
                             WRITE_COMPRESSION, compress)
from ._base import atomic_write, writable_events

TABLE_PACKET_ROWS = 256


def _event_packet(ev):
    raw = np.zeros(ev.size, DV_EVENT)
    raw["t"], raw["x"], raw["y"], raw["on"] = ev["t"], ev["x"], ev["y"], ev["p"] > 0
    return fb.build([fb.StructVector(raw.tobytes(), ev.size, 8)], identifier=b"EVTS", size_prefixed=True)


def _table_packet(arr, identifier, fields):
    tables = [[fb.Struct(fb.struct_format(dt), row[name].item()) for name, _, dt, _ in fields] for row in arr]
    return fb.build([fb.TableVector(tables)], identifier=identifier, size_prefixed=True)


def _description(streams, compression):
    lines = ['<dv version="2.0">', '    <node name="outInfo" path="/mainloop/Recorder/outInfo/">']
    for sid, name, type_id, info in streams:
        base = f"/mainloop/Recorder/outInfo/{sid}/"
        lines += [f'        <node name="{sid}" path="{base}">',
                  f'            <attr key="compression" type="string">{compression}</attr>',
                  '            <attr key="originalModuleName" type="string">neurodata</attr>',
                  f'            <attr key="originalOutputName" type="string">{name}</attr>',
                  f'            <attr key="typeIdentifier" type="string">{type_id}</attr>',
                  f'            <node name="info" path="{base}info/">']
        lines += [f'                <attr key="{key}" type="{typ}">{value}</attr>' for key, typ, value in info]
        lines += ["            </node>", "        </node>"]
    lines += ["    </node>", "</dv>", ""]
    return "\n".join(lines).encode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_aedat4(path, events, sensor_size, compression, packet_events, source, imu, triggers) -> None:
    events = writable_events(events)
    if compression not in WRITE_COMPRESSION:
        raise ValueError(f"compression must be one of {sorted(WRITE_COMPRESSION)}, got {compression!r}")
    if isinstance(packet_events, bool) or int(packet_events) != packet_events or packet_events < 1:
        raise ValueError(f"packet_events must be a positive int, got {packet_events!r}")
    packet_events = int(packet_events)
    code = WRITE_COMPRESSION[compression]
    if events.size and max(int(events["x"].max()), int(events["y"].max())) > MAX_SIDE - 1:
        raise ValueError(f"events x/y must be <= {MAX_SIDE - 1} to fit AEDAT 4 (int16)")
    if sensor_size is None:
        sensor_size = (int(events["x"].max()) + 1, int(events["y"].max()) + 1, 2) if events.size else (1, 1, 2)
    sensor_size = check_sensor_size(sensor_size)
    if max(sensor_size[:2]) > MAX_SIDE:
        raise ValueError(f"sensor_size {sensor_size} does not fit AEDAT 4 (W, H <= {MAX_SIDE})")
    check_bounds(events, sensor_size)
    source = str(source)
    if any((ord(c) < 32 and c not in "\t\n\r") or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff" for c in source):
        raise ValueError(f"source {source!r} holds characters XML cannot carry (the file's description is XML)")
    source = _escape(source)
    streams = [(0, "events", "EVTS", [("sizeX", "int", sensor_size[0]), ("sizeY", "int", sensor_size[1]),
                                      ("source", "string", source)])]
    per_stream = [[(int(events["t"][a]), 0, events[a:a + packet_events]) for a in range(0, events.size, packet_events)]]
    for sid, name, type_id, arr, dtype in ((1, "imu", "IMUS", imu, IMU_DTYPE),
                                           (2, "triggers", "TRIG", triggers, TRIGGER_DTYPE)):
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.dtype != dtype or arr.ndim != 1:
            raise TypeError(f"{name} must be a 1-D array of dtype {dtype}, got {arr.dtype} {arr.shape}")
        streams.append((sid, name, type_id, [("source", "string", source)]))
        per_stream.append([(int(arr["t"][a]), sid, arr[a:a + TABLE_PACKET_ROWS])
                           for a in range(0, arr.size, TABLE_PACKET_ROWS)])
    # interleave streams by first timestamp; each stream keeps its own packet order
    plan = list(heapq.merge(*per_stream, key=lambda p: p[0]))
    tables = {1: (b"IMUS", IMU_FIELDS), 2: (b"TRIG", TRIGGER_FIELDS)}

    def payload(sid, arr):
        return compress(_event_packet(arr) if sid == 0 else _table_packet(arr, *tables[sid]), code)

    desc = _description(streams, compression.upper())

    def header(fdp):
        ioh = fb.build([fb.Struct("i", code), fb.Struct("q", fdp), fb.String(desc)], identifier=b"IOHE")
        return MAGIC + struct.pack("<I", len(ioh)) + ioh

    # Pass 1 sizes every packet (compression is deterministic) so that the header, written
    # first, can carry file_data_position; pass 2 compresses again while streaming to disk.
    pos = len(header(0))
    entries = []
    for _, sid, arr in plan:
        size = len(payload(sid, arr))
        entries.append([fb.Struct("q", pos + 8), fb.Struct("ii", (sid, size)), fb.Struct("q", arr.size),
                        fb.Struct("q", int(arr["t"][0])), fb.Struct("q", int(arr["t"][-1]))])
        pos += 8 + size
    ftab = compress(fb.build([fb.TableVector(entries)], identifier=b"FTAB", size_prefixed=True), code)

    def chunks():
        yield header(pos)
        for _, sid, arr in plan:
            data = payload(sid, arr)
            yield struct.pack("<iI", sid, len(data))
            yield data
        yield ftab

    atomic_write(path, chunks())
