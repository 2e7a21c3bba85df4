"""The last steps of a file and a dataset: catalogue registration and the manifest on storage.

A file is done only when it is verified on storage *and* registered; registration is batched (≤ 10,000 files a
call, the SciCat origdatablock limit). For a remote catalogue each batch is journaled as an intent before the
call and marked registered after it; a crash in between leaves the intent, and the next run asks the catalogue
what arrived before sending the rest, so an append-only catalogue (SciCat) never lists the same file version
twice. The local catalogue's append is an upsert on this disk: a batch whose outcome is unknown is sent again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from engine.backoff import backoff
from engine.catalogue import AuthError, Catalogue, CatalogueError, FileEntry, TransientError
from engine.journal import (
    DISCOVERED,
    REGISTERED,
    UPLOADING,
    VERIFIED,
    DatasetRecord,
    FileRecord,
    Journal,
)
from engine.rclone.daemon import RcloneError
from engine.rclone.errors import TRANSIENT, classify
from engine.rocrate import MANIFEST_NAME, CrateDataset, CrateFile, is_own_crate, write_crate
from engine.scratch import scratch_dir
from engine.storage import Storage

log = logging.getLogger(__name__)

REGISTER_CHUNK = 10_000
MANIFEST_ATTEMPTS = 3


def _entry(f: FileRecord, sha256: str | None = None) -> FileEntry:
    return FileEntry(path=f.rel, size=f.size, mtime=f.mtime_ns / 1e9, sha256=sha256 or f.sha256 or "")


def register_verified(journal: Journal, catalogue: Catalogue, rec: DatasetRecord) -> int:
    """Register every verified file of the dataset; return how many. Catalogue errors propagate.

    Each page is recorded as an intent before the catalogue call and marked registered in one transaction after
    it; intents left by a crash or a lost answer are first checked against the catalogue (:func:`_recover`), so
    a file version is never listed twice in an append-only catalogue.
    A catalogue where a resend is free (the local one) needs no intents: a page whose outcome is unknown is
    still verified in the journal and is sent again.
    """
    assert rec.catalogue_id is not None
    total = _recover(journal, catalogue, rec)
    intents = not catalogue.resend_is_free
    while True:
        page = journal.files_in_state(rec.id, (VERIFIED,), limit=REGISTER_CHUNK)
        if not page:
            return total
        if intents:
            journal.begin_registering(rec.id, page)
        catalogue.append_files(rec.catalogue_id, [_entry(f) for f in page])
        total += journal.end_registering(rec.id, [(f.id, f.sha256 or "") for f in page], intents=intents)


def _recover(journal: Journal, catalogue: Catalogue, rec: DatasetRecord) -> int:
    """Settle registrations whose outcome is unknown: what the catalogue has is recorded as registered, the rest
    goes back to the queue (it is still verified) and is sent again."""
    assert rec.catalogue_id is not None
    pending = journal.registering(rec.id)
    if not pending:
        return 0
    found = catalogue.registered(rec.catalogue_id, [_entry(f, sha) for f, sha in pending])
    done = [(f.id, sha) for f, sha in pending if f.rel in found]
    again = [f.id for f, _ in pending if f.rel not in found]
    n = journal.end_registering(rec.id, done, again)
    log.info(
        "dataset %s: %d interrupted registrations were in the catalogue already, %d are sent again",
        rec.name,
        len(done),
        len(again),
    )
    return n


def _crate_files(journal: Journal, key: _ManifestKey) -> Iterable[CrateFile]:
    """The registered files for the manifest; ``key`` learns them on the way (one pass over the journal)."""
    for rel, size, sha256, mtime_ns in journal.manifest_rows(key.dataset_id, (REGISTERED,)):
        yield CrateFile(path=rel, size=size, sha256=sha256 or "", mtime=key.add(rel, size, sha256, mtime_ns))


def complete_dataset(
    journal: Journal,
    catalogue: Catalogue,
    storage: Storage,
    rec: DatasetRecord,
    run_dir: Path,
    *,
    seal: bool = False,
    license: str | None = None,
) -> tuple[DatasetRecord, str | None]:
    """Write the manifest and finalise the catalogue entry if every file is registered.

    ``seal`` (the end of a sync) finalises with the files registered so far even if some failed or are still
    being written (those stay in the journal for the next run); nothing may be in flight.
    Returns the updated record and a failure reason (None when complete or simply not finished yet).
    """
    counts = journal.counts(rec.id)
    in_flight = sum(counts.by_state.get(s, 0) for s in (DISCOVERED, UPLOADING, VERIFIED))
    whole = counts.done == counts.files and not journal.skipped(rec.id, refused=True, limit=1)
    if counts.done == 0 or in_flight or (not seal and not whole):
        return rec, None
    crate = CrateDataset(
        name=rec.name,
        investigation=rec.investigation or None,
        description=rec.description,
        investigation_description=rec.investigation_description,
        meta=dict(rec.meta),
        created=rec.created,
        completed=time.time(),
        license=license,
    )
    dataset_fs = storage.fs(rec.target)
    # What the manifest says, not when it was written, decides whether it must be written again. Never written,
    # it must be: its key is then learnt while it is written, not in a pass of its own.
    digest, first, last = _manifest_key(journal, rec) if rec.manifest_sha256 is not None else ("", 0.0, 0.0)
    if digest != rec.manifest_sha256:
        for attempt in range(MANIFEST_ATTEMPTS):
            try:
                existing = storage.list(dataset_fs, [MANIFEST_NAME])
                if (
                    MANIFEST_NAME in existing
                    and rec.manifest_sha256 is None
                    and not _our_manifest(storage, rec, run_dir)
                ):
                    return rec, (
                        f"storage already holds a '{MANIFEST_NAME}' that DataUploader did not write; "
                        "it was not replaced (move it away on the storage)"
                    )
                with scratch_dir(run_dir) as tmp:
                    path = tmp / MANIFEST_NAME
                    key = _ManifestKey(rec)
                    write_crate(path, crate, _crate_files(journal, key))
                    storage.put(path, dataset_fs, MANIFEST_NAME)
                digest, first, last = key.result()
                break
            except RcloneError as exc:
                c = classify(exc.message)
                # rclone restarting (status 0) or a blip of the storage: worth a few more tries right now.
                if (exc.status == 0 or c.kind == TRANSIENT) and attempt + 1 < MANIFEST_ATTEMPTS:
                    log.warning("writing the manifest failed (%s); trying again", c.reason)
                    time.sleep(backoff(attempt))
                    continue
                return rec, f"could not write the manifest: {c.reason}; run again"
    if rec.catalogue_id is None:
        return rec, "the dataset is not in the catalogue yet; run again"
    if digest == rec.manifest_sha256 and rec.state == "complete":
        return rec, None  # nothing changed since the dataset was last finalised: leave the catalogue alone
    try:
        # The manifest itself is not registered: the catalogue lists the data files (numberOfFiles counts them),
        # the manifest describes them and is rewritten whenever they change.
        catalogue.finalise(rec.catalogue_id, start_time=first, end_time=last)
    except TransientError as exc:
        return rec, f"catalogue not reachable to finalise the dataset: {exc}"
    except AuthError as exc:
        return rec, f"could not finalise the dataset in the catalogue: {exc}, then run the same command again"
    except CatalogueError as exc:
        return rec, f"the catalogue refused to finalise the dataset: {exc}"
    rec = journal.update_dataset(rec.id, manifest_sha256=digest, state="complete")
    return rec, None


def _our_manifest(storage: Storage, rec: DatasetRecord, run_dir: Path) -> bool:
    """Whether the manifest on storage is one DataUploader wrote for this dataset (the journal that knew it was
    lost): such a manifest is rewritten, anything else is left alone."""
    with scratch_dir(run_dir) as tmp:
        path = storage.fetch(storage.fs(rec.target), MANIFEST_NAME, tmp)  # rclone trouble: the caller's
        try:
            return is_own_crate(path, rec.name)
        except (OSError, ValueError) as exc:  # not JSON, not a crate: not ours
            log.info("the manifest on storage is not DataUploader's: %s", exc)
            return False


class _ManifestKey:
    """The manifest's content key, and the oldest and newest registered file's mtime (when the data was taken:
    the catalogue's creation and end time), fed the journal's rows as they are (no CrateFile each: the same text
    as ever, so a finished dataset's key does not change)."""

    def __init__(self, rec: DatasetRecord) -> None:
        self.dataset_id = rec.id
        self.created = rec.created
        self.h = hashlib.sha256(
            json.dumps(
                [rec.name, rec.investigation, rec.description, rec.investigation_description, rec.meta],
                sort_keys=True,
            ).encode()
        )
        self.first, self.last = float("inf"), float("-inf")

    def add(self, rel: str, size: int, sha256: str | None, mtime_ns: int) -> float:
        mtime = mtime_ns / 1e9
        self.h.update(f"{rel}\0{size}\0{sha256 or ''}\0{mtime}\n".encode())
        if mtime < self.first:
            self.first = mtime
        if mtime > self.last:
            self.last = mtime
        return mtime

    def result(self) -> tuple[str, float, float]:
        if self.first > self.last:  # no file registered (complete_dataset never gets here): keep times sane
            return self.h.hexdigest(), self.created, self.created
        return self.h.hexdigest(), self.first, self.last


def _manifest_key(journal: Journal, rec: DatasetRecord) -> tuple[str, float, float]:
    key = _ManifestKey(rec)
    for row in journal.manifest_rows(rec.id, (REGISTERED,)):
        key.add(*row)
    return key.result()


__all__ = ["complete_dataset", "register_verified"]
