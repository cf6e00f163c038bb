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


@pytest.mark.parametrize("fmt", ["dat", "evt2", "evt3", "aedat2"])
def test_read_bytes_warnings_name_the_source(tmp_path, fmt):
    """Formats decoded through an anonymous file warned with its /proc/self/fd path; the warning
    names the member, as the errors do."""
    sensor = (128, 128, 2) if fmt == "aedat2" else (304, 240, 2)
    path = tmp_path / "f"
    neurodata.write(path, random_events(20, sensor, seed=4), fmt, sensor_size=sensor)
    with pytest.warns((UserWarning, RuntimeWarning)) as caught:  # a partial record / word
        formats.read_bytes(path.read_bytes() + b"\x01", fmt, name="train/m1")
    messages = [str(w.message) for w in caught]
    assert any("train/m1" in m for m in messages) and not any("/proc/self" in m for m in messages)


def test_writers_refuse_what_their_files_cannot_hold(tmp_path):
    """Each of these was written, then read back differently or not at all."""
    ev = random_events(3, (10, 10, 2), seed=1)
    two = ev.copy()
    two["p"] = 2
    tonic_like = np.zeros(3, [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for f in "txy":
        tonic_like[f] = ev[f]
    tonic_like["p"] = [1, -1, 2]
    for fmt in ("nmnist", "aedat2", "aedat31", "aedat4", "dat", "evt2", "evt3"):  # p = 2 came back as 1
        for bad in (two, tonic_like, {f: tonic_like[f] for f in "txyp"}):  # also through as_events' p > 0
            with pytest.raises(ValueError, match=r"events\[\d\]\['p'\] = 2: .*p in \{0, 1\}"):
                neurodata.write(tmp_path / "p", bad, fmt, sensor_size=(10, 10, 2))
        with pytest.raises(ValueError, match=r"p in \{0, 1\}"):  # the format modules' own writers too
            formats._module(fmt).write(tmp_path / "p", two, sensor_size=(10, 10, 2))
        tonic_like["p"] = [1, -1, 0]  # tonic's ±1 polarity is fine
        neurodata.write(tmp_path / f"ok-{fmt}", tonic_like, fmt, sensor_size=(10, 10, 2))
        assert neurodata.read(tmp_path / f"ok-{fmt}", format=fmt)["p"].tolist() == [1, 0, 0]
        tonic_like["p"] = [1, -1, 2]
    wide = random_events(2, (400, 300, 2), seed=2)
    wide["x"], wide["y"] = [300, 5], [200, 5]
    with pytest.raises(ValueError, match="240x180"):  # its reader refused the file
        neurodata.write(tmp_path / "c.aedat", wide, "aedat2", chip="eu.seebetter.ini.chips.davis.DAVIS240C")
    with pytest.raises(ValueError, match="XML"):  # the description became invalid XML
        neurodata.write(tmp_path / "s.aedat4", ev, "aedat4", source="cam\x01")
    for fmt in ("evt2", "evt3"):  # a 70000-wide geometry was written and ignored when read
        with pytest.raises(ValueError, match="65535"):
            neurodata.write(tmp_path / "g.raw", ev, fmt, sensor_size=(70000, 10, 2))


def test_aedat31_negative_source_and_versionless_aedat(tmp_path):
    """A negative eventSource id is a source like any other (every negative value meant 'any');
    a .aedat without a version line is AEDAT 1.0, read as aedat2 (it was taken for aedat31)."""
    import struct

    ev = random_events(30, (32, 32, 2), seed=5)
    path = tmp_path / "neg.aedat"
    neurodata.write(path, ev, "aedat31", sensor_size=(32, 32, 2), source_id=-3)
    assert np.array_equal(neurodata.read(path, source=-3), neurodata.read(path))
    with pytest.raises(ValueError, match="no polarity packets from source -7"):
        neurodata.read(path, source=-7)
    old = tmp_path / "old.aedat"
    old.write_bytes(b"# raw AE data\r\n" + struct.pack(">HI", 0x0502 + 12, 100))
    assert formats.detect_format(old) == "aedat2" and neurodata.read(old).size == 1


def test_format_argument_must_be_a_name(tmp_path):
    """tonic's ``read_mnist_file(path, dtype)`` habit put a dtype into ``format``: it failed with
    "'VoidDType' object has no attribute 'lower'"."""
    path = tmp_path / "a.bin"
    neurodata.write(path, random_events(3, (10, 10, 2), seed=1), "nmnist")
    with pytest.raises(TypeError, match="format must be a format name .* got dtype"):
        neurodata.read(path, np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")]))
