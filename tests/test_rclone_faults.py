"""The rclone daemon dying: a crash is transient (restart, go on), and it never outlives the uploader.

Issue 9, defects 4 and 5. Real processes and real signals: the daemon is found as the uploader's child in /proc and
killed by its pid.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import (
    REPO,
    Cli,
    assert_uploaded,
    child_pids,
    ensure_stopped,
    process_alive,
    wait_for,
    write_tree,
)

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
    # Under Wine, Windows Python sees Linux's /proc through drive Z:, so the check above alone is not enough.
    pytest.mark.posix_only(reason="finds child processes through Linux /proc"),
]


def _source(tmp_path: Path, n: int = 30, size: int = 100_000) -> Path:
    return write_tree(tmp_path / "src", {f"d{i % 3}/f{i}.bin": os.urandom(size) for i in range(n)})


@pytest.mark.parametrize("trial", range(6))
def test_rclone_killed_right_after_start_is_restarted(cli: Cli, tmp_path: Path, trial: int) -> None:
    rng = random.Random(trial)
    src = _source(tmp_path)
    proc = cli.popen("upload", str(src), "--dataset", "ds", "--bwlimit", "3M")
    try:
        kids: list[int] = []
        wait_for(
            lambda: bool(kids.extend(child_pids(proc.pid)) or kids) or proc.poll() is not None, 20, "rcd"
        )
        time.sleep(rng.uniform(0.05, 0.1) if trial < 4 else rng.uniform(0.2, 1.0))
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        ensure_stopped(proc)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err and "did not write" not in out + err
    assert_uploaded(cli.storage / "ds", src)


def test_rclone_dies_with_the_uploader(cli: Cli, tmp_path: Path) -> None:
    src = _source(tmp_path, n=20, size=1_000_000)
    proc = cli.popen("upload", str(src), "--dataset", "ds", "--bwlimit", "2M")
    try:
        kids: list[int] = []
        wait_for(lambda: bool(kids.extend(child_pids(proc.pid)) or kids), 20, "rcd")
        wait_for(lambda: (cli.storage / "ds").exists(), 20, "the upload to start")
        proc.kill()
        proc.communicate()
        wait_for(lambda: not any(process_alive(k) for k in kids), 2, "rclone to die with its parent")
    finally:
        ensure_stopped(proc)
    r = cli("upload", str(src), "--dataset", "ds")
    assert r.code == 0, r.err
    assert_uploaded(cli.storage / "ds", src)
    # What the killed run left in the run folder (its daemon's pid file, the file lists it gave rclone) is gone.
    left = sorted(
        p.name
        for p in (cli.home / "run").iterdir()
        if p.name.startswith((f"rcd-{proc.pid}-", f"files-{proc.pid}-"))
    )
    assert not left, left


def test_a_restarted_rclone_keeps_the_bandwidth_limit(tmp_path: Path) -> None:
    """A daemon restarted after a crash limits from its first byte, with the limit in force now. (The engine used
    to remember per daemon object which limit it had sent, so a restarted rclone ran unlimited.)"""
    from engine.rclone.binary import find_rclone
    from engine.rclone.daemon import RcloneDaemon

    limit = ["2M"]
    with RcloneDaemon(
        find_rclone(), config_file=tmp_path / "rclone.conf", run_dir=tmp_path, bwlimit=lambda: limit[0]
    ) as daemon:
        assert daemon.call("core/bwlimit")["bytesPerSecond"] == 2 << 20
        first = daemon.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: not daemon.running(), 5, "rclone to die")
        limit[0] = "1M"  # what the engine says by now
        assert daemon.call("core/bwlimit")["bytesPerSecond"] == 1 << 20
        assert daemon.pid != first and daemon.rate == "1M"


class _StubDaemon:
    """Just enough of a daemon for :meth:`Storage.copy`: the copy's call is ``future``, everything else answers."""

    def __init__(self, future: object) -> None:
        self.future = future

    def submit(self, path: str, timeout: float | None = None, **params: object) -> object:
        return self.future

    def call(self, path: str, timeout: float | None = None, **params: object) -> dict[str, object]:
        return {}


def test_a_copy_whose_call_never_began_or_failed_oddly_is_not_waited_for(tmp_path: Path) -> None:
    """The daemon stopped before the copy's call began (its future cancelled): the batch sees rclone gone, as for
    any dead daemon. A call that failed with a timeout of its own is read, not mistaken for the wait's."""
    from concurrent.futures import Future

    from engine.rclone.daemon import RcloneError
    from engine.storage import Storage

    def copy(future: Future[dict[str, object]]) -> None:
        storage = Storage(_StubDaemon(future), str(tmp_path / "dst"), run_dir=tmp_path)  # type: ignore[arg-type]
        storage.copy(tmp_path, str(tmp_path / "dst"), ["a.bin"])

    cancelled: Future[dict[str, object]] = Future()
    cancelled.cancel()
    with pytest.raises(RcloneError) as gone:
        copy(cancelled)
    assert gone.value.status == 0

    timed_out: Future[dict[str, object]] = Future()
    timed_out.set_exception(TimeoutError("read timed out"))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        copy(timed_out)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("user_gogc", [None, "150"])
def test_rclone_runs_with_a_lazier_garbage_collector_unless_the_user_set_one(
    cli: Cli, tmp_path: Path, user_gogc: str | None
) -> None:
    """GOGC=400 for the daemon (engine.rclone.launch.GOGC: small files upload faster), a GOGC of the user's own
    wins."""
    src = _source(tmp_path, n=20, size=1_000_000)
    env = dict(cli.env)
    env.pop("GOGC", None)
    if user_gogc is not None:
        env["GOGC"] = user_gogc
    proc = subprocess.Popen(
        cli.argv("upload", str(src), "--dataset", "ds", "--bwlimit", "4M"),
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kids: list[int] = []
        wait_for(lambda: bool(kids.extend(child_pids(proc.pid)) or kids), 20, "rcd")
        environ = Path(f"/proc/{kids[0]}/environ").read_bytes().split(b"\0")
        out, err = proc.communicate(timeout=120)
    finally:
        ensure_stopped(proc)
    assert proc.returncode == 0, (out, err)
    assert f"GOGC={user_gogc or '400'}".encode() in environ
    # And no stat before every read of a source: the transfer checks the source itself (engine.transfer).
    assert b"RCLONE_LOCAL_NO_CHECK_UPDATED=true" in environ
