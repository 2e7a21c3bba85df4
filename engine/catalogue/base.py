"""The catalogue-neutral interface every user-office / data-catalogue adapter implements.

The upload pipeline only speaks this protocol, so the embedded ``local`` catalogue, SciCat and later ICAT or a
facility's own system are interchangeable. Errors are typed so the pipeline can tell "retry later" (transient)
from "tell the user and stop" (auth, permission, invalid metadata).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.errors import Action, DataUploaderError, UsageError

# A metadata value as the user typed it, typed: text, a number, or a quantity ``{"value": 300, "unit": "K"}``
# (SciCat's form for numbers with units). See :func:`engine.datasets.parse_meta`.
MetaValue = str | int | float | dict[str, Any]


class CatalogueError(DataUploaderError):
    """Base class of catalogue failures."""


class AuthError(CatalogueError, UsageError):
    """Not logged in, wrong password, or the session expired: log in (again)."""

    action = Action.LOG_IN


class NotPermitted(CatalogueError, UsageError):
    """The account may not do this (e.g. create an investigation)."""


class InvalidMetadata(CatalogueError, UsageError):
    """The catalogue refused the dataset's metadata; ``fields`` names what to fix."""

    def __init__(
        self,
        message: str,
        fields: Sequence[str] = (),
        *,
        field: str | None = None,
        action: Action | None = None,
    ) -> None:
        super().__init__(message, field=field, action=action)
        self.fields = tuple(fields)


class Conflict(CatalogueError):
    """The record exists already in a form that cannot be reconciled automatically."""


class NotACatalogue(CatalogueError, UsageError):
    """The URL answers, but not as the configured catalogue (a web page, a proxy's login, another service)."""


class TransientError(CatalogueError):
    """The catalogue is unreachable or overloaded; the same call later may succeed."""


@dataclass
class Session:
    """Who is logged in to a catalogue, and until when (the front ends warn before it ends)."""

    user: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    expires: float | None = None  # epoch seconds; None = never
    # A facility's service account (SciCat: a "local" functional account such as `ingestor`), not a person:
    # its e-mail must never stand in for a principal investigator or a proposer.
    functional: bool = False


@dataclass
class Credentials:
    """What a person typed or pasted to log in: a user name and password, or a token (OIDC sites)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass
class Investigation:
    """An investigation (proposal) as the catalogue knows it: every dataset belongs to one."""

    id: str
    title: str | None = None
    description: str | None = None
    pi: str | None = None  # the principal investigator's e-mail, when the user gave one


@dataclass
class DatasetSpec:
    """What the catalogue needs to know about a dataset, independent of any backend's schema."""

    name: str
    investigation: str | None
    location: str  # where the files are on storage (rclone path of the dataset folder)
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, MetaValue] = field(default_factory=dict)
    created: float = 0.0  # when the data was taken: the oldest file's mtime (else when the upload started)
    target: str = ""  # the dataset's folder below the storage root ("<investigation>/<name>")
    pi: str | None = None  # principal investigator's e-mail given by the user; None: the investigation's


@dataclass
class DatasetChanges:
    """Which of the user's fields changed on this run compared with what DataUploader registered before.

    A catalogue record belongs to curators as much as to the uploader: a re-run must only write what the user
    changed, never put back what a curator edited or removed.
    """

    description: bool = False
    investigation_description: bool = False
    meta: frozenset[str] = frozenset()
    pi: bool = False

    def __bool__(self) -> bool:
        return self.description or self.investigation_description or bool(self.meta) or self.pi


@dataclass
class FileEntry:
    """One file as the catalogue registers it, with the sha256 a user can check a download against."""

    path: str  # relative to the dataset root, '/'-separated
    size: int
    mtime: float  # epoch seconds
    sha256: str


@runtime_checkable
class Catalogue(Protocol):
    name: str
    needs_login: bool
    can_create_investigations: bool
    # Whether sending the same files again is harmless and as cheap as the first time (the local catalogue's
    # upsert): then a registration whose outcome is unknown is simply sent again, and the journal keeps no
    # intents for it. A remote catalogue keeps them (:mod:`engine.registration`).
    resend_is_free: bool

    def probe(self) -> None:
        """Check that the catalogue answers and is the kind the profile names, before a person is asked for a
        password; raise :class:`CatalogueError` with the plain reason (refused, unknown host, no answer, not
        this kind of server)."""

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

    def update_dataset(self, dataset_id: str, spec: DatasetSpec, changes: DatasetChanges | None) -> None:
        """Write what the user changed (``changes``) into the existing record, leaving everything else as it is
        in the catalogue. ``None``: the record was found again rather than known (a lost journal, a crash before
        its id was recorded): fill in only what it lacks."""

    def append_files(self, dataset_id: str, entries: Sequence[FileEntry]) -> None:
        """Register files (in catalogue-sized batches). Afterwards the dataset lists exactly one entry per path of
        ``entries``, holding that entry's size and checksum: a path listed before with another checksum is
        replaced (never listed twice), one listed with the same checksum is left as it is."""

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        """The paths of ``entries`` already registered with exactly that sha256.

        Called only to recover from an :meth:`append_files` whose outcome is unknown (a crash, a lost answer),
        so an append-only catalogue never lists the same file version twice.
        """

    def finalise(self, dataset_id: str, *, start_time: float, end_time: float) -> None:
        """Mark the dataset complete (all its files registered). ``start_time``/``end_time`` are the oldest and
        newest registered file's mtime: when the data was taken, not when it was uploaded, so an unchanged
        re-run finds nothing to change."""

    def close(self) -> None: ...
