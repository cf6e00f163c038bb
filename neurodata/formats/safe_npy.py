"""Loading ``.npy`` files without ever executing pickled code.

``numpy.load(allow_pickle=True)`` runs whatever a pickle asks for; several dataset releases
(Bullying10K) nevertheless store their samples as pickled *object* arrays of per-frame event
arrays. ``load_npy`` reads such files with an unpickler that can build exactly three things —
``numpy.ndarray`` (through numpy's own ``_reconstruct``, with a size bound), dtypes (rebuilt
from their description with numpy's public constructors: plain number, bytes, text, void, object
and structured types), and the plain Python containers and scalars the pickle protocol makes
itself — and refuses every other global (``os.system``, ``builtins.eval``, any class) with a
``FormatError`` *before* calling it. ``BUILD`` (``__setstate__``) is allowed only on arrays and
dtype descriptions.
After loading, every element of an object array must be an ndarray of a plain (non-object)
dtype, so nothing but numbers reaches the caller.

Files without objects are read straight from the header and bytes (no pickle involved), like
``numpy.load(allow_pickle=False)``.
"""
from __future__ import annotations

import io
import math
import os
import pickle

import numpy as np

from ..errors import FormatError

__all__ = ["load_npy", "read_npy", "SAFE_GLOBALS"]

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

#: (module, name) pairs a pickle inside an ``.npy`` file may refer to; everything else is refused.
SAFE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class _Refused(Exception):
    pass


_KINDS = frozenset("biufcOVSU")
_MAX_DEPTH = 4


class _DtypeSpec:
    """What a pickle says about a dtype: the constructor arguments and the ``BUILD`` state.
    Turned into a real dtype only through numpy's public, validating constructors
    (``_to_dtype``): the pickle never reaches ``numpy.dtype.__setstate__``."""

    def __init__(self, *args):
        self.args, self.state = args, None

    def __setstate__(self, state):
        self.state = state


def _to_dtype(spec, depth=0) -> np.dtype:
    if not isinstance(spec, _DtypeSpec):
        if isinstance(spec, (bytes, str)) and len(spec) <= 8:  # numpy's placeholder, e.g. b"b"
            text = spec.decode("ascii") if isinstance(spec, bytes) else spec
            return _simple(text)
        raise _Refused(f"dtype given as {type(spec).__name__}")
    if depth > _MAX_DEPTH or not spec.args or not isinstance(spec.args[0], str):
        raise _Refused("unsupported dtype description")
    base = _simple(spec.args[0])
    st = spec.state
    if st is None:
        return base
    if not isinstance(st, tuple) or len(st) < 8:
        raise _Refused(f"dtype state {st!r:.80} is not numpy's")
    _, order, subarray, names, fields, elsize = st[:6]
    if subarray is not None:
        if not (isinstance(subarray, tuple) and len(subarray) == 2 and isinstance(subarray[1], tuple)):
            raise _Refused("bad subarray dtype")
        return np.dtype((_inner(subarray[0], depth), subarray[1]))
    if names is not None:
        if not (isinstance(names, tuple) and isinstance(fields, dict) and isinstance(elsize, int)
                and all(isinstance(n, str) and n in fields for n in names)):
            raise _Refused("bad structured dtype")
        formats = [_inner(fields[n][0], depth) for n in names]
        offsets = [fields[n][1] for n in names]
        if not all(isinstance(o, int) and o >= 0 for o in offsets):
            raise _Refused("bad field offsets")
        return np.dtype({"names": list(names), "formats": formats, "offsets": offsets, "itemsize": elsize})
    if order in ("<", ">"):
        return base.newbyteorder(order)
    return base


def _inner(spec, depth) -> np.dtype:
    dt = _to_dtype(spec, depth + 1)
    if dt.hasobject:
        raise _Refused("object fields inside a structured or subarray dtype")
    return dt


def _simple(text: str) -> np.dtype:
    if not (text[:1] in _KINDS and text[1:].isdigit() or text in _KINDS):
        raise _Refused(f"dtype {text!r} is not a plain number, bytes, text, void or object type")
    return np.dtype(text)


def _bounded_reconstruct(limit):
    def reconstruct(cls, shape, dtype):
        if cls is not np.ndarray:
            raise _Refused(f"array reconstruction of type {cls!r}; only numpy.ndarray is allowed")
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise _Refused(f"array shape {shape!r} is not a tuple of non-negative ints")
        dt = _to_dtype(dtype)
        if math.prod(shape) * max(dt.itemsize, 1) > limit:
            raise _Refused(f"array of shape {shape} and dtype {dt} is larger than the file could fill")
        return _np_reconstruct(cls, shape, dt)
    return reconstruct


