import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodata.events import EVENT_DTYPE, as_events, check_bounds, check_sensor_size, check_sorted, make_events
from neurodata.formats import _rechunk_by_count, _rechunk_by_time
from tests.helpers import event_arrays


def test_dtype_is_packed_and_named_like_tonic():
    assert EVENT_DTYPE.names == ("t", "x", "y", "p") and EVENT_DTYPE.itemsize == 13
    assert EVENT_DTYPE["t"] == np.dtype("<i8") and EVENT_DTYPE["x"] == np.dtype("<u2")


def test_as_events_converts_foreign_structured_arrays():
    foreign = np.zeros(3, dtype=[("x", "i4"), ("y", "i4"), ("t", "f8"), ("p", "i1"), ("extra", "f4")])
    foreign["t"], foreign["x"], foreign["y"], foreign["p"] = [1, 2, 3], [4, 5, 6], [7, 8, 9], [-1, 1, 0]
    ev = as_events(foreign)
    assert ev.dtype == EVENT_DTYPE and ev["t"].tolist() == [1, 2, 3] and ev["p"].tolist() == [0, 1, 0]
    same = make_events([1], [2], [3], [1])
    assert as_events(same) is same


def test_as_events_takes_spikingjelly_column_dicts(tmp_path):
    """SpikingJelly keeps events as a dict of columns (its ``.npz`` files): converted like a
    structured array with those fields, with the same checks."""
    cols = {"t": np.array([5, 9, 12], np.int64), "x": np.array([1, 2, 3], np.uint16),
            "y": np.array([0, 4, 2], np.uint16), "p": np.array([1, 0, 1], np.uint8)}
    assert np.array_equal(as_events(cols), make_events(cols["t"], cols["x"], cols["y"], cols["p"]))
    np.savez(tmp_path / "ev.npz", **cols)
    with np.load(tmp_path / "ev.npz") as npz:  # an NpzFile is a Mapping
        assert np.array_equal(as_events(npz), as_events(cols))
    with pytest.raises(TypeError, match=r"missing field\(s\) \['p'\]"):
        as_events({k: v for k, v in cols.items() if k != "p"})
    with pytest.raises(ValueError, match="one length"):
        as_events({**cols, "x": cols["x"][:2]})
    with pytest.raises(ValueError, match="do not fit"):
        as_events({**cols, "x": np.array([0, 1, 70000])})


@pytest.mark.parametrize("bad, err", [
    (np.zeros(3), TypeError),
    (np.zeros(3, dtype=[("t", "i8"), ("x", "u2")]), TypeError),
    (np.zeros((2, 2), EVENT_DTYPE), ValueError),
])
def test_as_events_rejects(bad, err):
    with pytest.raises(err):
        as_events(bad)


@pytest.mark.parametrize("dtype, what", [
    ("m8[s]", "timedelta64"), ("M8[us]", "datetime64"), (object, "object"), ("c16", "complex"), ("U3", "<U3")])
@pytest.mark.parametrize("field", ["t", "x", "p"])
def test_as_events_refuses_non_numeric_fields(dtype, what, field):
    """A timedelta's unit was dropped ([0, 5] s became [0, 5] µs), object floats truncated, a
    complex column lost its imaginary part: such columns are refused, naming the field."""
    a = np.zeros(2, dtype=[(f, dtype if f == field else "i8") for f in "txyp"])
    with pytest.raises(TypeError, match=rf"\['{field}'\] has dtype .*{what}"):
        as_events(a)
    with pytest.raises(TypeError, match=rf"\['{field}'\]"):
        as_events({f: a[f] for f in "txyp"})


def test_as_events_value_checks():
    a = np.zeros(2, dtype=[("t", "f8"), ("x", "i4"), ("y", "i4"), ("p", "i4")])
    a["t"] = [0.5, 1]
    with pytest.raises(ValueError, match="non-integer"):
        as_events(a)
    a["t"], a["x"] = [0, 1], [0, 70000]
    with pytest.raises(ValueError, match="do not fit"):
        as_events(a)


