"""A small, strict reader for MATLAB Level 5 MAT-files (``.mat``, MATLAB 5 … 7.x, not 7.3).

Datasets such as ASL-DVS and ST-MNIST ship one ``.mat`` per sample holding plain numeric
arrays; this module reads those without SciPy. It is not an event format (it is not in the
format registry): ``read_mat``/``decode_mat`` return ``{variable name: ndarray}``.

What is read
------------
- The 128-byte header (text, subsystem offset, version ``0x0100``, endian indicator ``IM`` for
  little-endian or ``MI`` for big-endian files).
- Top-level data elements ``miMATRIX`` (14) and ``miCOMPRESSED`` (15, zlib; the decompressed
  bytes hold further elements), in the file's byte order, including the "small data element"
  tag form (``nbytes`` in the upper 16 bits, data in the 4 tag bytes that follow).
- Numeric arrays of classes double, single, int8 … uint64, with the complex and logical flags:
  the real (and imaginary) part may be stored in any numeric ``mi`` type (MATLAB stores a double
  array of small integers as ``miUINT8``); values are converted to the class's dtype
  (``mxDOUBLE`` → float64, …, logical → bool, complex → complex128/complex64) and shaped with
  the stored dimensions in column-major (Fortran) order, like ``scipy.io.loadmat``.
- Character arrays (``mxCHAR``) are returned as ``str`` when they have one row.

Variables of other classes (cell, struct, object, sparse, function handles) are skipped: they
are listed in ``MatContents.skipped`` and asking for one by name raises ``FormatError``.

Strictness: every length, dimension and type is checked against the bytes that are actually
there; decompression output is capped (``max_bytes``); any violation raises
``neurodata.FormatError`` naming the file, the byte offset (of the element in the file; inside a
compressed element, also the offset in the decompressed stream) and what was expected.
"""
from __future__ import annotations

import math
import os
import struct
import zlib

import numpy as np

from ..errors import FormatError

__all__ = ["read_mat", "decode_mat", "MatContents", "MAX_BYTES"]

MAX_BYTES = 1 << 30  # cap on decompressed bytes per compressed element (1 GiB)
HEADER_BYTES = 128

MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_SINGLE, MI_DOUBLE, MI_INT64, MI_UINT64 = 7, 9, 12, 13
MI_MATRIX, MI_COMPRESSED, MI_UTF8, MI_UTF16, MI_UTF32 = 14, 15, 16, 17, 18
_MI_DTYPES = {MI_INT8: "i1", MI_UINT8: "u1", MI_INT16: "i2", MI_UINT16: "u2", MI_INT32: "i4",
              MI_UINT32: "u4", MI_SINGLE: "f4", MI_DOUBLE: "f8", MI_INT64: "i8", MI_UINT64: "u8",
              MI_UTF8: "u1", MI_UTF16: "u2", MI_UTF32: "u4"}

MX_CHAR = 4
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_MX_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function handle"}
FLAG_COMPLEX, FLAG_LOGICAL = 0x0800, 0x0200


class MatContents(dict):
    """``{name: ndarray or str}`` of the supported variables; ``skipped`` maps the names of
    unsupported ones to their class (``"struct"``, ``"cell"``, …)."""

    def __init__(self):
        super().__init__()
        self.skipped: dict[str, str] = {}
        self.header_text = ""