class _ArrayUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with a global whitelist and a checked ``BUILD``: only arrays
    (state validated and passed to ``ndarray.__setstate__`` with a rebuilt dtype) and dtype
    descriptions may be built."""

    def __init__(self, fp, limit):
        super().__init__(fp)
        self._reconstruct = _bounded_reconstruct(limit)
        self._limit = limit

    def find_class(self, module, name):
        if (module, name) not in SAFE_GLOBALS:
            raise _Refused(f"the pickle asks for {module}.{name}, which is not a numpy array or dtype; "
                           "refusing to run it")
        if name == "_reconstruct":
            return self._reconstruct
        return np.ndarray if name == "ndarray" else _DtypeSpec

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, _DtypeSpec):
            inst.__setstate__(state)
        elif type(inst) is np.ndarray:
            if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple)):
                raise _Refused("array state is not (version, shape, dtype, fortran, data)")
            version, shape, dtype, fortran, data = state
            dt = _to_dtype(dtype)
            if not all(isinstance(s, int) and s >= 0 for s in shape) or \
                    math.prod(shape) * max(dt.itemsize, 1) > self._limit:
                raise _Refused(f"array shape {shape!r} is invalid or larger than the file could fill")
            if dt.hasobject != isinstance(data, list) or not isinstance(data, (list, bytes, bytearray)):
                raise _Refused("array data does not match its dtype")
            n = math.prod(shape)  # numpy does not check an object list's length (it crashes instead)
            if (len(data) != n) if dt.hasobject else (len(data) != n * dt.itemsize):
                raise _Refused(f"array data holds {len(data)} items/bytes, shape {shape} of {dt} needs "
                               f"{n if dt.hasobject else n * dt.itemsize}")
            inst.__setstate__((version, shape, dt, bool(fortran), data))
        else:
            raise _Refused(f"the pickle sets the state of a {type(inst).__name__}")

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


def _header(fp, path):
    try:
        major, _minor = np.lib.format.read_magic(fp)
        if major == 1:
            return np.lib.format.read_array_header_1_0(fp)
        if major in (2, 3):
            return np.lib.format.read_array_header_2_0(fp)
    except ValueError as e:
        raise FormatError(path, 0, f"not a valid .npy header ({e})") from None
    raise FormatError(path, 6, f".npy format version {major} is not supported (1, 2 or 3 expected)")


def load_npy(data, *, path=None, allow_objects: bool = False) -> np.ndarray:
    """Load an ``.npy`` file held in memory, never executing pickled code.

    Parameters
    ----------
    data : bytes-like
        The file's bytes.
    path : str, optional
        Shown in errors.
    allow_objects : bool
        Accept object arrays, read with the restricted unpickler described in the module
        docstring; each element must then be an ndarray of a plain dtype. When False, an object
        array raises ``FormatError`` (like ``numpy.load(allow_pickle=False)``, with a clearer message).

    Returns
    -------
    ndarray with the stored shape and dtype (native or stored byte order, a private copy).

    Raises
    ------
    FormatError
        Bad magic or header, truncated data, a refused pickle global (nothing is called), an
        object array when ``allow_objects`` is False, or an element that is not a plain ndarray.
    """
    path = path if path is not None else "<npy bytes>"
    data = bytes(data)
    fp = io.BytesIO(data)
    shape, fortran, dtype = _header(fp, path)
    offset = fp.tell()
    if not dtype.hasobject:
        n = math.prod(shape)
        need = n * dtype.itemsize
        if len(data) - offset < need:
            raise FormatError(path, offset, f"array data truncated: {len(data) - offset} bytes, expected {need} "
                                            f"for shape {shape} of {dtype}")
        arr = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
        return arr.reshape(shape, order="F" if fortran else "C").copy()
    if not allow_objects:
        raise FormatError(path, offset, "holds a pickled object array; refusing to unpickle it "
                                        "(pickles can run arbitrary code)")
    try:
        arr = _ArrayUnpickler(fp, limit=8 * len(data) + 4096).load()
    except _Refused as e:
        raise FormatError(path, offset, f"unsafe pickle: {e}") from None
    except Exception as e:  # malformed pickle streams raise many types
        raise FormatError(path, offset, f"object array pickle does not load ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise FormatError(path, offset, f"the pickle holds {type(arr).__name__} "
                                        f"{getattr(arr, 'shape', '')}, expected an array of shape {shape}")
    if arr.dtype.hasobject:
        for i, item in enumerate(arr.ravel(order="K")):
            if not isinstance(item, np.ndarray) or item.dtype.hasobject:
                raise FormatError(path, offset, f"element {i} of the object array is "
                                                f"{type(item).__name__}, expected an ndarray of numbers")
    return arr


def read_npy(file, *, allow_objects: bool = False) -> np.ndarray:
    """``load_npy`` on a file path."""
    with open(file, "rb") as f:
        return load_npy(f.read(), path=os.fspath(file), allow_objects=allow_objects)
