"""neurodata.formats.read_bytes: an archive member decoded in memory equals ``read`` of the file."""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurodata
from neurodata import formats
from neurodata.errors import FormatError
from tests.helpers import random_events

CASES = [("nmnist", (34, 34, 2), {}), ("aedat2", (128, 128, 2), {"chip": "dvs128"}),
         ("aedat31", (128, 128, 2), {}), ("aedat4", (640, 480, 2), {}), ("dat", (304, 240, 2), {}),
         ("evt2", (640, 480, 2), {}), ("evt3", (640, 480, 2), {})]


@pytest.mark.parametrize("fmt, sensor, options", CASES)
@pytest.mark.parametrize("n", [0, 1, 5000])
def test_read_bytes_equals_read(tmp_path, fmt, sensor, options, n):
    ev = random_events(n, sensor, duration_us=2_000_000, seed=n)
    path = tmp_path / f"f.{fmt}"
    neurodata.write(path, ev, fmt, sensor_size=sensor)
    ref = formats._module(fmt).read(path, **options)
    for data in (path.read_bytes(), bytearray(path.read_bytes()), memoryview(path.read_bytes())):
        got = formats.read_bytes(data, fmt, **options)
        assert got.dtype == ref.dtype and np.array_equal(got, ref)


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd_create is Linux-only")
def test_read_bytes_leaves_no_file(tmp_path, monkeypatch):
    """Formats without an in-memory decoder go through an anonymous in-memory file (no named
    temporary file), closed afterwards, also when decoding fails."""
    def no_file(*a, **k):
        raise AssertionError("read_bytes made a named temporary file")
    monkeypatch.setattr("tempfile.NamedTemporaryFile", no_file)
    ev = random_events(100, (128, 128, 2), seed=1)
    neurodata.write(tmp_path / "a.aedat", ev, "aedat2", sensor_size=(128, 128, 2))
    data = (tmp_path / "a.aedat").read_bytes()
    before = set(os.listdir("/proc/self/fd"))
    assert np.array_equal(formats.read_bytes(data, "aedat2", chip="dvs128"), ev)
    with pytest.raises(FormatError, match="no AEDAT header"):
        formats.read_bytes(b"not an AEDAT file", "aedat2")
    assert set(os.listdir("/proc/self/fd")) == before


def test_read_bytes_large_member_through_a_file(tmp_path, monkeypatch):
    """Above ``MEMFD_BYTES`` the bytes go to a temporary file instead (no second copy in memory)."""
    monkeypatch.setattr(formats, "MEMFD_BYTES", 64)
    ev = random_events(300, (128, 128, 2), seed=2)
    neurodata.write(tmp_path / "b.aedat", ev, "aedat2", sensor_size=(128, 128, 2))
    made = []
    real = __import__("tempfile").NamedTemporaryFile

    def spy(*a, **k):
        made.append(1)
        return real(*a, **k)
    monkeypatch.setattr("tempfile.NamedTemporaryFile", spy)
    assert np.array_equal(formats.read_bytes((tmp_path / "b.aedat").read_bytes(), "aedat2", chip="dvs128"), ev)
    assert made == [1]


@pytest.mark.parametrize("fmt, data, match", [
    ("aedat2", b"not an AEDAT file", "no AEDAT header"),          # through an in-memory file
    ("aedat31", b"#!AER-DAT3.1\r\n#!END-HEADER\r\n\x01\x00", "truncated|packet header|ends"),  # decode
])
def test_read_bytes_errors_name_the_source(fmt, data, match):
    """A FormatError names ``name`` (the archive member), else ``<buffer>``: never the temporary
    file the bytes went through."""
    with pytest.raises(FormatError, match=rf"^Train/cat_7\.aedat( at byte \d+)?: .*({match})") as info:
        formats.read_bytes(data, fmt, name="Train/cat_7.aedat")
    assert info.value.path == "Train/cat_7.aedat"
    with pytest.raises(FormatError, match=r"^<buffer>") as info:
        formats.read_bytes(data, fmt)
    assert info.value.path is None


def test_read_bytes_passes_the_readers_own_source_option(tmp_path):
    """``name`` labels messages; AEDAT 3.1's ``source`` option (an eventSource id) reaches the
    decoder as with ``read``, and a ValueError of the decoder names the member."""
    from tests.formats.test_aedat31 import packet, polarity_payload, write_raw

    a = packet(1, polarity_payload([1], [1], [1], [1], [1]), source=1)
    b = packet(1, polarity_payload([2], [2], [0], [2], [1]), source=2)
    data = write_raw(tmp_path / "two.aedat", a, b, a).read_bytes()
    for s in (1, 2):
        assert np.array_equal(formats.read_bytes(data, "aedat31", name="m.aedat", source=s),
                              neurodata.read(tmp_path / "two.aedat", source=s))
    with pytest.raises(ValueError, match=r"^m\.aedat: polarity packets come from several sources"):
        formats.read_bytes(data, "aedat31", name="m.aedat")
