"""Safe reading and extraction of zip and tar archives (tar, tar.gz, tar.bz2, tar.xz).

Datasets decode their samples straight from the downloaded archive, so a full extracted copy is
optional: ``open_archive(path)`` lists members and opens one as a stream or bytes; a member that is
itself an archive (N-Caltech101's ``Caltech101.zip``) opens with ``Archive.open_archive(name)``.
``Archive.extract(dest)`` writes members under ``dest`` and refuses anything that could land
outside it. ``iter_files(path, select)`` reads a tar archive in one forward pass instead (no
listing first, no backward seek, so a ``.tar.gz`` is decompressed exactly once per call).

Errors: ``ArchiveError`` (a ``neurodata.FormatError``, hence a ``ValueError``) for a file that is not
a readable archive or a member that does not exist; its subclass ``UnsafeMemberError`` for a member
whose name or link could escape the destination (absolute path, ``..`` component, drive letter,
NUL byte, symlink or hard link pointing outside, device or FIFO). Both name the archive and member.
Unsafe member *names* are refused as soon as the archive is opened (``strict=True``, the default).
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from isal import igzip_threaded, isal_zlib

from .errors import FormatError

__all__ = ["ArchiveError", "UnsafeMemberError", "Member", "Archive", "open_archive", "safe_extract",
           "check_member_name", "iter_files"]

NESTED_IN_MEMORY = 64 << 20  # nested archives up to this size are read into memory, larger ones spooled


class ArchiveError(FormatError):
    """An archive cannot be read, or has no member of the requested name."""

    def __init__(self, archive, member, message: str):
        self.member = member
        where = f"member {member!r}: " if member is not None else ""
        super().__init__(archive, None, where + message)

    def __reduce__(self):
        return (type(self), (self.path, self.member, self.message.split(": ", 1)[-1]))


class UnsafeMemberError(ArchiveError):
    """A member could write outside the extraction folder (or is a device/FIFO)."""


@dataclass(frozen=True)
class Member:
    """One archive entry.

    Attributes
    ----------
    name : str
        Path inside the archive, ``/``-separated, without a trailing ``/``.
    size : int
        Uncompressed size in bytes (0 for directories and links).
    kind : str
        ``"file"``, ``"dir"``, ``"symlink"``, ``"hardlink"`` or ``"special"`` (device, FIFO).
    linkname : str or None
        Link target for symlinks and hard links (as stored).
    """

    name: str
    size: int
    kind: str
    linkname: str | None = None


def check_member_name(name: str, archive=None) -> str:
    """Return ``name`` normalised to a relative ``/``-path; raise ``UnsafeMemberError`` if it escapes.

    Refused: empty names, NUL bytes, absolute paths (``/x``, ``\\\\server``, ``C:``), and any ``..``
    component (``\\`` counts as a separator too, since Windows tools write it).
    """
    parts = name.replace("\\", "/").split("/")
    bad = None
    if "\0" in name:
        bad = "contains a NUL byte"
    elif name.startswith(("/", "\\")) or (len(parts[0]) >= 2 and parts[0][1] == ":"):
        bad = "is an absolute path"
    elif ".." in parts:
        bad = "contains a '..' component"
    clean = [p for p in parts if p not in ("", ".")]
    if bad is None and not clean:
        bad = "is empty"
    if bad:
        raise UnsafeMemberError(archive, name, f"unsafe member name: it {bad}; refusing to use this archive")
    return "/".join(clean)


_TAR_MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")  # gzip, bzip2, xz: a compressed tar


def _is_zip(source) -> bool:
    """A zip, not a tar: ``zipfile.is_zipfile`` looks for a zip's end record near the end of the
    data, which a tar whose last member is a zip also has; a tar is recognised first by its
    compression magic or the ``ustar`` magic of its first header (POSIX and GNU tar)."""
    if hasattr(source, "read"):
        pos = source.tell()
        head = source.read(262)
        source.seek(pos)
    else:
        with open(source, "rb") as f:
            head = f.read(262)
    if head.startswith(_TAR_MAGICS) or head[257:262] == b"ustar":
        return False
    return zipfile.is_zipfile(source)


def _zip_member(info: zipfile.ZipInfo, zf: zipfile.ZipFile) -> Member:
    mode = info.external_attr >> 16
    name = info.filename.rstrip("/")
    if info.is_dir():
        return Member(name, 0, "dir")
    if stat.S_ISLNK(mode):
        return Member(name, 0, "symlink", zf.read(info).decode("utf-8", "surrogateescape"))
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return Member(name, info.file_size, "special")
    return Member(name, info.file_size, "file")


def _tar_member(ti: tarfile.TarInfo) -> Member:
    name = ti.name.rstrip("/")
    if ti.isdir():
        return Member(name, 0, "dir")
    if ti.issym():
        return Member(name, 0, "symlink", ti.linkname)
    if ti.islnk():
        return Member(name, 0, "hardlink", ti.linkname)
    if ti.isreg():
        return Member(name, ti.size, "file")
    return Member(name, ti.size, "special")


class Archive:
    """An open zip or tar archive. Use ``open_archive``; close it (or use ``with``) when done.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        The archive; a file object must be seekable.
    name : str, optional
        Shown in errors (defaults to the path; nested archives use ``outer!inner``).
    strict : bool
        Refuse the archive at once when a member name is unsafe (see ``check_member_name``).
    """

    def __init__(self, source, *, name=None, strict: bool = True):
        self.name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<stream>")
        self._closers = []
        try:
            if _is_zip(source):
                self.kind = "zip"
                self._zip = zipfile.ZipFile(source)
                self._infos = {}
                members = []
                for info in self._zip.infolist():
                    m = _zip_member(info, self._zip)
                    self._infos[m.name] = info
                    members.append(m)
            else:
                if hasattr(source, "seek"):
                    source.seek(0)
                self.kind = "tar"
                self._tar = tarfile.open(fileobj=source, mode="r:*") if hasattr(source, "read") \
                    else tarfile.open(source, mode="r:*")
                self._infos = {}
                members = []
                for ti in self._tar.getmembers():
                    m = _tar_member(ti)
                    self._infos[m.name] = ti
                    members.append(m)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise ArchiveError(self.name, None, f"not a readable zip or tar archive ({e})") from None
        self._members = members
        self._by_name = {m.name: m for m in members}
        if strict:
            for m in members:
                check_member_name(m.name, self.name)

    # --- listing ----------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        """Every entry, in archive order."""
        return list(self._members)

    def files(self, suffix: str | tuple | None = None) -> list[Member]:
        """Regular-file entries in archive order, optionally only names ending with ``suffix``."""
        return [m for m in self._members if m.kind == "file" and (suffix is None or m.name.endswith(suffix))]

    def __contains__(self, name: str) -> bool:
        return name.rstrip("/") in self._infos

    def __iter__(self):
        return iter(self.files())

    def _info(self, name: str):
        try:
            return self._infos[name.rstrip("/")]
        except KeyError:
            examples = ", ".join(m.name for m in self.files()[:3])
            raise ArchiveError(self.name, name, f"no such member (it holds {len(self._members)} entries, "
                                                f"e.g. {examples})") from None

    # --- reading -----------------------------------------------------------------------------------
    def open(self, name: str):
        """A binary file object reading member ``name`` (a file, or a link inside the archive)."""
        info = self._info(name)
        if self.kind == "zip":
            if self._by_name[name.rstrip("/")].kind != "file":
                raise ArchiveError(self.name, name, "is not a regular file")
            return self._zip.open(info)
        try:
            f = self._tar.extractfile(info)
        except KeyError:
            f = None
        if f is None:
            raise ArchiveError(self.name, name, "is not a regular file (or its link target is missing)")
        return f

    def read(self, name: str) -> bytes:
        """The bytes of member ``name``."""
        with self.open(name) as f:
            return f.read()

    def open_archive(self, name: str, *, tmpdir=None, strict: bool = True) -> "Archive":
        """Open member ``name``, itself a zip or tar archive, without extracting the outer one.

        Members up to 64 MiB are read into memory; larger ones are copied to an anonymous
        temporary file in ``tmpdir`` (default: the system temporary folder), removed on close.
        """
        info = self._info(name)
        size = info.file_size if self.kind == "zip" else info.size
        with self.open(name) as src:
            if size <= NESTED_IN_MEMORY:
                buf = io.BytesIO(src.read())
            else:
                buf = tempfile.TemporaryFile(dir=tmpdir)
                shutil.copyfileobj(src, buf, 1 << 20)
                buf.seek(0)
        inner = Archive(buf, name=f"{self.name}!{name}", strict=strict)
        inner._closers.append(buf.close)
        return inner

    # --- extraction --------------------------------------------------------------------------------
    def extract(self, dest, members=None) -> list[Path]:
        """Extract ``members`` (names or ``Member``s; default all) under ``dest``; return the paths written.

        Every selected member is checked before anything is written; during writing, each
        parent folder is resolved (``realpath``) so a symlink extracted earlier cannot redirect a
        later member outside ``dest``. Symlinks are created only when their target resolves inside
        ``dest``; tar hard links are written as copies of their target member. Devices and FIFOs
        are refused. File modes from the archive are not applied (files get 0o666 & ~umask).
        An error during writing can leave the members written so far: extract into a temporary
        folder and rename it when the result must appear atomically.
        """
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        root = os.path.realpath(dest)
        chosen = self._members if members is None else [self._member(m) for m in members]
        links: dict = {}
        for m in chosen:  # everything is checked before the first byte is written
            self._check_member(m, links)
        written = []
        for m in chosen:
            target = self._target(root, m)
            if m.kind == "dir":
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            target = self._target(root, m)  # re-resolve now that the parents exist
            if os.path.lexists(target) and (os.path.islink(target) or not os.path.isdir(target)):
                os.unlink(target)  # never write through an existing link
            if m.kind == "symlink":
                self._check_link(m, root, os.path.dirname(target))
                os.symlink(m.linkname, target)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                with self.open(m.name) as src, os.fdopen(os.open(target, flags, 0o666), "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            written.append(Path(target))
        return written

    def _member(self, m) -> Member:
        name = m.name if isinstance(m, Member) else str(m).rstrip("/")
        self._info(name)
        return self._by_name[name]

    def _check_member(self, m: Member, links: dict) -> None:
        """Check ``m`` against its name and the links extracted before it (``links``: path -> target)."""
        parts = check_member_name(m.name, self.name).split("/")
        if m.kind == "special":
            raise UnsafeMemberError(self.name, m.name, "is a device or FIFO; refusing to extract it")
        if m.kind == "hardlink":
            try:
                check_member_name(m.linkname or "", self.name)
            except UnsafeMemberError:
                raise UnsafeMemberError(self.name, m.name, f"hard link to {m.linkname!r} points outside "
                                                           "the destination") from None
        parent = self._resolve(parts[:-1], links, m)
        if m.kind == "symlink":
            self._check_link_name(m)
            self._resolve(parent + m.linkname.split("/"), links, m)
            links["/".join(parent + parts[-1:])] = m.linkname

    def _resolve(self, parts, links, m) -> list:
        """Resolve ``parts`` (relative to the destination) through ``links``; refuse escapes."""
        out, queue, hops = [], list(parts), 0
        while queue:
            p = queue.pop(0)
            if p in ("", "."):
                continue
            if p == "..":
                if not out:
                    raise UnsafeMemberError(self.name, m.name, "resolves outside the destination "
                                                               "(through '..' or a symlink in the archive)")
                out.pop()
                continue
            out.append(p)
            target = links.get("/".join(out))
            if target is not None:
                hops += 1
                if hops > 40:
                    raise UnsafeMemberError(self.name, m.name, "symlink loop")
                out.pop()
                queue = target.split("/") + queue
        return out

    def _check_link_name(self, m: Member) -> None:
        link = m.linkname or ""
        if not link or "\0" in link or link.startswith(("/", "\\")) or (len(link) > 1 and link[1] == ":"):
            raise UnsafeMemberError(self.name, m.name, f"symlink to {link!r} points outside the destination")

    def _check_link(self, m: Member, root: str, parent: str) -> None:
        self._check_link_name(m)
        resolved = os.path.realpath(os.path.join(os.path.realpath(parent), m.linkname))
        if not _within(resolved, root):
            raise UnsafeMemberError(self.name, m.name, f"symlink to {m.linkname!r} points outside the destination")

    def _target(self, root: str, m: Member) -> str:
        parts = check_member_name(m.name, self.name).split("/")
        parent = os.path.realpath(os.path.join(root, *parts[:-1]))
        if not _within(parent, root):
            raise UnsafeMemberError(self.name, m.name, "would be written outside the destination "
                                                       "(through a symlink extracted earlier)")
        return os.path.join(parent, parts[-1])

    # --- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        (self._zip if self.kind == "zip" else self._tar).close()
        for c in self._closers:
            c()
        self._closers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"Archive({self.name!r}, kind={self.kind!r}, members={len(self._members)})"


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def open_archive(source, *, strict: bool = True) -> Archive:
    """Open a zip or tar archive (detected from its content) for listing, reading and extraction."""
    return Archive(source, strict=strict)


def _open_tar_stream(source, stack: contextlib.ExitStack) -> tarfile.TarFile:
    """``source`` as a forward-only tar stream, closed with ``stack``. A gzip-compressed file
    (magic bytes ``1f 8b``) is inflated by ISA-L (``isal.igzip_threaded``: about twice zlib's
    speed here, in its own thread, so inflating overlaps with what the caller does with each
    member); file objects and other compressions go through ``tarfile``'s own ``"r|*"``."""
    gzipped = False
    if not hasattr(source, "read"):
        with open(source, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
    if not gzipped:
        return stack.enter_context(tarfile.open(fileobj=source, mode="r|*", bufsize=1 << 20)
                                   if hasattr(source, "read") else tarfile.open(source, mode="r|*", bufsize=1 << 20))
    stream = stack.enter_context(igzip_threaded.open(source, "rb", threads=1))
    return stack.enter_context(tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20))


