"""The engine: one object per process that front ends drive — the CLI and the tray alike.

It owns what runs share: ONE rclone daemon (per rclone config file, normally exactly one), the catalogue sessions
per profile, the transfer gate (the design card's "rclone queue": a global limit on copy jobs, and pause), the
bandwidth limit, and the event bus. Each dataset runs on its own thread with its own journal connection; a handle
lets the front end wait for it or stop it. Nothing here imports a GUI toolkit or blocks on one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.sync import EventFilter

from engine.bwlimit import rate_now
from engine.catalogue import Catalogue, Credentials, Investigation, Session, open_catalogue, require_session
from engine.config import Config, Profile, load_config
from engine.context import RunContext
from engine.datasets import open_dataset
from engine.errors import Action, BusyError, Cancelled, DataUploaderError, UsageError
from engine.events import DatasetFinished, EnginePaused, EngineResumed, Event, EventBus
from engine.gate import DEFAULT_MAX_JOBS, TransferGate
from engine.home import Home, resolve_home
from engine.journal import FAILED, Journal
from engine.logins import LoginWatch
from engine.logs import FILE_ONLY
from engine.model import DatasetState, EngineSnapshot, FileState, Mode, RunReport
from engine.procs import pid_alive
from engine.rclone.binary import find_rclone
from engine.rclone.daemon import RcloneDaemon, RcloneError
from engine.rclone.launch import adopt, daemon_key, new_daemon
from engine.runs import BatchRun, DatasetRun
from engine.spec import DatasetSpec, ResolvedSpec, resolve_spec
from engine.status import dataset_states
from engine.storage import Storage, redact_fs

log = logging.getLogger(__name__)

LOGIN_CHECK = 5.0  # seconds between looks at the catalogue logins


@dataclasses.dataclass
class ProfileInfo:
    name: str
    storage: str  # secrets masked
    catalogue: str  # "local" | "scicat"
    needs_login: bool
    can_create_investigations: bool


class DatasetHandle:
    """A dataset running in the engine. ``wait()`` gives its report, or raises why it could not finish."""

    def __init__(self, engine: Engine, run: DatasetRun, dataset_id: int) -> None:
        self.engine = engine
        self.run = run
        self.id = dataset_id
        self.name = run.resolved.request.name
        self.profile = run.resolved.profile.name
        self.investigation = run.resolved.request.investigation
        self.mode: Mode = run.mode
        self.spec = run.resolved.spec
        self.report: RunReport | None = None
        self.error: DataUploaderError | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"run-{dataset_id}", daemon=True)

    def __repr__(self) -> str:
        return f"<DatasetHandle {self.mode} '{self.name}' #{self.id}{' done' if self.done else ''}>"

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> RunReport | None:
        """The report when the run ended (None on timeout); raises the run's :class:`DataUploaderError`."""
        if not self._done.wait(timeout):
            return None
        if self.error is not None:
            raise self.error
        return self.report

    def _main(self) -> None:
        try:
            self.engine._check_logins(self.run.resolved.profile)
            self.report = self.run.run()
        except DataUploaderError as exc:
            self.error = exc
        except Exception as exc:  # a bug must reach the front end as an error, not a silent dead thread
            log.exception("run of dataset %s failed", self.name)
            self.error = DataUploaderError(f"internal error: {type(exc).__name__}: {exc}; see the log")
        finally:
            self.engine._finished(self)
            self._done.set()


