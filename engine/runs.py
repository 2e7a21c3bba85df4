"""One dataset's run inside the engine: the same opening and closing for batch and sync mode.

Opening: take the dataset's lock, scan the source (staged, so a bad scan changes nothing), wait for the storage,
open the dataset in the journal, make sure it is in the catalogue (validated before any byte moves). Then the
mode's body (:class:`BatchRun` here, :class:`engine.sync.SyncRun`). Closing: register what is verified, write the
manifest and finalise the catalogue entry when the dataset is whole, and build the report. ``stop`` asks for a
graceful end (sync: drain and seal), ``abort`` for an immediate one (:class:`Cancelled`; the journal is consistent
and the next run resumes).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from engine.catalogue import AuthError, require_session
from engine.context import RunContext
from engine.datasets import ensure_in_catalogue, lock_dataset, open_dataset
from engine.errors import Action, Cancelled, UsageError
from engine.events import DatasetSealed, DatasetStarted, Event
from engine.journal import DISCOVERED, SETTLING, UPLOADING, VERIFIED, DatasetRecord
from engine.model import Mode, Phase, RunReport
from engine.progress import ProgressTracker
from engine.registration import complete_dataset
from engine.report import build_report
from engine.sources import FolderIndex, Skipped, scan
from engine.spec import ResolvedSpec
from engine.uploader import DatasetUploader
from engine.winpaths import is_windows_like, relative_path_problem

log = logging.getLogger(__name__)

_STRENGTH = ("size", "xxh128", "md5", "sha1", "sha256")


class DatasetRun:
    """The shared opening and closing; subclasses provide :meth:`body`."""

    mode: Mode = "batch"

    def __init__(self, resolved: ResolvedSpec, ctx_factory: Callable[[], RunContext]) -> None:
        self.resolved = resolved
        self.ctx_factory = ctx_factory
        self.stop = threading.Event()  # graceful: finish what is in flight (sync: drain, seal)
        self.abort = threading.Event()  # now: stop rclone jobs, leave the rest for the next run
        self.dataset_id: int | None = None
        self.name = resolved.request.name
        # Storage that ends up under Windows' name rules (a Windows folder, SMB) refuses `a:b`, `CON`, `x.` per file.
        windows = is_windows_like(resolved.profile.storage, on_windows=sys.platform == "win32")
        self.refuse: Callable[[str], str | None] | None = relative_path_problem if windows else None

    def request_stop(self, *, finish: bool) -> None:
        self.stop.set()
        if not finish:
            self.abort.set()
        self.wake()

    def wake(self) -> None:
        """Let a waiting body notice a stop (subclasses override)."""

    # -- the run -----------------------------------------------------------------------------------------

    def run(self) -> RunReport:
        started = time.monotonic()
        ctx = self.ctx_factory()
        self.ctx = ctx
        r = self.resolved
        try:
            require_session(ctx.catalogue, r.profile.name)
            lock = lock_dataset(ctx.home.run_dir, r.profile.name, r.request)
            try:
                return self._run(ctx, started)
            finally:
                lock.release()
        finally:
            ctx.journal.close()

    def before_scan(self) -> None:
        """Sync mode starts watching here: a file created during the scan is seen by one or the other."""

    def after_run(self) -> None:
        """Sync mode stops watching here."""

    def _run(self, ctx: RunContext, started: float) -> RunReport:
        r, journal = self.resolved, ctx.journal
        self.before_scan()
        try:
            skipped: list[Skipped] = []
            found = journal.stage_scan(
                (f.rel, f.path(r.roots), f.size, f.mtime_ns)
                for f in scan(
                    r.roots, r.rules, folders=self.folder_index(), on_skip=skipped.append, refuse=self.refuse
                )
            )
            if self.mode == "batch" and not found and not skipped and not self._known(ctx):
                labels = ", ".join(root.label for root in r.roots)
                raise UsageError(
                    f"nothing to upload: {labels} holds no files (after the exclude rules); nothing was done",
                    field="paths",
                )
            ctx.storage.probe_waiting(
                r.request.target,
                limit=ctx.profile.wait_for_storage if self.mode == "batch" else ctx.profile.retry_for,
                stop=self.abort if self.mode == "batch" else self.stop,
            )
            rec = open_dataset(journal, ctx.profile, r.request)
            self.dataset_id = rec.id
            scan_result = journal.merge_scan(
                rec.id, DISCOVERED if self.mode == "batch" else SETTLING, forget_missing=True
            )
            skipped += [
                Skipped(
                    rel, "deleted at the source before it was uploaded; nothing on the storage was changed"
                )
                for rel in scan_result.gone
            ]
            log.info(
                "dataset %s (%s): %d files at the source, %d new, %d changed",
                rec.name,
                self.mode,
                scan_result.total,
                scan_result.new,
                scan_result.changed,
            )
            journal.record_skipped(rec.id, [(x.rel, x.reason, x.refused) for x in skipped], replace=True)
            for x in skipped:
                log.warning("%s %s: %s", "refused" if x.refused else "skipped", x.rel, x.reason)
            rec = ensure_in_catalogue(ctx.catalogue, journal, rec)
            if self.mode == "sync" or journal.files_in_state(
                rec.id, (DISCOVERED, UPLOADING, VERIFIED), limit=1
            ):
                rec = journal.update_dataset(rec.id, state="open")
            tracker = ProgressTracker(journal, rec.id, rec.name, self._progress_sink(ctx))
            ctx.emit(DatasetStarted(dataset_id=rec.id, name=rec.name, mode=self.mode))
            uploader = DatasetUploader(ctx, rec, tracker, self.abort, wait_when_full=self.mode == "sync")
            try:
                tracker.refresh()
                self.body(ctx, rec, tracker, uploader)
                if self.abort.is_set():
                    raise Cancelled(f"dataset '{rec.name}' stopped; the next run resumes it")
                tracker.set_phase(Phase.FINISHING)
                uploader.register()
                rec, reason = complete_dataset(
                    journal,
                    ctx.catalogue,
                    ctx.storage,
                    journal.get_dataset(rec.id),
                    ctx.home.run_dir,
                    seal=self.mode == "sync",
                    license=ctx.profile.options.get("license"),
                )
            finally:
                uploader.close()
                tracker.publish(force=True)
                tracker.finish()
            report = build_report(
                journal,
                rec,
                location=ctx.storage.display_fs(rec.target),
                uploaded=uploader.uploaded,
                elapsed=time.monotonic() - started,
                pending_reason=uploader.pending_reason(),
                problems=[f"manifest: {reason}"] if reason else [],
            )
            if isinstance(uploader.register_error, AuthError) and report.failed:
                report = replace(report, action=Action.LOG_IN)
            if rec.state == "complete":
                ctx.emit(self._sealed(ctx, rec, report, time.monotonic() - started))
            return report
        finally:
            self.after_run()

    def folder_index(self) -> FolderIndex | None:
        return None

    def body(
        self, ctx: RunContext, rec: DatasetRecord, tracker: ProgressTracker, uploader: DatasetUploader
    ) -> None:
        raise NotImplementedError

    def _known(self, ctx: RunContext) -> bool:
        """Whether the dataset has files from earlier runs (its source may since have been emptied)."""
        r = self.resolved
        rec = ctx.journal.find_dataset(r.profile.name, r.request.investigation or "", r.request.name)
        return rec is not None and ctx.journal.counts(rec.id).files > 0

    def _progress_sink(self, ctx: RunContext) -> Callable[[Event], None]:
        return ctx.emit

    def _sealed(
        self, ctx: RunContext, rec: DatasetRecord, report: RunReport, duration: float
    ) -> DatasetSealed:
        kinds = ctx.journal.verification_kinds(rec.id)
        weakest = min(kinds, key=lambda k: _STRENGTH.index(k) if k in _STRENGTH else 0) if kinds else "size"
        return DatasetSealed(
            dataset_id=rec.id,
            name=rec.name,
            mode=self.mode,
            files=report.files_done,
            bytes=report.bytes_done,
            duration=duration,
            verification=weakest,
        )


class BatchRun(DatasetRun):
    """Everything under the given paths, uploaded, verified and registered as one dataset."""

    mode: Mode = "batch"

    def request_stop(self, *, finish: bool) -> None:
        # A batch has nothing to drain: stopping it means stopping it now, to resume next time.
        self.stop.set()
        self.abort.set()

    def body(
        self, ctx: RunContext, rec: DatasetRecord, tracker: ProgressTracker, uploader: DatasetUploader
    ) -> None:
        tracker.set_phase(Phase.UPLOADING)
        uploader.register()  # anything verified by a run that died before registering it
        uploader.run(ctx.retry_for)
        uploader.flush_registrations(ctx.retry_for)