def test_bounds_and_sorted_name_the_first_offender():
    ev = make_events([0, 5, 3], [1, 9, 1], [1, 1, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"events\[1\]"):
        check_bounds(ev, (8, 8, 2))
    check_bounds(ev, (10, 8, 2))
    with pytest.raises(ValueError, match=r"t\[2\] = 3 < t\[1\] = 5"):
        check_sorted(ev)
    with pytest.raises(ValueError):
        check_sensor_size((0, 3, 2))
    with pytest.raises(TypeError):
        check_sensor_size(5)


@settings(max_examples=100, deadline=None)
@given(event_arrays(max_n=200, max_t=5000))
def test_rechunking_concatenates_to_the_input(ev):
    blocks = [ev[i:i + 37] for i in range(0, ev.size, 37)] or [ev]
    for n in (1, 5, 64):
        chunks = list(_rechunk_by_count(iter(blocks), n))
        assert all(c.size == n for c in chunks[:-1])
        assert np.array_equal(np.concatenate(chunks) if chunks else ev[:0], ev)
    for us in (1, 100, 10**6):
        chunks = list(_rechunk_by_time(iter(blocks), us))
        assert np.array_equal(np.concatenate(chunks) if chunks else ev[:0], ev)
        if ev.size:
            t0 = ev["t"][0]
            for c in chunks:   # one window per chunk, and consecutive chunks in different windows
                w = (c["t"] - t0) // us
                assert c.size and (w == w[0]).all()
            wins = [(c["t"][0] - t0) // us for c in chunks]
            assert all(a != b for a, b in zip(wins, wins[1:]))


@settings(max_examples=50, deadline=None)
@given(event_arrays(max_n=200, sorted_t=False), st.integers(1, 3), st.data())
def test_fast_structured_copies_equal_numpy(ev, step, data):
    """``copy_events`` / ``select_events`` / ``concat_events`` (void views) give what ``ndarray.copy``,
    indexing and ``np.concatenate`` give, as new arrays, also for strided input."""
    from neurodata.events import concat_events, copy_events, select_events

    view = ev[::step]
    copied = copy_events(view)
    assert copied.dtype == EVENT_DTYPE and copied.flags.c_contiguous and np.array_equal(copied, view.copy())
    assert not np.shares_memory(copied, ev)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(view), max_size=len(view))), bool)
    assert np.array_equal(select_events(view, mask), view[mask])
    order = np.argsort(view["t"], kind="stable")
    assert np.array_equal(select_events(view, order), view[order])
    if len(ev):
        parts = [ev[:len(ev) // 2], view, ev[len(ev) // 2:]]
        assert np.array_equal(concat_events(parts), np.concatenate(parts))


def test_as_events_float_time_at_two_to_63_and_recarrays():
    """A float t of exactly 2**63 does not fit int64 (the check compared with int64's max rounded
    to 2**63 and let it wrap to -2**63); a recarray comes back as a plain EVENT_DTYPE array."""
    from neurodata.events import EVENT_DTYPE, as_events, make_events

    with pytest.raises(ValueError, match="do not fit"):
        as_events({"t": np.array([2.0**63]), "x": [0], "y": [0], "p": [1]})
    assert as_events({"t": np.array([2.0**62]), "x": [0], "y": [0], "p": [1]})["t"][0] == 2**62
    rec = make_events([1, 2], [0, 1], [0, 0], [1, 0]).view(np.recarray)
    out = as_events(rec)
    assert out.dtype == EVENT_DTYPE and out.dtype.type is np.void and type(out) is np.ndarray


def test_concat_events_refuses_parts_of_different_dtypes():
    """Joined as raw bytes, a tonic-ordered or big-endian part came out as garbage (t = 4295426052)."""
    from neurodata.events import concat_events

    ev = make_events([1, 2], [0, 1], [0, 0], [1, 0])
    assert np.array_equal(concat_events([ev, ev[:1]]), np.concatenate([ev, ev[:1]]))
    for other in (ev.astype(EVENT_DTYPE.newbyteorder(">")),
                  np.zeros(1, [("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8")])):
        with pytest.raises(ValueError, match="one dtype"):
            concat_events([ev, other])