class Engine:
    """One per process; a context manager. Every method is thread-safe; only :meth:`DatasetHandle.wait` (and
    :meth:`close`) block for long."""

    def __init__(
        self,
        home: Home | str | os.PathLike[str] | None = None,
        *,
        max_jobs: int = DEFAULT_MAX_JOBS,
        event_filter: EventFilter | None = None,
    ) -> None:
        """``event_filter`` drops watcher events (tests use it to lose events the way an OS queue does)."""
        self.home = home if isinstance(home, Home) else resolve_home(home)
        self._bus = EventBus()
        self._gate = TransferGate(max_jobs)
        self._lock = threading.RLock()
        self._handles: dict[int, DatasetHandle] = {}
        self._daemons: dict[tuple[str, ...], RcloneDaemon] = {}
        self._catalogues: dict[str, tuple[Profile, Catalogue]] = {}
        self._bwlimits: dict[int, str] = {}  # dataset id → its limit; the newest one applies engine-wide
        self._event_filter = event_filter
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._logins = LoginWatch()
        self._logins_lock = threading.Lock()
        self._tick_stop = threading.Event()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration -----------------------------------------------------------------------------------

    def config(self) -> Config:
        """The configuration as it is on disk now (read at every start, so Settings take effect at once)."""
        return load_config(self.home)

    def profiles(self) -> list[ProfileInfo]:
        out = []
        for p in self.config().profiles.values():
            cat = self._catalogue(p)
            out.append(
                ProfileInfo(
                    p.name, redact_fs(p.storage), p.catalogue, cat.needs_login, cat.can_create_investigations
                )
            )
        return out

    def validate(self, spec: DatasetSpec) -> DatasetSpec:
        """Check ``spec`` as a start would; raise a :class:`DataUploaderError` whose ``field`` names the culprit."""
        resolve_spec(spec, self.config())
        return spec

    def _ensure_home(self) -> None:
        try:
            self.home.ensure()
        except OSError as exc:
            raise UsageError(
                f"cannot write the data home {self.home.data_dir} ({exc.strerror}); set DATAUPLOADER_HOME to a "
                "folder you can write"
            ) from None

    # -- runs --------------------------------------------------------------------------------------------

    def start_sync(self, spec: DatasetSpec) -> DatasetHandle:
        return self._start(dataclasses.replace(spec, mode="sync"))

    def upload(self, spec: DatasetSpec) -> DatasetHandle:
        return self._start(dataclasses.replace(spec, mode="batch"))

    def _start(self, spec: DatasetSpec) -> DatasetHandle:
        if self._closed:
            raise UsageError("the engine is closed")
        resolved = resolve_spec(spec, self.config())
        self._ensure_home()
        with self._lock:
            for h in self._handles.values():
                if h.run.resolved.key == resolved.key:
                    raise BusyError(
                        f"dataset '{h.name}' is already being uploaded here; stop it first", field="name"
                    )
            with Journal(self.home.journal_file) as journal:
                rec = open_dataset(journal, resolved.profile, resolved.request)
                journal.begin_run(rec.id, spec.mode, _spec_json(spec))
            run: DatasetRun
            factory = self._context_factory(resolved)
            if spec.mode == "sync":
                from engine.sync import SyncRun  # watchdog is needed by sync mode only

                run = SyncRun(resolved, factory, event_filter=self._event_filter)
            else:
                run = BatchRun(resolved, factory)
            handle = DatasetHandle(self, run, rec.id)
            self._handles[rec.id] = handle
            if resolved.bwlimit:
                self._bwlimits[rec.id] = resolved.bwlimit
        self._ensure_ticker()
        handle._thread.start()
        return handle

    def stop_sync(self, handle: DatasetHandle, *, finish: bool = True) -> None:
        """Returns at once. ``finish``: stop taking new files, finish and verify what is in flight, register, write
        the manifest, seal. Otherwise stop now; the next start resumes. (A batch upload always stops now.)"""
        handle.run.request_stop(finish=finish)
        self._gate.wake()

    def handles(self) -> list[DatasetHandle]:
        with self._lock:
            return [h for h in self._handles.values() if not h.done]

    def retry_failed(self, handle: DatasetHandle) -> int:
        """Give the dataset's failed files another chance (a running sync picks them up at once)."""
        with Journal(self.home.journal_file) as journal:
            failed = list(journal.iter_files(handle.id, (FAILED,)))
            journal.retry_failed(handle.id)
        handle.run.wake()
        return len(failed)

    def _finished(self, handle: DatasetHandle) -> None:
        """From the run's thread, as it ends."""
        with self._lock:
            self._handles.pop(handle.id, None)
            self._bwlimits.pop(handle.id, None)
        err = handle.error
        with contextlib.suppress(DataUploaderError), Journal(self.home.journal_file) as journal:
            if err is not None and not isinstance(err, Cancelled):
                journal.delete_dataset_if_empty(
                    handle.id
                )  # a start that failed leaves no empty dataset behind
            if not isinstance(err, Cancelled):
                journal.end_run(handle.id)  # a stopped (or crashed) sync stays resumable
        self._apply_bwlimit()
        cancelled = isinstance(err, Cancelled)
        _log_outcome(handle, err)
        self._bus.emit(
            DatasetFinished(
                dataset_id=handle.id,
                name=handle.name,
                report=handle.report,
                error=str(err) if err is not None and not cancelled else None,
                action=err.action
                if err is not None
                else handle.report.action
                if handle.report
                else Action.NONE,
                cancelled=cancelled,
            )
        )

    def resumable(self) -> list[DatasetSpec]:
        """Syncs that were running when an earlier process ended without finishing them (Quit now, a crash, a
        logout): the tray starts them again."""
        if not self.home.journal_file.exists():
            return []
        with Journal(self.home.journal_file) as journal:
            rows = journal.runs()
        with self._lock:
            running = set(self._handles)
        out = []
        for dataset_id, mode, spec_json, pid in rows:
            if mode != "sync" or dataset_id in running or (pid != os.getpid() and pid_alive(pid)):
                continue
            with contextlib.suppress(ValueError, TypeError, KeyError):
                out.append(_spec_from_json(spec_json))
        return out

    # -- pause -------------------------------------------------------------------------------------------

    def pause(self) -> None:
        """No transfer starts while paused; copy jobs in flight are cancelled and their files queued again (they
        are ours, so nothing is lost and they do not count as failed attempts). Watchers keep recording."""
        if self._gate.pause():
            log.info("uploads paused")
            self._bus.emit(EnginePaused())

    def resume(self) -> None:
        if self._gate.resume():
            log.info("uploads resumed")
            self._bus.emit(EngineResumed())

    @property
    def paused(self) -> bool:
        return self._gate.paused

    # -- state and events --------------------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        """Every dataset the journal knows, with live progress (of this engine's runs and of other processes')."""
        with self._lock:
            modes = {h.id: h.mode for h in self._handles.values()}
        states = dataset_states(self.home, modes=modes, paused=self.paused)
        return EngineSnapshot(paused=self.paused, datasets=tuple(states))

    def find(
        self, name: str, *, investigation: str | None = None, profile: str | None = None
    ) -> DatasetState:
        """The one dataset called ``name`` (narrowed by investigation and profile when several have that name)."""
        found = [
            d
            for d in self.snapshot().datasets
            if d.name == name
            and (investigation is None or d.investigation == investigation)
            and (profile is None or d.profile == profile)
        ]
        if not found:
            raise UsageError(f"no dataset named '{name}' in the journal; `datauploader status` lists them")
        if len(found) > 1:
            places = ", ".join(f"{d.investigation or '-'} [{d.profile}]" for d in found)
            raise UsageError(
                f"several datasets are named '{name}' ({places}); give --investigation or --profile"
            )
        return found[0]

    def files(self, dataset: DatasetState) -> list[FileState]:
        """Every file of ``dataset`` with its state, size and reason (refused and skipped entries too)."""
        with Journal(self.home.journal_file, readonly=True) as journal:
            out = [
                FileState(f.rel, f.state, f.size, f.reason, f.verify, f.updated)
                for f in journal.iter_files(dataset.id)
            ]
            out += [
                FileState(r, "refused", None, why, None, None)
                for r, why in journal.skipped(dataset.id, refused=True)
            ]
            out += [
                FileState(r, "skipped", None, why, None, None)
                for r, why in journal.skipped(dataset.id, refused=False)
            ]
        return sorted(out, key=lambda f: f.path)

    def forget(self, dataset: DatasetState) -> int:
        """Drop a dataset from the journal (storage and catalogue untouched): for refused or abandoned entries.
        Refused while the dataset runs here or in another process."""
        with self._lock:
            if dataset.id in self._handles or dataset.running:
                raise BusyError(f"dataset '{dataset.name}' is running; stop it first")
            with Journal(self.home.journal_file) as journal:
                return journal.forget_dataset(dataset.id)

    def subscribe(
        self, callback: Callable[[Event], None], kinds: tuple[type[Event], ...] | None = None
    ) -> Callable[[], None]:
        """Events arrive on a thread of their own per subscriber, only those of ``kinds`` if given; returns the
        function that unsubscribes."""
        unsubscribe = self._bus.subscribe(callback, kinds)
        self._ensure_ticker()  # login warnings are wanted with or without runs
        return unsubscribe

    def emit(self, event: Event) -> None:
        self._bus.emit(event)

    # -- catalogue ---------------------------------------------------------------------------------------

    def probe_catalogue(self, *, profile: str | None = None) -> None:
        """Check that the profile's catalogue answers and is what the profile says, before asking for a password."""
        self._catalogue(self.config().profile(profile)).probe()

    def login(self, credentials: Credentials, *, profile: str | None = None) -> Session:
        return self._catalogue(self.config().profile(profile)).login(credentials)

    def logout(self, *, profile: str | None = None) -> None:
        self._catalogue(self.config().profile(profile)).logout()

    def whoami(self, *, profile: str | None = None) -> Session | None:
        return self._catalogue(self.config().profile(profile)).session()

    def require_login(self, *, profile: str | None = None) -> Session | None:
        p = self.config().profile(profile)
        return require_session(self._catalogue(p), p.name)

    def investigations(self, *, profile: str | None = None) -> list[Investigation]:
        p = self.config().profile(profile)
        cat = self._catalogue(p)
        require_session(cat, p.name)
        return cat.list_investigations()

    def catalogue_name(self, *, profile: str | None = None) -> str:
        return self._catalogue(self.config().profile(profile)).name

    # -- maintenance (the CLI's verify and repair; the tray offers verify too) ----------------------------

    def verify(self, *, dataset: str | None = None, download: bool = False) -> list[Any]:
        from engine.verify import verify

        return verify(self.home, dataset=dataset, download=download)

    def repair(self) -> Any:
        from engine.repair import repair

        return repair(self.home)

    # -- shared parts ------------------------------------------------------------------------------------

    def _catalogue(self, profile: Profile) -> Catalogue:
        with self._lock:
            cached = self._catalogues.get(profile.name)
            if cached is not None and cached[0] == profile:
                return cached[1]
            if cached is not None:
                cached[1].close()
            catalogue = open_catalogue(profile, self.home)
            self._catalogues[profile.name] = (profile, catalogue)
            return catalogue

    def _daemon(self, config: Config, profile: Profile) -> RcloneDaemon:
        binary = find_rclone(config.rclone)
        key = daemon_key(binary, profile)
        with self._lock:
            daemon = self._daemons.get(key)
            if daemon is None:
                # The command line may have started it while the engine was imported; restarted later, it asks
                # the engine for the bandwidth limit.
                daemon = adopt(key, bwlimit=self._rate)
                if daemon is not None and daemon.run_dir == self.home.run_dir:
                    log.info(
                        "using the rclone daemon started early, while the engine loaded (pid %s)", daemon.pid
                    )
                else:
                    if daemon is not None:
                        daemon.stop()  # started for another home
                    daemon = new_daemon(binary, profile, self.home, bwlimit=self._rate)
                self._daemons[key] = daemon
            return daemon

    def _context_factory(self, resolved: ResolvedSpec) -> Callable[[], RunContext]:
        def factory() -> RunContext:
            config = self.config()
            profile = resolved.profile
            daemon = self._daemon(config, profile)
            # rclone takes ~0.1 s to come up: let it, while the run scans the source (the first call waits).
            threading.Thread(
                target=self._start_daemon, args=(daemon,), name="rclone-start", daemon=True
            ).start()
            storage = Storage(
                daemon,
                profile.storage,
                run_dir=self.home.run_dir,
                transfers=resolved.transfers,
                checkers=profile.checkers,
                gate=self._gate,
                local_verify=profile.local_verify,
            )
            return RunContext(
                home=self.home,
                profile=profile,
                journal=Journal(self.home.journal_file),
                catalogue=self._catalogue(profile),
                daemon=daemon,
                storage=storage,
                gate=self._gate,
                emit=self._bus.emit,
            )

        return factory

    def _start_daemon(self, daemon: RcloneDaemon) -> None:
        try:
            daemon.start()
        except RcloneError as exc:  # the run's first call meets the same error and reports it, once
            log.debug("rclone did not start in the background: %s", exc.message)
            return
        self._apply_bwlimit()

    def _rate(self) -> str:
        """The bandwidth limit in force now: the newest run's applies to the whole engine (one daemon carries
        every transfer); a timetable is followed here, minute by minute."""
        with self._lock:
            limit = list(self._bwlimits.values())[-1] if self._bwlimits else "off"
        return rate_now(limit)

    def _apply_bwlimit(self) -> None:
        """Tell running daemons a limit that changed (a daemon starting, or restarting, starts with the current
        one, so an unlimited run makes no call at all)."""
        rate = self._rate()
        with self._lock:
            daemons = [d for d in self._daemons.values() if d.running()]
            busy = bool(self._handles)
        for daemon in daemons:
            if daemon.rate in (None, rate):
                continue
            try:
                daemon.call("core/bwlimit", rate=rate)
                daemon.rate = rate
            except (
                RcloneError
            ) as exc:  # with no run left (an engine closing), nobody is limited: not worth a word
                log.log(
                    logging.WARNING if busy else logging.DEBUG,
                    "cannot set the bandwidth limit %r: %s",
                    rate,
                    exc.message,
                )

    def _ensure_ticker(self) -> None:
        """One thread that follows bandwidth timetables while runs exist."""
        with self._lock:
            if self._ticker is not None and self._ticker.is_alive():
                return
            self._tick_stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="engine-ticker", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        """Every few seconds: catalogue logins (cheap: adapters answer from their cache); every 30 s: the
        bandwidth timetable. A run's own login is looked at when it starts (:meth:`DatasetHandle._main`)."""
        beats = 0
        while not self._tick_stop.wait(LOGIN_CHECK):
            beats += 1
            if beats % int(30 / LOGIN_CHECK) == 0:
                self._apply_bwlimit()
            self._check_logins()

    def _check_logins(self, only: Profile | None = None) -> None:
        """Every profile's login, or ``only`` that one: a run starting looks at its own at once, so a sync started
        with a login that runs out soon is warned before its first registration can find the token dead (and the
        other profiles' catalogues are not opened on the way)."""
        if only is not None:
            profiles = [only] if only.catalogue != "local" else []
        else:
            try:
                profiles = [p for p in self.config().profiles.values() if p.catalogue != "local"]
            except DataUploaderError:
                return  # a config being edited: next time
        for profile in profiles:
            with self._logins_lock:  # the ticker and a starting run: one warning per token
                events = self._logins.check(profile.name, self._catalogue(profile))
            for event in events:
                self._bus.emit(event)

    # -- the end -----------------------------------------------------------------------------------------

    def close(self, timeout: float = 60.0) -> None:
        """Stop everything now (``finish=False``): rclone jobs are stopped, the journal stays consistent, syncs
        stay resumable, the daemon is stopped."""
        if self._closed:
            return
        self._closed = True
        for h in self.handles():
            h.run.request_stop(finish=False)
        self._gate.wake()
        deadline = time.monotonic() + timeout
        for h in list(self._handles.values()):
            h._thread.join(max(0.1, deadline - time.monotonic()))
        self._tick_stop.set()
        with self._lock:
            daemons, self._daemons = list(self._daemons.values()), {}
            catalogues, self._catalogues = [c for _, c in self._catalogues.values()], {}
        for daemon in daemons:
            daemon.stop()
        for catalogue in catalogues:
            catalogue.close()
        self._bus.close()


