"""AEDAT 4.0 container pieces shared by the reader (``aedat4.py``) and the writer
(``_aedat4_writer.py``): magic, IOHeader, stream description XML, element dtypes, packet codecs.
"""
from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET

import lz4.frame
import numpy as np
import zstandard

from ..errors import FormatError
from . import _flatbuffers as fb

MAGIC = b"#!AER-DAT4.0\r\n"
MAX_IOHEADER = 16 << 20
COMPRESSION = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
WRITE_COMPRESSION = {"none": 0, "lz4": 1, "zstd": 3}
MAX_SIDE = 32768
MAX_PACKET = 1 << 30  # largest decompressed packet accepted (Zstd frames declaring more are refused)

DV_EVENT = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"],
                     "offsets": [0, 8, 10, 12], "itemsize": 16})
"""The DV ``Event`` struct as stored: 16 bytes, 3 of them padding."""

IMU_DTYPE = np.dtype([("t", "<i8"), ("temperature", "<f4"),
                      ("accelerometer_x", "<f4"), ("accelerometer_y", "<f4"), ("accelerometer_z", "<f4"),
                      ("gyroscope_x", "<f4"), ("gyroscope_y", "<f4"), ("gyroscope_z", "<f4"),
                      ("magnetometer_x", "<f4"), ("magnetometer_y", "<f4"), ("magnetometer_z", "<f4")])
"""IMU samples (DV ``Imu`` table; fields in slot order): ``t`` µs, °C, g, °/s, µT."""

TRIGGER_DTYPE = np.dtype([("t", "<i8"), ("source", "i1")])
"""Triggers (DV ``Trigger`` table): ``t`` µs and ``source`` (0 TimestampReset, 1/2/3 external
signal rising/falling/pulse, 4/5 external generator rising/falling, 6/7 frame begin/end, 8/9
exposure begin/end)."""

# (name, slot, dtype, default) of the scalar fields of each table type
IMU_FIELDS = [(name, slot, IMU_DTYPE[name], 0) for slot, name in enumerate(IMU_DTYPE.names)]
TRIGGER_FIELDS = [("t", 0, np.dtype("<i8"), 0), ("source", 1, np.dtype("i1"), 0)]
# FileDataTable (``FTAB``): a vector of FileDataDefinition tables; slot 1 is the inline struct
# PacketHeader {int32 track_id; int32 size}, read here as one int64.
FTAB_FIELDS = [("byte_offset", 0, np.dtype("<i8"), 0), ("packet_header", 1, np.dtype("<i8"), 0),
               ("elements_count", 2, np.dtype("<i8"), 0), ("start_t", 3, np.dtype("<i8"), 0),
               ("end_t", 4, np.dtype("<i8"), 0)]


class Header:
    """The parsed IOHeader: compression, file data position, streams, where packets start/end."""

    def __init__(self, path, data=None, name=None):
        """``data``: the whole file when already in memory (``path`` is then None); ``name``: what
        messages call it (default: the path, or ``<buffer>``)."""
        self.path = path
        self.name = name or ("<buffer>" if path is None else os.fspath(path))
        if data is None:
            self.size = os.stat(path).st_size
            with open(path, "rb") as f:
                head = f.read(18)
                n = self._ioheader_length(head)
                raw = f.read(n)
        else:
            self.size = len(data)
            n = self._ioheader_length(bytes(data[:18]))
            raw = bytes(data[18:18 + n])
        try:
            t = fb.root(raw, size_prefixed=False, identifier=b"IOHE")
            self.compression = t.scalar(0, "i", 0)
            self.file_data_position = t.scalar(1, "q", -1)
            desc = t.string(2)
        except fb.FlatbufferError as e:
            raise FormatError(path, 18 + e.position, f"IOHeader flatbuffer: {e.message}") from None
        if self.compression not in COMPRESSION:
            raise FormatError(path, 18, f"IOHeader compression {self.compression} is not one of {sorted(COMPRESSION)}")
        self.data_offset = 18 + n
        fdp = self.file_data_position
        self.packets_end = fdp if self.data_offset <= fdp <= self.size else self.size
        self.streams = parse_description(path, desc or b"")

    def _ioheader_length(self, head):
        if not head.startswith(MAGIC):
            raise FormatError(self.path, 0, f"expected the AEDAT 4 magic {MAGIC!r}, found {head[:14]!r}")
        if len(head) < 18:
            raise FormatError(self.path, 14, "file ends before the IOHeader length")
        n = struct.unpack_from("<I", head, 14)[0]
        if n > min(MAX_IOHEADER, self.size - 18):
            raise FormatError(self.path, 14, f"IOHeader length {n} exceeds the file or {MAX_IOHEADER} bytes")
        return n

    def events_stream(self, stream):
        """The stream chosen by ``stream`` (id, output name, or None = lowest-id EVTS stream)."""
        if stream is None:
            return self.first("EVTS")
        for s in self.streams:
            if (isinstance(stream, (int, np.integer)) and not isinstance(stream, bool) and s["id"] == stream) \
                    or (isinstance(stream, str) and stream in (s["name"], str(s["id"]))):
                if s["type"] != "EVTS":
                    raise ValueError(f"stream {stream!r} of {self.name} holds {s['type']}, not events (EVTS)")
                return s
        raise ValueError(f"{self.name} has no stream {stream!r}; streams: "
                         + ", ".join(f"{s['id']} {s['name']!r} ({s['type']})" for s in self.streams))

    def first(self, type_id):
        return next((s for s in self.streams if s["type"] == type_id), None)


