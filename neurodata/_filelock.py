"""An exclusive inter-process lock on a lock file (``fcntl.flock``), shared by downloads and the cache.

The lock file ``<target>.lock`` is created on acquire and removed on release. Removing it is safe
because a waiter re-checks, after it got the lock, that the path still names the inode it locked
(otherwise it retries on the new file), so two processes can never both hold "the" lock.
"""
from __future__ import annotations

import logging
import os
import time

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

__all__ = ["FileLock"]

log = logging.getLogger("neurodata")


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    try:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:  # pragma: no cover
        return False


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class FileLock:
    """Exclusive lock held through the file ``path`` (usually ``<target>.lock``).

    Use as a context manager. Blocks until the lock is free; ``timeout`` (seconds, None = wait
    forever) raises ``TimeoutError`` naming the lock file. ``waiting`` is logged once (logger
    ``"neurodata"``, level INFO) when another process holds the lock. Not re-entrant: a second
    ``FileLock`` on the same path in the same process waits like another process would.
    The lock is released by the kernel when its holder dies, even on SIGKILL.
    """

    def __init__(self, path, *, timeout: float | None = None, waiting: str | None = None, poll: float = 0.05):
        self.path = os.fspath(path)
        self.timeout = timeout
        self.waiting = waiting or f"waiting for another process holding {self.path}"
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        announced = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while not _try_lock(fd):
                    if not announced:
                        log.info(self.waiting)
                        announced = True
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"could not lock {self.path} within {self.timeout} s; "
                                           "another process holds it (delete the file if no process does)")
                    time.sleep(self.poll)
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                self._fd = fd
                return
            os.close(fd)  # the holder removed the file while we waited: lock the new one

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding the lock (see the module docstring)
        except OSError:
            pass
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False
