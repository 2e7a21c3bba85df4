"""What the engine tells its front ends: typed events, and a bus that never lets a subscriber slow the engine down.

Events are plain dataclasses so the tray can ``match`` on them and tests can compare sequences; nobody changes
one once it is sent (they are not frozen only because Python 3.11 takes twice as long to create a frozen class,
and the command line pays that for every class at every start). Delivery is
asynchronous: each subscriber has its own queue and thread, so a callback that blocks (a D-Bus call, a slow
terminal) or raises only affects itself. If a subscriber falls very far behind, progress events are dropped
first (the next one says the same, newer); other events are kept.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import Action
from engine.model import Mode, Phase, RunReport

log = logging.getLogger(__name__)

# -- events ----------------------------------------------------------------------------------------------------


@dataclass
class Event:
    """What every event carries: when it happened (front ends queue events and show them later)."""

    time: float = field(default_factory=time.time, kw_only=True)


@dataclass
class DatasetStarted(Event):
    """A run of a dataset began, in batch or sync mode."""

    dataset_id: int
    name: str
    mode: Mode


@dataclass
class ProgressUpdate(Event):
    """Throttled: a few per second per dataset at most."""

    dataset_id: int
    name: str
    phase: Phase
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate: float  # bytes/s
    eta: float | None  # seconds
    failed: int


@dataclass
class FileVerified(Event):
    """A file is on storage and checked against the source: ``verification`` names the hash, or "size"."""

    dataset_id: int
    path: str
    size: int
    verification: str  # "xxh128" | "sha256" | "sha1" | "md5" | "size"


@dataclass
class FileFailed(Event):
    """A file could not be uploaded: ``permanent`` ones need the user, the others are tried again."""

    dataset_id: int
    name: str
    path: str
    reason: str
    permanent: bool  # False: it will be tried again (front ends never notify those)


@dataclass
class DatasetSealed(Event):
    """Every file of the dataset is verified and registered, the manifest written, the catalogue entry final."""

    dataset_id: int
    name: str
    mode: Mode
    files: int
    bytes: int
    duration: float
    verification: str  # the weakest check made: "xxh128" | "sha256" | "sha1" | "md5" | "size"


@dataclass
class DatasetFinished(Event):
    """The run ended, whatever the outcome (after :class:`DatasetSealed` when it sealed)."""

    dataset_id: int
    name: str
    report: RunReport | None
    error: str | None  # one line, when the run could not run at all
    action: Action
    cancelled: bool = False  # stopped on request (Quit now, a second Ctrl-C): not an error, it resumes


@dataclass
class StorageUnreachable(Event):
    """The storage stopped answering: the files wait and are tried again when it is back."""

    dataset_id: int
    name: str
    reason: str


@dataclass
class StorageReachable(Event):
    """The storage answers again after it was unreachable."""

    dataset_id: int
    name: str


@dataclass
class CatalogueUnreachable(Event):
    """The catalogue stopped answering: verified files stay queued for registration."""

    profile: str
    reason: str


@dataclass
class CatalogueReachable(Event):
    """The catalogue answers again: the queued registrations are being sent."""

    profile: str


@dataclass
class LoginExpiring(Event):
    """The catalogue login ends soon: log in again before registrations have to wait."""

    profile: str
    user: str
    expires: float  # epoch seconds


@dataclass
class LoginExpired(Event):
    """The catalogue login ended: uploads go on, registrations wait for a new login."""

    profile: str


@dataclass
class EnginePaused(Event):
    """No transfer starts until the engine resumes; copies in flight were stopped and are redone."""


@dataclass
class EngineResumed(Event):
    """Transfers may start again after a pause."""


# -- the bus ---------------------------------------------------------------------------------------------------

Callback = Callable[[Event], None]
_MAX_BACKLOG = 100_000


class _Subscriber:
    def __init__(self, callback: Callback, kinds: tuple[type[Event], ...] | None) -> None:
        self.callback = callback
        self.kinds = kinds
        self.queue: queue.Queue[Event | None] = queue.Queue()
        self.dropped = 0
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name="events", daemon=True)
        self.thread.start()

    def offer(self, event: Event) -> None:
        if self.kinds is not None and not isinstance(event, self.kinds):
            return
        if self.queue.qsize() >= _MAX_BACKLOG and isinstance(event, ProgressUpdate):
            self.dropped += 1
            return
        self.queue.put(event)

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            try:
                self.callback(event)
            except Exception:  # a broken subscriber must not break the engine, nor stop its own deliveries
                self.errors += 1
                if (
                    self.errors == 1
                ):  # once in full; a subscriber that fails every time must not flood the log
                    log.exception(
                        "an event subscriber failed on %s (further failures are counted)",
                        type(event).__name__,
                    )

    def close(self, timeout: float) -> None:
        self.queue.put(None)
        self.thread.join(timeout)
        if self.errors > 1:
            log.warning("an event subscriber failed %d times", self.errors)


class EventBus:
    """Fan-out of events to subscribers, each on its own thread."""

    def __init__(self) -> None:
        self._subs: list[_Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(
        self, callback: Callback, kinds: tuple[type[Event], ...] | None = None
    ) -> Callable[[], None]:
        """``kinds``: only these event types (and their subclasses) reach ``callback``; None means all. A
        subscriber that only draws progress then costs nothing per file (an upload emits an event per file)."""
        sub = _Subscriber(callback, kinds)
        with self._lock:
            self._subs.append(sub)

        def unsubscribe() -> None:
            with self._lock:
                if sub not in self._subs:
                    return
                self._subs.remove(sub)
            sub.close(5.0)

        return unsubscribe

    def emit(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.offer(event)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` per subscriber), then stop the delivery threads."""
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(RuntimeError):
                sub.close(timeout)