class _Reader:
    """Parses elements from ``buf[start:end]`` in byte order ``bo`` (``"<"`` or ``">"``).

    ``where(off)`` turns an offset in ``buf`` into the offset reported in errors.
    """

    def __init__(self, path, buf, bo, base=0, outer=None, max_bytes=MAX_BYTES):
        self.path, self.buf, self.bo = path, buf, bo
        self.base, self.outer, self.max_bytes = base, outer, max_bytes

    def error(self, off, message):
        if self.outer is None:
            return FormatError(self.path, self.base + off, message)
        return FormatError(self.path, self.outer, f"(decompressed byte {off}) {message}")

    def tag(self, off, end):
        """``(type, nbytes, data_start, next_offset)`` of the element at ``off`` (8-byte aligned rules)."""
        if off + 8 > end:
            raise self.error(off, f"truncated element tag: {end - off} bytes left, expected 8")
        first, second = struct.unpack_from(self.bo + "II", self.buf, off)
        if first >> 16:  # small data element: nbytes in the upper half, data in the next 4 bytes
            mtype, nbytes = first & 0xFFFF, first >> 16
            if nbytes > 4:
                raise self.error(off, f"small data element claims {nbytes} bytes (at most 4 fit)")
            return mtype, nbytes, off + 4, off + 8
        mtype, nbytes = first, second
        start = off + 8
        if nbytes > end - start:
            raise self.error(off, f"element of type {mtype} claims {nbytes} bytes but only {end - start} remain")
        return mtype, nbytes, start, start + nbytes

    def numeric(self, off, end, what):
        """The numeric element at ``off`` as a 1-D array; returns ``(array, next_offset_aligned)``."""
        mtype, nbytes, start, nxt = self.tag(off, end)
        dtype = _MI_DTYPES.get(mtype)
        if dtype is None:
            raise self.error(off, f"{what}: element type {mtype} is not a numeric MAT type")
        dt = np.dtype(dtype).newbyteorder(self.bo)
        if nbytes % dt.itemsize:
            raise self.error(off, f"{what}: {nbytes} bytes is not a multiple of the {dt.itemsize}-byte item size")
        arr = np.frombuffer(self.buf, dtype=dt, count=nbytes // dt.itemsize, offset=start)
        return arr, min(end, _align(nxt, off))

    # -- top level --------------------------------------------------------------------------
    def elements(self, start, end, out: MatContents, wanted):
        off = start
        while off < end:
            if end - off < 8 and not any(self.buf[off:end]):
                break  # trailing zero padding
            mtype, nbytes, dstart, nxt = self.tag(off, end)
            if mtype == MI_COMPRESSED:
                self.compressed(off, dstart, nbytes, out, wanted)
            elif mtype == MI_MATRIX:
                self.matrix(off, dstart, dstart + nbytes, out, wanted)
            else:
                raise self.error(off, f"top-level element of type {mtype}; expected miMATRIX (14) or miCOMPRESSED (15)")
            off = nxt if mtype == MI_COMPRESSED else min(end, _align(nxt, off))

    def compressed(self, off, dstart, nbytes, out, wanted):
        if self.outer is not None:
            raise self.error(off, "compressed element inside a compressed element")
        d = zlib.decompressobj()
        try:
            data = d.decompress(bytes(self.buf[dstart:dstart + nbytes]), self.max_bytes + 1)
        except zlib.error as e:
            raise self.error(off, f"compressed element does not inflate ({e})") from None
        if len(data) > self.max_bytes:
            raise self.error(off, f"compressed element inflates to more than max_bytes={self.max_bytes} bytes")
        if not d.eof:
            raise self.error(off, "compressed element is truncated (the zlib stream does not end)")
        inner = _Reader(self.path, data, self.bo, outer=self.base + off, max_bytes=self.max_bytes)
        inner.elements(0, len(data), out, wanted)

    def matrix(self, off, start, end, out, wanted):
        if start == end:
            return  # an empty miMATRIX (allowed by the format, e.g. unused cell slots)
        flags, p = self.numeric(start, end, "array flags")
        if flags.dtype.itemsize != 4 or flags.size != 2:
            raise self.error(start, f"array flags must be two miUINT32 values, got {flags.size} of {flags.dtype}")
        cls, bits = int(flags[0]) & 0xFF, int(flags[0])
        dims, p = self.numeric(p, end, "dimensions")
        if dims.dtype.kind != "i" or dims.dtype.itemsize != 4 or dims.size < 2:
            raise self.error(start, f"dimensions must be at least two miINT32 values, got {dims.size} of {dims.dtype}")
        if (dims < 0).any():
            raise self.error(start, f"negative dimension in {dims.tolist()}")
        shape = tuple(int(v) for v in dims)
        name_arr, p = self.numeric(p, end, "array name")
        if name_arr.dtype.itemsize != 1:
            raise self.error(start, f"array name must be 1-byte characters, got {name_arr.dtype}")
        try:
            name = name_arr.tobytes().decode("ascii")
        except UnicodeDecodeError:
            raise self.error(start, "array name is not ASCII") from None
        if wanted is not None and name not in wanted:
            return
        if cls == MX_CHAR:
            out[name] = self.char(p, end, shape, off)
            return
        dtype = _MX_DTYPES.get(cls)
        if dtype is None:
            out.skipped[name] = _MX_NAMES.get(cls, f"class {cls}")
            return
        n = math.prod(shape)
        real, p = self.numeric(p, end, f"variable {name!r} real part")
        if real.size != n:
            raise self.error(off, f"variable {name!r}: dimensions {list(shape)} need {n} values, "
                                  f"the real part holds {real.size}")
        values = self.convert(real, dtype, off, name)
        if bits & FLAG_COMPLEX:
            imag, p = self.numeric(p, end, f"variable {name!r} imaginary part")
            if imag.size != n:
                raise self.error(off, f"variable {name!r}: imaginary part holds {imag.size} values, expected {n}")
            values = values.astype(np.complex64 if dtype == "f4" else np.complex128)
            values.imag = imag
        elif bits & FLAG_LOGICAL:
            values = values != 0
        out[name] = values.reshape(shape, order="F")

    def convert(self, stored, dtype, off, name):
        """``stored`` cast to the class dtype; integer classes must hold integers that fit."""
        target = np.dtype(dtype)
        if target.kind in "iu" and stored.size:
            if stored.dtype.kind == "f":
                raise self.error(off, f"variable {name!r}: an integer class stored as {stored.dtype} values")
            info = np.iinfo(target)
            lo, hi = int(stored.min()), int(stored.max())
            if lo < info.min or hi > info.max:
                raise self.error(off, f"variable {name!r}: stored values {lo}..{hi} do not fit its class {target}")
        return stored.astype(target)

    def char(self, p, end, shape, off):
        codes, _ = self.numeric(p, end, "character data")
        if codes.dtype.kind not in "iu":
            raise self.error(off, f"character data stored as {codes.dtype}; expected integer code units")
        if codes.size != math.prod(shape):
            raise self.error(off, f"character array of shape {list(shape)} holds {codes.size} code units")
        if codes.dtype.itemsize == 1:
            try:
                text = codes.tobytes().decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(off, "character data is not UTF-8") from None
            chars = np.array(list(text)) if len(text) == codes.size else None
        else:
            chars = np.array([chr(c) if 0 <= c < 0x110000 else "\ufffd" for c in codes.tolist()], dtype=str)
        if chars is None:
            raise self.error(off, "multi-byte UTF-8 characters in a char array are not supported")
        grid = chars.reshape(shape, order="F") if chars.size else chars.reshape(shape)
        if grid.ndim == 2 and grid.shape[0] <= 1:
            return "".join(grid.ravel().tolist())
        return grid


def _align(nxt: int, element_start: int) -> int:
    """Next element offset: data padded to a multiple of 8 bytes from the element start."""
    return element_start + ((nxt - element_start + 7) // 8) * 8


def decode_mat(data, variables=None, *, path=None, max_bytes: int = MAX_BYTES) -> MatContents:
    """Decode a whole MAT v5 file held in memory.

    Parameters
    ----------
    data : bytes-like
        The file's bytes.
    variables : iterable of str, optional
        Decode only these variables (each must be present and supported, else ``FormatError``).
    path : str, optional
        Shown in errors (e.g. ``archive.zip!member.mat``).
    max_bytes : int
        Largest decompressed size accepted per compressed element.

    Returns
    -------
    MatContents
        ``{name: value}``: numeric arrays (dtype of the MATLAB class, at least 2-D, column-major
        shape as stored), ``str`` for one-row char arrays; ``.skipped`` lists unsupported variables.
    """
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    path = path if path is not None else "<mat bytes>"
    if len(buf) < HEADER_BYTES:
        raise FormatError(path, 0, f"{len(buf)} bytes is shorter than the 128-byte MAT-file header")
    head = bytes(buf[:HEADER_BYTES])
    text = head[:116]
    if text.startswith(b"MATLAB 7.3") or head[:4] == b"\x89HDF":
        raise FormatError(path, 0, "a MATLAB 7.3 MAT-file (HDF5 container): open it with h5py instead")
    if not text.startswith(b"MATLAB 5.0 MAT-file"):
        raise FormatError(path, 0, f"not a MATLAB 5 MAT-file (header text starts {text[:20]!r}; "
                                   "expected 'MATLAB 5.0 MAT-file')")
    indicator = head[126:128]
    if indicator == b"IM":
        bo = "<"
    elif indicator == b"MI":
        bo = ">"
    else:
        raise FormatError(path, 126, f"endian indicator {indicator!r}; expected b'IM' or b'MI'")
    version = struct.unpack_from(bo + "H", head, 124)[0]
    if version != 0x0100:
        raise FormatError(path, 124, f"MAT-file version 0x{version:04x}; expected 0x0100")
    wanted = None if variables is None else set(variables)
    out = MatContents()
    out.header_text = text.rstrip(b" \0").decode("latin-1")
    _Reader(path, buf, bo, max_bytes=max_bytes).elements(HEADER_BYTES, len(buf), out, wanted)
    if wanted is not None:
        for name in sorted(wanted):
            if name in out.skipped:
                raise FormatError(path, None, f"variable {name!r} is a {out.skipped[name]}, which this reader "
                                              "does not decode (numeric and char arrays only)")
            if name not in out:
                raise FormatError(path, None, f"no variable {name!r} (the file holds {sorted(out) or 'none'})")
    return out


def read_mat(path, variables=None, *, max_bytes: int = MAX_BYTES) -> MatContents:
    """Read a MAT v5 file from disk; see ``decode_mat``."""
    with open(path, "rb") as f:
        data = f.read()
    return decode_mat(data, variables, path=os.fspath(path), max_bytes=max_bytes)
