"""The Prophesee RAW container shared by EVT 2.0 and EVT 3.0: header parsing and writing,
geometry (read, inferred or supplied), word loading and the trigger record.

A RAW file is ASCII header lines ``% <keyword> <value>\\n`` (optionally closed by ``% end``),
then little-endian event words. The data starts at the first line that does not start with
``% `` (or right after ``% end``). A line starting with ``% `` that is not text (invalid UTF-8 or
control characters before its line end) is data, not header: an old file without ``% end`` may
begin with a word whose first two bytes happen to be ``% ``.
"""
from __future__ import annotations

import mmap
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError
from ._base import HEAD_BYTES, FileInfo, file_size

MAX_HEADER_BYTES = 1 << 20

TRIGGER_DTYPE = np.dtype([("t", "<i8"), ("id", "u1"), ("value", "u1")])
"""External trigger record returned by ``read(..., triggers=True)``: ``t`` µs, channel ``id``, edge ``value``."""

# Old Metavision files carry no geometry: the camera (plugin) implies it.
_PLUGIN_GEOMETRY = {"hal_plugin_gen3_fx3": (640, 480), "hal_plugin_gen41_evk3": (1280, 720)}
_SYSTEM_ID_GEOMETRY = {21: (640, 480), 48: (1280, 720)}


@dataclass(frozen=True)
class RawHeader:
    """A parsed RAW header.

    Attributes
    ----------
    fields : dict
        Keyword -> value (last occurrence wins); the ``format`` options are split into
        ``format_options`` too.
    encoding : str or None
        ``"evt2"``, ``"evt3"``, another lower-case name (``"evt21"``) or None when undeclared.
    geometry : tuple (W, H) or None
    geometry_source : str or None
        ``"geometry"``, ``"format"``, ``"inferred from plugin_name …"``, ``"inferred from system_ID …"``.
    data_offset : int
        First byte of event data.
    ended : bool
        True when the header was closed by ``% end``.
    """

    fields: dict = field(default_factory=dict)
    format_options: dict = field(default_factory=dict)
    encoding: str | None = None
    geometry: tuple | None = None
    geometry_source: str | None = None
    data_offset: int = 0
    ended: bool = False


def _header_line(buf: bytes, start: int, limit: int):
    """Classify the bytes at ``start``: ``(text, next_start)`` for a header line, ``None`` for data,
    ``("", -1)`` for a header line without line end before ``limit``."""
    if buf[start:start + 2] != b"% ":
        return None
    end = buf.find(b"\n", start, limit)
    raw = buf[start + 2:end if end >= 0 else limit]
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 and c != "\t" for c in text):
        return None
    if end < 0:
        return "", -1
    return text, end + 1


def _split_header(buf: bytes, path=None, strict: bool = True):
    """Return ``(lines, data_offset, state)`` for the header at the start of ``buf``; ``state`` is
    ``"end"`` (closed by ``% end``), ``"data"`` (a non-header line follows) or ``"cut"`` (a header
    line runs past the end of ``buf``).

    With ``strict`` a cut line raises ``FormatError`` (``buf`` must then hold the whole file).
    """
    lines = []
    pos = 0
    while True:
        got = _header_line(buf, pos, len(buf))
        if got is None:
            return lines, pos, "data"
        text, nxt = got
        if nxt < 0:
            if strict:
                raise FormatError(path, pos, "RAW header line has no line end (truncated file?); "
                                  "expected '% <keyword> <value>\\n' lines, then event words")
            return lines, pos, "cut"
        pos = nxt
        if text.strip() == "end":
            return lines, pos, "end"
        lines.append(text)


def _parse_fields(lines):
    fields = {}
    for text in lines:
        key, _, value = text.strip().partition(" ")
        if key:
            fields[key] = value.strip()
    return fields


def _encoding(fields, fmt_name):
    if fmt_name:
        return fmt_name.lower()
    evt = fields.get("evt")
    if evt is not None:
        return {"2.0": "evt2", "2": "evt2", "3.0": "evt3", "3": "evt3", "2.1": "evt21"}.get(evt.strip(), "evt" + evt)
    return None


