"""A minimal, bounds-checked FlatBuffers reader and a forward-layout builder (for AEDAT 4).

Only what AEDAT 4 needs: tables with scalar, string, vector-of-struct and vector-of-table fields,
optional 4-byte file identifiers and optional size prefixes. Wire format (flatbuffers.dev,
"Internals"): little-endian; a buffer starts with a ``uint32`` offset to the root table (after a
``uint32`` size when size-prefixed), then an optional 4-byte identifier; a table starts with an
``int32`` ``soffset`` such that its vtable lies at ``table - soffset``; a vtable is ``uint16
vtable_size, uint16 table_size`` and one ``uint16`` offset per field slot (0 = absent: the
default applies); strings and vectors are referenced by ``uint32`` offsets relative to the
field's own position and start with a ``uint32`` element count.

Every offset is checked against the buffer length before it is followed; a violation raises
:class:`FlatbufferError` carrying the position inside the buffer.
"""
from __future__ import annotations

import struct

import numpy as np

__all__ = ["FlatbufferError", "Table", "root", "table_vector_columns", "Struct", "struct_format", "String",
           "StructVector", "TableVector", "build"]


class FlatbufferError(ValueError):
    """A flatbuffer offset or size points outside its buffer (``position``: byte inside the buffer)."""

    def __init__(self, position: int, message: str):
        self.position = position
        self.message = message
        super().__init__(f"flatbuffer byte {position}: {message}")


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


class Table:
    """A table at ``pos`` of ``buf`` (bytes-like) whose valid bytes are ``[start, end)``; its vtable
    is checked. ``ref`` is where the offset to this table was read (reported when ``pos`` is bad)."""

    __slots__ = ("buf", "pos", "end", "vt", "vt_size", "size")

    def __init__(self, buf, pos: int, end: int, start: int = 0, ref: int | None = None):
        if not start <= pos <= end - 4:
            raise FlatbufferError(pos if ref is None else ref,
                                  f"table offset {pos} outside the buffer [{start}, {end})")
        vt = pos - _I32.unpack_from(buf, pos)[0]
        if not start <= vt <= end - 4:
            raise FlatbufferError(pos, f"vtable at {vt} lies outside the buffer [{start}, {end})")
        vt_size, size = _U16.unpack_from(buf, vt)[0], _U16.unpack_from(buf, vt + 2)[0]
        if vt_size < 4 or vt_size % 2 or vt + vt_size > end:
            raise FlatbufferError(vt, f"vtable size {vt_size} is odd, < 4 or runs past the buffer end {end}")
        if size < 4 or pos + size > end:
            raise FlatbufferError(vt, f"table size {size} is < 4 or runs past the buffer end {end}")
        self.buf, self.pos, self.end, self.vt, self.vt_size, self.size = buf, pos, end, vt, vt_size, size

    def field(self, slot: int, width: int):
        """Absolute position of field ``slot`` (``width`` bytes wide), or None when absent."""
        if 4 + 2 * slot >= self.vt_size:
            return None
        off = _U16.unpack_from(self.buf, self.vt + 4 + 2 * slot)[0]
        if off == 0:
            return None
        if off < 4 or off + width > self.size:
            raise FlatbufferError(self.vt + 4 + 2 * slot, f"field {slot} at table offset {off} "
                                  f"(+{width} bytes) lies outside the table of {self.size} bytes")
        return self.pos + off

    def scalar(self, slot: int, fmt: str, default=0):
        """Field ``slot`` as the ``struct`` format ``fmt`` (little-endian), or ``default`` if absent."""
        s = struct.Struct("<" + fmt)
        p = self.field(slot, s.size)
        return default if p is None else s.unpack_from(self.buf, p)[0]

    def _target(self, slot: int):
        p = self.field(slot, 4)
        if p is None:
            return None
        target = p + _U32.unpack_from(self.buf, p)[0]
        if target > self.end - 4:
            raise FlatbufferError(p, f"offset of field {slot} points to {target}, past the buffer end {self.end}")
        return target

    def vector(self, slot: int, elem_size: int):
        """``(start, count)`` of the vector in field ``slot`` (elements ``elem_size`` bytes), or None."""
        v = self._target(slot)
        if v is None:
            return None
        n = _U32.unpack_from(self.buf, v)[0]
        if n * elem_size > self.end - v - 4:
            raise FlatbufferError(v, f"vector of {n} x {elem_size} bytes runs past the buffer end {self.end}")
        return v + 4, n

    def string(self, slot: int):
        """The bytes of the string in field ``slot`` (without its NUL), or None when absent."""
        vec = self.vector(slot, 1)
        if vec is None:
            return None
        start, n = vec
        return bytes(self.buf[start:start + n])

    def table(self, slot: int):
        """The sub-table in field ``slot``, or None."""
        t = self._target(slot)
        return None if t is None else Table(self.buf, t, self.end, ref=self.field(slot, 4))