def iter_files(source, select=None, *, strict: bool = True):
    """Yield ``(name, bytes)`` for the regular files of archive ``source``, in archive order, in one pass.

    A tar archive (plain, ``.gz``, ``.bz2``, ``.xz``) is opened in streaming mode (``"r|*"``):
    it is read strictly forward, once, and works on non-seekable file objects; a member's bytes
    exist only while it is being yielded. A zip archive is read through its central directory
    (random access is cheap there).

    Parameters
    ----------
    source : str, os.PathLike or binary file object
    select : callable, optional
        ``select(name) -> bool``, called once per regular file in archive order; only members for
        which it returns true are read and yielded (default: all). Names are as in ``Member.name``.
    strict : bool
        Check every member name with ``check_member_name`` when it is reached. Unlike
        ``open_archive``, members before an unsafe one have already been yielded by then.

    Raises
    ------
    ArchiveError
        Not a readable archive, or truncated/corrupt part-way (raised where it is detected).
    UnsafeMemberError
        ``strict`` and a member name could escape an extraction folder.
    """
    label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<stream>"
    if not hasattr(source, "read") and _is_zip(source):
        with Archive(source, strict=strict) as ar:
            for m in ar.files():
                if select is None or select(m.name):
                    yield m.name, ar.read(m.name)
        return
    failures = (tarfile.TarError, EOFError, zlib.error, isal_zlib.error, OSError)
    with contextlib.ExitStack() as stack:
        try:
            tf = _open_tar_stream(source, stack)
        except failures as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise ArchiveError(label, None, f"not a readable tar archive, or truncated or corrupt ({e})") from None
        while True:
            name = None
            try:
                ti = tf.next()
                if ti is None:
                    return
                name = ti.name.rstrip("/")
                if strict:
                    check_member_name(name, label)
                if not ti.isreg() or (select is not None and not select(name)):
                    continue
                data = tf.extractfile(ti).read()
            except failures as e:
                raise ArchiveError(label, name, f"cannot be read: truncated or corrupt archive ({e})") from None
            yield name, data


def safe_extract(archive, dest, members=None) -> list[Path]:
    """Extract ``archive`` (a path) under ``dest`` with the checks of ``Archive.extract``."""
    with open_archive(archive) as a:
        return a.extract(dest, members)

