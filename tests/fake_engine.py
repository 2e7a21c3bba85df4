"""A small stand-in for :class:`engine.Engine` (the same API and types), for the tray's tests.

Real enough for the tray's end-to-end test: it watches folders by polling, copies settled files to the
profile's local storage folder, checks their sha256 there, refuses to overwrite a file it did not write
(a permanent failure), writes a manifest when a sync is stopped, and emits the draft's events. It keeps
interrupted syncs in ``<home>/fake-resumable.json`` so the tray's resume-at-start is testable. A profile with
``catalogue = "scicat"`` needs a login: password ``secret`` (or any token) gives a session lasting
``FAKE_LOGIN_SECONDS`` (default 3600); login warnings and expiry are emitted every 2 s, as a chatty engine
would, to prove the tray notifies once.

When the real Engine is on main, the e2e test swaps it in with one line (tests/desktop/test_tray_e2e.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from engine import (
    Action,
    Credentials,
    DatasetFinished,
    DatasetSealed,
    DatasetSpec,
    DatasetStarted,
    DatasetState,
    DataUploaderError,
    EnginePaused,
    EngineResumed,
    EngineSnapshot,
    Event,
    FailedFile,
    FileFailed,
    FileVerified,
    Investigation,
    LoginExpired,
    LoginExpiring,
    Phase,
    ProfileInfo,
    ProgressUpdate,
    RunReport,
    Session,
    UsageError,
)
from engine.config import load_config
from engine.home import Home

SETTLE = float(os.environ.get("FAKE_SETTLE", "0.4"))
POLL = 0.1


class SpecError(UsageError):
    exit_code = 2

    def __init__(self, message: str, field: str | None = None, action: Action = Action.NONE) -> None:
        super().__init__(message, field=field, action=action)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FakeHandle:
    def __init__(self, engine: FakeEngine, id: int, spec: DatasetSpec, dest: Path) -> None:
        self.id, self.name, self.spec = id, spec.name, spec
        self.profile = spec.profile or "default"
        self.investigation = spec.investigation
        self.mode: Literal["sync", "batch"] = spec.mode
        self.dest = dest
        self.engine = engine
        self.phase = Phase.STARTING
        self.stop_flag: bool | None = None  # None: run; True: finish; False: stop now
        self.seen: dict[str, tuple[int, float, float]] = {}  # rel -> (size, mtime, first seen unchanged)
        self.uploaded: dict[str, tuple[int, float, str]] = {}  # rel -> (size, mtime, sha256)
        self.failed: dict[str, str] = {}
        self.report: RunReport | None = None
        self.started = time.time()
        self.bytes_total = 0
        self.files_total = 0
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"fake-{self.name}", daemon=True)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> RunReport | None:
        self._done.wait(timeout)
        return self.report

    # ----------------------------------------------------------------------------------------------------

    def _sources(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for p in map(Path, self.spec.paths):
            if p.is_dir():
                for f in sorted(p.rglob("*")):
                    if f.is_file():
                        out[f.relative_to(p).as_posix()] = f
            elif p.is_file():
                out[p.name] = p
        return out

    def _scan(self, final: bool) -> list[tuple[str, Path]]:
        """Files ready to go: unchanged for SETTLE seconds (or all of them at the final pass)."""
        now = time.monotonic()
        ready = []
        src = self._sources()
        self.files_total = len(src)
        self.bytes_total = sum(p.stat().st_size for p in src.values())
        for rel, p in src.items():
            st = p.stat()
            key = (st.st_size, st.st_mtime)
            if rel in self.failed:
                continue
            if rel in self.uploaded and self.uploaded[rel][:2] == key:
                continue
            prev = self.seen.get(rel)
            if prev is None or prev[:2] != key:
                self.seen[rel] = (*key, now)
                if not final:
                    continue
            if final or now - self.seen[rel][2] >= SETTLE:
                ready.append((rel, p))
        return ready

    def _copy(self, rel: str, src: Path) -> None:
        target = self.dest / rel
        digest = _sha256(src)
        if target.exists() and rel not in self.uploaded and _sha256(target) != digest:
            reason = "the storage already holds a different file at this path (not written by DataUploader)"
            self.failed[rel] = reason
            self.engine.emit(FileFailed(self.id, self.name, rel, reason, True))
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        if _sha256(target) != digest:
            self.engine.emit(FileFailed(self.id, self.name, rel, "checksum differs", False))
            return
        st = src.stat()
        self.uploaded[rel] = (st.st_size, st.st_mtime, digest)
        self.engine.emit(FileVerified(self.id, rel, st.st_size, "sha256"))

    def _progress(self) -> None:
        self.engine.emit(
            ProgressUpdate(
                self.id,
                self.name,
                self.phase,
                len(self.uploaded),
                self.files_total,
                sum(u[0] for u in self.uploaded.values()),
                self.bytes_total,
                0.0,
                None,
                len(self.failed),
            )
        )

    def _run(self) -> None:
        e = self.engine
        e.emit(DatasetStarted(self.id, self.name, self.mode))
        try:
            while True:
                final = self.stop_flag is True or self.mode == "batch"
                if self.stop_flag is False:
                    break
                if e.paused and not final:
                    self.phase = Phase.PAUSED
                    time.sleep(POLL)
                    continue
                ready = self._scan(final)
                if ready:
                    self.phase = Phase.FINISHING if final else Phase.UPLOADING
                    self._progress()
                    for rel, src in ready:
                        if self.stop_flag is False:
                            break
                        self._copy(rel, src)
                    self._progress()
                if final:
                    break
                if self.phase is not Phase.WATCHING and not ready:
                    self.phase = Phase.WATCHING
                    self._progress()
                time.sleep(POLL)
        except Exception as exc:  # pragma: no cover - shows in the test log
            self._finish(error=f"{type(exc).__name__}: {exc}")
            return
        self._finish()

    def _finish(self, error: str | None = None) -> None:
        e = self.engine
        stopped_now = self.stop_flag is False
        complete = not stopped_now and not self.failed and error is None
        size = sum(u[0] for u in self.uploaded.values())
        if complete:
            manifest = {
                "name": self.name,
                "investigation": self.investigation,
                "files": [
                    {"name": r, "contentSize": u[0], "sha256": u[2]} for r, u in sorted(self.uploaded.items())
                ],
            }
            (self.dest / "ro-crate-metadata.json").write_text(json.dumps(manifest, indent=1))
            self.phase = Phase.DONE
        else:
            self.phase = Phase.STOPPED if stopped_now else Phase.FAILED
        failed = tuple(FailedFile(r, why) for r, why in self.failed.items())
        self.report = (
            None
            if stopped_now
            else RunReport(
                dataset_id=self.id,
                name=self.name,
                location=str(self.dest),
                files_total=self.files_total,
                files_done=len(self.uploaded),
                bytes_total=self.bytes_total,
                bytes_done=size,
                files_uploaded=len(self.uploaded),
                bytes_uploaded=size,
                failed=failed,
                skipped=(),
                problems=(),
                complete=complete,
                elapsed=time.time() - self.started,
            )
        )
        if not stopped_now:
            e.forget_resumable(self.name)
        if complete:
            e.emit(
                DatasetSealed(
                    self.id,
                    self.name,
                    self.mode,
                    len(self.uploaded),
                    size,
                    time.time() - self.started,
                    "sha256",
                )
            )
        e.emit(DatasetFinished(self.id, self.name, self.report, error, Action.NONE, cancelled=stopped_now))
        self._done.set()


class FakeEngine:
    def __init__(self, home: Home) -> None:
        self.home = home.ensure()
        self.config = load_config(home)
        self._lock = threading.RLock()
        self._subs: list[Callable[[Event], None]] = []
        self._handles: dict[int, FakeHandle] = {}
        self._next_id = 1
        self._paused = False
        self._sessions: dict[str, Session] = {}
        self._stop = threading.Event()
        self._login_thread = threading.Thread(target=self._watch_logins, name="fake-logins", daemon=True)
        self._login_thread.start()

    # ------------------------------------------------------------------------------------------ events

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        with self._lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subs:
                    self._subs.remove(callback)

        return unsubscribe

    def emit(self, ev: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for cb in subs:
            with contextlib.suppress(Exception):
                cb(ev)

    # ------------------------------------------------------------------------------------------ datasets

    def validate(self, spec: DatasetSpec) -> DatasetSpec:
        if not spec.paths:
            raise SpecError("give a folder or file to upload", "paths")
        for p in spec.paths:
            if not Path(p).expanduser().exists():
                raise SpecError(f"{p}: no such file or folder", "paths")
        if not spec.name:
            raise SpecError("give the dataset a name", "name")
        for value, fld in ((spec.name, "name"), (spec.investigation, "investigation")):
            if value and any(bad in value for bad in ("/", "\\", "..", ":")):
                raise SpecError(f"{fld} {value!r} may not contain '/', '\\', '..' or ':'", fld)
        profile = spec.profile or "default"
        try:
            prof = self.config.profile(profile)
        except DataUploaderError as exc:
            raise SpecError(str(exc), "profile") from None
        if prof.catalogue == "scicat" and self.whoami(profile=profile) is None:
            raise SpecError(f"not logged in to {profile}: log in first", None, Action.LOG_IN)
        with self._lock:
            if any(
                h.name == spec.name and h.profile == profile and not h.done for h in self._handles.values()
            ):
                raise SpecError(f"dataset {spec.name!r} is already running", "name")
        return replace(
            spec, paths=tuple(str(Path(p).expanduser().resolve()) for p in spec.paths), profile=profile
        )

    def _start(self, spec: DatasetSpec, mode: Literal["sync", "batch"]) -> FakeHandle:
        spec = self.validate(replace(spec, mode=mode))
        storage = Path(self.config.profile(spec.profile).storage)
        dest = storage / spec.investigation / spec.name if spec.investigation else storage / spec.name
        with self._lock:
            h = FakeHandle(self, self._next_id, spec, dest)
            self._next_id += 1
            self._handles[h.id] = h
        if mode == "sync":
            self._remember_resumable(spec)
        h.thread.start()
        return h

    def start_sync(self, spec: DatasetSpec) -> FakeHandle:
        return self._start(spec, "sync")

    def upload(self, spec: DatasetSpec) -> FakeHandle:
        return self._start(spec, "batch")

    def stop_sync(self, handle: Any, *, finish: bool = True) -> None:
        handle.stop_flag = finish if handle.stop_flag is None else (handle.stop_flag and finish)

    def pause(self) -> None:
        self._paused = True
        self.emit(EnginePaused())

    def resume(self) -> None:
        self._paused = False
        self.emit(EngineResumed())

    @property
    def paused(self) -> bool:
        return self._paused

    def handles(self) -> list[FakeHandle]:
        with self._lock:
            return [h for h in self._handles.values() if not h.done]

    def snapshot(self) -> EngineSnapshot:
        with self._lock:
            hs = list(self._handles.values())
        out = []
        for h in hs:
            running = not h.done
            out.append(
                DatasetState(
                    id=h.id,
                    name=h.name,
                    investigation=h.investigation,
                    profile=h.profile,
                    location=str(h.dest),
                    catalogue="local",
                    catalogue_id=None,
                    mode=h.mode if running else None,
                    running=running,
                    pid=None,
                    phase=h.phase if running else None,
                    state="uploading" if running else ("complete" if h.phase is Phase.DONE else "incomplete"),
                    files_total=h.files_total,
                    files_done=len(h.uploaded),
                    files_failed=len(h.failed),
                    bytes_total=h.bytes_total,
                    bytes_done=sum(u[0] for u in h.uploaded.values()),
                    by_state={},
                    rate=0.0,
                    eta=None,
                    failures=tuple(FailedFile(r, why) for r, why in h.failed.items()),
                    skipped=(),
                    created=h.started,
                    updated=time.time(),
                )
            )
        return EngineSnapshot(self._paused, tuple(out))

    def retry_failed(self, handle: Any) -> int:
        n = len(handle.failed)
        handle.failed.clear()
        return n

    # ------------------------------------------------------------------------------------------ resume

    @property
    def _resumable_file(self) -> Path:
        return self.home.data_dir / "fake-resumable.json"

    def _read_resumable(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self._resumable_file.read_text()))
        except (OSError, ValueError):
            return []

    def _remember_resumable(self, spec: DatasetSpec) -> None:
        with self._lock:
            items = [s for s in self._read_resumable() if s["name"] != spec.name]
            items.append(
                {
                    "paths": list(spec.paths),
                    "name": spec.name,
                    "investigation": spec.investigation,
                    "profile": spec.profile,
                }
            )
            self._resumable_file.write_text(json.dumps(items))

    def forget_resumable(self, name: str) -> None:
        with self._lock:
            items = [s for s in self._read_resumable() if s["name"] != name]
            self._resumable_file.write_text(json.dumps(items))

    def resumable(self) -> list[DatasetSpec]:
        return [
            DatasetSpec(
                paths=tuple(s["paths"]),
                name=s["name"],
                investigation=s["investigation"],
                profile=s["profile"],
            )
            for s in self._read_resumable()
        ]

    # ------------------------------------------------------------------------------------------ catalogue

    def profiles(self) -> list[ProfileInfo]:
        return [
            ProfileInfo(p.name, p.storage, p.catalogue, p.catalogue == "scicat", p.catalogue == "local")
            for p in self.config.profiles.values()
        ]

    def login(self, credentials: Credentials, *, profile: str | None = None) -> Session:
        name = profile or "default"
        if credentials.token is None and credentials.password != "secret":
            raise SpecError("login failed: wrong username or password", None, Action.LOG_IN)
        lifetime = float(os.environ.get("FAKE_LOGIN_SECONDS", "3600"))
        s = Session(user=credentials.username or "token-user", expires=time.time() + lifetime)
        self._sessions[name] = s
        return s

    def logout(self, *, profile: str | None = None) -> None:
        self._sessions.pop(profile or "default", None)

    def whoami(self, *, profile: str | None = None) -> Session | None:
        s = self._sessions.get(profile or "default")
        if s is None or (s.expires is not None and s.expires < time.time()):
            return None
        return s

    def investigations(self, *, profile: str | None = None) -> list[Investigation]:
        names = os.environ.get("FAKE_INVESTIGATIONS", "demo-2026,beamtime-42").split(",")
        return [Investigation(n) for n in names if n]

    def _watch_logins(self) -> None:
        while not self._stop.wait(2.0):
            for profile, s in list(self._sessions.items()):
                if s.expires is None:
                    continue
                if s.expires < time.time():
                    self.emit(LoginExpired(profile))
                elif s.expires - time.time() < 1800:
                    self.emit(LoginExpiring(profile, s.user, s.expires))

    # ------------------------------------------------------------------------------------------ end

    def close(self) -> None:
        self._stop.set()
        for h in self.handles():
            h.stop_flag = False
        for h in list(self._handles.values()):
            h.thread.join(10)

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
