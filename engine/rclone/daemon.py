"""A long-lived ``rclone rcd`` on 127.0.0.1, driven through its HTTP API.

Spawning rclone costs 55–70 ms and ~60 MiB per process, so one process per file caps an upload at ~15 files/s;
one daemon that takes whole batches as jobs runs at the speed of a hand-tuned ``rclone copy``. The daemon
listens on loopback only, with a random user and password passed through the environment (never on the command
line, where other local users could read them), so no other process can drive it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.logs import FILE_ONLY
from engine.procs import pid_alive
from engine.rclone.rc_client import RcClient, RcTransportError
from engine.rclone.spawn import Spawned, spawn, terminate
from engine.scratch import sweep

log = logging.getLogger(__name__)
rclone_log = logging.getLogger("engine.rclone.output")

_SERVING = re.compile(r"Serving remote control on (http://127\.0\.0\.1:\d+)/")
_START_TIMEOUT = 20.0


class RcloneError(Exception):
    """An rc call failed. ``status`` is rclone's HTTP status (404 not found, 500 for most backend errors); 0 means
    the daemon itself could not be reached (it died, or is restarting), which is always worth another try."""

    def __init__(self, path: str, status: int, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.status = status
        self.message = message


class RcloneStartError(RcloneError):
    """rclone refused to start and said why (a bad flag, an unreadable config file): a configuration problem, not a
    crash. A daemon that merely died while starting is restarted instead."""


class _Crashed(Exception):
    """The daemon died (or hung) before it served: try again."""


class RcloneDaemon:
    """Starts lazily on the first call, restarts if it died, stops with :meth:`stop`.

    rclone dying is transient by definition (killed by an OOM killer, a confused admin, a crash): every call that
    finds it gone starts a new one, and a start that dies half way is tried again a few times before the error
    reaches the caller, who treats it like an unreachable storage (back off, try later)."""

    START_ATTEMPTS = 4

    def __init__(
        self,
        binary: Path,
        *,
        config_file: Path | None = None,
        run_dir: Path,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        bwlimit: Callable[[], str] | None = None,
    ) -> None:
        """``bwlimit`` says the bandwidth limit in force now (one rclone rate, "off" for none). It is asked at
        every start, so a daemon restarted after a crash limits from its first byte as the one before did."""
        self.binary = binary
        self.config_file = config_file
        self.run_dir = run_dir
        self.extra_args = extra_args
        self.env = dict(env or {})
        self.bwlimit = bwlimit
        self.rate: str | None = None  # the limit the running rclone applies (None before it first started)
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None
        self._client: RcClient | None = None
        self._lock = threading.Lock()
        self._pidfile: Path | None = None
        self._early: Spawned | None = None  # an rclone started before this object, not yet serving us
        # Linux sends the parent-death signal when the *thread* that forked ends: spawn from one long-lived thread.
        self._spawner: ThreadPoolExecutor | None = None
        # Threads that wait in long calls (copies) for their callers; they live as long as the daemon, so their
        # keep-alive connections are reused rather than left open by threads that come and go.
        self._waiters: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        proc = self._proc or (self._early.proc if self._early is not None else None)
        return proc.pid if proc else None

    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self) -> None:
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> RcClient:
        """The client of a running daemon, starting one if needed. Call with the lock held."""
        if self.running() and self._client is not None:
            return self._client
        if self._proc is not None:
            log.warning(
                "rclone daemon (pid %s) exited with %s; restarting", self._proc.pid, self._proc.poll()
            )
            self._cleanup()
        reap_orphans(self.run_dir)
        last = ""
        for attempt in range(self.START_ATTEMPTS):
            try:
                return self._spawn()
            except _Crashed as exc:
                last = str(exc)
                log.warning("rclone daemon died while starting (%s); starting it again", last)
                self._cleanup()
                time.sleep(0.2 * (attempt + 1))
        raise RcloneError("rcd", 0, f"the rclone daemon stopped unexpectedly while starting ({last})")

    def adopt(self, spawned: Spawned) -> None:
        """Take over an rclone started before this object existed (:mod:`engine.rclone.launch`); the first call
        waits for it to serve. Should it have failed, that call starts another one and says what went wrong."""
        with self._lock:
            if self._early is not None:
                self._early.stop()
            self._early = spawned

    def _spawn(self) -> RcClient:
        early, self._early = self._early, None
        if early is not None:
            try:
                return self._serve(early)
            except (_Crashed, RcloneStartError) as exc:
                # Started again below, which reports a problem that lasts.
                log.info("the rclone started early did not come up (%s); starting it again", exc)
                self._cleanup()
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rclone-spawn")
        rate = self.bwlimit() if self.bwlimit is not None else "off"
        spawned = self._spawner.submit(
            spawn,
            self.binary,
            run_dir=self.run_dir,
            config_file=self.config_file,
            extra_args=self.extra_args,
            env=self.env,
            rate=rate,
        ).result()
        return self._serve(spawned)

    def _serve(self, spawned: Spawned) -> RcClient:
        """Wait until ``spawned`` serves and connect to it."""
        proc = spawned.proc
        self._proc = proc
        self._pidfile = spawned.pidfile
        found: list[str] = []
        tail: list[str] = []
        ready = threading.Event()
        assert proc.stderr is not None
        stderr = proc.stderr

        def pump() -> None:
            for line in stderr:
                line = line.rstrip()
                m = _SERVING.search(line)
                if m and not found:
                    found.append(m.group(1))
                    ready.set()
                if line:
                    # rclone's own ERROR lines stay errors in our log; NOTICE and INFO are information.
                    # In the log file only: the engine says what went wrong in its own words.
                    level = logging.ERROR if " ERROR " in line else logging.INFO
                    rclone_log.log(level, "%s", line, extra=FILE_ONLY)
                    tail[:] = [*tail[-4:], line]
            ready.set()

        threading.Thread(target=pump, name="rclone-stderr", daemon=True).start()
        if not ready.wait(_START_TIMEOUT) or not found:
            terminate(proc)
            code = proc.wait()
            self._cleanup()  # nothing to restart: the next call starts afresh (and says why it cannot)
            last = next((t for t in reversed(tail) if "rror" in t), tail[-1] if tail else "")
            if (
                code > 0
            ):  # it exited by itself: a wrong binary, flag or config, not a crash; retrying won't help
                why = last or f"it exited with code {code} and said nothing; is {self.binary} rclone?"
                raise RcloneStartError("rcd", 0, f"rclone ({self.binary}) did not start: {why}")
            raise _Crashed(f"exit code {code}" + (f": {last}" if last else ", no output"))
        self._url = found[0]
        self.rate = spawned.rate
        port = int(self._url.rsplit(":", 1)[1])
        self._client = RcClient("127.0.0.1", port, spawned.user, spawned.password)
        log.info("rclone daemon pid %s listening on %s", proc.pid, self._url)
        return self._client

    def stop(self) -> None:
        with self._lock:
            if self._early is not None:
                self._early.stop()
                self._early = None
            if self._proc is not None:
                terminate(self._proc)
            self._cleanup()
            if self._spawner is not None:
                self._spawner.shutdown(wait=True)
                self._spawner = None
            waiters, self._waiters = self._waiters, None
        if waiters is not None:  # their calls fail at once now that rclone is gone
            waiters.shutdown(wait=True, cancel_futures=True)

    def _cleanup(self) -> None:
        self._proc = None
        self._url = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._pidfile is not None:
            self._pidfile.unlink(missing_ok=True)
            self._pidfile = None

    def __enter__(self) -> RcloneDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- calls -------------------------------------------------------------------------------------------

    def call(self, path: str, timeout: float | None = 3600.0, **params: Any) -> dict[str, Any]:
        """Run one rc command and return its JSON output; raise :class:`RcloneError` on failure."""
        with self._lock:
            client = self._ensure_started()
        try:
            status, reason, raw = client.post(path, params, timeout)
        except RcTransportError as exc:
            if not self.running():
                raise RcloneError(path, 0, "the rclone daemon stopped unexpectedly") from exc
            raise RcloneError(path, 0, f"cannot reach the rclone daemon: {exc}") from exc
        try:
            body: dict[str, Any] = json.loads(raw)
        except ValueError:
            body = {"error": raw.decode("utf-8", "replace").strip()}
        if status != 200:
            raise RcloneError(path, status, str(body.get("error", reason)))
        return body

    def submit(self, path: str, timeout: float | None = 3600.0, **params: Any) -> Future[dict[str, Any]]:
        """:meth:`call` in one of the daemon's threads, for a long call its caller watches (and can stop)."""
        with self._lock:
            if self._waiters is None:
                self._waiters = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rclone-call")
            waiters = self._waiters
        return waiters.submit(self.call, path, timeout, **params)


def reap_orphans(run_dir: Path) -> None:
    """Stop rclone daemons left behind by DataUploader processes that were killed without cleaning up, and
    delete the scratch files they left (:mod:`engine.scratch`)."""
    sweep(run_dir)
    for pidfile in run_dir.glob("rcd-*-*.pid"):
        try:
            owner, child = (int(x) for x in pidfile.stem.split("-")[1:3])
        except ValueError:
            continue
        if pid_alive(owner):
            continue
        if pid_alive(child) and _is_rclone(child):
            log.warning("stopping orphaned rclone daemon pid %s", child)
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGTERM)
        pidfile.unlink(missing_ok=True)


def _is_rclone(pid: int) -> bool:
    """Only a process we can prove is rclone is stopped: a recycled pid may belong to anything. Where there is
    no /proc (Windows, macOS) nothing is proven, so an orphan is left running rather than risk another process."""
    try:
        return b"rclone" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