def parse_description(path, desc: bytes):
    """Streams declared in the IOHeader XML, by id: ``[{id, name, type, size, source, compression}]``.

    A stream is a ``<node>`` with a numeric ``name`` and a ``typeIdentifier`` attr; ``size`` is
    ``(sizeX, sizeY)`` from its ``info`` child when both are in 1..32768, else None.
    """
    if b"<!DOCTYPE" in desc or b"<!ENTITY" in desc:
        raise FormatError(path, 18, "IOHeader description XML holds a DOCTYPE/ENTITY declaration; refusing it")
    try:
        root = ET.fromstring(desc.decode("utf-8", "replace")) if desc.strip() else None
    except ET.ParseError as e:
        raise FormatError(path, 18, f"IOHeader description is not valid XML ({e})") from None
    if root is None:
        return []

    def attrs(node):
        return {a.get("key"): (a.text or "").strip() for a in node.findall("attr")}

    streams = []
    for node in root.iter("node"):
        a = attrs(node)
        if "typeIdentifier" not in a or not (node.get("name") or "").lstrip("-").isdigit():
            continue
        info = next((attrs(c) for c in node.findall("node") if c.get("name") == "info"), {})
        size = None
        try:
            w, h = int(info["sizeX"]), int(info["sizeY"])
            size = (w, h) if 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE else None
        except (KeyError, ValueError):
            pass
        streams.append({"id": int(node.get("name")), "name": a.get("originalOutputName", ""),
                        "type": a["typeIdentifier"], "size": size, "source": info.get("source"),
                        "compression": a.get("compression")})
    streams.sort(key=lambda s: s["id"])
    return streams


def decompress(path, code, data, offset):
    """Decompress one packet payload (IOHeader compression ``code``) found at byte ``offset``."""
    if code == 0:
        return data
    if not data:
        raise FormatError(path, offset, "zero-length compressed packet")
    try:
        if code in (1, 2):
            # an LZ4 frame expands at most ~255x: refuse a header that claims more (no huge allocation)
            if len(data) >= 14 and data[4] & 0x08:
                size = int.from_bytes(data[6:14], "little")
                if size > 255 * len(data) + (1 << 16):
                    raise ValueError(f"frame header declares {size} bytes, impossible from {len(data)} compressed bytes")
            return lz4.frame.decompress(data)
        dctx = zstandard.ZstdDecompressor()
        size = zstandard.frame_content_size(data)
        if size > MAX_PACKET:
            raise ValueError(f"frame header declares {size} bytes, over the {MAX_PACKET}-byte packet limit")
        if size >= 0:
            return dctx.decompress(data)
        # no content size in the frame header: decompress into at most MAX_PACKET bytes
        return dctx.decompress(data, max_output_size=MAX_PACKET)
    except Exception as e:  # the codecs raise RuntimeError / ZstdError / ValueError on corrupt input
        name = "LZ4" if code in (1, 2) else "Zstd"
        raise FormatError(path, offset, f"corrupt {name} packet payload: {e}") from None


def compress(data: bytes, code: int) -> bytes:
    """Compress one packet payload: LZ4 frame (code 1), Zstd frame (3, level 3) or as is (0)."""
    if code == 1:
        return lz4.frame.compress(data)
    if code == 3:
        return zstandard.ZstdCompressor().compress(data)
    return data
