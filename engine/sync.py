"""Sync mode: upload every new or modified file while an instrument writes, and never a half-written one.

A :class:`SyncRun` is the shared run (:mod:`engine.runs`) with this body: a catch-up of files written while
DataUploader was not running, a folder watcher whose events feed a settle tracker (:mod:`engine.settle`), an upload
thread that takes whatever the tracker declared complete (a lone file goes at once, a burst as batches), and a
periodic reconciliation scan, because events are hints and the OS drops some. A graceful stop (Ctrl-C, the tray's
"Stop sync") stops taking new files, lets files closed moments ago settle, finishes those in flight, registers them
and seals the dataset; an abort stops rclone at once and leaves a journal the next run resumes from. While the
engine is paused the watcher keeps recording new files in the journal, so nothing written meanwhile is missed.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.backoff import backoff
from engine.context import RunContext
from engine.errors import UsageError
from engine.journal import DISCOVERED, SETTLING, UPLOADING, DatasetRecord, Journal
from engine.model import Mode, Phase
from engine.progress import ProgressTracker
from engine.runs import DatasetRun
from engine.settle import Ready, SettleTracker
from engine.sources import FolderIndex, Skipped, name_problem, printable, scan
from engine.spec import ResolvedSpec
from engine.uploader import DatasetUploader
from engine.watching import Watcher

log = logging.getLogger(__name__)

FULL_RESCAN_EVERY = 10
HEARTBEAT = 5.0  # seconds between progress writes while idle (status presumes a run dead after 30 s)

EventFilter = Callable[[str, str], bool]


class SyncRun(DatasetRun):
    mode: Mode = "sync"
    # Set by body(), before the watcher's events are handled (events that arrive earlier wait in _early).
    journal: Journal
    rec: DatasetRecord
    tracker: ProgressTracker
    uploader: DatasetUploader
    settler: SettleTracker

    def __init__(
        self,
        resolved: ResolvedSpec,
        ctx_factory: Callable[[], RunContext],
        *,
        event_filter: EventFilter | None = None,
    ) -> None:
        """``event_filter(path, kind)`` returning False drops a watcher event (tests use it to lose events the
        way an overflowing OS queue does)."""
        super().__init__(resolved, ctx_factory)
        self.event_filter = event_filter
        self.roots = resolved.roots
        self.rules = resolved.rules
        self.settle = resolved.settle
        self.rescan = resolved.profile.rescan
        self.register_retry = resolved.profile.register_retry
        self._kick = threading.Event()  # something became ready to upload
        self._pending_settling: list[tuple[str, str, int, int]] = []
        self.index = FolderIndex()
        self._rescans = 0
        self._lock = threading.Lock()
        self._skipped: set[str] = set()
        self._early: list[tuple[str, str]] | None = []  # events seen before body() is ready for them
        self.watcher: Watcher | None = None

    def wake(self) -> None:
        self._kick.set()

    def folder_index(self) -> FolderIndex:
        return self.index

    def before_scan(self) -> None:
        poll = self.resolved.profile.options.get("poll")
        self.watcher = Watcher(
            # A file argument is watched through its folder, not recursively (its folder may be anything).
            sorted({(r.root, r.single is None) for r in self.roots}),
            self._on_event,
            polling=poll if isinstance(poll, bool) else None,
        )
        # Watch first, then scan: a file created in between is seen by one or the other, never by neither.
        self.watcher.start()

    def after_run(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    # -- the body ----------------------------------------------------------------------------------------

    def body(
        self, ctx: RunContext, rec: DatasetRecord, tracker: ProgressTracker, uploader: DatasetUploader
    ) -> None:
        journal = ctx.journal
        self.journal, self.rec, self.tracker, self.uploader = journal, rec, tracker, uploader
        self._skipped = {rel for rel, _ in journal.skipped(rec.id, refused=True)}
        self._skipped |= {rel for rel, _ in journal.skipped(rec.id, refused=False)}
        self.settler = settler = SettleTracker(
            self.settle, self._on_ready, marker_exists=_marker_exists, on_gone=self._on_gone
        )
        tracker.set_phase(Phase.CATCHING_UP)
        settler.start()
        with self._lock:
            early, self._early = self._early or [], None
        for path, kind in early:
            self._on_event(path, kind)
        # Catch-up: what was written while we were not running settles like anything else; quiet files are
        # declared complete at once (their mtime says how long they have been quiet).
        for f in journal.iter_files(rec.id, (SETTLING,)):
            settler.touch(f.rel, f.source, delay=0, marker=self.rules.marker_for(f.rel))
        self._kick.set()
        upload_thread = threading.Thread(target=self._upload_loop, name="uploader", daemon=True)
        upload_thread.start()
        next_rescan = time.monotonic() + self.rescan
        watcher = self.watcher
        assert watcher is not None
        try:
            while not self.stop.is_set():
                self.stop.wait(0.5)
                self._flush_settling()
                if watcher.supervise():
                    next_rescan = 0.0  # events were lost while it was down
                if time.monotonic() >= next_rescan:
                    self._reconcile()
                    next_rescan = time.monotonic() + self.rescan
            log.info("stopping: no new files; finishing the %d in flight", self._in_flight())
            tracker.set_phase(Phase.FINISHING)
            watcher.stop()
            # Files closed moments ago are complete but still settling: give them their settle time.
            deadline = time.monotonic() + self.settle + 1.0
            while settler.settling() and time.monotonic() < deadline and not self.abort.is_set():
                time.sleep(0.05)
            settler.stop()
            self._flush_settling()
            while upload_thread.is_alive():
                upload_thread.join(0.5)
        except BaseException:
            self.abort.set()
            self.stop.set()
            self._kick.set()
            raise
        finally:
            settler.stop()
            upload_thread.join(30)
        settling = journal.counts(rec.id).by_state.get(SETTLING, 0)
        if settling and not self.abort.is_set():
            log.warning(
                "%d files were still being written when sync stopped; the next run uploads them", settling
            )

    def _in_flight(self) -> int:
        c = self.journal.counts(self.rec.id)
        return c.by_state.get(DISCOVERED, 0) + c.by_state.get(UPLOADING, 0)

    # -- threads -----------------------------------------------------------------------------------------

    def _upload_loop(self) -> None:
        """Uploads whatever is ready, then sleeps until the settle tracker kicks it. Idle costs nothing: one
        indexed lookup a second, no counting over the dataset (which on 100,000 files is ~3 % of a core)."""
        uploader, tracker = self.uploader, self.tracker
        attempt = 0
        next_register = time.monotonic() + self.register_retry
        phase: Phase | None = None
        while not self.abort.is_set():
            self._kick.wait(1.0)
            self._kick.clear()
            if self.abort.is_set():
                return
            if time.monotonic() >= next_register:
                # Registrations queued while the catalogue was away or the login had expired: a login in
                # another shell (a new token in the store) or the catalogue's return lets them flush now.
                next_register = time.monotonic() + self.register_retry
                if uploader.has_unregistered():
                    uploader.register()
            if not uploader.has_pending():
                if self.stop.is_set() and not self._settler_running():
                    return
                if not self.stop.is_set() and phase != Phase.WATCHING:
                    phase = Phase.WATCHING
                    tracker.set_phase(phase)
                elif time.monotonic() - tracker.last_publish >= HEARTBEAT:
                    tracker.publish(force=True)  # `status` takes a silent run for a dead one
                continue
            if not uploader.wait_while_paused():
                return
            phase = Phase.UPLOADING
            tracker.set_phase(phase)
            outcome = uploader.one_pass()
            if self.ctx.gate.paused:
                self._kick.set()
                continue
            if not outcome.reachable:
                delay = backoff(attempt)
                attempt += 1
                phase = Phase.WAITING_FOR_STORAGE
                tracker.set_phase(phase)
                log.warning("%s; retrying in %.0f s", outcome.describe(), delay)
                self.abort.wait(delay)
                self._kick.set()
                continue
            attempt = 0
            self._kick.set()  # look again at once: more may have become ready meanwhile

    def _settler_running(self) -> bool:
        return self.settler.running()

    def _on_event(self, path: str, kind: str) -> None:
        """From the watcher's thread: map to the dataset, filter, and hand to the settle tracker."""
        if self.stop.is_set() or (self.event_filter is not None and not self.event_filter(path, kind)):
            return
        with self._lock:
            if self._early is not None:
                self._early.append((path, kind))
                return
        rel = self._rel(path)
        if rel is None or not self.rules.wanted(rel):
            return
        if kind == "deleted":
            self.settler.forget(rel)
            self._on_gone([rel])
            return
        problem = name_problem(rel) or (self.refuse(rel) if self.refuse is not None else None)
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
        elif (
            self.watcher is not None
            and self.watcher.has_close_events
            and (kind == "written" or (kind == "created" and st and not st.st_size))
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
        self.tracker.refresh()
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
            for f in scan(
                self.roots,
                self.rules,
                folders=self.index,
                full=full,
                on_skip=skipped.append,
                refuse=self.refuse,
            ):
                if known is None:
                    known = self.journal.known_files(self.rec.id)
                if known.get(f.rel) != (f.size, f.mtime_ns):
                    hints += 1
                    self.settler.touch(
                        f.rel, f.path(self.roots), delay=0, marker=self.rules.marker_for(f.rel)
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


__all__ = ["SyncRun"]
