"""Watching source folders: one observer abstraction over inotify / ReadDirectoryChangesW / polling.

Events are hints, never the truth (the sync loop reconciles with periodic scans), so this module only has to be
prompt and robust: it picks the polling observer for network file systems (which deliver no events for changes
made by other machines), falls back to polling when the inotify watch limit is hit (saying so once), and
restarts an observer whose thread died (a polling thread dies silently when a share disappears).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

NETWORK_FS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb",
    "smb2",
    "smbfs",
    "fuse.sshfs",
    "afs",
    "9p",
    "fuse.gvfsd-fuse",
    "davfs",
}

# Only what can change a file's content or presence. Opens and read-closes are left out on purpose: every read
# (our own scans and uploads included) would produce two, enough to overflow inotify's 16,384-event queue on a
# large tree, and watchdog answers an overflow by re-walking the whole tree, which reads it again: a loop.
WANTED_EVENTS = (
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
)

# (path, kind) with kind one of "written" (modified, not closed), "closed" (closed after writing),
# "created", "moved" (a file arrived by rename: complete as far as the writer is concerned), "deleted".
Callback = Callable[[str, str], None]


def filesystem_type(path: Path) -> str | None:
    """The mount's file-system type on Linux (from /proc/self/mounts); None where unknown."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    best, fstype = "", None
    target = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best, fstype = mnt, parts[2]
    return fstype


def needs_polling(path: Path) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        # A UNC share, or a network drive mapped to a letter: ReadDirectoryChangesW misses changes made elsewhere.
        return str(path).startswith("\\\\") or _remote_drive(path)
    fstype = filesystem_type(path)
    return fstype is not None and fstype in NETWORK_FS


def _remote_drive(path: Path) -> bool:  # pragma: no cover - Windows
    import ctypes

    drive = os.path.splitdrive(str(path.resolve()))[0]
    if not drive:
        return False
    kernel32 = getattr(ctypes, "windll").kernel32  # noqa: B009 - absent on POSIX
    return int(kernel32.GetDriveTypeW(drive + "\\")) == 4  # DRIVE_REMOTE


class _Handler(FileSystemEventHandler):
    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        src = os.fsdecode(event.src_path)
        if isinstance(event, FileMovedEvent):
            self.callback(src, "deleted")
            self.callback(os.fsdecode(event.dest_path), "moved")
        elif isinstance(event, FileClosedEvent):
            self.callback(src, "closed")
        elif isinstance(event, FileModifiedEvent):
            self.callback(src, "written")
        elif isinstance(event, FileCreatedEvent):
            self.callback(src, "created")
        elif isinstance(event, FileDeletedEvent):
            self.callback(src, "deleted")


class Watcher:
    """Watches folders recursively and calls ``callback(path, kind)`` from the observer's thread."""

    def __init__(
        self,
        folders: Sequence[tuple[Path, bool]],
        callback: Callback,
        *,
        polling: bool | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        self.folders = list(folders)  # (folder, recursive)
        self.callback = callback
        self.force_polling = polling
        self.poll_interval = poll_interval
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self.polling = False
        self._warned_limit = False

    @property
    def has_close_events(self) -> bool:
        """Whether "closed" events arrive (inotify); elsewhere completeness rests on settle timers alone."""
        return not self.polling and os.name != "nt" and hasattr(os, "uname") and os.uname().sysname == "Linux"

    def start(self) -> None:
        with self._lock:
            polling = self.force_polling
            if polling is None:
                polling = any(needs_polling(f) for f, _ in self.folders)
            try:
                self._observer = self._make(polling)
            except OSError as exc:
                if polling or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                if not self._warned_limit:
                    log.warning(
                        "the inotify watch limit is reached (%s); watching by polling every %.0f s instead "
                        "(raise fs.inotify.max_user_watches to get events)",
                        exc.strerror,
                        self.poll_interval,
                    )
                    self._warned_limit = True
                self._observer = self._make(True)
                polling = True
            self.polling = polling

    def _make(self, polling: bool) -> BaseObserver:
        observer: BaseObserver = PollingObserver(timeout=self.poll_interval) if polling else Observer()
        handler = _Handler(self.callback)
        try:
            for folder, recursive in self.folders:
                observer.schedule(handler, str(folder), recursive=recursive, event_filter=list(WANTED_EVENTS))
            observer.start()
        except BaseException:
            observer.stop()
            raise
        return observer

    def alive(self) -> bool:
        obs = self._observer
        return obs is not None and obs.is_alive()

    def supervise(self) -> bool:
        """Restart a dead observer; True if a restart happened (the caller should rescan: events were lost)."""
        if self.alive():
            return False
        log.warning("the folder watcher stopped (a network share may have gone away); restarting it")
        self.stop()
        try:
            self.start()
        except OSError as exc:
            log.warning("cannot watch the folders yet (%s); will try again", exc.strerror)
            return False
        return True

    def stop(self) -> None:
        with self._lock:
            obs, self._observer = self._observer, None
        if obs is not None:
            obs.stop()
            if obs.is_alive():
                obs.join(10)
