"""The MAT v5 reader against scipy.io (writer and reference), hand-built big-endian and small-element
files, strict errors, and a bounded mutation fuzz: every mutant decodes or raises FormatError."""
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata import FormatError
from neurodata.formats.matv5 import decode_mat, read_mat

sio = pytest.importorskip("scipy.io")

DTYPES = ["f8", "f4", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"]


def _save(variables, compress):
    buf = io.BytesIO()
    sio.savemat(buf, variables, do_compression=compress)
    return buf.getvalue()


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
       compress=st.booleans(), seed=st.integers(0, 2**16))
def test_numeric_arrays_match_scipy(dtype, shape, compress, seed):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        arr = rng.normal(size=shape).astype(dt)
    else:
        info = np.iinfo(dt)
        arr = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    data = _save({"v": arr, "small": np.array([[3.0]])}, compress)
    got, ref = decode_mat(data), sio.loadmat(io.BytesIO(data))
    for name in ("v", "small"):
        assert got[name].dtype == ref[name].dtype and got[name].shape == ref[name].shape
        assert np.array_equal(got[name], ref[name])


def test_complex_logical_char_empty_and_skipped(tmp_path):
    variables = {"c": np.array([[1 + 2j, -3.5j]]), "l": np.array([True, False, True]), "s": "taxel",
                 "e": np.zeros((0, 3)), "st": {"a": 1}, "cell": np.array([1, "x"], dtype=object)}
    for compress in (False, True):
        p = tmp_path / f"f{compress}.mat"
        p.write_bytes(_save(variables, compress))
        got, ref = read_mat(p), sio.loadmat(p)
        assert np.array_equal(got["c"], ref["c"]) and got["c"].dtype == np.complex128
        assert got["l"].dtype == bool and got["l"].tolist() == [[True, False, True]]
        assert got["s"] == "taxel" and got["e"].shape == (0, 3)
        assert got.skipped == {"st": "struct", "cell": "cell"} and got.header_text.startswith("MATLAB 5.0")
        with pytest.raises(FormatError, match="'st' is a struct"):
            read_mat(p, variables=["st"])
        with pytest.raises(FormatError, match="no variable 'nope'"):
            read_mat(p, variables=["nope"])
        assert set(read_mat(p, variables=["c"])) == {"c"}


def _element(bo, mtype, payload, small=False):
    if small:  # one u32 in file byte order: nbytes in the upper 16 bits, type in the lower
        assert len(payload) <= 4
        return struct.pack(bo + "I", (len(payload) << 16) | mtype) + payload.ljust(4, b"\0")
    pad = (-len(payload)) % 8
    return struct.pack(bo + "II", mtype, len(payload)) + payload + b"\0" * pad


def _hand_built(bo, compress=False):
    """A 2×3 double variable 'ts' stored as miUINT16 with a small-element name, in byte order ``bo``."""
    values = np.array([[1, 2, 3], [4, 5, 60000]], dtype=np.uint16)
    body = (_element(bo, 6, struct.pack(bo + "II", 6, 0))                 # flags: class double
            + _element(bo, 5, struct.pack(bo + "ii", 2, 3))              # dims
            + _element(bo, 1, b"ts", small=True)                          # name as a small element
            + _element(bo, 4, values.astype(bo + "u2").tobytes(order="F")))
    element = struct.pack(bo + "II", 14, len(body)) + body
    if compress:
        z = zlib.compress(element)
        element = struct.pack(bo + "II", 15, len(z)) + z
    header = b"MATLAB 5.0 MAT-file, hand built".ljust(116, b" ") + b"\0" * 8
    header += struct.pack(bo + "H", 0x0100) + (b"IM" if bo == "<" else b"MI")
    return header + element, values.astype(np.float64)


@pytest.mark.parametrize("bo", ["<", ">"])
@pytest.mark.parametrize("compress", [False, True])
def test_hand_built_byte_orders_and_small_elements(bo, compress):
    data, want = _hand_built(bo, compress)
    got = decode_mat(data)
    assert got["ts"].dtype == np.float64 and np.array_equal(got["ts"], want)
    if bo == "<":
        assert np.array_equal(sio.loadmat(io.BytesIO(data))["ts"], want)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:100], "shorter than the 128-byte"),
    (lambda d: b"MATLAB 7.3 MAT-file" + d[19:], "7.3"),
    (lambda d: b"NOT A MAT" + d[9:], "not a MATLAB 5"),
    (lambda d: d[:126] + b"XX" + d[128:], "endian indicator"),
    (lambda d: d[:-3], "claims|truncated"),
    (lambda d: d[:128] + struct.pack("<II", 3, 8) + b"\0" * 8, "top-level element of type 3"),
])
def test_errors_name_offset_and_expectation(mutate, message):
    data = _save({"ts": np.arange(5.0)}, compress=False)
    with pytest.raises(FormatError, match=message):
        decode_mat(mutate(data), path="sample.mat")


def test_decompression_is_capped_and_dimension_mismatch_refused():
    data = _save({"big": np.zeros((1000, 100))}, compress=True)
    with pytest.raises(FormatError, match="max_bytes"):
        decode_mat(data, max_bytes=10_000)
    d, _ = _hand_built("<")
    bad = bytearray(d)
    dims_at = d.index(struct.pack("<ii", 2, 3))
    bad[dims_at:dims_at + 8] = struct.pack("<ii", 2, 4)                   # 8 values claimed, 6 stored
    with pytest.raises(FormatError, match="need 8 values"):
        decode_mat(bytes(bad))


def _mutate(data: bytes, rng) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind, n = int(rng.integers(0, 5)), len(buf)
        if kind == 0 and n:
            del buf[int(rng.integers(0, n)):]
        elif kind == 1 and n:
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, n))
                buf[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2 and n:
            i = int(rng.integers(0, n))
            buf[i:i + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        elif kind == 3:
            i = int(rng.integers(0, n + 1))
            buf[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif kind == 4 and n >= 136:  # hit the element tags, where the lengths live
            i = 128 + 8 * int(rng.integers(0, (n - 128) // 8))
            buf[i:i + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    return bytes(buf)


def test_fuzz_mutants_decode_or_raise_format_error():
    rng = np.random.default_rng(7)
    seeds = [_save({"spiketrain": rng.normal(size=(101, 7)), "x": np.arange(9, dtype=np.uint16),
                    "s": "abc", "st": {"q": 1}}, compress=c) for c in (False, True)]
    seeds += [_hand_built(bo, c)[0] for bo in "<>" for c in (False, True)]
    failures = []
    for k in range(600):
        data = _mutate(seeds[k % len(seeds)], rng)
        try:
            out = decode_mat(data, max_bytes=1 << 20)
            assert isinstance(out, dict)
        except FormatError:
            pass
        except Exception as e:  # noqa: BLE001 - the point of the test
            failures.append(f"mutant {k}: {type(e).__name__}: {e}")
    assert not failures, failures[:5]
