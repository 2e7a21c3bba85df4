"""Sync mode: upload every new or modified file while an instrument writes, and never a half-written one.

One :class:`SyncSession` runs the whole thing: a catch-up scan (files written while DataUploader was not
running), a folder watcher whose events feed a settle tracker (:mod:`engine.settle`), an upload thread that
takes whatever the tracker declared complete (a lone file goes at once, a burst as batches), and a periodic
reconciliation scan, because events are hints and the OS drops some. A graceful stop (SIGINT/SIGTERM, the tray's
menu) stops taking new files, finishes those in flight, registers them and seals the dataset; an abort (a second
Ctrl-C) stops rclone at once and leaves a journal the next run resumes from.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.backoff import backoff
from engine.catalogue import require_session
from engine.config import load_config
from engine.datasets import DatasetRequest, ensure_in_catalogue, lock_dataset, open_dataset
from engine.errors import UsageError
from engine.home import Home
from engine.journal import DISCOVERED, SETTLING, UPLOADING, DatasetRecord, Journal
from engine.progress import ProgressCallback, ProgressTracker
from engine.registration import complete_dataset
from engine.report import UploadReport, build_report
from engine.rules import rules_from_options
from engine.session import RunContext, open_run
from engine.settle import Ready, SettleTracker
from engine.sources import FolderIndex, Skipped, name_problem, printable, resolve_roots, scan
from engine.upload import DatasetUploader, UploadRequest
from engine.watching import Watcher

log = logging.getLogger(__name__)

FULL_RESCAN_EVERY = 10
HEARTBEAT = 5.0  # seconds between progress writes while idle (status presumes a run dead after 30 s)


@dataclass(frozen=True)
class SyncRequest(UploadRequest):
    """What to sync: everything an upload takes, plus the settle time (None: the profile's, else 2 s)."""

    settle: float | None = None


class SyncSession:
    """The engine's sync API: :meth:`run` in the foreground (CLI) or :meth:`start` in the background (tray);
    :meth:`stop` asks for a graceful end, :meth:`abort` for a quick one."""

    def __init__(
        self,
        home: Home,
        request: SyncRequest,
        *,
        progress: ProgressCallback | None = None,
        event_filter: Callable[[str, str], bool] | None = None,
    ) -> None:
        """``event_filter(path, kind)`` returning False drops a watcher event (tests use it to lose events the
        way an overflowing OS queue does)."""
        self.event_filter = event_filter
        self.home = home
        self.request = request
        self.progress = progress
        self._stopping = threading.Event()  # graceful: take no new files, drain, seal
        self._abort = threading.Event()  # quick: stop rclone jobs now
        self._kick = threading.Event()  # something became ready to upload
        self._thread: threading.Thread | None = None
        self.report: UploadReport | None = None
        self.error: BaseException | None = None
        self._pending_settling: list[tuple[str, str, int, int]] = []
        self.index = FolderIndex()
        self._rescans = 0
        self._lock = threading.Lock()

    # -- control -----------------------------------------------------------------------------------------

    def start(self) -> None:
        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # handed to whoever waits (the tray shows it)
                self.error = exc

        self._thread = threading.Thread(target=target, name="sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._kick.set()

    def abort(self) -> None:
        self._abort.set()
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the run -----------------------------------------------------------------------------------------

    def run(self) -> UploadReport:
        started = time.monotonic()
        home = self.home.ensure()
        config = load_config(home)
        profile = config.profile(self.request.profile)
        where = f"profile '{profile.name}'"
        self.rules = rules_from_options(profile.options, where)
        self.settle = self.request.settle if self.request.settle is not None else profile.settle
        self.rescan = profile.rescan
        self.register_retry = profile.register_retry
        req = self.request.dataset.validated()
        self.roots = resolve_roots(self.request.paths)
        with Journal(home.journal_file) as journal:
            ctx = open_run(home, journal, self.request.profile, self.request.bwlimit, self.request.transfers)
            try:
                require_session(ctx.catalogue, profile.name)
                lock = lock_dataset(home.run_dir, profile.name, req)
                try:
                    return self._run(ctx, req, started)
                finally:
                    lock.release()
            finally:
                ctx.close()

    def _run(self, ctx: RunContext, req: DatasetRequest, started: float) -> UploadReport:
        journal = ctx.journal
        poll = ctx.profile.options.get("poll")
        self.watcher = Watcher(
            # A file argument is watched through its folder, not recursively (its folder may be anything).
            sorted({(r.root, r.single is None) for r in self.roots}),
            self._on_event,
            polling=poll if isinstance(poll, bool) else None,
        )
        # Watch first, then scan: a file created in between is seen by one or the other, never by neither.
        self.watcher.start()
        try:
            skipped: list[Skipped] = []
            journal.stage_scan(
                (f.rel, str(f.path(self.roots)), f.size, f.mtime_ns)
                for f in scan(self.roots, self.rules, folders=self.index, on_skip=skipped.append)
            )
            ctx.ready()
            ctx.storage.probe_waiting(req.target, limit=ctx.profile.retry_for, stop=self._stopping)
            rec = open_dataset(journal, ctx.profile, req)
            journal.merge_scan(rec.id, SETTLING)
            self._skipped: set[str] = set()
            self.journal = journal
            self.rec = rec
            self._note_skipped(skipped, replace=True)
            rec = ensure_in_catalogue(ctx.catalogue, journal, rec)
            rec = journal.update_dataset(rec.id, state="open")
            self.rec = rec
            self.tracker = ProgressTracker(journal, rec.id, self.progress)
            self.settler = SettleTracker(
                self.settle,
                self._on_ready,
                marker_exists=_marker_exists,
                on_gone=self._on_gone,
            )
            self.uploader = DatasetUploader(ctx, rec, self.tracker, self._abort, wait_when_full=True)
            try:
                return self._loop(ctx, rec, started)
            finally:
                self.uploader.close()
                self.tracker.publish(force=True)
                self.tracker.finish()
        finally:
            self.watcher.stop()

    def _loop(self, ctx: RunContext, rec: DatasetRecord, started: float) -> UploadReport:
        journal = self.journal
        self.tracker.set_totals(**self.uploader.totals())
        self.tracker.set_phase("catching up")
        self.settler.start()
        # Catch-up: what was written while we were not running settles like anything else; quiet files are
        # declared complete at once (their mtime says how long they have been quiet).
        for f in journal.iter_files(rec.id, (SETTLING,)):
            self.settler.touch(f.rel, f.source, delay=0, marker=self.rules.marker_for(f.rel))
        self._kick.set()
        uploader = threading.Thread(target=self._upload_loop, name="uploader", daemon=True)
        uploader.start()
        next_rescan = time.monotonic() + self.rescan
        try:
            while not self._stopping.is_set():
                self._stopping.wait(0.5)
                self._flush_settling()
                if self.watcher.supervise():
                    next_rescan = 0.0  # events were lost while it was down
                if time.monotonic() >= next_rescan:
                    self._reconcile()
                    next_rescan = time.monotonic() + self.rescan
            log.info("stopping: no new files; finishing the %d in flight", self._in_flight())
            self.tracker.set_phase("finishing")
            self.watcher.stop()
            # Files closed moments ago are complete but still settling: give them their settle time.
            deadline = time.monotonic() + self.settle + 1.0
            while self.settler.settling() and time.monotonic() < deadline and not self._abort.is_set():
                time.sleep(0.05)
            self.settler.stop()
            self._flush_settling()
            while uploader.is_alive():
                uploader.join(0.5)
        except BaseException:
            self._abort.set()
            self._stopping.set()
            self._kick.set()
            raise
        finally:
            self.settler.stop()
            uploader.join(30)
        if self._abort.is_set():
            raise KeyboardInterrupt
        self.uploader.register()
        rec, reason = complete_dataset(
            journal, ctx.catalogue, ctx.storage, journal.get_dataset(rec.id), ctx.home.run_dir, seal=True
        )
        report = build_report(
            journal,
            rec,
            location=ctx.storage.display_fs(rec.target),
            uploaded=self.uploader.uploaded,
            elapsed=time.monotonic() - started,
            pending_reason=self.uploader.pending_reason(),
            problems=[f"manifest: {reason}"] if reason else [],
        )
        counts = journal.counts(rec.id)
        settling = counts.by_state.get(SETTLING, 0)
        if settling:
            log.warning(
                "%d files were still being written when sync stopped; the next run uploads them", settling
            )
        self.report = report
        return report

    def _in_flight(self) -> int:
        c = self.journal.counts(self.rec.id)
        return c.by_state.get(DISCOVERED, 0) + c.by_state.get(UPLOADING, 0)

    # -- threads -----------------------------------------------------------------------------------------

    def _upload_loop(self) -> None:
        """Uploads whatever is ready, then sleeps until the settle tracker kicks it. Idle costs nothing: one
        indexed lookup a second, no counting over the dataset (which on 100,000 files is ~3 % of a core)."""
        attempt = 0
        next_register = time.monotonic() + self.register_retry
        phase = ""
        while not self._abort.is_set():
            self._kick.wait(1.0)
            self._kick.clear()
            if self._abort.is_set():
                return
            if time.monotonic() >= next_register:
                # Registrations queued while the catalogue was away or the login had expired: a login in
                # another shell (a new token in the store) or the catalogue's return lets them flush now.
                next_register = time.monotonic() + self.register_retry
                self.uploader.check_login()
                if self.uploader.has_unregistered():
                    self.uploader.register()
            if not self.uploader.has_pending():
                if self._stopping.is_set() and not self.settler_running():
                    return
                if not self._stopping.is_set() and phase != "watching":
                    phase = "watching"
                    self.tracker.set_phase(phase)
                elif time.monotonic() - self.tracker.last_publish >= HEARTBEAT:
                    self.tracker.publish(force=True)  # `status` takes a silent run for a dead one
                continue
            phase = "uploading"
            self.tracker.set_phase(phase)
            outcome = self.uploader.one_pass()
            if not outcome.reachable:
                delay = backoff(attempt)
                attempt += 1
                phase = "waiting for storage"
                self.tracker.set_phase(phase)
                log.warning("%s; retrying in %.0f s", outcome.describe(), delay)
                self._abort.wait(delay)
                self._kick.set()
                continue
            attempt = 0
            self._kick.set()  # look again at once: more may have become ready meanwhile

    def settler_running(self) -> bool:
        return self.settler._thread.is_alive()

    def _on_event(self, path: str, kind: str) -> None:
        """From the watcher's thread: map to the dataset, filter, and hand to the settle tracker."""
        if self._stopping.is_set() or (self.event_filter is not None and not self.event_filter(path, kind)):
            return
        rel = self._rel(path)
        if rel is None or not self.rules.wanted(rel):
            return
        if kind == "deleted":
            self.settler.forget(rel)
            self._on_gone([rel])
            return
        problem = name_problem(rel)
        if problem:
            self._note_skipped([Skipped(printable(rel), problem, refused=True)])
            return
        st: os.stat_result | None = None
        if kind in ("created", "moved"):
            try:
                st = os.stat(path)
            except OSError:
                return
            if not stat.S_ISREG(st.st_mode):
                return  # FIFOs, sockets, links to folders: the next reconciliation scan lists them as skipped
        writing: bool | None = None
        if kind in ("closed", "moved"):
            writing = False
        elif self.watcher.has_close_events and (
            kind == "written" or (kind == "created" and st and not st.st_size)
        ):
            # Written (or just created, still empty): a writer has it open, and its close will tell us when it is
            # done. A file that appears with content was moved or linked in whole; no close event will follow.
            writing = True
        self.settler.touch(rel, path, writing=writing, marker=self.rules.marker_for(rel))
        if st is not None:
            with self._lock:
                self._pending_settling.append((rel, path, st.st_size, st.st_mtime_ns))

    def _rel(self, path: str) -> str | None:
        p = Path(path)
        for root in self.roots:
            if root.single is not None:
                if p == root.root / root.single:
                    return root.single
            else:
                try:
                    return p.relative_to(root.root).as_posix()
                except ValueError:
                    continue
        return None

    def _flush_settling(self) -> None:
        with self._lock:
            rows, self._pending_settling = self._pending_settling, []
        if rows:
            self.journal.note_settling(self.rec.id, rows)

    def _on_ready(self, ready: list[Ready]) -> None:
        """From the settle thread: complete files become uploadable (discovered) and the uploader is woken."""
        self._flush_settling()
        self.journal.merge_files(
            self.rec.id, [(r.key, r.path, r.size, r.mtime_ns) for r in ready], DISCOVERED
        )
        self.tracker.set_totals(**self.uploader.totals())
        log.debug("%d files complete: %s", len(ready), ", ".join(r.key for r in ready[:5]))
        self._kick.set()

    def _on_gone(self, rels: list[str]) -> None:
        self._flush_settling()
        n = self.journal.forget_unsent(self.rec.id, rels)
        if n:
            log.debug("forgot %d files that vanished before upload (temporary files)", n)

    def _note_skipped(self, entries: list[Skipped], *, replace: bool = False) -> None:
        """Record entries that are not uploaded (once each, with a warning) so the summary and `status` list them."""
        new = [x for x in entries if replace or x.rel not in self._skipped]
        if not new and not replace:
            return
        for x in new:
            if x.rel not in self._skipped:
                log.warning("%s %s: %s", "refused" if x.refused else "skipped", x.rel, x.reason)
        self._skipped |= {x.rel for x in new}
        self.journal.record_skipped(self.rec.id, [(x.rel, x.reason, x.refused) for x in new], replace=replace)

    def _reconcile(self) -> None:
        """Compare the folders with the journal; anything new or changed that no event announced is settled
        now. Cheap: one stat per folder, and a listing (one stat per file, no reading) only of folders whose
        entries changed, except every ``FULL_RESCAN_EVERY``-th time, which lists everything (an in-place write
        whose event was lost leaves its folder's mtime alone)."""
        t0 = time.perf_counter()
        full = self._rescans % FULL_RESCAN_EVERY == FULL_RESCAN_EVERY - 1
        self._rescans += 1
        known: dict[str, tuple[int, int]] | None = None
        hints = 0
        skipped: list[Skipped] = []
        try:
            for f in scan(self.roots, self.rules, folders=self.index, full=full, on_skip=skipped.append):
                if known is None:
                    known = self.journal.known_files(self.rec.id)
                if known.get(f.rel) != (f.size, f.mtime_ns):
                    hints += 1
                    self.settler.touch(
                        f.rel, str(f.path(self.roots)), delay=0, marker=self.rules.marker_for(f.rel)
                    )
        except UsageError as exc:
            log.warning("reconciliation scan: %s", exc)
        self._note_skipped(skipped)
        if hints:
            log.info("reconciliation found %d files no event announced", hints)
        log.debug(
            "reconciliation (%s): %.3f s", "full" if full else "changed folders", time.perf_counter() - t0
        )


def _marker_exists(marker: str, path: str) -> bool:
    """Markers live next to the file they announce."""
    return os.path.exists(os.path.join(os.path.dirname(path), os.path.basename(marker)))


__all__ = ["SyncRequest", "SyncSession"]
