"""Opening a dataset for upload: validated names, its place on storage, its journal and catalogue records.

Shared by batch and sync mode so both agree on where a dataset lives and what makes it "the same dataset"
(profile + investigation + name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.catalogue import (
    Catalogue,
    DatasetChanges,
    DatasetSpec,
    Investigation,
    MetaValue,
    NotPermitted,
    TransientError,
)
from engine.config import Profile
from engine.errors import Action, BusyError, UsageError
from engine.journal import DatasetRecord, Journal
from engine.locks import HeldLock, try_lock
from engine.names import validate_name
from engine.storage import join_fs, redact_fs

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass
class DatasetRequest:
    """The user's description of a dataset (CLI options or the tray's dialog)."""

    name: str
    investigation: str | None = None
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, MetaValue] = field(default_factory=dict)
    pi: str | None = None  # principal investigator's e-mail; None: the investigation's (the facility's) PI
    investigation_title: str | None = None  # only used when the investigation is created

    def validated(self) -> DatasetRequest:
        validate_name(self.name, "dataset")
        if self.investigation is not None:
            validate_name(self.investigation, "investigation")
        for key, value in self.meta.items():
            if not key or not key.strip() or any(unicodedata.category(c) == "Cc" for c in key):
                raise UsageError(
                    f"metadata key {key!r} is empty or has control characters; use --meta KEY=VALUE"
                )
            text = value if isinstance(value, str) else json.dumps(value)
            if any(unicodedata.category(c) == "Cc" and c not in "\t\n" for c in text):
                raise UsageError(f"metadata value of {key!r} has control characters; remove them")
        if self.pi is not None and not _EMAIL.match(self.pi):
            raise UsageError(
                f"the principal investigator {self.pi!r} is not an e-mail address (e.g. a.b@example.org)",
                field="pi",
            )
        if self.investigation_title is not None and not self.investigation_title.strip():
            raise UsageError("the investigation title is empty", field="investigation_title")
        return self

    @property
    def target(self) -> str:
        """The dataset's folder below the storage root."""
        return f"{self.investigation}/{self.name}" if self.investigation else self.name


# --meta VALUE syntax: a JSON number becomes a number; "<JSON number> <unit>" (one space, a unit without spaces)
# becomes SciCat's quantity {"value": n, "unit": u}; a JSON string ("...") is that string; anything else is text.
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_QUANTITY = re.compile(rf"^({_NUMBER}) (\S+)$")


def _number(text: str) -> int | float:
    value = json.loads(text)
    assert isinstance(value, (int, float))
    return value


def parse_meta_value(text: str) -> MetaValue:
    """One ``--meta`` VALUE (already trimmed) to its typed form; see :func:`parse_meta`."""
    if re.fullmatch(_NUMBER, text):
        return _number(text)
    quantity = _QUANTITY.match(text)
    if quantity:
        return {"value": _number(quantity.group(1)), "unit": quantity.group(2)}
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        if isinstance(decoded, str):
            return decoded
    return text


