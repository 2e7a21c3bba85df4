"""How a profile's rclone daemon is started, and starting it early.

rclone takes 60–80 ms to come up, about as long as Python takes to import the rest of the engine. A command line
that knows it will transfer (``upload``, ``sync``) calls :func:`start_early` as soon as its arguments are parsed;
the engine then adopts that process (:func:`adopt`) instead of starting its own, so the two waits overlap. Only
what finding and starting rclone needs is imported before it starts (not the HTTP client or the daemon class,
which load while rclone comes up). A process nobody adopts is stopped by :func:`stop_unadopted`, at the latest
at exit. Whatever goes wrong here is left for the engine to meet and report: starting early is only ever a head
start.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.bwlimit import rate_now
from engine.config import Profile, load_config
from engine.home import Home
from engine.rclone.binary import find_rclone
from engine.rclone.spawn import Spawned, spawn

if TYPE_CHECKING:
    from engine.rclone.daemon import RcloneDaemon

log = logging.getLogger(__name__)

DaemonKey = tuple[str, str, str]

# How much Go's garbage collector lets rclone's heap grow between collections (Go's default is 100). Small files
# make rclone allocate per file, and at 100 the collector ran often enough to cost a tenth of a small-file upload:
# at 400 a 2,000-file upload to a local folder took 7-9 % less time and 9-11 % less CPU, and rclone's peak memory
# went from 82 to 111-123 MiB (unchanged for four 256 MiB files: 130 MiB); 800 made it 160 MiB for little more
# (measured side by side, README "Performance"). A GOGC set in the environment is left alone.
GOGC = "400"

_early: dict[DaemonKey, tuple[Spawned, Path, Profile, Home]] = {}
_lock = threading.Lock()


def rclone_env(profile: Profile) -> dict[str, str]:
    """Backend tuning handed to the rclone daemon through its environment (it applies to every remote)."""
    env = {} if "GOGC" in os.environ else {"GOGC": GOGC}
    return env | {
        # rclone's webdav client spaces requests ≥ 10 ms apart by default, capping small files at ~30 files/s
        # whatever --transfers is; --transfers already bounds the load on the server.
        "RCLONE_WEBDAV_PACER_MIN_SLEEP": profile.webdav_pacer,
        # Our own retry loop (with back-off, per file) replaces rclone's immediate whole-job retries.
        "RCLONE_RETRIES": "1",
        # A symbolic link to a file at the source uploads the file (-L; the scan never lists links to folders).
        "RCLONE_LOCAL_COPY_LINKS": "true",
        # rclone stats the source before every read it makes of it (a 64 KiB file costs several), to abort a copy
        # whose source changes. The transfer checks that already, end to end: the source is stat'ed before and
        # after it is hashed and again after the copy, and the copy on storage must match that hash (or size and
        # time). A source that changes mid-copy is then uploaded again, as before; 4-5 % of a 2,000-file upload.
        "RCLONE_LOCAL_NO_CHECK_UPDATED": "true",
    }


def daemon_key(binary: Path, profile: Profile) -> DaemonKey:
    """Runs whose daemons would be started alike share one."""
    return (str(binary), str(profile.rclone_config), profile.webdav_pacer)


def new_daemon(
    binary: Path, profile: Profile, home: Home, bwlimit: Callable[[], str] | None = None
) -> RcloneDaemon:
    from engine.rclone.daemon import RcloneDaemon

    return RcloneDaemon(
        binary,
        config_file=profile.rclone_config,
        run_dir=home.run_dir,
        env=rclone_env(profile),
        bwlimit=bwlimit,
    )


def start_early(home: Home, profile_name: str | None, bwlimit: str | None = None) -> None:
    """Start the rclone a run of ``profile_name`` will use (see the module docstring), with the run's bandwidth
    limit (``bwlimit``, else the profile's) in force from the start. It is started from the calling thread, to
    which Linux ties its life: the main thread of a command line."""
    try:
        config = load_config(home)
        profile = config.profile(profile_name)
        binary = find_rclone(config.rclone)
        home.ensure()
        limit = bwlimit or profile.bwlimit
        spawned = spawn(
            binary,
            run_dir=home.run_dir,
            config_file=profile.rclone_config,
            env=rclone_env(profile),
            rate=rate_now(limit) if limit else "off",
        )
    except Exception as exc:  # the run itself meets the same problem and says it properly
        log.debug("rclone not started early: %s", exc)
        return
    with _lock:
        _early[daemon_key(binary, profile)] = (spawned, binary, profile, home)


def adopt(key: DaemonKey, bwlimit: Callable[[], str] | None = None) -> RcloneDaemon | None:
    """The daemon of the rclone started early for ``key`` (from now on the caller's to stop), or None."""
    with _lock:
        early = _early.pop(key, None)
    if early is None:
        return None
    spawned, binary, profile, home = early
    daemon = new_daemon(binary, profile, home, bwlimit)
    daemon.adopt(spawned)
    return daemon


def stop_unadopted() -> None:
    """Stop the rclone started early that no engine adopted (a command interrupted or refused before its run
    began). Front ends call it on their way out, while the interpreter still runs the thread rclone was started
    from: at exit that thread is gone, and rclone with it (Linux ties the parent-death signal to the thread)."""
    with _lock:
        left = [spawned for spawned, *_ in _early.values()]
        _early.clear()
    for spawned in left:
        spawned.stop()


atexit.register(stop_unadopted)  # the last resort, for a front end that did not