def _size(text) -> int | None:
    """A sensor dimension 1..65535 written in ASCII digits, else None."""
    text = text.strip()
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()):
        return None
    v = int(text)
    return v if 0 < v <= 65535 else None


def _geometry(fields, fmt_opts):
    w, _, h = fields.get("geometry", "").lower().partition("x")
    if _size(w) and _size(h):
        return (_size(w), _size(h)), "geometry"
    w, h = _size(fmt_opts.get("width", "")), _size(fmt_opts.get("height", ""))
    if w and h:
        return (w, h), "format"
    plugin = fields.get("plugin_name", "").strip()
    if plugin in _PLUGIN_GEOMETRY:
        return _PLUGIN_GEOMETRY[plugin], f"inferred from plugin_name {plugin}"
    sid = fields.get("system_ID", "").strip()
    if _size(sid) in _SYSTEM_ID_GEOMETRY:
        return _SYSTEM_ID_GEOMETRY[_size(sid)], f"inferred from system_ID {sid}"
    return None, None


def header_from_lines(lines, data_offset: int, ended: bool) -> RawHeader:
    fields = _parse_fields(lines)
    fmt = fields.get("format", "")
    name, *opts = [s.strip() for s in fmt.split(";")] if fmt else [""]
    fmt_opts = {}
    for o in opts:
        k, _, v = o.partition("=")
        fmt_opts[k.strip().lower()] = v.strip()
    geometry, source = _geometry(fields, fmt_opts)
    return RawHeader(fields, fmt_opts, _encoding(fields, name), geometry, source, data_offset, ended)


def detect_encoding(head: bytes) -> str | None:
    """The encoding a RAW header at the start of ``head`` declares (``"evt2"``, ``"evt3"``, …), else None."""
    lines, offset, state = _split_header(head, strict=False)
    if not lines:
        return None
    return header_from_lines(lines, offset, state == "end").encoding


def read_header(path) -> RawHeader:
    """Parse the header of the RAW file ``path``.

    Raises ``FormatError`` for an empty file, a header line cut by the end of the file, or a
    header longer than 1 MiB.
    """
    size = file_size(path)
    if size == 0:
        raise FormatError(path, 0, "empty file; expected a Prophesee RAW header ('% evt 3.0' ...) and event words")
    with open(path, "rb") as f:
        buf = f.read(HEAD_BYTES)
        lines, offset, state = _split_header(buf, path, strict=len(buf) == size)
        if state == "cut":  # the header goes on past the head: read up to the limit
            buf += f.read(MAX_HEADER_BYTES + 1 - len(buf))
            lines, offset, state = _split_header(buf, path, strict=len(buf) == size)
            if state == "cut":
                raise FormatError(path, offset, f"RAW header longer than {MAX_HEADER_BYTES} bytes")
    return header_from_lines(lines, offset, state == "end")


def check_encoding(path, header: RawHeader, expected: str) -> None:
    """Raise ``FormatError`` when the header declares an encoding other than ``expected``."""
    if header.encoding is not None and header.encoding != expected:
        raise FormatError(path, 0, f"the header declares encoding {header.encoding!r}, not {expected!r}; "
                          f"read it with format={header.encoding!r}")


def resolve_geometry(header: RawHeader, sensor_size=None, height=None):
    """``(W, H)`` or ``(None, H)`` or None: the ``sensor_size``/``height`` option, else the header's."""
    if sensor_size is not None and height is not None:
        raise ValueError("give sensor_size or height, not both")
    if sensor_size is not None:
        vals = tuple(sensor_size)
        if len(vals) not in (2, 3) or not all(isinstance(v, (int, np.integer)) and v > 0 for v in vals):
            raise ValueError(f"sensor_size must be (W, H) or (W, H, P) positive ints, got {sensor_size!r}")
        return int(vals[0]), int(vals[1])
    if height is not None:
        if not isinstance(height, (int, np.integer)) or height <= 0:
            raise ValueError(f"height must be a positive int, got {height!r}")
        return None, int(height)
    return header.geometry


