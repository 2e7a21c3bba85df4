"""Per-dataset progress: counts, bytes, rate and ETA, published to the journal and as events.

The journal copy is what ``datauploader status`` in another shell reads while a run goes on (no IPC channel);
it is written at most once a second. Events go to the front ends a few times a second at most.

The numbers, defined once: *files/bytes done* are the files verified on storage (registered or about to be) out of
the dataset's total; bytes of the batches being copied right now count too, but the figure never goes backwards
(a retried batch does not take back what the display already showed). The rate is smoothed over a few seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from engine.events import ProgressUpdate
from engine.journal import REGISTERED, VERIFIED, Journal
from engine.model import Phase, Progress

ProgressSink = Callable[[ProgressUpdate], None]

JOURNAL_INTERVAL = 1.0
EVENT_INTERVAL = 0.25


class ProgressTracker:
    """Thread-safe counters; :meth:`publish` throttles journal writes and events."""

    def __init__(
        self, journal: Journal, dataset_id: int, name: str, sink: ProgressSink | None = None
    ) -> None:
        self.journal = journal
        self.dataset_id = dataset_id
        self.name = name
        self.sink = sink
        self._lock = threading.Lock()
        self.started = time.time()
        self.phase = Phase.SCANNING
        self.files_total = 0
        self.bytes_total = 0
        self.files_done = 0
        self.bytes_done = 0
        self.failed = 0
        self._in_flight: dict[int, int] = {}  # per running batch: bytes copied, not yet verified
        self._shown = 0  # the largest byte count published: the display never goes backwards
        self._rate = 0.0
        self._last_t = time.monotonic()
        self._last_bytes = 0
        self._last_journal = 0.0
        self._last_event = 0.0

    @property
    def last_publish(self) -> float:
        """``time.monotonic()`` of the last journal write."""
        return self._last_journal

    def refresh(self) -> None:
        """Re-read the totals from the journal (after a batch, a scan, a registration)."""
        c = self.journal.counts(self.dataset_id)
        done = c.by_state.get(VERIFIED, 0) + c.by_state.get(REGISTERED, 0)
        done_bytes = c.bytes_by_state.get(VERIFIED, 0) + c.bytes_by_state.get(REGISTERED, 0)
        refused = self.journal.count_refused(self.dataset_id)
        with self._lock:
            self.files_total, self.bytes_total = c.files + refused, c.bytes
            self.files_done, self.bytes_done, self.failed = done, done_bytes, c.failed + refused
            if done_bytes < self._shown and not self._in_flight:
                self._shown = done_bytes  # the total itself shrank (a file got smaller); follow it down
        self.publish()

    def set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self.publish(force=True)

    def set_in_flight(self, nbytes: int, batch: int = 0) -> None:
        with self._lock:
            if nbytes:
                self._in_flight[batch] = nbytes
            else:
                self._in_flight.pop(batch, None)
        self.publish()

    def progress(self) -> Progress:
        with self._lock:
            now = time.monotonic()
            moved = min(self.bytes_done + sum(self._in_flight.values()), self.bytes_total)
            self._shown = max(self._shown, moved)
            shown = self._shown
            dt = now - self._last_t
            if dt >= 0.5:
                inst = max(0, shown - self._last_bytes) / dt
                self._rate = inst if self._rate == 0 else 0.7 * self._rate + 0.3 * inst
                self._last_t, self._last_bytes = now, shown
            remaining = max(0, self.bytes_total - shown)
            eta = remaining / self._rate if self._rate > 0 and remaining else None
            return Progress(
                dataset_id=self.dataset_id,
                pid=os.getpid(),
                phase=self.phase.value,
                files_total=self.files_total,
                files_done=self.files_done,
                bytes_total=self.bytes_total,
                bytes_done=shown,
                rate=self._rate,
                eta=eta,
                failed=self.failed,
                started=self.started,
                updated=time.time(),
            )

    def publish(self, *, force: bool = False) -> None:
        now = time.monotonic()
        to_journal = force or now - self._last_journal >= JOURNAL_INTERVAL
        to_sink = self.sink is not None and (force or now - self._last_event >= EVENT_INTERVAL)
        if not (to_journal or to_sink):
            return
        p = self.progress()
        if to_journal:
            self._last_journal = now
            self.journal.write_progress(p)
        if to_sink and self.sink is not None:
            self._last_event = now
            self.sink(
                ProgressUpdate(
                    dataset_id=p.dataset_id,
                    name=self.name,
                    phase=Phase(p.phase),
                    files_done=p.files_done,
                    files_total=p.files_total,
                    bytes_done=p.bytes_done,
                    bytes_total=p.bytes_total,
                    rate=p.rate,
                    eta=p.eta,
                    failed=p.failed,
                )
            )

    def finish(self) -> None:
        self.journal.clear_progress(self.dataset_id)
