"""Exceptions raised by neurodata.

Every message names the file, byte offset, URL or parameter involved, what was expected, and
what the user can do next.
"""
from __future__ import annotations

import os

__all__ = ["FormatError", "DownloadError", "ChecksumError", "CacheError"]


class FormatError(ValueError):
    """A file is not what its format says it should be.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file being read.
    offset : int or None
        Byte offset (from the start of the file) where the problem was found.
    message : str
        What was found and what was expected.
    """

    def __init__(self, path, offset, message: str):
        self.path = None if path is None else os.fspath(path)
        self.offset = offset
        self.message = message
        where = self.path if self.path is not None else "<buffer>"
        if offset is not None:
            where = f"{where} at byte {offset}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.offset, self.message))


class DownloadError(OSError):
    """A resource could not be fetched from any of its URLs (or offline mode forbids it)."""


class ChecksumError(DownloadError):
    """A downloaded or supplied file does not match the checksum its recipe declares."""


class CacheError(RuntimeError):
    """The HDF5 cache is unusable (corrupt, incomplete, or written by an incompatible schema)."""