def _log_outcome(handle: DatasetHandle, err: DataUploaderError | None) -> None:
    """One line per run in the log: what ran and how it ended (the log is the record of an unattended PC)."""
    what = f"{handle.mode} of dataset '{handle.name}' (profile {handle.profile})"
    r = handle.report
    if isinstance(err, Cancelled):
        log.info("%s stopped; it resumes at the next start", what, extra=FILE_ONLY)
    elif err is not None:
        log.error("%s could not run: %s", what, err, extra=FILE_ONLY)
    elif r is not None:
        level = logging.INFO if r.exit_code == 0 else logging.WARNING
        log.log(
            level,
            "%s ended with exit %d: %d/%d files registered, %d uploaded now (%d bytes), %d failed%s, %.1f s",
            what,
            r.exit_code,
            r.files_done,
            r.files_total,
            r.files_uploaded,
            r.bytes_uploaded,
            len(r.failed),
            f", {len(r.problems)} problems" if r.problems else "",
            r.elapsed,
            extra=FILE_ONLY,
        )


def _spec_json(spec: DatasetSpec) -> str:
    return json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)


def _spec_from_json(text: str) -> DatasetSpec:
    data = json.loads(text)
    data["paths"] = tuple(data["paths"])
    fields = {f.name for f in dataclasses.fields(DatasetSpec)}
    return DatasetSpec(**{k: v for k, v in data.items() if k in fields})


__all__ = ["DatasetHandle", "Engine", "ProfileInfo"]
