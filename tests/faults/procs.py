"""Processes as /proc shows them: the uploader's rclone daemon found by parentage, liveness that counts a zombie
as dead, and a reaper that stops, by pid, whatever rclone a test's uploader left behind.

Finding rclone as a child of the uploader (not through DataUploader's own pid files) keeps the test independent
of the thing it checks: an orphan is an orphan whether or not DataUploader knows about it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of ``pid``, or None if it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[1])


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, waiting to be reaped by its parent) counts as dead."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (a scan of /proc: works without CONFIG_PROC_CHILDREN)."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return sorted(found)


def is_rclone_daemon(pid: int) -> bool:
    args = cmdline(pid)
    return bool(args) and "rclone" in Path(args[0]).name and "rcd" in args[1:]


def rclone_children(pid: int) -> list[int]:
    """The ``rclone rcd`` processes whose parent is ``pid``."""
    return [c for c in children(pid) if is_rclone_daemon(c)]


def wait_rclone_child(pid: int, timeout: float, poll: float = 0.005) -> int | None:
    """Poll until ``pid`` has an rclone daemon child; its pid, or None if ``pid`` ended or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        found = rclone_children(pid)
        if found:
            return found[-1]
        time.sleep(poll)
    return None


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def kill(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to ``pid``; False if it was already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def rclone_daemons_of_homes_under(root: Path) -> list[int]:
    """rclone daemons started by an uploader whose ``DATAUPLOADER_HOME`` lies under ``root`` (read from the
    daemon's own environment, which it inherits): how a test finds every daemon it caused, orphans included."""
    found = []
    prefix = str(root).rstrip("/") + "/"
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or not is_rclone_daemon(int(entry.name)):
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"DATAUPLOADER_HOME="):
                home = os.path.join(cwd, os.fsdecode(item.split(b"=", 1)[1]))
                if home.startswith(prefix):
                    found.append(int(entry.name))
    return found


class Reaper:
    """Remembers every rclone daemon a test saw and stops the survivors (SIGKILL, by pid) when the test ends.

    A pid is only killed if it is still an ``rclone rcd`` (a recycled pid may belong to anything). Daemons listed
    in a home's ``run/rcd-*.pid`` files count too, so an orphan the test never saw is not left running either.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.pids: set[int] = set()
        self.homes: list[Path] = []
        self.root = root  # every daemon whose home lies below it counts as the test's own

    def add(self, pid: int | None) -> None:
        if pid:
            self.pids.add(pid)

    def add_home(self, home: Path) -> None:
        self.homes.append(home)

    def survivors(self) -> list[int]:
        pids = set(self.pids)
        for home in self.homes:
            for pidfile in (home / "run").glob("rcd-*.pid"):
                with contextlib.suppress(OSError, ValueError):
                    pids.add(int(pidfile.read_text().strip()))
        if self.root is not None:
            pids.update(rclone_daemons_of_homes_under(self.root))
        return sorted(p for p in pids if alive(p) and is_rclone_daemon(p))

    def reap(self) -> list[int]:
        killed = self.survivors()
        for pid in killed:
            kill(pid)
        for pid in killed:
            wait_gone(pid, 5)
        return killed


class StderrLines(threading.Thread):
    """Collects a live process's stderr as it comes (reading it at the end would miss what a running sync says)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(name=f"stderr-{proc.pid}", daemon=True)
        self.proc = proc
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)