def root(buf, *, size_prefixed: bool, identifier: bytes | None = None) -> Table:
    """The root table of ``buf``; checks the size prefix and the 4-byte ``identifier`` when given."""
    n = len(buf)
    start = 4 if size_prefixed else 0
    end = n
    if size_prefixed:
        if n < 4:
            raise FlatbufferError(0, f"buffer of {n} bytes has no size prefix")
        size = _U32.unpack_from(buf, 0)[0]
        if size > n - 4:
            raise FlatbufferError(0, f"size prefix {size} exceeds the {n - 4} bytes that follow")
        end = 4 + size
    need = 8 if identifier is not None else 4
    if end - start < need:
        raise FlatbufferError(start, f"buffer of {end - start} bytes is too short for a flatbuffer")
    if identifier is not None and bytes(buf[start + 4:start + 8]) != identifier:
        raise FlatbufferError(start + 4, f"identifier {bytes(buf[start + 4:start + 8])!r}, expected {identifier!r}")
    return Table(buf, start + _U32.unpack_from(buf, start)[0], end, start, ref=start)


def table_vector_columns(buf, start: int, count: int, end: int, fields) -> np.ndarray:
    """Read a vector of ``count`` tables (offsets at ``start``) into a structured array, vectorised.

    ``fields`` is a list of ``(name, slot, dtype, default)`` for scalar fields; absent fields take
    their default. Every table, vtable and field position is bounds-checked against ``end``.
    """
    if start < 0 or start + 4 * count > end:
        raise FlatbufferError(start, f"vector of {count} table offsets runs past the buffer end {end}")
    b = np.frombuffer(buf, np.uint8, count=end)
    dtype = np.dtype([(name, dt) for name, _, dt, _ in fields])
    out = np.zeros(count, dtype)
    if count == 0:
        return out
    idx = start + 4 * np.arange(count, dtype=np.int64)

    def u(pos, width):
        v = np.zeros(pos.shape, np.int64)
        for k in range(width):
            v |= b[pos + k].astype(np.int64) << (8 * k)
        return v

    def fail(mask, pos, what):
        i = int(np.argmax(mask))
        raise FlatbufferError(int(pos[i]), f"table {i} of the vector: {what}")

    tab = idx + u(idx, 4)
    bad = tab > end - 4
    if bad.any():
        fail(bad, idx, "table offset points past the buffer end")
    so = u(tab, 4)
    vt = tab - np.where(so >= 1 << 31, so - (1 << 32), so)
    bad = (vt < 0) | (vt > end - 4)
    if bad.any():
        fail(bad, tab, "vtable outside the buffer")
    vsize, tsize = u(vt, 2), u(vt + 2, 2)
    bad = (vsize < 4) | (vsize % 2 == 1) | (vt + vsize > end) | (tsize < 4) | (tab + tsize > end)
    if bad.any():
        fail(bad, vt, "vtable or table size invalid or past the buffer end")
    for name, slot, dt, default in fields:
        dt = np.dtype(dt)
        present = 4 + 2 * slot < vsize
        off = np.where(present, u(np.where(present, vt + 4 + 2 * slot, vt), 2), 0)
        bad = (off != 0) & ((off < 4) | (off + dt.itemsize > tsize))
        if bad.any():
            fail(bad, vt, f"field {name!r} outside its table")
        has = off != 0
        raw = u(np.where(has, tab + off, 0), dt.itemsize).astype(np.uint64)
        col = raw.astype(f"<u{dt.itemsize}").view(dt.newbyteorder("<"))
        out[name] = np.where(has, col, np.array(default, dt))
    return out


# --------------------------------------------------------------------------------------- building
class Struct:
    """An inline scalar or struct field: ``Struct("q", 5)``, ``Struct("ii", (1, 2))`` (``struct``
    format, little-endian, and the value or tuple of values)."""

    def __init__(self, fmt: str, value):
        self.s = struct.Struct("<" + fmt)
        self.value = value


