"""``load_npy`` reads plain .npy files like numpy, reads pickled object arrays of numeric arrays
through a whitelist, and refuses every other pickle before anything in it runs."""
import io
import os
import pickle

import numpy as np
import pytest

from neurodata import FormatError
from neurodata.formats.safe_npy import load_npy, read_npy


def _npy(arr, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("arr", [
    np.arange(12, dtype="<i8").reshape(3, 4), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.zeros(0, ">u2"), np.zeros(4, [("t", "<i4"), ("x", "i1"), ("y", "i1"), ("p", "i1")]), np.float32(3.5),
])
def test_plain_arrays_as_numpy(arr, tmp_path):
    got = load_npy(_npy(arr))
    assert got.dtype == arr.dtype and got.shape == np.shape(arr) and np.array_equal(got, arr)
    p = tmp_path / "a.npy"
    p.write_bytes(_npy(arr))
    assert np.array_equal(read_npy(p), arr)


def test_truncated_and_bad_headers():
    data = _npy(np.arange(10))
    with pytest.raises(FormatError, match="truncated"):
        load_npy(data[:-1])
    with pytest.raises(FormatError, match="header"):
        load_npy(b"\x93NUMPX" + data[6:])


def _object_array(items):
    arr = np.empty(len(items), object)
    for i, it in enumerate(items):
        arr[i] = it
    return arr


def test_object_array_of_numeric_arrays_needs_allow_objects():
    packets = [np.arange(3, dtype="<i8"), np.zeros(5, [("timestamp", "<i8"), ("x", "<i2")])]
    data = _npy(_object_array(packets), allow_pickle=True)
    with pytest.raises(FormatError, match="refusing to unpickle"):
        load_npy(data)
    got = load_npy(data, allow_objects=True)
    assert got.dtype == object and all(np.array_equal(g, p) and g.dtype == p.dtype for g, p in zip(got, packets))


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("payload_fn", [os.system, eval, exec, __import__])
def test_malicious_globals_are_refused_before_running(payload_fn, tmp_path):
    marker = tmp_path / "ran"
    header = _npy(_object_array([np.zeros(1)]), allow_pickle=True)
    header = header[:header.index(b"\n") + 1]
    args = {os.system: (f"touch {marker}",), eval: (f"open({str(marker)!r}, 'w')",),
            exec: (f"open({str(marker)!r}, 'w')",), __import__: ("os",)}[payload_fn]
    with pytest.raises(FormatError, match="unsafe pickle"):
        load_npy(header + pickle.dumps(_Call(payload_fn, *args), protocol=3), allow_objects=True)
    assert not marker.exists()


def test_non_array_elements_and_oversized_reconstruct_are_refused():
    data = _npy(_object_array([np.zeros(2), [1, 2]]), allow_pickle=True)
    with pytest.raises(FormatError, match="element 1 .* list"):
        load_npy(data, allow_objects=True)
    nested = _npy(_object_array([_object_array([np.zeros(1)])]), allow_pickle=True)
    with pytest.raises(FormatError, match="element 0"):
        load_npy(nested, allow_objects=True)
    from numpy._core.multiarray import _reconstruct

    class Huge:
        def __reduce__(self):
            return (_reconstruct, (np.ndarray, (1 << 40,), b"b"))

    header = nested[:nested.index(b"\n") + 1]
    with pytest.raises(FormatError, match="larger than the file"):
        load_npy(header + pickle.dumps(Huge(), protocol=3), allow_objects=True)


def test_object_fields_inside_structured_dtypes_are_refused():
    inner = np.empty(1, [("a", "O"), ("b", "<i4")])
    data = _npy(_object_array([inner]), allow_pickle=True)
    with pytest.raises(FormatError, match="object fields"):
        load_npy(data, allow_objects=True)


def test_fuzzed_object_npy_loads_or_raises_format_error():
    """Byte changes, bit flips, truncation and insertion in the pickle (numpy itself crashes on
    some of these states, e.g. an object list shorter than its shape: they must be refused)."""
    rng = np.random.default_rng(3)
    seeds = [_npy(_object_array(items), allow_pickle=True) for items in (
        [np.arange(4), np.zeros(3, [("t", "<i8"), ("p", "i1")])], [np.zeros((2, 3), ">f4")],
        [np.zeros(2, [("a", "<i4", (2,)), ("b", "S3")])])]
    for k in range(900):
        seed = seeds[k % len(seeds)]
        start = seed.index(b"\n") + 1
        buf = bytearray(seed)
        for _ in range(int(rng.integers(1, 4))):
            kind, i = int(rng.integers(0, 4)), int(rng.integers(start, len(buf)))
            if kind == 0:
                buf[i] = int(rng.integers(0, 256))
            elif kind == 1:
                buf[i] ^= 1 << int(rng.integers(0, 8))
            elif kind == 2:
                buf[i:i] = rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8).tobytes()
            else:
                del buf[max(i, start + 2):]
        try:
            out = load_npy(bytes(buf), allow_objects=True)
            assert isinstance(out, np.ndarray)
        except FormatError:
            pass
