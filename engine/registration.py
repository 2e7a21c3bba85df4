"""The last steps of a file and a dataset: catalogue registration and the manifest on storage.

A file is done only when it is verified on storage *and* registered; registration is batched (≤ 10,000 files a
call, the SciCat origdatablock limit) and recorded in the journal in the same step, so a crash between the two
re-sends at most one batch, which adapters treat as an update rather than a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from engine.catalogue import Catalogue, FileEntry, TransientError
from engine.journal import DISCOVERED, FAILED, REGISTERED, UPLOADING, VERIFIED, DatasetRecord, Journal
from engine.rclone.daemon import RcloneError
from engine.rclone.errors import classify
from engine.rocrate import MANIFEST_NAME, CrateDataset, CrateFile, write_crate
from engine.storage import Storage

log = logging.getLogger(__name__)

REGISTER_CHUNK = 10_000


def register_verified(journal: Journal, catalogue: Catalogue, rec: DatasetRecord) -> int:
    """Register every verified file of the dataset; return how many. Transient catalogue errors propagate."""
    assert rec.catalogue_id is not None
    total = 0
    while True:
        page = journal.files_in_state(rec.id, (VERIFIED,), limit=REGISTER_CHUNK)
        if not page:
            return total
        catalogue.append_files(
            rec.catalogue_id,
            [FileEntry(path=f.rel, size=f.size, mtime=f.mtime_ns / 1e9, sha256=f.sha256 or "") for f in page],
        )
        journal.update_files([(f.id, {"state": REGISTERED, "registered_sha256": f.sha256}) for f in page])
        total += len(page)


def _crate_files(journal: Journal, dataset_id: int) -> Iterable[CrateFile]:
    for f in journal.iter_files(dataset_id, (REGISTERED,)):
        yield CrateFile(path=f.rel, size=f.size, sha256=f.sha256 or "", mtime=f.mtime_ns / 1e9)


def complete_dataset(
    journal: Journal,
    catalogue: Catalogue,
    storage: Storage,
    rec: DatasetRecord,
    run_dir: Path,
    *,
    seal: bool = False,
) -> tuple[DatasetRecord, str | None]:
    """Write the manifest and finalise the catalogue entry if every file is registered.

    ``seal`` (the end of a sync) finalises with the files registered so far even if some failed or are still
    being written (those stay in the journal for the next run); nothing may be in flight.
    Returns the updated record and a failure reason (None when complete or simply not finished yet).
    """
    counts = journal.counts(rec.id)
    in_flight = sum(counts.by_state.get(s, 0) for s in (DISCOVERED, UPLOADING, VERIFIED))
    if counts.done == 0 or in_flight or (not seal and counts.done != counts.files):
        return rec, None
    crate = CrateDataset(
        name=rec.name,
        investigation=rec.investigation or None,
        description=rec.description,
        investigation_description=rec.investigation_description,
        meta=dict(rec.meta),
        created=rec.created,
        completed=time.time(),
    )
    dataset_fs = storage.fs(rec.target)
    # What the manifest says, not when it was written, decides whether it must be written again.
    digest = _manifest_key(journal, rec)
    if digest != rec.manifest_sha256:
        try:
            existing = storage.list(dataset_fs, [MANIFEST_NAME])
            if MANIFEST_NAME in existing and rec.manifest_sha256 is None:
                return rec, (
                    f"storage already holds a '{MANIFEST_NAME}' that DataUploader did not write; "
                    "it was not replaced (move it away on the storage)"
                )
            with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
                path = Path(tmp) / MANIFEST_NAME
                write_crate(path, crate, lambda: _crate_files(journal, rec.id))
                storage.put(path, dataset_fs, MANIFEST_NAME)
        except RcloneError as exc:
            return rec, f"could not write the manifest: {classify(exc.message).reason}; run again"
    assert rec.catalogue_id is not None
    try:
        catalogue.finalise(rec.catalogue_id, end_time=time.time())
    except TransientError as exc:
        return rec, f"catalogue not reachable to finalise the dataset: {exc}"
    rec = journal.update_dataset(rec.id, manifest_sha256=digest, state="complete")
    return rec, None


def _manifest_key(journal: Journal, rec: DatasetRecord) -> str:
    h = hashlib.sha256(
        json.dumps(
            [rec.name, rec.investigation, rec.description, rec.investigation_description, rec.meta],
            sort_keys=True,
        ).encode()
    )
    for f in _crate_files(journal, rec.id):
        h.update(f"{f.path}\0{f.size}\0{f.sha256}\0{f.mtime}\n".encode())
    return h.hexdigest()


__all__ = ["FAILED", "complete_dataset", "register_verified"]
