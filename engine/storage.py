"""The facility storage as rclone sees it: probing, listing, batched copies, single-file puts.

All access goes through the one rclone daemon. File lists for a batch are handed to rclone as NUL-separated
files (``FilesFrom0``) so any file name, even one with a newline or leading spaces, is passed exactly.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any

from engine.backoff import backoff
from engine.config import LOCAL_VERIFY, is_windows_folder, split_remote
from engine.errors import StorageError, StorageUnreachableError
from engine.gate import TransferGate
from engine.rclone.daemon import RcloneDaemon, RcloneError
from engine.rclone.errors import PERMANENT, TRANSIENT, classify
from engine.redaction import redact
from engine.scratch import owned_file

log = logging.getLogger(__name__)

# Strongest first. sha256 is what the catalogue records, so a backend that can give it is checked end to end
# against the very checksum we publish; otherwise the source is hashed a second way in the same pass.
VERIFY_HASHES = ("sha256", "sha1", "md5")
# A local folder keeps no hash: rclone reads the copy back to compute one. There the check is xxh128 by default,
# the whole-file checksum rsync uses: a 128-bit hash made for catching corrupted copies, which rclone computes
# several times faster than sha256 (measured: a 2,000 × 64 KiB upload 5-6 % faster, 6-8 % less CPU). It is taken
# from the same read of the source as the catalogue's sha256, so an equal xxh128 proves the same bytes. A profile
# may ask for sha256 instead (`local_verify`): the catalogue's own checksum then checked on storage, end to end.


@dataclass
class RemoteFile:
    """A file on storage as a listing shows it: what verification compares with the source."""

    size: int
    hash: str | None
    mtime: float | None = None  # epoch seconds, when asked for (size-only backends: what `verify` compares)


def parse_time(text: str) -> float | None:
    """rclone's RFC 3339 times with up to nanoseconds (``2026-11-27T12:33:01.123456789Z``) to epoch seconds."""
    try:
        main, _, rest = text.partition(".")
        if rest:
            digits = "".join(c for c in rest if c.isdigit())
            zone = rest[len(digits) :]
            text = f"{main}.{digits[:6]}{zone}"
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class StorageInfo:
    """What a storage backend offers (its hashes), and so how copies on it are verified."""

    backend: str
    hashes: tuple[str, ...]
    verify_hash: str | None
    is_local: bool


@dataclass
class CopyOutcome:
    """What a copy job reported. Per-file results come from verification, not from here."""

    error: str | None = None
    file_errors: dict[str, str] = field(default_factory=dict)
    # Whether ``file_errors`` names every file that failed: rclone keeps only its last ~100 finished transfers
    # per job, so in a bigger job that failed some files' own errors are gone.
    errors_complete: bool = True
    bytes: int = 0


# rclone's words when a password was given in clear where it expects the obscured form.
_UNOBSCURED = re.compile(r"(?i)couldn't decrypt|decrypt password|input too short|illegal base64|obscure")


def redact_fs(fs: str) -> str:
    """An rclone path fit for logs, status output and the catalogue: secrets in connection strings masked."""
    return redact(fs)


def join_fs(root: str, *parts: str) -> str:
    """Join an rclone path (``/data``, ``C:\\data``, ``remote:``, ``remote:bucket``, ``:webdav,url=...:``) with
    sub-folders. A Windows folder is joined with backslashes, so what the catalogue records (``sourceFolder``) and
    what people read is one consistent path; rclone takes either."""
    clean = [p.strip("/") for p in parts if p and p.strip("/")]
    if not clean:
        return root
    joiner = "\\" if is_windows_folder(split_remote(root)[1]) else "/"
    sep = "" if root.endswith((":", "/", "\\")) else joiner
    return root + sep + joiner.join(c.replace("/", joiner) for c in clean)


# The engine has already decided that every file it hands rclone must be written (new, changed at the source,
# or a copy of ours that is stale), so rclone must not skip one because size and time happen to match (WebDAV
# keeps no times; SFTP keeps whole seconds). DataUploader verifies every file itself against a hash read back
# from the storage, so rclone's own post-transfer checksum (a second hash pass on both ends) is redundant.
_COPY_CONFIG: dict[str, Any] = {"IgnoreTimes": True, "IgnoreChecksum": True}


