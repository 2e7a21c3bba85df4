"""Moving one batch of files to storage and proving they arrived.

For each batch: refuse to replace content that DataUploader did not write, record the intent to write (so a
crash mid-copy is recognised as ours next time), copy (one rclone job per source folder; a lone file as a single
``copyfile`` call, which starts in milliseconds), then list the batch on storage and compare size and a hash with
the source's (the strongest the backend keeps; xxh128 read back on a local folder, see :mod:`engine.storage`).
Only that comparison, never rclone's say-so, moves a file to ``verified``. Failures are sorted into transient
(retry later, however long the storage is away), permanent (fail now, in plain words) and unknown (a few tries,
then fail).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.hashing import Digest, SourceChanged, hash_file
from engine.journal import DISCOVERED, FAILED, UPLOADING, VERIFIED, FileRecord, Journal
from engine.rclone.daemon import RcloneError
from engine.rclone.errors import PERMANENT, TRANSIENT, Classified, classify
from engine.storage import RemoteFile, Storage
from engine.winpaths import native

log = logging.getLogger(__name__)

# Files up to this size go alone through operations/copyfile when they are the whole batch (sync mode's
# common case); bigger ones and backlogs go as a job, which reports progress while it runs.
SINGLE_FILE_MAX = 64 << 20


@dataclass
class Item:
    """A file of the batch with the checksum of the exact bytes we are about to upload."""

    rec: FileRecord
    digest: Digest


_NO_DIGEST = Digest(sha256="", alt=None, size=-1, mtime_ns=-1)


def source_root(f: FileRecord) -> str:
    """The folder that ``f.rel`` is relative to (the PATH argument it came from). String operations: this runs
    for every file of every batch, and Path objects cost more than the rest of the per-file bookkeeping."""
    path = f.source
    for _ in range(f.rel.count("/") + 1):
        path = os.path.dirname(path)
    return path


class Digests:
    """The checksums of a batch, computed in the pool a few files per task: a Future per file cost more than
    hashing a small file. Big files get a task each, so several hashing threads can share them. Hashing starts
    with :meth:`start` (or the first :meth:`get`): once the batch's write-ahead is in the journal, so that the
    hashing threads do not slow down the write-ahead that rclone's copy waits for."""

    FILES_PER_TASK = 32
    BYTES_PER_TASK = 32 << 20

    def __init__(
        self, pool: ThreadPoolExecutor, files: Sequence[FileRecord], fn: Callable[[FileRecord], Digest | str]
    ) -> None:
        self._pool, self._files, self._fn = pool, files, fn
        self._where: dict[int, tuple[Future[list[Digest | str]], int]] = {}

    def start(self) -> None:
        if self._where or not self._files:
            return
        part: list[FileRecord] = []
        size = 0
        for f in self._files:
            part.append(f)
            size += f.size
            if len(part) >= self.FILES_PER_TASK or size >= self.BYTES_PER_TASK:
                self._submit(part)
                part, size = [], 0
        if part:
            self._submit(part)

    def _submit(self, part: list[FileRecord]) -> None:
        fn = self._fn
        fut = self._pool.submit(lambda: [fn(f) for f in part])
        for i, f in enumerate(part):
            self._where[f.id] = (fut, i)

    def get(self, f: FileRecord) -> Digest | str:
        """The digest of ``f`` (or why it has none), waiting for its task if need be."""
        self.start()
        fut, i = self._where[f.id]
        return fut.result()[i]


