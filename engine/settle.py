"""Deciding when a file being written by an instrument is complete. This is the hard part of sync mode.

No single signal is enough, so they are combined:

- a per-file settle timer: size and mtime must stay unchanged for ``settle`` seconds after the last change
  (every platform; the only signal on network shares, where no events arrive);
- on Linux, close-after-write: a file that was written and not yet closed is not complete, however quiet it is
  (an instrument may pause longer than ``settle`` between frames) — until it has been quiet for ``stale_open``,
  in case the close event was lost;
- optional ready markers (``scan_001.raw`` waits for ``scan_001.done``);
- who has the file open: no file another process holds open for writing is ever complete (``busy``, by default
  :func:`engine.openfiles.busy_files`: ``/proc`` on Linux, an exclusive open on Windows); this is the evidence
  that survives a restart, when the close events of the previous run are gone.

Timers live in one heap served by one thread, so thousands of files settle with one wake-up each, on time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.openfiles import busy_files
from engine.winpaths import native

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    path: str
    size: int = -1
    mtime_ns: int = -1
    changed: float = 0.0  # monotonic time of the last observed change
    writing: bool = False  # written and not yet closed (only where close events exist)
    marker: str | None = None  # key of the marker this file waits for
    due: float = 0.0


@dataclass
class Ready:
    key: str
    path: str
    size: int
    mtime_ns: int


class SettleTracker:
    """Feed it with :meth:`touch` (any hint that a file may have changed); it calls ``on_ready`` with files that
    are complete, in batches, from its own thread."""

    def __init__(
        self,
        settle: float,
        on_ready: Callable[[list[Ready]], None],
        *,
        marker_exists: Callable[[str, str], bool] | None = None,
        busy: Callable[[list[str]], set[str]] | None = busy_files,
        stale_open: float | None = None,
        on_gone: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.settle = settle
        self.on_ready = on_ready
        self.on_gone = on_gone
        self.marker_exists = marker_exists
        self.busy = busy
        self.stale_open = stale_open if stale_open is not None else max(30.0, 10 * settle)
        self._entries: dict[str, _Entry] = {}
        self._waiting_marker: dict[str, set[str]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="settle", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(10)

    def running(self) -> bool:
        return self._thread.is_alive()

    def pending(self) -> int:
        with self._cond:
            return len(self._entries)

    def settling(self) -> int:
        """Files that will become ready on their own soon: not held open by a writer, not waiting for a
        marker. A graceful stop waits for these (the last file of a scan must not be left behind)."""
        with self._cond:
            waiting = set().union(*self._waiting_marker.values()) if self._waiting_marker else set()
            return sum(1 for k, e in self._entries.items() if not e.writing and k not in waiting)

    # -- input -------------------------------------------------------------------------------------------

    def touch(
        self,
        key: str,
        path: str,
        *,
        writing: bool | None = None,
        marker: str | None = None,
        delay: float | None = None,
    ) -> None:
        """A hint about ``key``. ``writing`` True: written and not closed; False: closed. ``delay`` is when to
        look first: ``settle`` after an event (the file just changed), 0 for a rescan hint (the file's mtime
        then tells how long it has been quiet)."""
        now = time.monotonic()
        with self._cond:
            e = self._entries.get(key)
            if e is None:
                e = self._entries[key] = _Entry(path=path, changed=now)
            e.path = path
            if writing is not None:
                e.writing = writing
            if marker is not None:
                e.marker = marker
            e.changed = now
            self._schedule(key, e, now + (self.settle if delay is None else delay))
            # A file that is itself a marker releases whoever waits for it.
            for waiter in self._waiting_marker.pop(key, ()):
                w = self._entries.get(waiter)
                if w is not None:
                    self._schedule(waiter, w, now)

    def forget(self, key: str) -> None:
        with self._cond:
            self._entries.pop(key, None)

    def _schedule(self, key: str, e: _Entry, due: float) -> None:
        e.due = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._cond.notify()

    # -- the timer thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                now = time.monotonic()
                due: list[tuple[str, _Entry]] = []
                while self._heap and self._heap[0][0] <= now:
                    _, _, key = heapq.heappop(self._heap)
                    e = self._entries.get(key)
                    if e is not None and e.due <= now:  # stale heap entries (rescheduled since) are skipped
                        due.append((key, e))
            ready, gone = self._check(due, now)
            if gone and self.on_gone is not None:
                self.on_gone(gone)
            if ready:
                try:
                    self.on_ready(ready)
                except Exception:  # the sync loop logs and survives; a lost batch is found by reconciliation
                    log.exception("handing %d ready files to the uploader failed", len(ready))

    def _check(self, due: list[tuple[str, _Entry]], now: float) -> tuple[list[Ready], list[str]]:
        candidates: list[tuple[str, _Entry]] = []
        gone: list[str] = []
        for key, e in due:
            try:
                st = os.stat(native(e.path))
            except FileNotFoundError:
                gone.append(key)
                with self._cond:
                    self._entries.pop(key, None)
                continue
            except OSError:
                with self._cond:
                    self._schedule(key, e, now + self.settle)
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO or socket: reading it could block forever
                with self._cond:
                    self._entries.pop(key, None)
                continue
            with self._cond:
                if (st.st_size, st.st_mtime_ns) != (e.size, e.mtime_ns):
                    # Changed since we last looked (or first look): it must now stay put for `settle`.
                    e.size, e.mtime_ns = st.st_size, st.st_mtime_ns
                    quiet_for = time.time() - st.st_mtime_ns / 1e9
                    if quiet_for < self.settle:
                        self._schedule(key, e, now + max(0.0, self.settle - max(0.0, quiet_for)))
                        continue
                if e.writing and now - e.changed < self.stale_open:
                    self._schedule(key, e, now + self.settle)  # re-checked on the close event, or when stale
                    continue
                if (
                    e.marker is not None
                    and self.marker_exists is not None
                    and not self.marker_exists(e.marker, e.path)
                ):
                    self._waiting_marker.setdefault(e.marker, set()).add(key)
                    continue  # woken by the marker's own touch (event or rescan)
            candidates.append((key, e))
        # One look at who has files open, for the whole batch of otherwise complete files.
        busy = self.busy([e.path for _, e in candidates]) if self.busy and candidates else set()
        ready: list[Ready] = []
        with self._cond:
            for key, e in candidates:
                if e.path in busy:
                    log.debug("%s is still open for writing by another process", key)
                    self._schedule(key, e, now + self.settle)
                elif self._entries.get(key) is e and e.due <= now:
                    del self._entries[key]
                    ready.append(Ready(key=key, path=e.path, size=e.size, mtime_ns=e.mtime_ns))
        return ready, gone
