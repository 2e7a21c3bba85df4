"""Batch mode: everything under the given paths, uploaded, verified and registered as one dataset.

The run is a loop over the journal, not over the file system: scan → merge into the journal → for each batch of
pending files, hash (overlapped with the previous batch's transfer) → transfer + verify → register. Because all
state lives in the journal, the same command after a crash or Ctrl-C resumes where the last one stopped, and the
same command after success moves nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from engine.catalogue import Catalogue, TransientError, open_catalogue
from engine.config import Profile, load_config
from engine.datasets import DatasetRequest, ensure_in_catalogue, lock_dataset, open_dataset
from engine.errors import StorageError
from engine.hashing import Digest, SourceChanged, hash_file
from engine.home import Home
from engine.journal import DISCOVERED, FAILED, UPLOADING, VERIFIED, DatasetRecord, FileRecord, Journal
from engine.progress import ProgressCallback, ProgressTracker
from engine.rclone import RcloneDaemon, RcloneError, find_rclone
from engine.registration import complete_dataset, register_verified
from engine.sources import resolve_roots, scan
from engine.storage import Storage
from engine.transfer import BatchTransfer, Item

log = logging.getLogger(__name__)

BATCH_FILES = 2000
BATCH_BYTES = 2 << 30
MAX_ATTEMPTS = 3
RETRY_DELAYS = (2.0, 8.0, 30.0)


@dataclass(frozen=True)
class UploadRequest:
    paths: Sequence[str]
    dataset: DatasetRequest
    profile: str | None = None
    bwlimit: str | None = None


@dataclass
class UploadReport:
    dataset_id: int
    name: str
    location: str
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = False
    elapsed: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.complete and not self.failed else 1


class _Run:
    """State of one upload run (kept off the module so the pieces stay small and testable)."""

    def __init__(
        self,
        home: Home,
        profile: Profile,
        journal: Journal,
        catalogue: Catalogue,
        storage: Storage,
        rec: DatasetRecord,
        tracker: ProgressTracker,
        stop: threading.Event,
    ) -> None:
        self.home = home
        self.profile = profile
        self.journal = journal
        self.catalogue = catalogue
        self.storage = storage
        self.rec = rec
        self.tracker = tracker
        self.stop = stop
        self.info = storage.probe(rec.target)
        self.alt = self.info.verify_hash if self.info.verify_hash not in (None, "sha256") else None
        self.transfer = BatchTransfer(
            storage,
            journal,
            storage.fs(rec.target),
            self.info.verify_hash,
            max_attempts=MAX_ATTEMPTS,
            stop=stop,
        )
        self.hash_pool = ThreadPoolExecutor(
            max_workers=max(1, min(4, (os.cpu_count() or 2))), thread_name_prefix="hash"
        )
        self.prep_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        self.uploaded_files = 0
        self.uploaded_bytes = 0

    def close(self) -> None:
        self.hash_pool.shutdown(wait=True, cancel_futures=True)
        self.prep_pool.shutdown(wait=True, cancel_futures=True)

    # -- batching ----------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[list[FileRecord]]:
        after = 0
        batch: list[FileRecord] = []
        size = 0
        while True:
            page = self.journal.files_in_state(
                self.rec.id, (DISCOVERED, UPLOADING), after_id=after, limit=BATCH_FILES
            )
            if not page:
                break
            after = page[-1].id
            for f in page:
                batch.append(f)
                size += f.size
                if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                    yield batch
                    batch, size = [], 0
        if batch:
            yield batch

    def _digest(self, f: FileRecord) -> Digest | str:
        """The checksum of the file as it is now, or the reason it cannot be uploaded."""
        try:
            st = os.stat(f.source)
        except FileNotFoundError:
            return "the source file disappeared before it could be uploaded"
        except OSError as exc:
            return f"cannot read the source file: {exc.strerror}"
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

    def _prepare(self, batch: list[FileRecord]) -> tuple[list[Item], list[tuple[FileRecord, str]]]:
        items: list[Item] = []
        problems: list[tuple[FileRecord, str]] = []
        for f, d in zip(batch, self.hash_pool.map(self._digest, batch), strict=True):
            if isinstance(d, str):
                problems.append((f, d))
            else:
                items.append(Item(rec=f, digest=d))
        return items, problems

    # -- the loop ----------------------------------------------------------------------------------------

    def one_pass(self) -> None:
        """Upload every pending file once; hashing of batch N+1 overlaps the transfer of batch N."""
        batches = self._batches()
        pending: Future[tuple[list[Item], list[tuple[FileRecord, str]]]] | None = None
        first = next(batches, None)
        if first is None:
            return
        pending = self.prep_pool.submit(self._prepare, first)
        while pending is not None:
            if self.stop.is_set():
                return
            items, problems = pending.result()
            nxt = next(batches, None)
            pending = self.prep_pool.submit(self._prepare, nxt) if nxt is not None else None
            if problems:
                self.journal.update_files(
                    [(f.id, {"state": FAILED, "reason": r, "attempts": f.attempts + 1}) for f, r in problems]
                )
                self.tracker.add_failed(len(problems))
            if not items:
                continue
            result = self.transfer.run(items, on_bytes=self.tracker.set_in_flight)
            self.tracker.set_in_flight(0)
            self.uploaded_files += len(result.verified)
            self.uploaded_bytes += result.bytes_moved
            if result.failed:
                self.tracker.add_failed(len(result.failed))
            self.register()

    def register(self) -> None:
        try:
            n = register_verified(self.journal, self.catalogue, self.rec)
        except TransientError as exc:
            log.warning("catalogue unreachable, registration postponed: %s", exc)
            return
        if n:
            self.tracker.set_totals(**self._totals())

    def _totals(self) -> dict[str, int]:
        c = self.journal.counts(self.rec.id)
        return {
            "files": c.files,
            "nbytes": c.bytes,
            "files_done": c.done,
            "bytes_done": c.bytes_done,
            "failed": c.failed,
        }

    def has_retryable(self) -> bool:
        return bool(self.journal.files_in_state(self.rec.id, (DISCOVERED, UPLOADING), limit=1))


def upload(
    home: Home,
    request: UploadRequest,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> UploadReport:
    """Upload ``request.paths`` as one dataset; see the module docstring for the flow."""
    started = time.monotonic()
    home.ensure()
    profile = load_config(home).profile(request.profile)
    req = request.dataset.validated()
    roots = resolve_roots(request.paths)
    stop = stop or threading.Event()
    with Journal(home.journal_file) as journal:
        lock = lock_dataset(home.run_dir, profile.name, req)
        try:
            # The whole scan is staged before anything is created or moved: a collision is a usage error.
            journal.stage_scan((f.rel, str(f.path(roots)), f.size, f.mtime_ns) for f in scan(roots))
            catalogue = open_catalogue(profile, home)
            try:
                return _upload_dataset(
                    home, profile, journal, catalogue, req, request, progress, stop, started
                )
            finally:
                catalogue.close()
        finally:
            lock.release()


def _upload_dataset(
    home: Home,
    profile: Profile,
    journal: Journal,
    catalogue: Catalogue,
    req: DatasetRequest,
    request: UploadRequest,
    progress: ProgressCallback | None,
    stop: threading.Event,
    started: float,
) -> UploadReport:
    config = load_config(home)
    daemon = RcloneDaemon(find_rclone(config.rclone), config_file=profile.rclone_config, run_dir=home.run_dir)
    storage = Storage(
        daemon, profile.storage, run_dir=home.run_dir, transfers=profile.transfers, checkers=profile.checkers
    )
    try:
        storage.probe(req.target)
        bwlimit = request.bwlimit or profile.bwlimit
        if bwlimit:
            try:
                daemon.call("core/bwlimit", rate=bwlimit)
            except RcloneError as exc:
                raise StorageError(
                    f"bandwidth limit {bwlimit!r} not understood by rclone: {exc.message}"
                ) from None
        rec = open_dataset(journal, profile, req)
        scan_result = journal.merge_scan(rec.id)
        log.info(
            "dataset %s: %d files at the source, %d new, %d changed",
            rec.name,
            scan_result.total,
            scan_result.new,
            scan_result.changed,
        )
        rec = ensure_in_catalogue(catalogue, journal, rec)
        if journal.files_in_state(rec.id, (DISCOVERED, UPLOADING, VERIFIED), limit=1):
            rec = journal.update_dataset(rec.id, state="open")
        tracker = ProgressTracker(journal, rec.id, progress)
        run = _Run(home, profile, journal, catalogue, storage, rec, tracker, stop)
        try:
            tracker.set_totals(**run._totals())
            tracker.set_phase("uploading")
            run.register()  # anything verified by a run that died before registering it
            for attempt in range(MAX_ATTEMPTS + 1):
                run.one_pass()
                if stop.is_set() or not run.has_retryable():
                    break
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                log.info("retrying failed transfers in %.0f s", delay)
                if stop.wait(delay):
                    break
            run.register()
            tracker.set_phase("finishing")
            rec, reason = complete_dataset(
                journal, catalogue, storage, journal.get_dataset(rec.id), home.run_dir
            )
        finally:
            run.close()
            tracker.publish(force=True)
            tracker.finish()
        counts = journal.counts(rec.id)
        report = UploadReport(
            dataset_id=rec.id,
            name=rec.name,
            location=storage.fs(rec.target),
            files_total=counts.files,
            bytes_total=counts.bytes,
            files_done=counts.done,
            files_uploaded=run.uploaded_files,
            bytes_uploaded=run.uploaded_bytes,
            complete=rec.state == "complete",
        )
        report.failed = [(f.rel, f.reason or "unknown") for f in journal.failures(rec.id)]
        pending = counts.files - counts.done - counts.failed
        if pending and not stop.is_set():
            report.failed.append((f"({pending} files)", "not finished: uploaded but not registered yet"))
        if reason:
            report.failed.append(("ro-crate-metadata.json", reason))
        report.elapsed = time.monotonic() - started
        return report
    finally:
        daemon.stop()