def struct_format(dtype) -> str:
    """The ``struct`` format letter of a numeric NumPy dtype (``<i8`` -> ``q``, ``<f4`` -> ``f``)."""
    dtype = np.dtype(dtype)
    letters = {"i": "bhiq", "u": "BHIQ", "f": "  fd"}[dtype.kind]
    return letters[{1: 0, 2: 1, 4: 2, 8: 3}[dtype.itemsize]]


class String:
    def __init__(self, data: bytes):
        self.data = bytes(data)


class StructVector:
    """A vector of ``count`` inline structs given as raw bytes, aligned to ``align`` bytes."""

    def __init__(self, data, count: int, align: int):
        self.data, self.count, self.align = bytes(data), int(count), int(align)


class TableVector:
    """A vector of tables; each table is a list of fields by slot (None = absent)."""

    def __init__(self, tables):
        self.tables = list(tables)


def _pad_to(out: bytearray, align: int, shift: int = 0):
    while (len(out) + shift) % align:
        out.append(0)


def _write_table(out: bytearray, fields) -> int:
    """Append a vtable, then a table for ``fields`` (slot-indexed list), then everything it
    references; return the table's position."""
    inline = [(slot, f) for slot, f in enumerate(fields) if f is not None]
    width = {slot: (f.s.size if isinstance(f, Struct) else 4) for slot, f in inline}
    layout, size = {}, 4
    for slot, _ in sorted(inline, key=lambda sf: -width[sf[0]]):  # widest first: all aligned
        size += (-size) % width[slot]
        layout[slot] = size
        size += width[slot]
    maxw = max([4, *width.values()])
    size += (-size) % maxw
    _pad_to(out, 2)
    vt = len(out)
    out += _U16.pack(4 + 2 * len(fields)) + _U16.pack(size)
    for slot in range(len(fields)):
        out += _U16.pack(layout.get(slot, 0))
    _pad_to(out, maxw)  # field offsets are aligned relative to the table start

    tab = len(out)
    out += bytes(size)
    _I32.pack_into(out, tab, tab - vt)
    for slot, f in inline:
        if isinstance(f, Struct):
            f.s.pack_into(out, tab + layout[slot], *(f.value if isinstance(f.value, tuple) else (f.value,)))
    for slot, f in inline:
        if not isinstance(f, Struct):
            p = tab + layout[slot]
            _U32.pack_into(out, p, _write_object(out, f) - p)
    return tab


def _write_object(out: bytearray, obj) -> int:
    """Append ``obj`` (String, StructVector, TableVector or a table field list); return its position."""
    if isinstance(obj, String):
        _pad_to(out, 4)
        pos = len(out)
        out += _U32.pack(len(obj.data)) + obj.data + b"\0"
        return pos
    if isinstance(obj, StructVector):
        _pad_to(out, max(4, obj.align), shift=4)  # elements (after the count) aligned
        pos = len(out)
        out += _U32.pack(obj.count) + obj.data
        return pos
    if isinstance(obj, TableVector):
        _pad_to(out, 4)
        pos = len(out)
        out += _U32.pack(len(obj.tables)) + bytes(4 * len(obj.tables))
        for i, t in enumerate(obj.tables):
            at = pos + 4 + 4 * i
            _U32.pack_into(out, at, _write_table(out, t) - at)
        return pos
    return _write_table(out, obj)


def build(fields, *, identifier: bytes | None = None, size_prefixed: bool = False) -> bytes:
    """Serialise a root table (``fields``: list by slot of ``Struct``/``String``/vectors/None).

    Layout is forward (every referenced object follows its referrer); alignment counts from the
    first byte of the returned buffer, size prefix included, so 8-byte scalars and 8-aligned
    struct vectors are aligned when the buffer is.
    """
    out = bytearray()
    base = 4 if size_prefixed else 0
    out += bytes(base + 4)
    if identifier is not None:
        if len(identifier) != 4:
            raise ValueError(f"identifier must be 4 bytes, got {identifier!r}")
        out += identifier
    root_pos = _write_table(out, fields)
    _U32.pack_into(out, base, root_pos - base)
    _pad_to(out, 8)
    if size_prefixed:
        _U32.pack_into(out, 0, len(out) - 4)
    return bytes(out)
