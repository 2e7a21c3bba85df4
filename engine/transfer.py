"""Moving one batch of files to storage and proving they arrived.

For each batch: refuse to replace content that DataUploader did not write, record the intent to write (so a
crash mid-copy is recognised as ours next time), copy (one rclone job per source folder; a lone file as a single
``copyfile`` call, which starts in milliseconds), then list the batch on storage and compare size and the
strongest hash the backend offers with the source. Only that comparison, never rclone's say-so, moves a file
to ``verified``. Failures are sorted into transient (retry later, however long the storage is away), permanent
(fail now, in plain words) and unknown (a few tries, then fail).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.hashing import Digest
from engine.journal import DISCOVERED, FAILED, UPLOADING, VERIFIED, FileRecord, Journal
from engine.rclone.daemon import RcloneError
from engine.rclone.errors import PERMANENT, TRANSIENT, classify
from engine.storage import RemoteFile, Storage

log = logging.getLogger(__name__)

# Files up to this size go alone through operations/copyfile when they are the whole batch (sync mode's
# common case); bigger ones and backlogs go as a job, which reports progress while it runs.
SINGLE_FILE_MAX = 64 << 20


@dataclass
class Item:
    """A file of the batch with the checksum of the exact bytes we are about to upload."""

    rec: FileRecord
    digest: Digest

    @property
    def source_root(self) -> Path:
        depth = self.rec.rel.count("/") + 1
        path = Path(self.rec.source)
        for _ in range(depth):
            path = path.parent
        return path


@dataclass
class BatchResult:
    verified: list[Item] = field(default_factory=list)
    failed: list[tuple[Item, str]] = field(default_factory=list)
    # Try again after a back-off; the flag says whether this try counts against max_attempts (transient
    # trouble, the storage being away, only delays a file and never uses up its attempts).
    retry: list[tuple[Item, str, bool]] = field(default_factory=list)
    changed: list[Item] = field(default_factory=list)  # source changed meanwhile; back to discovered
    bytes_moved: int = 0
    transient: bool = False  # the storage looked unreachable: back off before the next batch


def foreign_reason(rel: str) -> str:
    return (
        f"storage already holds a different '{rel}' that DataUploader did not write; it was not replaced "
        "(move it away on the storage or use another dataset name)"
    )


class BatchTransfer:
    """Uploads batches into one dataset folder on one storage."""

    def __init__(
        self,
        storage: Storage,
        journal: Journal,
        dataset_fs: str,
        verify_hash: str | None,
        *,
        max_attempts: int = 5,
        stop: threading.Event | None = None,
    ) -> None:
        self.storage = storage
        self.journal = journal
        self.dataset_fs = dataset_fs
        self.verify_hash = verify_hash
        self.max_attempts = max_attempts
        self.stop = stop
        self._existing: dict[str, RemoteFile] | None = None

    def _source_hash(self, item: Item) -> str | None:
        if self.verify_hash is None:
            return None
        return item.digest.sha256 if self.verify_hash == "sha256" else item.digest.alt

    def _stored_hash(self, remote: RemoteFile) -> str | None:
        return f"{self.verify_hash}:{remote.hash}" if self.verify_hash and remote.hash else None

    def _matches(self, item: Item, remote: RemoteFile) -> bool:
        """Size and, where the backend gives one, hash equal to the source."""
        if remote.size != item.digest.size:
            return False
        want = self._source_hash(item)
        return want is None or remote.hash is None or remote.hash == want

    def _ours(self, item: Item, remote: RemoteFile) -> bool:
        """The target holds the copy DataUploader made (the journal's record proves it) or one it was making."""
        rec = item.rec
        if rec.writing:
            return True
        if rec.stored_size is None or rec.stored_size != remote.size:
            return False
        have = self._stored_hash(remote)
        return rec.stored_hash is None or have is None or rec.stored_hash == have

    def existing(self) -> dict[str, RemoteFile]:
        """What the dataset folder held when this run started (sizes only; one listing per run)."""
        if self._existing is None:
            self._existing = self.storage.list(self.dataset_fs)
        return self._existing

    def run(self, items: Sequence[Item], on_bytes: Callable[[int], None] | None = None) -> BatchResult:
        result = BatchResult()
        seen: dict[str, RemoteFile] = {}
        try:
            to_copy = self._check_targets(items, result, seen)
            if to_copy:
                seen.update(self._copy(to_copy, result, on_bytes))
        except RcloneError as exc:
            # The storage (or rclone) failed as a whole, e.g. the server went away mid-batch.
            c = classify(exc.message)
            done = {id(i) for i in result.verified} | {id(i) for i, _ in result.failed}
            rest = [i for i in items if id(i) not in done]
            if c.kind == PERMANENT:
                result.failed.extend((i, c.reason) for i in rest)
            else:
                result.transient = c.kind == TRANSIENT
                result.retry.extend((i, c.reason, not result.transient) for i in rest)
                result.verified = [i for i in result.verified if i.rec.rel in seen]
            log.warning("batch of %d files: %s", len(items), c.reason)
        self._record(result, seen)
        return result

    def _check_targets(
        self, items: Sequence[Item], result: BatchResult, seen: dict[str, RemoteFile]
    ) -> list[Item]:
        """Which items to copy; items whose target already holds identical bytes are verified on the spot."""
        existing = self.existing()
        present = [i.rec.rel for i in items if i.rec.rel in existing]
        remote = self.storage.list(self.dataset_fs, present, self.verify_hash) if present else {}
        to_copy: list[Item] = []
        for item in items:
            r = remote.get(item.rec.rel)
            if r is None:
                to_copy.append(item)
            elif self._matches(item, r) and self._source_hash(item) is not None and r.hash is not None:
                # Identical bytes are already there (a crash after the copy, or an earlier upload): nothing
                # is overwritten and nothing needs to move.
                seen[item.rec.rel] = r
                result.verified.append(item)
            elif self._ours(item, r):
                to_copy.append(item)
            else:
                result.failed.append((item, foreign_reason(item.rec.rel)))
        return to_copy

    def _copy(
        self, items: list[Item], result: BatchResult, on_bytes: Callable[[int], None] | None
    ) -> dict[str, RemoteFile]:
        # Write-ahead: the journal says we are writing these paths before rclone touches them.
        self.journal.update_files(
            [(i.rec.id, {"state": UPLOADING, "writing": 1, "sha256": i.digest.sha256}) for i in items]
        )
        errors: dict[str, str] = {}
        job_error: str | None = None
        if len(items) == 1 and items[0].digest.size <= SINGLE_FILE_MAX:
            item = items[0]
            try:
                self.storage.put(item.source_root / item.rec.rel, self.dataset_fs, item.rec.rel)
                result.bytes_moved += item.digest.size
            except RcloneError as exc:
                if exc.status == 0:  # rclone itself is gone, not the file: let run() handle the batch
                    raise
                errors[item.rec.rel] = exc.message
        else:
            by_root: dict[Path, list[Item]] = defaultdict(list)
            for item in items:
                by_root[item.source_root].append(item)
            for root, group in by_root.items():
                base = result.bytes_moved

                def progress(n: int, base: int = base) -> None:
                    if on_bytes is not None:
                        on_bytes(base + n)

                outcome = self.storage.copy(
                    root, self.dataset_fs, [i.rec.rel for i in group], on_bytes=progress, stop=self.stop
                )
                result.bytes_moved += outcome.bytes
                errors.update(outcome.file_errors)
                job_error = outcome.error or job_error
        after = self.storage.list(self.dataset_fs, [i.rec.rel for i in items], self.verify_hash)
        for item in items:
            if _source_changed(item):
                result.changed.append(item)
                continue
            r = after.get(item.rec.rel)
            if r is not None and self._matches(item, r):
                result.verified.append(item)
                if self._existing is not None:
                    self._existing[item.rec.rel] = r
                continue
            if r is None:
                raw = errors.get(item.rec.rel) or job_error
                if raw is None:
                    result.retry.append((item, "not found on storage after the copy", True))
                    continue
                c = classify(raw)
                if c.kind == PERMANENT:
                    result.failed.append((item, c.reason))
                else:
                    result.transient |= c.kind == TRANSIENT
                    result.retry.append((item, c.reason, c.kind != TRANSIENT))
            elif r.size != item.digest.size:
                reason = f"size on storage {r.size} differs from the source's {item.digest.size}"
                result.retry.append((item, reason, True))
            else:
                result.retry.append(
                    (item, f"{self.verify_hash} checksum on storage differs from the source", True)
                )
        return after

    def _record(self, result: BatchResult, seen: dict[str, RemoteFile]) -> None:
        updates: list[tuple[int, dict[str, Any]]] = []
        for item in result.verified:
            r = seen.get(item.rec.rel)
            stored_hash = self._stored_hash(r) if r else None
            updates.append(
                (
                    item.rec.id,
                    {
                        "state": VERIFIED,
                        "writing": 0,
                        "reason": None,
                        "sha256": item.digest.sha256,
                        "alt_hash": item.digest.alt,
                        "size": item.digest.size,
                        "mtime_ns": item.digest.mtime_ns,
                        "stored_size": item.digest.size,
                        "stored_sha256": item.digest.sha256,
                        "stored_hash": stored_hash,
                        "verify": self.verify_hash if stored_hash else "size",
                    },
                )
            )
        for item, reason in result.failed:
            updates.append(
                (item.rec.id, {"state": FAILED, "reason": reason, "attempts": item.rec.attempts + 1})
            )
        for entry in list(result.retry):
            item, reason, counts = entry
            attempts = item.rec.attempts + (1 if counts else 0)
            if attempts >= self.max_attempts:
                result.retry.remove(entry)
                result.failed.append((item, reason))
                updates.append((item.rec.id, {"state": FAILED, "reason": reason, "attempts": attempts}))
            else:
                log.info("%s: will retry (%s)", item.rec.rel, reason)
                updates.append((item.rec.id, {"reason": reason, "attempts": attempts}))
        for item in list(result.changed):
            # The writer touched the file while we copied it: what is on storage is no version we hashed.
            attempts = item.rec.attempts + 1
            if attempts >= self.max_attempts:
                result.changed.remove(item)
                reason = "the file kept changing while it was uploaded; run again when the writer is done"
                result.failed.append((item, reason))
                updates.append((item.rec.id, {"state": FAILED, "reason": reason, "attempts": attempts}))
            else:
                updates.append(
                    (
                        item.rec.id,
                        {"state": DISCOVERED, "sha256": None, "alt_hash": None, "attempts": attempts},
                    )
                )
        if updates:
            self.journal.update_files(updates)


def _source_changed(item: Item) -> bool:
    try:
        st = os.stat(item.rec.source)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (item.digest.size, item.digest.mtime_ns)
