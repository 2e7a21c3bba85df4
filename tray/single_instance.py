"""One tray per user: a lock file in the user's DataUploader home, held for the life of the process.

The operating system drops the lock when the process ends, however it ends, so a crash never leaves a
stale lock behind (unlike a pid file).
"""

from __future__ import annotations

from filelock import FileLock, Timeout

from tray._api import Home


def acquire(home: Home) -> FileLock | None:
    """The held lock, or None when another tray of this user holds it."""
    home.run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(home.run_dir / "tray.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock
