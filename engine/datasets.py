"""Opening a dataset for upload: validated names, its place on storage, its journal and catalogue records.

Shared by batch and sync mode so both agree on where a dataset lives and what makes it "the same dataset"
(profile + investigation + name).
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from engine.catalogue import Catalogue, DatasetSpec, Investigation, NotPermitted, TransientError
from engine.config import Profile
from engine.errors import Action, BusyError, UsageError
from engine.journal import DatasetRecord, Journal
from engine.names import validate_name
from engine.storage import join_fs, redact_fs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetRequest:
    """The user's description of a dataset (CLI options or the tray's dialog)."""

    name: str
    investigation: str | None = None
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def validated(self) -> DatasetRequest:
        validate_name(self.name, "dataset")
        if self.investigation is not None:
            validate_name(self.investigation, "investigation")
        for key, value in self.meta.items():
            if not key or not key.strip() or any(unicodedata.category(c) == "Cc" for c in key):
                raise UsageError(
                    f"metadata key {key!r} is empty or has control characters; use --meta KEY=VALUE"
                )
            if any(unicodedata.category(c) == "Cc" and c not in "\t\n" for c in value):
                raise UsageError(f"metadata value of {key!r} has control characters; remove them")
        return self

    @property
    def target(self) -> str:
        """The dataset's folder below the storage root."""
        return f"{self.investigation}/{self.name}" if self.investigation else self.name


def parse_meta(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (from ``--meta``) to a dict; a repeated key is an error, not a silent overwrite."""
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--meta {pair!r} is not KEY=VALUE; write it like --meta sample=LaB6")
        if key in meta:
            raise UsageError(f"--meta key {key!r} given twice; give each key once")
        meta[key] = value
    return meta


def lock_dataset(run_dir: Path, profile: str, req: DatasetRequest) -> FileLock:
    """An exclusive, cross-process lock on one dataset: two uploaders must never interleave on it."""
    key = hashlib.sha256(f"{profile}\0{req.investigation or ''}\0{req.name}".encode()).hexdigest()[:24]
    lock = FileLock(str(run_dir / f"dataset-{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BusyError(
            f"dataset '{req.name}' is being uploaded by another DataUploader process; wait for it or stop it"
        ) from None
    return lock


def open_dataset(journal: Journal, profile: Profile, req: DatasetRequest) -> DatasetRecord:
    """Find or create the journal record; refuse if the profile's storage moved since the dataset started."""
    rec = journal.find_dataset(profile.name, req.investigation or "", req.name)
    if rec is None:
        return journal.create_dataset(
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
    if rec.storage != redact_fs(profile.storage):
        raise UsageError(
            f"dataset '{req.name}' was uploaded to {rec.storage} but profile '{profile.name}' now points at "
            f"{profile.storage}; use a new dataset name"
        )
    changes: dict[str, object] = {}
    if req.description is not None and req.description != rec.description:
        changes["description"] = req.description
    if (
        req.investigation_description is not None
        and req.investigation_description != rec.investigation_description
    ):
        changes["investigation_description"] = req.investigation_description
    if req.meta and {**rec.meta, **req.meta} != rec.meta:
        changes["meta"] = {**rec.meta, **req.meta}
    if changes:
        rec = journal.update_dataset(rec.id, **changes)
    return rec


def dataset_spec(rec: DatasetRecord) -> DatasetSpec:
    return DatasetSpec(
        name=rec.name,
        investigation=rec.investigation or None,
        location=join_fs(rec.storage, rec.target),
        description=rec.description,
        investigation_description=rec.investigation_description,
        meta=dict(rec.meta),
        created=rec.created,
        target=rec.target,
    )


def ensure_in_catalogue(
    catalogue: Catalogue, journal: Journal, rec: DatasetRecord, *, defer_if_unreachable: bool = True
) -> DatasetRecord:
    """Create the investigation (if allowed and missing), validate the dataset, and create it in the catalogue,
    idempotently. Called before anything is transferred, so bad metadata or a missing permission
    stops the run while nothing has moved.

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
    spec = dataset_spec(rec)
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
                Investigation(id=rec.investigation, description=rec.investigation_description)
            )
    catalogue.validate_dataset(spec)
    if rec.catalogue_id is None:
        pid = catalogue.find_dataset(spec) or catalogue.create_dataset(spec)
        rec = journal.update_dataset(rec.id, catalogue_id=pid)
    else:
        catalogue.update_dataset(rec.catalogue_id, spec)
    return rec
