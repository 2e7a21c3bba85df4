"""Per-dataset progress: counts, bytes, rate and ETA, published to a callback and to the journal.

The journal copy is what ``datauploader status`` in another shell (or the tray) reads while an upload runs,
so progress is visible without any IPC channel; it is written at most once a second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.journal import Journal, Progress

ProgressCallback = Callable[["Snapshot"], None]


@dataclass(frozen=True)
class Snapshot:
    dataset_id: int
    phase: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    rate: float  # bytes/s, smoothed
    eta: float | None  # seconds
    failed: int
    elapsed: float


class ProgressTracker:
    """Thread-safe counters; ``publish`` throttles journal writes and callbacks."""

    def __init__(
        self,
        journal: Journal,
        dataset_id: int,
        callback: ProgressCallback | None = None,
        *,
        interval: float = 1.0,
    ) -> None:
        self.journal = journal
        self.dataset_id = dataset_id
        self.callback = callback
        self.interval = interval
        self._lock = threading.Lock()
        self.started = time.time()
        self.phase = "scanning"
        self.files_total = 0
        self.bytes_total = 0
        self.files_done = 0
        self.bytes_done = 0
        self._in_flight: dict[int, int] = {}  # per running batch: bytes copied, not yet counted as done
        self.failed = 0
        self._rate = 0.0
        self._last_t = time.monotonic()
        self._last_bytes = 0
        self._last_publish = 0.0

    @property
    def last_publish(self) -> float:
        """``time.monotonic()`` of the last publication."""
        return self._last_publish

    def set_totals(self, files: int, nbytes: int, files_done: int, bytes_done: int, failed: int) -> None:
        with self._lock:
            self.files_total, self.bytes_total = files, nbytes
            self.files_done, self.bytes_done, self.failed = files_done, bytes_done, failed
            self._last_bytes = bytes_done

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.publish(force=True)

    def set_in_flight(self, nbytes: int, batch: int = 0) -> None:
        with self._lock:
            if nbytes:
                self._in_flight[batch] = nbytes
            else:
                self._in_flight.pop(batch, None)
        self.publish()

    def add_done(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files_done += files
            self.bytes_done += nbytes
        self.publish()

    def add_failed(self, files: int) -> None:
        with self._lock:
            self.failed += files
        self.publish()

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            moved = min(self.bytes_done + sum(self._in_flight.values()), self.bytes_total)
            dt = now - self._last_t
            if dt >= 0.5:
                inst = max(0, moved - self._last_bytes) / dt
                self._rate = inst if self._rate == 0 else 0.7 * self._rate + 0.3 * inst
                self._last_t, self._last_bytes = now, moved
            remaining = max(0, self.bytes_total - moved)
            eta = remaining / self._rate if self._rate > 0 else None
            return Snapshot(
                dataset_id=self.dataset_id,
                phase=self.phase,
                files_total=self.files_total,
                files_done=self.files_done,
                bytes_total=self.bytes_total,
                bytes_done=moved,
                rate=self._rate,
                eta=eta,
                failed=self.failed,
                elapsed=time.time() - self.started,
            )

    def publish(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_publish < self.interval:
            return
        self._last_publish = now
        snap = self.snapshot()
        self.journal.write_progress(
            Progress(
                dataset_id=snap.dataset_id,
                pid=os.getpid(),
                phase=snap.phase,
                files_total=snap.files_total,
                files_done=snap.files_done,
                bytes_total=snap.bytes_total,
                bytes_done=snap.bytes_done,
                rate=snap.rate,
                eta=snap.eta,
                failed=snap.failed,
                started=self.started,
                updated=time.time(),
            )
        )
        if self.callback is not None:
            self.callback(snap)

    def finish(self) -> None:
        self.journal.clear_progress(self.dataset_id)
