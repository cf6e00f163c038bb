"""The jAER AEDAT 1.0/2.0 header: where it ends, which chip wrote the file, what else it says.

Header lines start with ``#`` and end with a line feed. The header ends at the first line that
is not a header line. Because the first data byte may be ``0x23`` (``#``) — a DAVIS address with
``y_raw >> 2 == 0x23`` — a line only counts as header when it is text: no control characters
other than tab (and the ``\\r`` of ``\\r\\n``) before its line feed, and, when the first line ends
in ``\\r\\n`` (every jAER-written header), it ends in ``\\r\\n`` too. A line ``#End Of ASCII Header``
ends the header explicitly. Binary records almost never pass the text test: a DAVIS polarity
address always holds a zero byte, and so does a timestamp below 2**24 µs.

Also here: the header the writer emits, and the checks of records against what the header
says (wide addresses without a chip line, events outside the declared sensor).
"""
from __future__ import annotations

import datetime as _dt
import mmap
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError

DVS128, DAVIS = 0, 1

# basename of the jAER class (lower case) -> (W, H)
CHIP_CLASSES = {"dvs128": (128, 128), "tmpdiff128": (128, 128), "davis128": (128, 128),
                "davis208": (208, 192), "davis240a": (240, 180), "davis240b": (240, 180),
                "davis240c": (240, 180), "sbret10": (240, 180), "davis346": (346, 260),
                "davis346b": (346, 260), "davis346c": (346, 260), "davis346red": (346, 260),
                "davis346blue": (346, 260), "davis346mono": (346, 260), "davis640": (640, 480)}
_DAVIS_SIZES = {"128": (128, 128), "208": (208, 192), "240": (240, 180), "346": (346, 260),
                "640": (640, 480)}
_WRITE_CLASSES = {(128, 128): "ch.unizh.ini.jaer.chip.retina.DVS128",
                  (240, 180): "eu.seebetter.ini.chips.davis.DAVIS240C",
                  (346, 260): "eu.seebetter.ini.chips.davis.Davis346B",
                  (640, 480): "eu.seebetter.ini.chips.davis.Davis640"}
GENERIC_DAVIS_CLASS = "eu.seebetter.ini.chips.DavisChip"
# the largest x + 1 and y + 1 each address layout can hold: no bounds check for a sensor this large
FIELD_SIZES = {DVS128: (128, 128), DAVIS: (1024, 512)}

IMU_DTYPE = np.dtype([("t", "<i8"), ("accel_x", "<i2"), ("accel_y", "<i2"), ("accel_z", "<i2"),
                      ("temperature", "<i2"), ("gyro_x", "<i2"), ("gyro_y", "<i2"), ("gyro_z", "<i2")])
"""One DAVIS IMU6 sample: ``t`` µs and the seven raw int16 readings in jAER's code order 0-6."""

_END_LINE = "#end of ascii header"
_MAX_LINE = 1 << 20
_TEXT_BYTES = bytes([9] + [c for c in range(0x20, 0x100) if c != 0x7F])


def chip_family(cls: str):
    """``DVS128``, ``DAVIS`` or None (unknown) for a jAER chip class name."""
    base = cls.rsplit(".", 1)[-1].lower()
    if base.startswith(("dvs128", "tmpdiff128")):
        return DVS128
    if base.startswith(("davis", "sbret")) or ".davis." in cls.lower():
        return DAVIS
    return None


def chip_size(cls: str):
    """``(W, H)`` implied by a jAER chip class name, or None."""
    base = cls.rsplit(".", 1)[-1].lower()
    if base in CHIP_CLASSES:
        return CHIP_CLASSES[base]
    m = re.match(r"davis(\d+)", base)
    return _DAVIS_SIZES.get(m.group(1)) if m else None


def parse_layout(chip, name="chip"):
    """``(layout, class or None)`` from the ``chip`` option: "dvs128", "davis" or a class name."""
    if not isinstance(chip, str):
        raise TypeError(f"{name} must be 'dvs128', 'davis' or a jAER chip class name, got {chip!r}")
    low = chip.lower()
    if low in ("dvs128", "davis"):
        return (DVS128 if low == "dvs128" else DAVIS), None
    fam = chip_family(chip) if "." in chip else None
    if fam is None:
        raise ValueError(f"{name}={chip!r}: expected 'dvs128', 'davis' or a jAER class name such as "
                         "'ch.unizh.ini.jaer.chip.retina.DVS128' or 'eu.seebetter.ini.chips.davis.DAVIS240C'")
    return fam, chip


