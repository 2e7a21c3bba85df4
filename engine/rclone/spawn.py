"""Starting an ``rclone rcd`` process, and nothing more.

Kept apart from :mod:`engine.rclone.daemon` (which talks to it over HTTP) so that a command line can start rclone
before it imports the HTTP client and the rest of the engine: rclone then comes up while Python imports (see
:mod:`engine.rclone.launch`), and the daemon object adopts the process when the first call needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.procs import bind_to_this_process, die_with_parent_hook


@dataclass
class Spawned:
    """A started ``rclone rcd`` that may not serve yet, with the credentials of its API."""

    proc: subprocess.Popen[str]
    user: str
    password: str
    rate: str  # the bandwidth limit it was started with
    pidfile: Path  # run_dir/rcd-<our pid>-<its pid>.pid, for reaping it should we die without stopping it

    def stop(self) -> None:
        """Stop a process nobody adopted."""
        terminate(self.proc)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.pidfile.unlink(missing_ok=True)


def spawn(
    binary: Path,
    *,
    run_dir: Path,
    config_file: Path | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    rate: str = "off",
) -> Spawned:
    """Start rclone's remote-control daemon on a free loopback port. The API's user and password go through the
    environment, never the command line, where other local users could read them.

    On Linux the child is told to die with the thread that forks it (``PR_SET_PDEATHSIG``): call this from a
    thread that lives as long as rclone should."""
    # os.urandom is what the secrets module draws from; importing secrets costs more than this whole start.
    user, password = os.urandom(8).hex(), os.urandom(24).hex()
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.update({"RCLONE_RC_USER": user, "RCLONE_RC_PASS": password})
    full_env.pop("RCLONE_RC_NO_AUTH", None)
    args = [str(binary), "rcd", "--rc-addr", "127.0.0.1:0", "--log-level", "NOTICE"]
    args += ["--rc-job-expire-duration", "1h"]
    # Always given, "off" too: it overrides an RCLONE_BWLIMIT in the environment (the profile decides).
    args += ["--bwlimit", rate]
    if config_file is not None:
        args += ["--config", str(config_file)]
    args += list(extra_args)
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    else:
        # Its own session: a Ctrl-C in the terminal goes to us, and we stop jobs cleanly before it dies.
        kwargs["start_new_session"] = True
        kwargs["preexec_fn"] = die_with_parent_hook()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=full_env,
        **kwargs,
    )
    bind_to_this_process(proc)
    pidfile = run_dir / f"rcd-{os.getpid()}-{proc.pid}.pid"
    try:
        pidfile.write_text(str(proc.pid))
    except OSError:
        terminate(proc)
        raise
    return Spawned(proc, user, password, rate, pidfile)


def terminate(proc: subprocess.Popen[str]) -> None:
    """Stop ``proc`` (rclone ends its jobs on SIGTERM), killing it if it does not end within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
