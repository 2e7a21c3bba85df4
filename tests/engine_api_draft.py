"""DRAFT of the public engine API (issue 11), written by the lead. The tray codes against exactly this.

Copied unchanged into tests/ so the tray and its fake engine (tests/fake_engine.py) can run before the real
Engine lands; tray/_api.py imports these names from ``engine`` once it exports them. Delete this file then.

Everything here will be importable as ``from engine import Engine, DatasetSpec, ...`` (engine/__init__.py
re-exports it). Names and fields may still get small additions; the lead will tell you of any rename.
Until the real Engine lands on main, the tray's unit tests use a fake that implements this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol

# ---------------------------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class DatasetSpec:
    """What the dataset dialog (or the CLI's options) asks for. ``Engine.validate`` checks it in one place."""

    paths: tuple[str, ...]
    name: str
    investigation: str | None = None
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # values: str | int | float | {"value":..,"unit":..}
    profile: str | None = None  # None: "default"
    mode: Literal["sync", "batch"] = "sync"
    settle: float | None = None  # seconds; None: the profile's
    bwlimit: str | None = None
    transfers: int | None = None


class Action(str, Enum):
    """What a person should do about an error or event; each front end phrases it (tray: "Log in…")."""

    NONE = "none"
    LOG_IN = "log in"
    PICK_INVESTIGATION = "pick an investigation"
    RUN_AGAIN = "run again"
    MOVE_FOREIGN_FILE = "move the other file away"
    FIX_SETTINGS = "fix the settings"
    FREE_SPACE = "free space on the storage"


class DataUploaderError(Exception):
    """(exists today in engine/errors.py) one-line message; ``exit_code``; NEW: ``action`` and ``field``."""

    exit_code: int = 1
    action: Action = Action.NONE
    field: str | None = None  # for SpecError: "paths" | "name" | "investigation" | "description" |
    # "investigation_description" | "meta" | "profile" | "settle" | "bwlimit" | "transfers"


class UsageError(DataUploaderError):  # exit_code 2 (exists today)
    ...


# ---------------------------------------------------------------------------------------------------- state


class Phase(str, Enum):
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
    DONE = "done"  # complete / sealed
    FAILED = "failed"  # ended, some files failed
    STOPPED = "stopped"  # stopped with finish=False, resumes next time


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str
    permanent: bool = True


@dataclass(frozen=True)
class DatasetState:
    """One dataset as snapshot() sees it (also what `status --json` prints)."""

    id: int
    name: str
    investigation: str | None
    profile: str
    location: str  # storage path, secrets masked
    mode: Literal["sync", "batch"] | None  # None: not running in this engine
    running: bool
    phase: Phase | None  # None when not running
    state: str  # "uploading" | "watching" | "paused" | "complete" | "failed" | "incomplete"
    files_total: int
    files_done: int  # verified AND registered
    files_failed: int
    bytes_total: int
    bytes_done: int
    rate: float  # bytes/s
    eta: float | None  # seconds
    failures: tuple[FailedFile, ...]
    updated: float


@dataclass(frozen=True)
class EngineSnapshot:
    paused: bool
    datasets: tuple[DatasetState, ...]


@dataclass(frozen=True)
class RunReport:
    """What `upload`/`sync` print at the end (the CLI's summary)."""

    dataset_id: int
    name: str
    location: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    files_uploaded: int  # this run
    bytes_uploaded: int  # this run
    failed: tuple[FailedFile, ...]
    skipped: tuple[FailedFile, ...]  # entries not uploaded on purpose (FIFOs, symlinked folders, ...)
    complete: bool
    elapsed: float
    exit_code: int  # 0 | 1 | 130


# ---------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    time: float  # time.time()


@dataclass(frozen=True)
class DatasetStarted(Event):
    dataset_id: int
    name: str
    mode: Literal["sync", "batch"]


@dataclass(frozen=True)
class ProgressUpdate(Event):  # throttled: at most a few per second per dataset
    dataset_id: int
    name: str
    phase: Phase
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate: float
    eta: float | None
    failed: int


@dataclass(frozen=True)
class FileVerified(Event):
    dataset_id: int
    path: str
    size: int
    verification: str  # "sha256" | "sha1" | "md5" | "size"


@dataclass(frozen=True)
class FileFailed(Event):
    dataset_id: int
    name: str  # dataset name
    path: str
    reason: str
    permanent: bool  # False: will be retried (the tray never notifies those)


@dataclass(frozen=True)
class DatasetSealed(Event):  # sync stopped with finish=True and sealed, or batch complete
    dataset_id: int
    name: str
    mode: Literal["sync", "batch"]
    files: int
    bytes: int
    duration: float
    verification: str  # the weakest check made: "sha256" | "sha1" | "md5" | "size"


@dataclass(frozen=True)
class DatasetFinished(Event):  # the handle ended, whatever the outcome (after DatasetSealed if sealed)
    dataset_id: int
    name: str
    report: RunReport | None
    error: str | None  # a one-line error when the run could not run at all
    action: Action


@dataclass(frozen=True)
class StorageUnreachable(Event):
    dataset_id: int
    name: str
    reason: str


@dataclass(frozen=True)
class StorageReachable(Event):
    dataset_id: int
    name: str


@dataclass(frozen=True)
class CatalogueUnreachable(Event):
    profile: str
    reason: str


@dataclass(frozen=True)
class CatalogueReachable(Event):
    profile: str


@dataclass(frozen=True)
class LoginExpiring(Event):
    profile: str
    user: str
    expires: float  # epoch seconds


@dataclass(frozen=True)
class LoginExpired(Event):
    profile: str


@dataclass(frozen=True)
class EnginePaused(Event):
    pass


@dataclass(frozen=True)
class EngineResumed(Event):
    pass


# ---------------------------------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class Session:  # exists today in engine.catalogue.base
    user: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    expires: float | None = None


@dataclass(frozen=True)
class Credentials:  # exists today
    username: str | None = None
    password: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Investigation:  # exists today
    id: str
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    storage: str  # masked
    catalogue: str  # "local" | "scicat"
    needs_login: bool
    can_create_investigations: bool


class DatasetHandle(Protocol):
    id: int
    name: str
    profile: str
    investigation: str | None
    mode: Literal["sync", "batch"]
    spec: DatasetSpec

    @property
    def done(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> RunReport | None:
        """The report when the run ended (None on timeout). Raises the run's DataUploaderError, if any."""


class Engine(Protocol):
    """One per process; a context manager. Thread-safe: call from any thread. Never blocks long except wait()."""

    def validate(self, spec: DatasetSpec) -> DatasetSpec:
        """Normalised spec, or raise a DataUploaderError whose ``field`` names the field at fault."""

    def start_sync(self, spec: DatasetSpec) -> DatasetHandle: ...

    def upload(self, spec: DatasetSpec) -> DatasetHandle: ...

    def stop_sync(self, handle: DatasetHandle, *, finish: bool = True) -> None:
        """Returns at once; DatasetSealed/DatasetFinished follow. finish=False: stop now, resume next time."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def paused(self) -> bool: ...

    def handles(self) -> list[DatasetHandle]:
        """Runs in progress in this engine (syncs and batch uploads)."""

    def snapshot(self) -> EngineSnapshot: ...

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Events from engine threads; the callback must not block (the tray only enqueues). Returns unsubscribe."""

    def retry_failed(self, handle: DatasetHandle) -> int: ...

    def resumable(self) -> list[DatasetSpec]:
        """Syncs that were running when the previous process ended (quit now / crash / logout)."""

    def profiles(self) -> list[ProfileInfo]: ...

    def login(self, credentials: Credentials, *, profile: str | None = None) -> Session: ...

    def logout(self, *, profile: str | None = None) -> None: ...

    def whoami(self, *, profile: str | None = None) -> Session | None: ...

    def investigations(self, *, profile: str | None = None) -> list[Investigation]: ...

    def close(self) -> None:
        """Stop everything now (finish=False semantics), journal consistent, rclone stopped."""


__all__: Sequence[str] = ()