@dataclass(frozen=True)
class Aedat2Header:
    """A parsed AEDAT 1.0/2.0 header (``lines`` without ``#`` and line end)."""

    path: str
    lines: tuple
    data_offset: int
    version: str
    record_size: int
    chip_class: str | None
    chip_offset: int
    sensor_size: tuple | None
    metadata: dict = field(default_factory=dict)

    def resolve_layout(self, chip=None) -> int:
        """The address layout: the ``chip`` option, else the ``# AEChip:`` class, else DVS128."""
        if chip is not None:
            layout, _ = parse_layout(chip)
        elif self.chip_class is None:
            layout = DVS128
        else:
            layout = chip_family(self.chip_class)
            if layout is None:
                raise FormatError(self.path, self.chip_offset,
                                  f"unknown AEChip class {self.chip_class!r}: its address layout is "
                                  "not known; pass chip='dvs128' or chip='davis'")
        if layout == DAVIS and self.record_size != 8:
            raise FormatError(self.path, 0, "AEDAT 1.0 has 16-bit addresses, which cannot hold the "
                              "DAVIS layout; pass version=2 if the records are 8 bytes")
        return layout


def _text_line(raw: bytes, crlf: bool) -> bool:
    """True when ``raw`` (a line including its ``\\n``) is a header text line."""
    body = raw[:-1]
    if crlf:
        if not body.endswith(b"\r"):
            return False
        body = body[:-1]
    return not body.translate(None, _TEXT_BYTES)


def parse_header(path, version=None) -> Aedat2Header:
    """Split the header of an AEDAT 1.0/2.0 file; see the module docstring for the rules.

    ``version`` (1 or 2) forces the record size; a file without any header then starts with data.
    """
    if version not in (None, 1, 2):
        raise ValueError(f"version must be 1, 2 or None, got {version!r}")
    size = os.stat(path).st_size
    lines, offsets, pos = [], [], 0
    if size:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            crlf = None
            while pos < size and mm[pos] == 0x23:
                limit = min(size, pos + _MAX_LINE)
                nl = mm.find(b"\n", pos, limit)
                raw = mm[pos:nl + 1] if nl >= 0 else mm[pos:limit]
                if nl < 0 and limit < size:  # no line end within 1 MiB: binary data
                    break
                if nl < 0:
                    if _text_line(raw + b"\n", False):
                        raise FormatError(path, pos, "AEDAT header line without line end (truncated "
                                          "file?); expected '#' lines ending in '\\r\\n', then records")
                    break
                if crlf is None:
                    crlf = raw.endswith(b"\r\n")
                if not _text_line(raw, crlf):
                    break
                text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                lines.append(text[1:])
                offsets.append(pos)
                pos = nl + 1
                if text.strip().lower() == _END_LINE:
                    break
    first = lines[0] if lines else ""
    if first.startswith("!AER-DAT"):
        declared = first[len("!AER-DAT"):].strip()
        major = declared.split(".")[0]
        if major not in ("1", "2"):
            other = {"3": "aedat31", "4": "aedat4"}.get(major)
            hint = f"; read it with format={other!r}" if other else ""
            raise FormatError(path, 0, f"AEDAT version {declared!r}, expected 1.x or 2.x{hint}")
    elif lines:
        declared = "1.0"  # jAER loadaerdat.m: no version line means 1.0
    elif version is None:
        raise FormatError(path, 0, "no AEDAT header (expected a first line '#!AER-DAT2.0'); pass "
                          "version=1 or version=2 to read a headerless file of records")
    else:
        declared = f"{version}.0"
    rec = {1: 6, 2: 8}[version or int(declared.split(".")[0])]
    chip_class, chip_offset, meta = None, 0, {"version": declared}
    sensor = None
    for text, off in zip(lines, offsets):
        key, _, value = text.strip().partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "aechip":
            chip_class, chip_offset = value, off
        elif key == "hardwareinterface":
            meta["hardware_interface"] = value
        elif key in ("creation date",) or key.startswith("created "):
            meta["created"] = value if key == "creation date" else text.strip()[len("created "):]
        elif key == "creation time":
            m = re.search(r"(\d+)\s*$", value)
            if m:
                ms = int(m.group(1))
                meta["creation_time_ms"] = ms
                meta["creation_time"] = _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).isoformat()
        elif key == "sensorsize":
            m = re.fullmatch(r"([1-9][0-9]*)\s*x\s*([1-9][0-9]*)", value)
            if m:
                sensor = (int(m.group(1)), int(m.group(2)), 2)
        elif key.startswith("timestamps tick"):
            m = re.match(r"\s*timestamps tick(?:\s+is|\s*:)?\s*(.*)$", text, re.IGNORECASE)
            meta["timestamps_tick"] = m.group(1).strip()
    if chip_class is not None:
        meta["chip_class"] = chip_class
        fam = chip_family(chip_class)
        meta["layout"] = {DVS128: "dvs128", DAVIS: "davis", None: None}[fam]
        size_wh = chip_size(chip_class)
        if size_wh is not None and sensor is None:  # an explicit '# SensorSize:' line wins
            sensor = size_wh + (2,)
    return Aedat2Header(path=os.fspath(path), lines=tuple(lines), data_offset=pos, version=declared,
                        record_size=rec, chip_class=chip_class, chip_offset=chip_offset,
                        sensor_size=sensor, metadata=meta)


def chip_class_for(chip, sensor_size, events):
    """``(class name, layout)`` for the writer (see ``write_aedat2``)."""
    if chip is not None:
        layout, cls = parse_layout(chip)
    elif sensor_size is not None:
        layout = DVS128 if sensor_size[0] <= 128 and sensor_size[1] <= 128 else DAVIS
        cls = None
    else:
        fits = events.size == 0 or (int(events["x"].max()) < 128 and int(events["y"].max()) < 128)
        layout, cls = (DVS128 if fits else DAVIS), None
    if cls is None:
        if layout == DVS128:
            cls = _WRITE_CLASSES[(128, 128)]
        else:
            wh = tuple(sensor_size[:2]) if sensor_size is not None else None
            cls = _WRITE_CLASSES.get(wh, GENERIC_DAVIS_CLASS) if wh != (128, 128) else GENERIC_DAVIS_CLASS
    return cls, layout


def header_bytes(cls: str, sensor_size, created: _dt.datetime) -> bytes:
    """The writer's header: version, jAER's format comment lines, creation time, chip class,
    ``# SensorSize: WxH`` when ``sensor_size`` is given and the class does not imply it, and
    jAER's closing ``#End Of ASCII Header`` (so that a first record starting with ``#`` is not
    taken for a header line)."""
    lines = ["#!AER-DAT2.0",
             "# This is a raw AE data file created by neurodata",
             "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
             "# Timestamps tick is 1 us",
             f"# created {created.strftime('%a %b %d %H:%M:%S %Z %Y').replace('  ', ' ')}",
             f"# Creation time: System.currentTimeMillis() {int(created.timestamp() * 1000)}",
             f"# AEChip: {cls}"]
    implied = CHIP_CLASSES.get(cls.rsplit(".", 1)[-1].lower())
    if sensor_size is not None and (implied is None or implied != sensor_size[:2]):
        lines.append(f"# SensorSize: {sensor_size[0]}x{sensor_size[1]}")
    lines.append("#End Of ASCII Header")
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def _addresses(view, rec):
    """Addresses of the records of a window of raw bytes (numpy, for error paths)."""
    if rec == 8:
        return view.reshape(-1, 8)[:, :4].copy().view(">u4").reshape(-1).astype(np.uint32)
    return view.reshape(-1, 6)[:, :2].copy().view(">u2").reshape(-1).astype(np.uint32)


def raise_outside(path, header, layout, view, r0):
    """``FormatError`` at the first polarity record of the window (raw bytes, first record
    ``r0``) outside the declared sensor."""
    W, H, _ = header.sensor_size
    a = _addresses(view, header.record_size)
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


def check_16bit(path, header, view, r0):
    """``FormatError`` at the first 8-byte record of the window with an address above 16 bits
    (a file without chip information is read as DVS128 only while none is)."""
    high = view.reshape(-1, 8)[:, :2].any(axis=1)
    if high.any():
        i = int(np.argmax(high))
        raise FormatError(
            path, header.data_offset + (r0 + i) * 8,
            "address wider than 16 bits in a file without '# AEChip:' line: the DVS128 layout "
            "does not apply; pass chip='davis' (or chip='dvs128' to ignore the high bits)")