def info(path, header: RawHeader, name: str) -> FileInfo:
    """The ``FileInfo`` of a RAW file (no event count: counting means decoding)."""
    meta = dict(header.fields)
    meta["encoding"] = header.encoding
    meta["header_ended"] = header.ended
    sensor = None
    if header.geometry is not None:
        sensor = (header.geometry[0], header.geometry[1], 2)
        meta["sensor_size_source"] = header.geometry_source
        meta["sensor_size_inferred"] = header.geometry_source.startswith("inferred")
    return FileInfo(os.fspath(path), name, sensor, None, meta, header.data_offset)


def _whole_words(path, offset: int, word: np.dtype) -> int:
    """Number of whole words after ``offset``; warns about a trailing partial word."""
    n_bytes = max(file_size(path) - offset, 0)
    total = n_bytes // word.itemsize
    rest = n_bytes - total * word.itemsize
    if rest:
        warnings.warn(f"{os.fspath(path)}: {rest} trailing byte(s) at offset {offset + total * word.itemsize} "
                      f"do not form a whole {word.itemsize}-byte word; ignored", RuntimeWarning, stacklevel=4)
    return total


def load_words(path, offset: int, word: np.dtype) -> np.ndarray:
    """All whole event words of ``path`` after byte ``offset``.

    A trailing partial word (file size not a multiple of the word size after the header) is
    ignored with a ``RuntimeWarning`` naming the file and the offset. Data over 1 MiB is
    memory-mapped read-only instead of copied; the mapping lives as long as the returned array.
    """
    count = _whole_words(path, offset, word)
    with open(path, "rb") as f:
        if count * word.itemsize >= 1 << 20:
            if hasattr(mmap, "MAP_SHARED"):
                flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                mm = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
            else:  # pragma: no cover - Windows
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            return np.frombuffer(mm, dtype=word, count=count, offset=offset)
        f.seek(offset)
        return np.fromfile(f, dtype=word, count=count)


def iter_word_blocks(path, offset: int, word: np.dtype, block_bytes: int):
    """Yield the whole event words after ``offset`` in arrays of ``max(1, block_bytes // itemsize)``
    words (a trailing partial word warns once, as in ``load_words``)."""
    per_block = max(1, int(block_bytes) // word.itemsize)
    total = _whole_words(path, offset, word)
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, total, per_block):
            yield np.fromfile(f, dtype=word, count=min(per_block, total - start))


def header_bytes(encoding_line: str, format_name: str, sensor_size) -> bytes:
    """The header a writer puts first: ``% evt …``, ``% format …``, ``% geometry WxH`` (if known), ``% end``."""
    lines = [f"% evt {encoding_line}"]
    if sensor_size is not None:
        W, H = int(sensor_size[0]), int(sensor_size[1])
        if not (0 < W <= 65535 and 0 < H <= 65535):
            raise ValueError(f"sensor_size {W}x{H}: a RAW header's geometry holds sides of 1..65535 "
                             "(readers ignore larger ones)")
        lines += [f"% format {format_name};height={H};width={W}", f"% geometry {W}x{H}"]
    else:
        lines.append(f"% format {format_name}")
    lines.append("% end")
    return ("\n".join(lines) + "\n").encode("ascii")


def check_writable(events, max_t: int, fmt: str) -> None:
    """Writer preconditions shared by EVT 2.0 and 3.0: sorted, ``0 <= t <= max_t``, 11-bit x/y
    (``p`` in {0, 1} is ``writable_events``'s check)."""
    if events.size == 0:
        return
    t = events["t"]
    dec = t[1:] < t[:-1]
    if dec.any():
        i = int(np.argmax(dec)) + 1
        raise ValueError(f"{fmt} writer: events must be sorted by t (non-decreasing): t[{i}] = {t[i]} < "
                         f"t[{i - 1}] = {t[i - 1]}; sort with events[np.argsort(events['t'], kind='stable')]")
    if t[0] < 0:
        raise ValueError(f"{fmt} writer: t must be >= 0 µs, got t[0] = {t[0]}; shift the timestamps first")
    if t[-1] > max_t:
        raise ValueError(f"{fmt} writer: t must be <= {max_t} µs, got {t[-1]}; subtract an offset first")
    for name, hi in (("x", 2047), ("y", 2047)):
        col = events[name]
        bad = col > hi
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{fmt} writer: events[{i}][{name!r}] = {col[i]} does not fit (max {hi})")
