"""Batch mode: everything under the given paths, uploaded, verified and registered as one dataset.

The run is a loop over the journal, not over the file system: scan → merge into the journal → for each batch of
pending files, hash (overlapped with the previous batch's transfer) → transfer + verify → register. Because all
state lives in the journal, the same command after a crash or Ctrl-C resumes where the last one stopped, and the
same command after success moves nothing. While the storage is unreachable the run backs off and retries (for
``retry_for``, default 12 h) rather than failing files that only need to wait.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from engine.backoff import backoff
from engine.catalogue import AuthError, CatalogueError, TransientError, require_session
from engine.config import load_config
from engine.datasets import DatasetRequest, ensure_in_catalogue, lock_dataset, open_dataset
from engine.errors import UsageError
from engine.home import Home
from engine.journal import DISCOVERED, FAILED, UPLOADING, VERIFIED, DatasetRecord, FileRecord, Journal
from engine.progress import ProgressCallback, ProgressTracker
from engine.registration import complete_dataset, register_verified
from engine.report import UploadReport, build_report
from engine.rules import rules_from_options
from engine.session import RunContext, open_run
from engine.sources import Skipped, resolve_roots, scan
from engine.transfer import BatchResult, BatchTransfer

log = logging.getLogger(__name__)

BATCH_FILES = 2000
BATCH_BYTES = 2 << 30
MIN_BATCH_FILES = 100
MIN_BATCH_BYTES = 64 << 20
LANES = 2
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class UploadRequest:
    paths: Sequence[str]
    dataset: DatasetRequest
    profile: str | None = None
    bwlimit: str | None = None
    transfers: int | None = None


@dataclass
class PassOutcome:
    """What one pass over the pending files met: enough to back off sensibly and to say why, naming files."""

    reachable: bool = True
    full: bool = False
    retries: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of files to try again

    def add(self, result: BatchResult) -> None:
        self.reachable &= not result.transient
        self.full |= result.full
        self.retries += [(item.rec.rel, reason) for item, reason, _ in result.retry]

    def describe(self, limit: int = 3) -> str:
        """One line for the log: the cause, and which files wait for it."""
        if not self.retries:
            return "storage not reachable" if not self.reachable else "nothing to retry"
        causes: dict[str, list[str]] = {}
        for rel, reason in self.retries:
            causes.setdefault(reason, []).append(rel)
        parts = []
        for reason, rels in list(causes.items())[:limit]:
            names = ", ".join(rels[:limit]) + (f" and {len(rels) - limit} more" if len(rels) > limit else "")
            parts.append(f"{names}: {reason}")
        what = "storage full" if self.full else "storage not reachable" if not self.reachable else "retry"
        return f"{what}: {len(self.retries)} file(s) to try again ({'; '.join(parts)})"


class DatasetUploader:
    """Uploads the pending files of one dataset; shared by batch mode and (per batch) sync mode."""

    def __init__(
        self,
        ctx: RunContext,
        rec: DatasetRecord,
        tracker: ProgressTracker,
        stop: threading.Event,
        *,
        wait_when_full: bool = False,
    ) -> None:
        self.ctx = ctx
        self.journal = ctx.journal
        self.rec = rec
        self.tracker = tracker
        self.stop = stop
        info = ctx.storage.probe(rec.target)
        # Half the cores: hashing runs while rclone copies, and rclone needs CPU too (measured on 2 cores: a
        # second hashing thread slows a 2,000-file copy job by ~25 %, one thread costs nothing).
        workers = max(1, min(4, (os.cpu_count() or 2) // 2))
        self.hash_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash")
        self.transfer = BatchTransfer(
            ctx.storage,
            ctx.journal,
            ctx.storage.fs(rec.target),
            info.verify_hash,
            pool=self.hash_pool,
            alt_hash=info.verify_hash if info.verify_hash not in (None, "sha256") else None,
            max_attempts=MAX_ATTEMPTS,
            stop=stop,
            wait_when_full=wait_when_full,
        )
        self.uploaded: dict[int, int] = {}  # file id → size of every file this run verified
        self._count_lock = threading.Lock()
        self._register_lock = threading.Lock()
        self.register_error: CatalogueError | None = None  # why the last registration attempt failed
        self._expiry_warned: float | None = None

    def close(self) -> None:
        self.hash_pool.shutdown(wait=True, cancel_futures=True)

    # -- batching ----------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[list[FileRecord]]:
        """Pending files in batches sized so that a small upload still fills both lanes (a quarter of the
        work each, at least ``MIN_BATCH_FILES``) and a large one is not one endless job."""
        c = self.journal.counts(self.rec.id)
        pending = c.by_state.get(DISCOVERED, 0) + c.by_state.get(UPLOADING, 0)
        pending_bytes = c.bytes_by_state.get(DISCOVERED, 0) + c.bytes_by_state.get(UPLOADING, 0)
        max_files = max(MIN_BATCH_FILES, min(BATCH_FILES, pending // (2 * LANES)))
        # Bytes split per lane only: big files gain nothing from small batches, but need rclone's parallel
        # transfers inside each job.
        max_bytes = max(MIN_BATCH_BYTES, min(BATCH_BYTES, pending_bytes // LANES))
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
                if len(batch) >= max_files or size >= max_bytes:
                    yield batch
                    batch, size = [], 0
        if batch:
            yield batch

    # -- the loop ----------------------------------------------------------------------------------------

    def one_pass(self) -> PassOutcome:
        """Upload every pending file once, with up to ``LANES`` batches in flight.

        Two lanes keep rclone busy: while one batch is being verified and registered, the next one copies.
        The outcome says whether the storage looked unreachable (the caller backs off) and what needs retrying.
        """
        outcome = PassOutcome()
        in_flight: deque[Future[BatchResult]] = deque()
        with ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="lane") as lanes:
            try:
                for n, batch in enumerate(self._batches()):
                    if self.stop.is_set() or not outcome.reachable:
                        break
                    in_flight.append(lanes.submit(self._one_batch, batch, n))
                    while len(in_flight) >= LANES:
                        outcome.add(in_flight.popleft().result())
                for fut in in_flight:
                    outcome.add(fut.result())
            except BaseException:
                # Ctrl-C lands here, in the main thread: tell the lanes to stop their rclone jobs now rather
                # than letting the pool wait for them to finish.
                self.stop.set()
                raise
        return outcome

    def _one_batch(self, batch: list[FileRecord], n: int) -> BatchResult:
        result = self.transfer.run(batch, on_bytes=lambda b: self.tracker.set_in_flight(b, n))
        self.tracker.set_in_flight(0, n)
        with self._count_lock:
            self.uploaded.update((i.rec.id, i.digest.size) for i in result.verified)
        if result.failed:
            self.tracker.add_failed(len(result.failed))
        self.register()
        return result

    def run(self, retry_for: float) -> None:
        """Passes until nothing is pending, backing off while the storage is away (at most ``retry_for`` s)."""
        deadline = time.monotonic() + retry_for
        attempt = 0
        while not self.stop.is_set():
            done_before = self.journal.counts(self.rec.id).done
            outcome = self.one_pass()
            if self.stop.is_set() or not self.has_pending():
                return
            if self.journal.counts(self.rec.id).done > done_before:
                attempt = 0  # progress: the storage is back, start backing off from scratch
            if time.monotonic() >= deadline:
                self._give_up(retry_for)
                return
            delay = backoff(attempt)
            attempt += 1
            self.tracker.set_phase("waiting for storage" if not outcome.reachable else "retrying")
            log.warning("%s; retrying in %.0f s", outcome.describe(), delay)
            if self.stop.wait(min(delay, max(0.0, deadline - time.monotonic()))):
                return
            self.tracker.set_phase("uploading")

    def _give_up(self, retry_for: float) -> None:
        stuck = list(self.journal.iter_files(self.rec.id, (DISCOVERED, UPLOADING)))
        self.journal.update_files(
            [
                (
                    f.id,
                    {
                        "state": FAILED,
                        "reason": f"{f.reason or 'not uploaded'}; gave up after {retry_for:.0f} s",
                    },
                )
                for f in stuck
            ]
        )

    def register(self) -> None:
        """Register whatever is verified. While the catalogue is unreachable or the login has expired the files
        stay queued (verified) in the journal and the upload goes on; a later call — the next batch, sync's
        periodic retry, the next run — sends them, with the token a ``datauploader login`` stored meanwhile."""
        catalogue = self.ctx.catalogue
        try:
            with self._register_lock:  # two lanes must never register the same page of files
                if self.rec.catalogue_id is None:  # the catalogue was away when the run started
                    self.rec = ensure_in_catalogue(
                        catalogue, self.journal, self.rec, defer_if_unreachable=False
                    )
                n = register_verified(self.journal, catalogue, self.rec)
        except AuthError as exc:
            if not isinstance(self.register_error, AuthError):
                log.warning("registration postponed, the files stay queued: %s", exc)
            self.register_error = exc
            return
        except TransientError as exc:
            log.warning("catalogue unreachable, registration postponed: %s", exc)
            self.register_error = exc
            return
        except CatalogueError as exc:
            if str(exc) != str(self.register_error):
                log.error("the catalogue refused the registration: %s", exc)
            self.register_error = exc
            return
        if isinstance(self.register_error, AuthError):
            log.warning("logged in again: the queued registrations were sent")
        self.register_error = None
        self.check_login()
        if n:
            self.tracker.set_totals(**self.totals())

    def check_login(self) -> None:
        """Warn once per token when the catalogue login is about to expire: there is no refresh token, so a
        person has to log in again, and a warning now beats registrations piling up later."""
        catalogue = self.ctx.catalogue
        if not catalogue.needs_login:
            return
        session = catalogue.session()
        if session is None or session.expires is None or session.expires == self._expiry_warned:
            return
        left = session.expires - time.time()
        if left <= float(getattr(catalogue, "expiry_warning", 600.0)):
            self._expiry_warned = session.expires
            log.warning(
                "the %s login of %s expires in %d min (at %s); run `datauploader login%s` to keep registering "
                "(uploads go on meanwhile)",
                catalogue.name,
                session.user,
                max(0, int(left // 60)),
                time.strftime("%H:%M", time.localtime(session.expires)),
                "" if self.ctx.profile.name == "default" else f" --profile {self.ctx.profile.name}",
            )

    def has_unregistered(self) -> bool:
        return bool(self.journal.files_in_state(self.rec.id, (VERIFIED,), limit=1))

    def flush_registrations(self, retry_for: float) -> None:
        """The end of a batch run: register the rest, backing off while the catalogue is unreachable (at most
        ``retry_for`` s, like the storage). An expired login is not waited for: the report says to log in."""
        deadline = time.monotonic() + retry_for
        attempt = 0
        self.register()
        while isinstance(self.register_error, TransientError) and self.has_unregistered():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.tracker.set_phase("waiting for catalogue")
            if self.stop.wait(min(backoff(attempt), left)):
                return
            attempt += 1
            self.register()

    def pending_reason(self) -> str:
        """Why verified files are not registered, for the report (exit 1)."""
        err = self.register_error
        if isinstance(err, AuthError):
            name = self.ctx.profile.name
            option = "" if name == "default" else f" --profile {name}"
            return (
                f"uploaded but not registered yet: not logged in to the {self.ctx.catalogue.name} catalogue "
                f"(or the login expired); run `datauploader login{option}`, then the same command again"
            )
        if err is not None and not isinstance(err, TransientError):
            return f"uploaded but not registered: {err}"
        return "uploaded but not registered yet (catalogue unreachable); run the same command again"

    def totals(self) -> dict[str, int]:
        c = self.journal.counts(self.rec.id)
        return {
            "files": c.files,
            "nbytes": c.bytes,
            "files_done": c.done,
            "bytes_done": c.bytes_done,
            "failed": c.failed,
        }

    def has_pending(self) -> bool:
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
    rules = rules_from_options(profile.options, f"profile '{profile.name}'")
    req = request.dataset.validated()
    roots = resolve_roots(request.paths)
    stop = stop or threading.Event()
    with Journal(home.journal_file) as journal:
        ctx = open_run(home, journal, request.profile, request.bwlimit, request.transfers)
        try:
            require_session(ctx.catalogue, profile.name)
            lock = lock_dataset(home.run_dir, profile.name, req)
            try:
                # The whole scan is staged before anything is created or moved: a collision is a usage error.
                skipped: list[Skipped] = []
                found = journal.stage_scan(
                    (f.rel, str(f.path(roots)), f.size, f.mtime_ns)
                    for f in scan(roots, rules, on_skip=skipped.append)
                )
                if not found and not skipped and not _known(journal, profile.name, req):
                    raise UsageError(
                        f"nothing to upload: {', '.join(r.label for r in roots)} holds no files (after the "
                        "exclude rules); nothing was done"
                    )
                ctx.ready()
                return _upload_dataset(ctx, req, progress, stop, started, skipped)
            finally:
                lock.release()
        finally:
            ctx.close()


def _known(journal: Journal, profile: str, req: DatasetRequest) -> bool:
    """Whether the dataset has files from earlier runs (its source may since have been emptied)."""
    rec = journal.find_dataset(profile, req.investigation or "", req.name)
    return rec is not None and journal.counts(rec.id).files > 0


def _upload_dataset(
    ctx: RunContext,
    req: DatasetRequest,
    progress: ProgressCallback | None,
    stop: threading.Event,
    started: float,
    skipped: list[Skipped],
) -> UploadReport:
    journal, storage = ctx.journal, ctx.storage
    storage.probe_waiting(req.target, limit=ctx.profile.wait_for_storage, stop=stop)
    rec = open_dataset(journal, ctx.profile, req)
    scan_result = journal.merge_scan(rec.id)
    journal.record_skipped(rec.id, [(x.rel, x.reason, x.refused) for x in skipped], replace=True)
    for x in skipped:
        log.warning("%s %s: %s", "refused" if x.refused else "skipped", x.rel, x.reason)
    log.info(
        "dataset %s: %d files at the source, %d new, %d changed",
        rec.name,
        scan_result.total,
        scan_result.new,
        scan_result.changed,
    )
    rec = ensure_in_catalogue(ctx.catalogue, journal, rec)
    if journal.files_in_state(rec.id, (DISCOVERED, UPLOADING, VERIFIED), limit=1):
        rec = journal.update_dataset(rec.id, state="open")
    tracker = ProgressTracker(journal, rec.id, progress)
    up = DatasetUploader(ctx, rec, tracker, stop)
    reason: str | None = None
    try:
        tracker.set_totals(**up.totals())
        tracker.set_phase("uploading")
        up.register()  # anything verified by a run that died before registering it
        up.run(ctx.retry_for)
        up.flush_registrations(ctx.retry_for)
        if not stop.is_set():
            tracker.set_phase("finishing")
            rec, reason = complete_dataset(
                journal, ctx.catalogue, storage, journal.get_dataset(rec.id), ctx.home.run_dir
            )
    finally:
        up.close()
        tracker.publish(force=True)
        tracker.finish()
    if stop.is_set():
        raise KeyboardInterrupt
    return build_report(
        journal,
        journal.get_dataset(rec.id),
        location=storage.display_fs(rec.target),
        uploaded=up.uploaded,
        elapsed=time.monotonic() - started,
        pending_reason=up.pending_reason(),
        problems=[f"manifest: {reason}"] if reason else [],
    )
