"""One tray per user: a lock file in the user's DataUploader home, held for the life of the process.

The operating system drops the lock when the process ends, however it ends, so a crash never leaves a
stale lock behind (unlike a pid file).
"""

from __future__ import annotations

from tray._api import HeldLock, Home, try_lock


def acquire(home: Home) -> HeldLock | None:
    """The held lock, or None when another tray of this user holds it."""
    home.run_dir.mkdir(parents=True, exist_ok=True)
    return try_lock(home.run_dir / "tray.lock")
