"""neurodata.archives: listing, streaming reads, nested zips and safe extraction."""
from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import pytest

from neurodata.archives import ArchiveError, UnsafeMemberError, check_member_name, open_archive, safe_extract
from neurodata.errors import FormatError


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """entries: name -> bytes, or name -> ("symlink", target)."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            if isinstance(data, tuple):
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, data[1])
            else:
                zf.writestr(name, data)
    return path


def make_tar(path, entries, mode="w:gz"):
    """entries: name -> bytes, or name -> (kind, linkname) with kind in sym/hard/dir/chr/fifo."""
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                kind, link = data
                ti.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE,
                           "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
                ti.linkname = link or ""
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return path


LAYOUT = {"Train/0/00002.bin": b"a" * 50, "Train/1/00003.bin": b"b" * 70, "Test/0/00001.bin": b"c" * 10}


@pytest.mark.parametrize("kind", ["zip", "stored-zip", "tar", "tar.gz", "tar.xz"])
def test_list_and_read(tmp_path, kind):
    if "zip" in kind:
        path = make_zip(tmp_path / "a.zip", LAYOUT,
                        zipfile.ZIP_STORED if kind == "stored-zip" else zipfile.ZIP_DEFLATED)
    else:
        path = make_tar(tmp_path / f"a.{kind}", {"Train": ("dir", None), **LAYOUT},
                        {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[kind])
    with open_archive(path) as a:
        assert [m.name for m in a.files()] == list(LAYOUT)
        assert [m.size for m in a.files(".bin")] == [50, 70, 10]
        assert "Train/1/00003.bin" in a and "nope" not in a
        for name, data in LAYOUT.items():
            assert a.read(name) == data
            with a.open(name) as f:
                assert f.read(3) == data[:3]
        with pytest.raises(ArchiveError, match="no such member") as exc:
            a.read("Train/9/x.bin")
        assert str(path) in str(exc.value) and "Train/9/x.bin" in str(exc.value)
        out = a.extract(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == sorted(LAYOUT)
    for name, data in LAYOUT.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_not_an_archive(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"this is no archive" * 100)
    with pytest.raises(ArchiveError, match="not a readable zip or tar") as exc:
        open_archive(bad)
    assert isinstance(exc.value, FormatError) and isinstance(exc.value, ValueError)
    assert str(bad) in str(exc.value)
    with pytest.raises(FileNotFoundError):
        open_archive(tmp_path / "missing.zip")


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_whose_last_member_is_a_zip_is_a_tar(tmp_path, mode):
    """zipfile.is_zipfile finds the inner zip's end record near the end of a plain tar; the tar's
    own magic decides first (it was listed as the inner zip's members)."""
    from neurodata.archives import iter_files

    inner = make_zip(tmp_path / "inner.zip", {"a.txt": b"x" * 10}, zipfile.ZIP_STORED).read_bytes()
    path = make_tar(tmp_path / "t.tar", {"data/readme.txt": b"hello", "data/inner.zip": inner}, mode=mode)
    with open_archive(path) as ar:
        assert ar.kind == "tar" and sorted(m.name for m in ar.files()) == ["data/inner.zip", "data/readme.txt"]
    assert dict(iter_files(path)) == {"data/readme.txt": b"hello", "data/inner.zip": inner}
    with open(path, "rb") as f, open_archive(f) as ar:
        assert ar.kind == "tar"


@pytest.mark.parametrize("size_limit", [None, 0])
def test_zip_in_zip(tmp_path, monkeypatch, size_limit):
    import neurodata.archives as archives

    if size_limit is not None:  # force the spool-to-temporary-file path
        monkeypatch.setattr(archives, "NESTED_IN_MEMORY", size_limit)
    inner = make_zip(tmp_path / "Caltech101.zip",
                     {"Caltech101/accordion/image_0001.bin": b"x" * 100, "Caltech101/ant/image_0001.bin": b"y" * 5})
    outer = make_zip(tmp_path / "N-Caltech101-archive.zip",
                     {"readme.txt": b"hi", "Caltech101.zip": inner.read_bytes()})
    with open_archive(outer) as a, a.open_archive("Caltech101.zip") as b:
        assert b.kind == "zip"
        assert [m.name for m in b.files()] == ["Caltech101/accordion/image_0001.bin", "Caltech101/ant/image_0001.bin"]
        assert b.read("Caltech101/ant/image_0001.bin") == b"y" * 5
        with pytest.raises(ArchiveError) as exc:
            b.read("Caltech101/x.bin")
        assert "N-Caltech101-archive.zip!Caltech101.zip" in str(exc.value)


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil", "C:/evil", "..\\evil", "a/\0b"])
def test_unsafe_names_rejected(tmp_path, name):
    with pytest.raises(UnsafeMemberError) as exc:
        check_member_name(name, "arch.zip")
    assert "arch.zip" in str(exc.value)
    if "\0" in name:
        return  # zipfile and tarfile cut names at NUL when writing
    z = make_zip(tmp_path / "a.zip", {"ok.txt": b"1", name: b"2"})
    with pytest.raises(UnsafeMemberError, match="unsafe member name"):
        open_archive(z)
    t = make_tar(tmp_path / "a.tar", {"ok.txt": b"1", name: b"2"}, "w")
    with pytest.raises(UnsafeMemberError) as exc:
        safe_extract(t, tmp_path / "out")
    assert str(t) in str(exc.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_safe_names_normalised():
    assert check_member_name("./a//b/./c.bin") == "a/b/c.bin"
    assert check_member_name("a..b/c") == "a..b/c"


@pytest.mark.parametrize("entries", [
    {"link": ("sym", "/etc/passwd")},
    {"link": ("sym", "../outside")},
    {"d/link": ("sym", "../../outside")},
    {"x/a": ("sym", ".."), "x/a/b": ("sym", "..")},  # resolves outside only through the first link
    {"hl": ("hard", "../outside")},
    {"dev": ("chr", None)},
    {"fifo": ("fifo", None)},
])
def test_escaping_links_and_devices_rejected(tmp_path, entries):
    dest = tmp_path / "dest" / "out"
    t = make_tar(tmp_path / "a.tar.gz", {"ok.txt": b"1", **entries})
    with open_archive(t) as a, pytest.raises(UnsafeMemberError) as exc:
        a.extract(dest)
    assert str(t) in str(exc.value) and any(n in str(exc.value) for n in entries)
    assert not (tmp_path / "dest" / "outside").exists() and not (tmp_path / "outside").exists()
    assert not (dest / "ok.txt").exists()  # checked before anything is written


def test_write_through_extracted_symlink_rejected(tmp_path):
    (tmp_path / "victim").mkdir()
    t = make_tar(tmp_path / "a.tar", {"d": ("sym", "."), "d/f.txt": b"ok"}, "w")
    safe_extract(t, tmp_path / "out")  # a link pointing inside is fine
    assert os.path.islink(tmp_path / "out" / "d") and (tmp_path / "out" / "f.txt").read_bytes() == b"ok"


def test_zip_symlinks(tmp_path):
    z = make_zip(tmp_path / "a.zip", {"a.txt": b"data", "lnk": ("symlink", "a.txt")})
    with open_archive(z) as a:
        assert [m.kind for m in a.members()] == ["file", "symlink"]
        a.extract(tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "lnk") == "a.txt"
    z = make_zip(tmp_path / "b.zip", {"a.txt": b"data", "lnk": ("symlink", "../../etc/passwd")})
    with pytest.raises(UnsafeMemberError, match="symlink"):
        safe_extract(z, tmp_path / "out2")


def test_tar_hardlink_inside_is_a_copy(tmp_path):
    t = make_tar(tmp_path / "a.tar", {"a.txt": b"data", "b.txt": ("hard", "a.txt")}, "w")
    with open_archive(t) as a:
        assert a.read("b.txt") == b"data"
        a.extract(tmp_path / "out", members=["b.txt"])
    assert (tmp_path / "out" / "b.txt").read_bytes() == b"data"
    assert not (tmp_path / "out" / "a.txt").exists()


def test_extract_does_not_follow_existing_symlink(tmp_path):
    target = tmp_path / "secret.txt"
    target.write_bytes(b"secret")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(target, out / "a.txt")
    z = make_zip(tmp_path / "a.zip", {"a.txt": b"new"})
    safe_extract(z, out)
    assert target.read_bytes() == b"secret"
    assert not os.path.islink(out / "a.txt") and (out / "a.txt").read_bytes() == b"new"


def test_error_pickles():
    import pickle

    e = UnsafeMemberError("a.zip", "../x", "unsafe member name")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is UnsafeMemberError and str(e2) == str(e)