@dataclass
class BatchResult:
    """What became of each file of a batch: for the journal, the events and the next attempt."""

    verified: list[Item] = field(default_factory=list)
    failed: list[tuple[Item, str]] = field(default_factory=list)
    # Try again after a back-off; the flag says whether this try counts against max_attempts (transient
    # trouble, the storage being away, only delays a file and never uses up its attempts).
    retry: list[tuple[Item, str, bool]] = field(default_factory=list)
    changed: list[Item] = field(default_factory=list)  # source changed meanwhile; back to discovered
    bytes_moved: int = 0
    transient: bool = False  # the storage looked unreachable: back off before the next batch
    full: bool = False  # ... because it is full (sync mode waits for space)


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
        pool: ThreadPoolExecutor,
        alt_hash: str | None,
        max_attempts: int = 5,
        stop: threading.Event | None = None,
        wait_when_full: bool = False,
    ) -> None:
        """``wait_when_full``: a full storage delays files instead of failing them (sync mode: someone will make
        room, and the instrument keeps writing meanwhile)."""
        self.wait_when_full = wait_when_full
        self.pool = pool
        self.alt = alt_hash
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
        if rec.stored_hash is None or have is None:
            return True
        # Checked with another hash then (a release that read local copies back with sha256): the size decides,
        # as where the storage has no hash.
        return rec.stored_hash == have or rec.stored_hash_kind != self.verify_hash

    def existing(self) -> dict[str, RemoteFile]:
        """What the dataset folder held when this run started (sizes only; one listing per run)."""
        if self._existing is None:
            self._existing = self.storage.list(self.dataset_fs)
        return self._existing

    def digest(self, f: FileRecord) -> Digest | str:
        """The checksum of the file as it is now, or the reason it cannot be uploaded."""
        try:
            st = os.stat(native(f.source))
        except FileNotFoundError:
            return "the source file disappeared before it could be uploaded"
        except OSError as exc:
            return f"cannot read the source file: {exc.strerror}"
        if not stat.S_ISREG(st.st_mode):
            return "the source is no longer a regular file (a FIFO, socket or device took its name)"
        if (
            f.sha256
            and (self.alt is None or f.alt_hash)
            and (st.st_size, st.st_mtime_ns) == (f.size, f.mtime_ns)
        ):
            return Digest(sha256=f.sha256, alt=f.alt_hash, size=f.size, mtime_ns=f.mtime_ns)
        for _ in range(3):
            try:
                return hash_file(f.source, self.alt)
            except SourceChanged:
                time.sleep(0.5)
            except OSError as exc:
                return f"cannot read the source file: {exc.strerror}"
        return "the file kept changing while it was being read; run again when the writer is done"

    def run(self, files: Sequence[FileRecord], on_bytes: Callable[[int], None] | None = None) -> BatchResult:
        """Upload one batch. Hashing runs in the pool *while* rclone copies, so every byte is read from a warm
        cache by the second reader and neither waits for the other; the digests are only needed to verify."""
        result = BatchResult()
        seen: dict[str, RemoteFile] = {}
        t0 = time.perf_counter()
        digests = Digests(self.pool, files, self.digest)
        try:
            existing = self.existing()
            to_copy = [f for f in files if f.rel not in existing]
            present = [f for f in files if f.rel in existing]
            if present:
                self._check_present(present, digests, result, seen, to_copy)
            if to_copy:
                seen.update(self._copy(to_copy, digests, result, on_bytes))
        except RcloneError as exc:
            # The storage (or rclone) failed as a whole, e.g. the server went away mid-batch.
            c = classify(exc.message)
            decided = {i.rec.id for i in result.verified} | {i.rec.id for i, _ in result.failed}
            for f in files:
                if f.id in decided:
                    continue
                d = digests.get(f)
                if isinstance(d, str):
                    result.failed.append((Item(f, _NO_DIGEST), d))
                else:
                    self._sort(Item(f, d), c, result)
            log.warning("batch of %d files: %s", len(files), c.reason)
        log.debug("batch of %d files: %.3f s", len(files), time.perf_counter() - t0)
        self._record(result, seen)
        return result

    def _check_present(
        self,
        present: list[FileRecord],
        digests: Digests,
        result: BatchResult,
        seen: dict[str, RemoteFile],
        to_copy: list[FileRecord],
    ) -> None:
        """Files whose path already exists on storage: identical → verified, ours → copy again, else refuse."""
        remote = self.storage.list(
            self.dataset_fs, [f.rel for f in present], self.verify_hash, mod_times=self.verify_hash is None
        )
        unproven: list[tuple[Item, RemoteFile]] = []
        for f in present:
            item = _item(f, digests, result)
            if item is None:
                continue
            r = remote.get(f.rel)
            if r is None:
                to_copy.append(f)
            elif self._matches(item, r) and self._source_hash(item) is not None and r.hash is not None:
                # Identical bytes are already there (a crash after the copy, or an earlier upload): nothing
                # is overwritten and nothing needs to move.
                seen[f.rel] = r
                result.verified.append(item)
            elif self._ours(item, r):
                to_copy.append(f)
            elif r.size == item.digest.size:
                unproven.append((item, r))  # same size, and no hash from the backend to tell: read it back
            else:
                result.failed.append((item, foreign_reason(f.rel)))
        if unproven:
            # After a lost journal, files on storage are unknown to us: adopt those whose content is proven
            # identical to the source, refuse the rest. Never overwrite what we cannot prove is ours.
            sums = self.storage.hashsum(self.dataset_fs, [i.rec.rel for i, _ in unproven])
            for item, r in unproven:
                if sums.get(item.rec.rel) == item.digest.sha256:
                    seen[item.rec.rel] = r
                    result.verified.append(item)
                else:
                    result.failed.append((item, foreign_reason(item.rec.rel)))

    def _copy(
        self,
        files: list[FileRecord],
        digests: Digests,
        result: BatchResult,
        on_bytes: Callable[[int], None] | None,
    ) -> dict[str, RemoteFile]:
        # Write-ahead: the journal says we are writing these paths before rclone touches them.
        t0 = time.perf_counter()
        self.journal.update_files([(f.id, {"state": UPLOADING, "writing": 1}) for f in files])
        log.debug("write-ahead of %d files: %.3f s", len(files), time.perf_counter() - t0)
        digests.start()
        errors: dict[str, str] = {}
        job_error: str | None = None
        errors_complete = True
        if len(files) == 1 and files[0].size <= SINGLE_FILE_MAX:
            f = files[0]
            try:
                self.storage.put(Path(f.source), self.dataset_fs, f.rel, stop=self.stop)
                result.bytes_moved += f.size
            except RcloneError as exc:
                if exc.status == 0:  # rclone itself is gone, not the file: let run() handle the batch
                    raise
                errors[f.rel] = exc.message
        else:
            by_root: dict[str, list[FileRecord]] = defaultdict(list)
            for f in files:
                by_root[source_root(f)].append(f)
            for root_name, group in by_root.items():
                root = Path(root_name)
                base = result.bytes_moved

                def progress(n: int, base: int = base) -> None:
                    if on_bytes is not None:
                        on_bytes(base + n)

                outcome = self.storage.copy(
                    root, self.dataset_fs, [f.rel for f in group], on_bytes=progress, stop=self.stop
                )
                result.bytes_moved += outcome.bytes
                errors.update(outcome.file_errors)
                job_error = outcome.error or job_error
                errors_complete &= outcome.errors_complete
        t0 = time.perf_counter()
        after = self.storage.list(
            self.dataset_fs, [f.rel for f in files], self.verify_hash, mod_times=self.verify_hash is None
        )
        log.debug("verify listing of %d files: %.3f s", len(files), time.perf_counter() - t0)
        for f in files:
            item = _item(f, digests, result)
            if item is None:
                continue
            if _source_changed(item):
                result.changed.append(item)
                continue
            r = after.get(f.rel)
            if r is not None and self._matches(item, r):
                result.verified.append(item)
                if self._existing is not None:
                    self._existing[f.rel] = r
                continue
            if r is None:
                raw = errors.get(f.rel) or job_error
                if (self.stop is not None and self.stop.is_set()) or self.storage.gate.paused:
                    # Interrupted on purpose: not a failed attempt; the journal keeps it "uploading" (ours).
                    result.retry.append((item, "interrupted", False))
                    continue
                if raw is None:
                    result.retry.append((item, "not found on storage after the copy", True))
                    continue
                c = classify(raw)
                if not errors_complete and f.rel not in errors and c.kind == PERMANENT:
                    # rclone did not say why this file failed (the copy was stopped before it was asked again,
                    # :meth:`Storage.copy`), and the job's error may be another file's: another try tells.
                    result.retry.append((item, f"the copy failed and rclone did not say why ({raw})", True))
                    continue
                self._sort(item, c, result)
            elif r.size != item.digest.size:
                result.retry.append(
                    (item, f"size on storage {r.size} differs from the source's {item.digest.size}", True)
                )
            else:
                result.retry.append(
                    (item, f"{self.verify_hash} checksum on storage differs from the source", True)
                )
        return after

    def _sort(self, item: Item, c: Classified, result: BatchResult) -> None:
        """Fail, retry later (transient trouble never uses up a file's attempts) or retry a few times."""
        if c.full and self.wait_when_full:
            result.transient = result.full = True
            result.retry.append((item, c.reason, False))
        elif c.kind == PERMANENT:
            result.failed.append((item, c.reason))
        else:
            result.transient |= c.kind == TRANSIENT
            result.retry.append((item, c.reason, c.kind != TRANSIENT))

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
                        "stored_mtime": r.mtime if r else None,
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


def _item(f: FileRecord, digests: Digests, result: BatchResult) -> Item | None:
    """The file with its digest, or None (and a failure recorded) if the source could not be read."""
    d = digests.get(f)
    if isinstance(d, str):
        result.failed.append((Item(f, _NO_DIGEST), d))
        return None
    return Item(f, d)


def _source_changed(item: Item) -> bool:
    try:
        st = os.stat(native(item.rec.source))
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (item.digest.size, item.digest.mtime_ns)
