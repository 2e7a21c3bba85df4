"""Everything one run needs, opened together and closed together: profile, journal, catalogue, rclone, storage.

Batch and sync mode both start from here, so they configure rclone identically (backend tuning, bandwidth
limit, credentials) and both refuse bad configuration before anything moves.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from engine.catalogue import Catalogue, open_catalogue
from engine.config import Profile, load_config
from engine.errors import StorageError, UsageError
from engine.home import Home
from engine.journal import Journal
from engine.rclone import RcloneDaemon, RcloneError, RcloneStartError, find_rclone
from engine.storage import Storage

log = logging.getLogger(__name__)


def rclone_env(profile: Profile, bwlimit: str | None) -> dict[str, str]:
    """Backend tuning handed to the rclone daemon through its environment (it applies to every remote)."""
    env = {
        # rclone's webdav client spaces requests ≥ 10 ms apart by default, capping small files at ~30 files/s
        # whatever --transfers is; --transfers already bounds the load on the server.
        "RCLONE_WEBDAV_PACER_MIN_SLEEP": profile.webdav_pacer,
        # Our own retry loop (with back-off, per file) replaces rclone's immediate whole-job retries.
        "RCLONE_RETRIES": "1",
        # A symbolic link to a file at the source uploads the file (-L; the scan never lists links to folders).
        "RCLONE_LOCAL_COPY_LINKS": "true",
    }
    if bwlimit:
        env["RCLONE_BWLIMIT"] = bwlimit
    return env


@dataclass
class RunContext:
    home: Home
    profile: Profile
    journal: Journal
    catalogue: Catalogue
    daemon: RcloneDaemon
    storage: Storage
    retry_for: float
    bwlimit: str | None = None

    def __post_init__(self) -> None:
        self._start_error: RcloneError | None = None
        self.starter = threading.Thread(target=self._start, name="rclone-start", daemon=True)

    def _start(self) -> None:
        try:
            self.daemon.start()
        except RcloneError as exc:
            self._start_error = exc

    def ready(self) -> None:
        """Wait for rclone. One that refuses to start (bad flag, bad config) is a configuration problem (exit 2);
        one that keeps dying is treated like an unreachable storage later: every call restarts it."""
        self.starter.join()
        exc = self._start_error
        if exc is None:
            return
        if not isinstance(exc, RcloneStartError):
            log.warning("%s; will try again", exc.message)
            return
        if self.bwlimit and "bwlimit" in exc.message:
            raise UsageError(
                f"bandwidth limit {self.bwlimit!r} is not valid rclone syntax (e.g. 10M, '08:00,5M 20:00,off')"
            )
        raise StorageError(exc.message)

    def close(self) -> None:
        if self.starter.is_alive():
            self.starter.join()
        self.daemon.stop()
        self.catalogue.close()


def open_run(
    home: Home,
    journal: Journal,
    profile_name: str | None,
    bwlimit: str | None = None,
    transfers: int | None = None,
) -> RunContext:
    """Load the profile and start rclone; raise a :class:`UsageError` (exit 2) for anything misconfigured."""
    config = load_config(home)
    profile = config.profile(profile_name)
    retry_for = profile.retry_for
    bw = bwlimit or profile.bwlimit
    daemon = RcloneDaemon(
        find_rclone(config.rclone),
        config_file=profile.rclone_config,
        run_dir=home.run_dir,
        env=rclone_env(profile, bw),
    )
    catalogue = open_catalogue(profile, home)
    storage = Storage(
        daemon,
        profile.storage,
        run_dir=home.run_dir,
        transfers=transfers or profile.transfers,
        checkers=profile.checkers,
    )
    ctx = RunContext(home, profile, journal, catalogue, daemon, storage, retry_for, bw)
    # rclone takes ~0.1 s to come up: let it do so while the caller scans the source.
    ctx.starter.start()
    return ctx
