"""The plain data the engine hands its front ends: run reports, dataset states, phases. No behaviour here, so
every layer (journal readers, the CLI, the tray) can use these types without importing any machinery."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from engine.errors import Action

Mode = Literal["sync", "batch"]


class Phase(str, Enum):
    """What a running dataset is doing now (``status`` and the tray show it; the tray switches on it)."""

    STARTING = "starting"
    SCANNING = "scanning"
    CATCHING_UP = "catching up"
    UPLOADING = "uploading"
    WATCHING = "watching"  # sync: everything done, waiting for new files
    WAITING_FOR_STORAGE = "waiting for storage"
    WAITING_FOR_CATALOGUE = "waiting for catalogue"
    RETRYING = "retrying"
    PAUSED = "paused"
    FINISHING = "finishing"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class FailedFile:
    """A file a run could not upload, with the reason the user is shown."""

    path: str
    reason: str
    permanent: bool = True


@dataclass
class RunReport:
    """What a run tells the person at the end (the CLI prints it; the tray notifies from it).

    Every number is defined once, from the journal: files and bytes *done* are registered (verified on storage and
    in the catalogue) out of the dataset's total; *uploaded* counts the distinct files this run verified and their
    sizes, never attempts or retried bytes. Every file that is not done for a reason is in ``failed``.
    """

    dataset_id: int
    name: str
    location: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    files_uploaded: int
    bytes_uploaded: int
    failed: tuple[FailedFile, ...]
    skipped: tuple[FailedFile, ...]  # not data (FIFOs, links to folders, ...): listed, not an error
    problems: tuple[str, ...]  # dataset-wide: the manifest, the catalogue entry
    complete: bool
    elapsed: float
    action: Action = Action.NONE  # what would let the failed files through (e.g. log in)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.problems else 0


@dataclass
class Progress:
    """One dataset's progress as front ends show it: files and bytes verified of the total, rate, ETA."""

    dataset_id: int
    pid: int
    phase: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    rate: float
    eta: float | None
    failed: int
    started: float
    updated: float


@dataclass
class DatasetState:
    """One dataset as the journal and the engine see it now: what ``status`` prints and the tray shows."""

    id: int
    name: str
    investigation: str | None
    profile: str
    location: str  # storage path, secrets masked
    catalogue: str
    catalogue_id: str | None
    mode: Mode | None  # None: not running (in this process or another)
    running: bool
    pid: int | None  # the process running it, when running
    phase: Phase | None  # None when not running
    state: str  # "uploading" | "watching" | "paused" | "complete" | "failed" | "incomplete"
    files_total: int
    files_done: int
    files_failed: int
    bytes_total: int
    bytes_done: int
    by_state: dict[str, int]
    rate: float  # bytes/s
    eta: float | None  # seconds
    failures: tuple[FailedFile, ...]
    skipped: tuple[FailedFile, ...]
    created: float
    updated: float
    live: Progress | None = None  # the live progress record, while running


@dataclass
class EngineSnapshot:
    """What a front end needs to redraw itself: whether the engine is paused, and every dataset."""

    paused: bool
    datasets: tuple[DatasetState, ...]


@dataclass
class FileState:
    """One file of a dataset as the journal has it (``status DATASET``)."""

    path: str
    state: str  # settling | discovered | uploading | verified | registered | failed | refused | skipped
    size: int | None
    reason: str | None
    verification: str | None  # how it was checked on storage, once verified
    updated: float | None
