"""The engine's rclone queue: how many copy jobs run at once across all datasets, and whether any may start.

Several datasets share one rclone daemon; without a common limit three syncs and a batch upload would each run
their own lanes of jobs and starve each other and the acquisition PC. Pausing closes the gate: no job starts, and
jobs in flight are cancelled (their files stay "uploading" in the journal — ours — and are copied again after
resume, so nothing is lost and nothing counts as a failed attempt).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from engine.errors import Cancelled

DEFAULT_MAX_JOBS = 4


class TransferGate:
    def __init__(self, max_jobs: int = DEFAULT_MAX_JOBS) -> None:
        self.max_jobs = max_jobs
        self._cond = threading.Condition()
        self._running = 0
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> bool:
        """Close the gate; False if it was closed already."""
        with self._cond:
            if self._paused:
                return False
            self._paused = True
            self._cond.notify_all()
            return True

    def resume(self) -> bool:
        with self._cond:
            if not self._paused:
                return False
            self._paused = False
            self._cond.notify_all()
            return True

    def wait_open(self, cancel: threading.Event, timeout: float | None = None) -> bool:
        """Block while paused; False if ``cancel`` was set (or ``timeout`` passed) first."""
        with self._cond:
            return (
                self._cond.wait_for(lambda: not self._paused or cancel.is_set(), timeout)
                and not cancel.is_set()
            )

    @contextmanager
    def slot(self, cancel: threading.Event) -> Iterator[None]:
        """Hold one of the ``max_jobs`` job slots (waiting while paused or full); :class:`Cancelled` if
        ``cancel`` is set meanwhile."""
        with self._cond:
            while self._paused or self._running >= self.max_jobs:
                if cancel.is_set():
                    raise Cancelled("stopped")
                self._cond.wait(0.2)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancel events."""
        with self._cond:
            self._cond.notify_all()