def parse_meta(pairs: list[str]) -> dict[str, MetaValue]:
    """``KEY=VALUE`` strings (from ``--meta``) to a dict; a repeated key is an error, not a silent overwrite.

    Both sides are trimmed. Values keep their type so a catalogue can search and plot them: ``300`` or
    ``-1.5e3`` is a number, ``300 K`` or ``2.5 mm`` a quantity (``{"value": 300, "unit": "K"}``), ``"300 K"``
    (JSON-quoted) the text ``300 K``, and anything else text.
    """
    meta: dict[str, MetaValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--meta {pair!r} is not KEY=VALUE; write it like --meta sample=LaB6")
        if key in meta:
            raise UsageError(f"--meta key {key!r} given twice; give each key once")
        meta[key] = parse_meta_value(value.strip())
    return meta


@dataclass
class _RunRequest:
    """What a run's request says that the journal does not keep (yet): who the PI is, the investigation's title,
    which fields the user changed, and their new values. The journal takes the values once the catalogue has
    them, so a change that did not reach the catalogue (refused, catalogue away, run stopped) is seen again by the
    next run; and only those fields are written to a catalogue record that exists already."""

    pi: str | None
    investigation_title: str | None
    changes: DatasetChanges
    values: dict[str, Any]


# Per journal file and dataset id: set by open_dataset, used by ensure_in_catalogue later in the process (the
# engine opens a dataset to start a run and again inside it; the catalogue may only be reachable at the first
# registration).
_run_requests: dict[tuple[str, int], _RunRequest] = {}
_run_requests_lock = threading.Lock()


def lock_dataset(run_dir: Path, profile: str, req: DatasetRequest) -> HeldLock:
    """An exclusive, cross-process lock on one dataset: two uploaders must never interleave on it."""
    key = hashlib.sha256(f"{profile}\0{req.investigation or ''}\0{req.name}".encode()).hexdigest()[:24]
    lock = try_lock(run_dir / f"dataset-{key}.lock")
    if lock is None:
        raise BusyError(
            f"dataset '{req.name}' is being uploaded by another DataUploader process; wait for it or stop it"
        )
    return lock


def open_dataset(journal: Journal, profile: Profile, req: DatasetRequest) -> DatasetRecord:
    """Find or create the journal record; refuse if the profile's storage moved since the dataset started.

    For a record that exists, what the request changes (description, investigation description, --meta keys) is
    returned in the record but written to the journal only by :func:`ensure_in_catalogue`, once the catalogue
    accepted it; that function also gets what the journal does not keep: the PI and investigation title."""
    rec = journal.find_dataset(profile.name, req.investigation or "", req.name)
    if rec is None:
        rec = journal.create_dataset(
            profile=profile.name,
            investigation=req.investigation or "",
            name=req.name,
            storage=redact_fs(profile.storage),
            target=req.target,
            catalogue=profile.catalogue,
            description=req.description,
            investigation_description=req.investigation_description,
            meta=req.meta,
        )
        # A new record: the catalogue gets it whole when the dataset is created there.
        _remember(journal, rec, _RunRequest(req.pi, req.investigation_title, DatasetChanges(), {}))
        return rec
    if rec.storage != redact_fs(profile.storage):
        raise UsageError(
            f"dataset '{req.name}' was uploaded to {rec.storage} but profile '{profile.name}' now points at "
            f"{profile.storage}; use a new dataset name"
        )
    values: dict[str, Any] = {}
    if req.description is not None and req.description != rec.description:
        values["description"] = req.description
    if (
        req.investigation_description is not None
        and req.investigation_description != rec.investigation_description
    ):
        values["investigation_description"] = req.investigation_description
    changed_keys = frozenset(k for k, v in req.meta.items() if k not in rec.meta or rec.meta[k] != v)
    if changed_keys:
        values["meta"] = {**rec.meta, **req.meta}
    changes = DatasetChanges(
        description="description" in values,
        investigation_description="investigation_description" in values,
        meta=changed_keys,
        pi=req.pi is not None,
    )
    _remember(journal, rec, _RunRequest(req.pi, req.investigation_title, changes, values))
    return dataclasses.replace(rec, **values)


def _key(journal: Journal, rec: DatasetRecord) -> tuple[str, int]:
    return str(journal.path), rec.id


def _remember(journal: Journal, rec: DatasetRecord, run: _RunRequest) -> None:
    with _run_requests_lock:
        _run_requests[_key(journal, rec)] = run


def _run_request(journal: Journal, rec: DatasetRecord) -> _RunRequest:
    with _run_requests_lock:
        return _run_requests.get(_key(journal, rec)) or _RunRequest(None, None, DatasetChanges(), {})


def _applied(journal: Journal, rec: DatasetRecord, run: _RunRequest) -> DatasetRecord:
    """The catalogue has what the user changed: the journal takes it, and nothing is pending any more."""
    with _run_requests_lock:
        _run_requests[_key(journal, rec)] = _RunRequest(run.pi, run.investigation_title, DatasetChanges(), {})
    return journal.update_dataset(rec.id, **run.values) if run.values else rec


def dataset_spec(rec: DatasetRecord, *, created: float | None = None, pi: str | None = None) -> DatasetSpec:
    return DatasetSpec(
        name=rec.name,
        investigation=rec.investigation or None,
        location=join_fs(rec.storage, rec.target),
        description=rec.description,
        investigation_description=rec.investigation_description,
        meta=dict(rec.meta),
        created=rec.created if created is None else created,
        target=rec.target,
        pi=pi,
    )


def _oldest_mtime(journal: Journal, rec: DatasetRecord) -> float:
    """When the data was taken, as far as the files tell: the oldest file's mtime (the run's start if none)."""
    oldest = journal.oldest_mtime_ns(rec.id)
    return rec.created if oldest is None else oldest / 1e9


def ensure_in_catalogue(
    catalogue: Catalogue, journal: Journal, rec: DatasetRecord, *, defer_if_unreachable: bool = True
) -> DatasetRecord:
    """Create the investigation (if allowed and missing), validate the dataset, and create it in the catalogue,
    idempotently. Called before anything is transferred, so bad metadata or a missing permission
    stops the run while nothing has moved. A dataset the catalogue has already is only written where the user
    changed something on this run (see :func:`open_dataset`): a catalogue record is curated by people too.

    A catalogue that is merely unreachable does not stop the data (an instrument PC's disk fills up whatever the
    catalogue's state): with ``defer_if_unreachable`` the record comes back without a catalogue id, and the
    uploader validates and creates the dataset at its first registration attempt once the catalogue is back.
    """
    try:
        return _ensure_in_catalogue(catalogue, journal, rec)
    except TransientError as exc:
        if not defer_if_unreachable:
            raise
        log.warning(
            "catalogue not reachable (%s); uploading anyway, the dataset is validated and registered when it is back",
            exc,
        )
        return rec


def _ensure_in_catalogue(catalogue: Catalogue, journal: Journal, rec: DatasetRecord) -> DatasetRecord:
    # The investigation first: whether it exists (or may be created) is the first thing a user must fix, and the
    # dataset's validation depends on it (SciCat takes the owner group from the proposal).
    run = _run_request(journal, rec)
    rec = dataclasses.replace(rec, **run.values)  # what the user asked for now, not yet in the journal
    if rec.investigation:
        inv = catalogue.get_investigation(rec.investigation)
        if inv is None:
            if not catalogue.can_create_investigations:
                raise NotPermitted(
                    f"investigation '{rec.investigation}' does not exist in the {catalogue.name} catalogue and "
                    "this account may not create it",
                    field="investigation",
                    action=Action.PICK_INVESTIGATION,
                )
            catalogue.create_investigation(
                Investigation(
                    id=rec.investigation,
                    title=run.investigation_title,
                    description=rec.investigation_description,
                    pi=run.pi,
                )
            )
    if rec.catalogue_id is None:
        spec = dataset_spec(rec, created=_oldest_mtime(journal, rec), pi=run.pi)
    else:
        spec = dataset_spec(rec, pi=run.pi)
    catalogue.validate_dataset(spec)
    if rec.catalogue_id is None:
        pid = catalogue.find_dataset(spec)
        if pid is None:
            pid = catalogue.create_dataset(spec)
        else:  # found again (a lost journal, a crash before the id was recorded): add what it lacks
            catalogue.update_dataset(pid, spec, None)
        rec = journal.update_dataset(rec.id, catalogue_id=pid)
    elif run.changes:
        catalogue.update_dataset(rec.catalogue_id, spec, run.changes)
    return _applied(journal, rec, run)