_copies = count(1)

# How many finished transfers rclone keeps per stats group (its accounting.MaxCompletedTransfers, not settable).
_TRANSFERS_KEPT = 100


class Storage:
    """One storage root (a profile's ``storage``) reached through ``daemon``."""

    def __init__(
        self,
        daemon: RcloneDaemon,
        root: str,
        *,
        run_dir: Path,
        transfers: int | None = None,
        checkers: int | None = None,
        gate: TransferGate | None = None,
        local_verify: str = LOCAL_VERIFY[0],
    ) -> None:
        self.daemon = daemon
        self.local_verify = local_verify
        self.gate = gate or TransferGate()
        self.root = root
        self.run_dir = run_dir
        self.transfers = transfers
        self.checkers = checkers
        self._info: StorageInfo | None = None

    def probe_waiting(
        self,
        target: str,
        *,
        limit: float,
        stop: threading.Event,
        on_wait: Callable[[str], None] | None = None,
    ) -> StorageInfo:
        """:meth:`probe`, waiting with back-off up to ``limit`` seconds while the storage is unreachable (an
        unattended sync started during a network blip must not die of it). ``on_wait`` hears the reason."""
        deadline = time.monotonic() + limit
        attempt = 0
        while True:
            try:
                return self.probe(target)
            except StorageUnreachableError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StorageUnreachableError(
                        f"{exc}; gave up after waiting {limit:.0f} s (profile key wait_for_storage); "
                        "run the same command again when it is back"
                    ) from None
                delay = min(backoff(attempt), left)
                attempt += 1
                log.warning("%s; trying again in %.0f s", exc, delay)
                if on_wait is not None:
                    on_wait(str(exc))
                if stop.wait(delay):
                    raise KeyboardInterrupt from None

    def fs(self, *parts: str) -> str:
        return join_fs(self.root, *parts)

    def display_fs(self, *parts: str) -> str:
        return redact_fs(self.fs(*parts))

    def probe(self, target: str) -> StorageInfo:
        """Check the storage is usable and create ``target`` on it: :class:`StorageUnreachableError` if it does not
        answer (wait and try again), :class:`StorageError` (exit 2) if it answers no (misconfigured)."""
        if self._info is not None:
            return self._info
        try:
            info = self.daemon.call("operations/fsinfo", fs=self.root)
            self.daemon.call("operations/mkdir", fs=self.root, remote=target)
        except RcloneError as exc:
            c = classify(exc.message)
            if c.kind == TRANSIENT:
                raise StorageUnreachableError(
                    f"storage '{redact_fs(self.root)}' is not reachable: {exc.message}"
                ) from None
            reason = c.reason if c.kind == PERMANENT else exc.message
            if _UNOBSCURED.search(exc.message):
                reason += (
                    f"; passwords in an rclone connection string or rclone.conf must be obscured: use the output of "
                    f"`{self.daemon.binary} obscure PASSWORD` (the rclone that comes with DataUploader)"
                )
            raise StorageError(f"storage '{redact_fs(self.root)}' is not usable: {reason}") from None
        hashes = tuple(str(h) for h in info.get("Hashes") or ())
        is_local = bool(info.get("Features", {}).get("IsLocal"))
        if is_local and self.local_verify in hashes:
            verify: str | None = self.local_verify
        else:
            verify = next((h for h in VERIFY_HASHES if h in hashes), None)
        self._info = StorageInfo(
            backend=str(info.get("Name", "?")), hashes=hashes, verify_hash=verify, is_local=is_local
        )
        log.info(
            "storage %s: backend %s, verify with %s",
            redact_fs(self.root),
            self._info.backend,
            verify or "size",
        )
        return self._info

    @contextmanager
    def _file_list(self, names: Sequence[str]) -> Iterator[str]:
        path = owned_file(self.run_dir, "files", ".lst")
        with open(path, "wb") as fh:
            for name in names:
                fh.write(name.encode("utf-8"))
                fh.write(b"\0")
        try:
            yield str(path)
        finally:
            path.unlink(missing_ok=True)

    def list(
        self,
        fs: str,
        names: Sequence[str] | None = None,
        hash_type: str | None = None,
        *,
        mod_times: bool = False,
    ) -> dict[str, RemoteFile]:
        """Files below ``fs`` (all, or only ``names``) with size and, if asked, hash and modification time.
        A missing folder is an empty one."""
        opt: dict[str, Any] = {
            "recurse": True,
            "filesOnly": True,
            "noModTime": not mod_times,
            "noMimeType": True,
        }
        if hash_type:
            opt.update(showHash=True, hashTypes=[hash_type])
        params: dict[str, Any] = {"fs": fs, "remote": "", "opt": opt}
        if names is not None and not names:
            return {}
        try:
            if names is None:
                out = self.daemon.call("operations/list", **params)
            else:
                with self._file_list(names) as lst:
                    out = self.daemon.call("operations/list", _filter={"FilesFrom0": [lst]}, **params)
        except RcloneError as exc:
            if exc.status == 404 or "directory not found" in exc.message:
                return {}
            raise
        result: dict[str, RemoteFile] = {}
        for item in out.get("list") or ():
            hashes = item.get("Hashes") or {}
            value = hashes.get(hash_type) if hash_type else None
            mtime = parse_time(str(item["ModTime"])) if mod_times and item.get("ModTime") else None
            result[item["Path"]] = RemoteFile(size=int(item["Size"]), hash=value or None, mtime=mtime)
        return result

    def copy(
        self,
        src_root: Path,
        dst_fs: str,
        names: Sequence[str],
        *,
        on_bytes: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> CopyOutcome:
        """Copy ``names`` (relative to ``src_root``) to ``dst_fs`` as one rclone job, in one of the gate's slots.
        The job is stopped when ``stop`` is set or the gate closes (pause)."""
        config = dict(_COPY_CONFIG)
        if self.transfers:
            config["Transfers"] = self.transfers
        if self.checkers:
            config["Checkers"] = self.checkers
        outcome = CopyOutcome()
        t0 = time.perf_counter()
        stop = stop or threading.Event()
        gate = self.gate
        # A call that returns when the copy ends, not an async job polled for its end: polling found the end
        # ~50 ms late on average (a tenth of the copy of 500 small files). The stats group names the copy for
        # progress, per-file errors and stopping it.
        group = f"copy/{next(_copies)}"  # the daemon is this process's own
        with gate.slot(stop), self._file_list(names) as lst:
            call = self.daemon.submit(
                "sync/copy",
                timeout=None,  # a batch may take hours on a slow link; a stop ends it through its group
                srcFs=str(src_root),
                dstFs=dst_fs,
                _group=group,
                _filter={"FilesFrom0": [lst]},
                _config=config,
            )
            self._watch(call, group, on_bytes, lambda: stop.is_set() or gate.paused)
        log.debug("copy %s: %d files in %.3f s", group, len(names), time.perf_counter() - t0)
        try:
            call.result()
        except RcloneError as exc:
            if exc.status == 0:  # rclone itself is gone: the caller restarts it and sorts the batch
                raise
            outcome.error = exc.message
        except CancelledError:  # the daemon was stopped before the call began
            raise RcloneError("sync/copy", 0, "the rclone daemon stopped") from None
        reported: set[str] = set()
        try:
            stats = self.daemon.call("core/stats", group=group)
            outcome.bytes = int(stats.get("bytes", 0))
            if on_bytes is not None:
                on_bytes(outcome.bytes)
            if outcome.error is not None:  # a copy that succeeded had no file fail; a failed one says which
                done = self.daemon.call("core/transferred", group=group).get("transferred") or ()
                for t in done:
                    reported.add(str(t.get("name")))
                    if t.get("error"):
                        outcome.file_errors[str(t.get("name"))] = str(t["error"])
                outcome.errors_complete = len(done) < _TRANSFERS_KEPT
            self.daemon.call("core/stats-delete", group=group)
        except RcloneError as exc:  # statistics are a nicety; verification decides what arrived
            log.debug("could not read stats of %s: %s", group, exc)
        if outcome.error is not None and not outcome.errors_complete:
            try:
                self._ask_again(src_root, dst_fs, names, reported, outcome, stop)
            except RcloneError as exc:
                if exc.status == 0:  # rclone itself is gone: as for the copy
                    raise
                log.info("could not learn every failed file's own error: %s", exc)
        return outcome

    def _ask_again(
        self,
        src_root: Path,
        dst_fs: str,
        names: Sequence[str],
        reported: set[str],
        outcome: CopyOutcome,
        stop: threading.Event,
    ) -> None:
        """rclone keeps only its last ~100 finished transfers per job, and a job's own error is the last one any
        file met: applied to the others it would fail a file for another's cause (a name the storage refuses is
        no reason to fail files that met something else). So after a bigger job failed, the files it no longer
        reports and that are not on the storage are copied again in jobs small enough to keep every file's own
        error (on the failure path only: nothing moves twice that arrived). Not when the storage was away: every
        file is retried then anyway."""
        assert outcome.error is not None
        if classify(outcome.error).kind == TRANSIENT:
            return
        unknown = [n for n in names if n not in reported]
        present = self.list(dst_fs, unknown)
        again = [n for n in unknown if n not in present]
        step = _TRANSFERS_KEPT // 2
        log.info(
            "copy failed; %d files without an error of their own are tried again to learn it", len(again)
        )
        for i in range(0, len(again), step):
            if stop.is_set() or self.gate.paused:
                return
            chunk = again[i : i + step]
            sub = self.copy(src_root, dst_fs, chunk, stop=stop)
            outcome.bytes += sub.bytes
            if sub.error is not None:
                if not sub.errors_complete:
                    return
                # A file of this small job with no error of its own failed (if it did) for the job's reason.
                outcome.file_errors.update({n: sub.error for n in chunk} | sub.file_errors)
        outcome.errors_complete = True

    def _watch(
        self,
        call: Future[dict[str, Any]],
        group: str,
        on_bytes: Callable[[int], None] | None,
        cancel: Callable[[], bool],
    ) -> None:
        """Wait for ``call`` to end, reporting its bytes every 0.1 s and stopping it when ``cancel`` says so."""
        while True:
            try:
                call.result(timeout=0.1)
                return
            except TimeoutError:
                if call.done():  # the call's own TimeoutError, not the wait's: the caller reads it
                    return
            except (Exception, CancelledError):  # the copy's own outcome, read by the caller
                return
            try:
                if cancel():
                    # Again at every tick until the call ends: a stop sent before rclone had registered the
                    # copy finds nothing to stop.
                    self.daemon.call("job/stopgroup", group=group)
                if on_bytes is not None:
                    on_bytes(int(self.daemon.call("core/stats", group=group).get("bytes", 0)))
            except RcloneError as exc:  # the call itself will say what became of the copy
                log.debug("watching %s: %s", group, exc)

    def hashsum(self, fs: str, names: Sequence[str], hash_type: str = "sha256") -> dict[str, str]:
        """``hash_type`` of ``names`` below ``fs`` computed by reading them back (downloading, on a remote): the
        proof of identity where the backend keeps no hash of its own. Costs a full read of each file."""
        if not names:
            return {}
        with self._file_list(names) as lst:
            out = self.daemon.call(
                "operations/hashsum", fs=fs, hashType=hash_type, download=True, _filter={"FilesFrom0": [lst]}
            )
        found: dict[str, str] = {}
        for line in out.get("hashsum") or ():
            value, _, name = str(line).partition("  ")
            if name and value and not value.startswith("ERROR"):
                found[name] = value.strip()
        return found

    def fetch(self, fs: str, name: str, local_dir: Path) -> Path:
        """Download ``fs/name`` into ``local_dir`` (a small file: the manifest)."""
        self.daemon.call(
            "operations/copyfile", srcFs=fs, srcRemote=name, dstFs=str(local_dir), dstRemote=name
        )
        return local_dir / name

    def put(self, local: Path, dst_fs: str, name: str, *, stop: threading.Event | None = None) -> None:
        """Upload one local file (a lone small file of a sync, the dataset manifest) to ``dst_fs/name``. It takes
        a slot of the gate like a job, but once started it finishes (it is small)."""
        with self.gate.slot(stop or threading.Event()):
            self._put(local, dst_fs, name)

    def _put(self, local: Path, dst_fs: str, name: str) -> None:
        self.daemon.call(
            "operations/copyfile",
            srcFs=str(local.parent),
            srcRemote=local.name,
            dstFs=dst_fs,
            dstRemote=name,
            _config=dict(_COPY_CONFIG),
        )
