"""Exclusive locks between processes: one uploader per dataset, one tray per user.

The operating system's own file lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on an open lock file:
the system drops it when the process ends, however it ends, so a crash never leaves a stale lock (unlike a pid
file). Two holders in one process exclude each other too (each lock is its own open file). This is all the
``filelock`` package did for us, and importing it cost ~30 ms of every command-line run (a tenth of its start-up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


class HeldLock:
    """A lock this process holds until :meth:`release` (or its end)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_lock(path: Path) -> HeldLock | None:
    """Take the lock at ``path`` (created if need be) now, or return None when somebody else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(fd)
    except OSError:
        os.close(fd)
        return None
    return HeldLock(fd)


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # the first byte, even past the end of an empty file

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
