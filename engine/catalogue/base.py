"""The catalogue-neutral interface every user-office / data-catalogue adapter implements.

The upload pipeline only speaks this protocol, so the embedded ``local`` catalogue, SciCat and later ICAT or a
facility's own system are interchangeable. Errors are typed so the pipeline can tell "retry later" (transient)
from "tell the user and stop" (auth, permission, invalid metadata).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from engine.errors import Action, DataUploaderError, UsageError


class CatalogueError(DataUploaderError):
    """Base class of catalogue failures."""


class AuthError(CatalogueError, UsageError):
    """Not logged in, wrong password, or the session expired: log in (again)."""

    action = Action.LOG_IN


class NotPermitted(CatalogueError, UsageError):
    """The account may not do this (e.g. create an investigation)."""


class InvalidMetadata(CatalogueError, UsageError):
    """The catalogue refused the dataset's metadata; ``fields`` names what to fix."""

    def __init__(self, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class Conflict(CatalogueError):
    """The record exists already in a form that cannot be reconciled automatically."""


class TransientError(CatalogueError):
    """The catalogue is unreachable or overloaded; the same call later may succeed."""


@dataclass(frozen=True)
class Session:
    user: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    expires: float | None = None  # epoch seconds; None = never


@dataclass(frozen=True)
class Credentials:
    """What a person typed or pasted to log in: a user name and password, or a token (OIDC sites)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Investigation:
    id: str
    title: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What the catalogue needs to know about a dataset, independent of any backend's schema."""

    name: str
    investigation: str | None
    location: str  # where the files are on storage (rclone path of the dataset folder)
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    target: str = ""  # the dataset's folder below the storage root ("<investigation>/<name>")


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the dataset root, '/'-separated
    size: int
    mtime: float  # epoch seconds
    sha256: str


@runtime_checkable
class Catalogue(Protocol):
    name: str
    needs_login: bool
    can_create_investigations: bool

    def session(self) -> Session | None:
        """The current session, or None when logged out / expired."""

    def login(self, credentials: Credentials) -> Session:
        """Log in and keep the session (a token, never the password) for later runs; AuthError if refused."""

    def logout(self) -> None:
        """Forget the stored session."""

    def list_investigations(self) -> list[Investigation]: ...

    def get_investigation(self, investigation_id: str) -> Investigation | None: ...

    def create_investigation(self, investigation: Investigation) -> Investigation: ...

    def validate_dataset(self, spec: DatasetSpec) -> None:
        """Raise :class:`InvalidMetadata` if the catalogue would refuse ``spec``; called before any transfer."""

    def find_dataset(self, spec: DatasetSpec) -> str | None:
        """The id of a dataset already registered for ``spec`` (so a crash never creates it twice)."""

    def create_dataset(self, spec: DatasetSpec) -> str: ...

    def update_dataset(self, dataset_id: str, spec: DatasetSpec) -> None: ...

    def append_files(self, dataset_id: str, entries: Sequence[FileEntry]) -> None:
        """Register files (in catalogue-sized batches). A path registered before gets its new size/checksum;
        an append-only catalogue (SciCat) lists the new version in addition to the old one."""

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        """The paths of ``entries`` already registered with exactly that sha256.

        Called only to recover from an :meth:`append_files` whose outcome is unknown (a crash, a lost answer),
        so an append-only catalogue never lists the same file version twice.
        """

    def finalise(self, dataset_id: str, *, end_time: float) -> None:
        """Mark the dataset complete (all its files registered)."""

    def close(self) -> None: ...
