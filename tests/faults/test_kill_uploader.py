"""kill -9 of the uploader at a random moment of a batch upload, then the same command again.

Whatever the moment (starting rclone, scanning, hashing, mid-copy, verifying, registering, writing the manifest),
the second run must exit 0 with the storage holding exactly the source plus the manifest, nothing temporary left,
and every file registered once. Local folder and WebDAV (``rclone serve webdav``) storage share the trials.

Also: the uploader's ``rclone rcd`` must not outlive it (issue 9, defect 5).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, ensure_stopped, wait_for
from tests.faults import procs
from tests.faults.checks import assert_complete, no_traceback, tail
from tests.faults.procs import Reaper
from tests.faults.trials import Trial, split, trials
from tests.faults.workload import batch_tree, count_files
from tests.servers import Server, serve, write_config

N_LOCAL, N_WEBDAV = split(trials(20), 2)
BWLIMIT = "4M"  # ~0.8 s of copying for the ~3.3 MiB tree: most random moments land in the transfer


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return batch_tree(tmp_path_factory.mktemp("faults-kill-uploader") / "src", small=110, large=1)


@pytest.fixture(scope="module")
def webdav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve("webdav", tmp_path_factory.mktemp("faults-kill-uploader-webdav")) as srv:
        yield srv


def _setup(kind: str, cli: Cli, request: pytest.FixtureRequest, folder: str) -> Path:
    """Point the home at the storage (WebDAV: its own ``folder`` on the shared server); return where the
    dataset lands."""
    if kind == "local":
        return cli.storage / "ds"
    srv: Server = request.getfixturevalue("webdav")
    write_config(cli.home, {"default": srv.profile(folder)})
    return srv.disk(folder, "ds")


_baseline: dict[str, float] = {}


def _duration(kind: str, src: Path, tmp_path: Path, request: pytest.FixtureRequest, reaper: Reaper) -> float:
    """How long an uninterrupted run takes (measured once per storage kind, and checked): kills fall within it."""
    if kind not in _baseline:
        cli = Cli(tmp_path / "baseline-home")
        reaper.add_home(cli.home)
        dest = _setup(kind, cli, request, "baseline")
        t0 = time.monotonic()
        r = cli("upload", str(src), "--dataset", "ds", "--bwlimit", BWLIMIT)
        _baseline[kind] = time.monotonic() - t0
        assert r.code == 0, (r.out, r.err)
        assert_complete(cli, "ds", dest, src, count_files(src))
    return _baseline[kind]


@pytest.mark.parametrize(
    ("kind", "trial"),
    [("local", i) for i in range(N_LOCAL)] + [("webdav", i) for i in range(N_WEBDAV)],
    ids=[f"local-{i}" for i in range(N_LOCAL)] + [f"webdav-{i}" for i in range(N_WEBDAV)],
)
def test_kill_uploader_then_rerun(
    kind: str, trial: int, cli: Cli, src: Path, tmp_path: Path, request: pytest.FixtureRequest, reaper: Reaper
) -> None:
    full = _duration(kind, src, tmp_path, request, reaper)
    dest = _setup(kind, cli, request, f"trial-{trial}")
    t = Trial(f"kill-uploader-{kind}", trial)
    with t.running():
        moment = t.rng.uniform(0.05, full)
        proc = cli.popen("upload", str(src), "--dataset", "ds", "--bwlimit", BWLIMIT)
        try:
            t.note(
                f"uploader pid {proc.pid} started; a full run takes {full:.2f} s; kill -9 at {moment:.3f} s"
            )
            deadline = time.monotonic() + moment
            while time.monotonic() < deadline and proc.poll() is None:
                reaper.add(next(iter(procs.rclone_children(proc.pid)), None))
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                t.note("killed")
            else:
                t.note(f"the run ended (exit {proc.returncode}) before the kill")
            out, err = proc.communicate(timeout=60)
            no_traceback(out, err)
        finally:
            ensure_stopped(proc)
        r = cli("upload", str(src), "--dataset", "ds", "--bwlimit", BWLIMIT)
        t.note(f"re-run exit {r.code}")
        no_traceback(r.out, r.err)
        assert r.code == 0, f"re-run exit {r.code}:\n{tail(r.out + r.err)}"
        assert_complete(cli, "ds", dest, src, count_files(src))


ORPHAN_TRIALS = trials(2)


@pytest.mark.parametrize("trial", range(ORPHAN_TRIALS))
def test_no_orphaned_rclone_after_uploader_killed(trial: int, cli: Cli, src: Path, reaper: Reaper) -> None:
    t = Trial("orphan-rclone", trial)
    with t.running():
        proc = cli.popen("upload", str(src), "--dataset", "ds", "--bwlimit", "1M")
        try:
            rcd = procs.wait_rclone_child(proc.pid, 30)
            assert rcd is not None, "the uploader started no rclone daemon"
            reaper.add(rcd)
            # Once files arrive the daemon is serving and no longer writes to the pipe the uploader reads (a
            # daemon killed earlier may die of SIGPIPE on its start-up message, by luck rather than design).
            wait_for(lambda: any((cli.storage / "ds").rglob("*")), 30, "the first files on storage")
            time.sleep(t.rng.uniform(0, 1.0))
            proc.send_signal(signal.SIGKILL)
            t.note(f"uploader {proc.pid} killed; its rclone daemon is pid {rcd}")
            proc.communicate(timeout=60)
        finally:
            ensure_stopped(proc)
        gone = procs.wait_gone(rcd, 1.5)
        t.note(f"rclone daemon {'gone' if gone else 'still running'} 1.5 s later")
        assert gone, f"orphaned rclone rcd pid {rcd} survives its killed uploader ({t})"


def test_reaper_sees_the_daemon(cli: Cli, src: Path) -> None:
    """The orphan test's own instrument: an upload's rclone daemon is found as its child through /proc."""
    proc = cli.popen("upload", str(src), "--dataset", "ds", "--bwlimit", "2M")
    try:
        rcd = procs.wait_rclone_child(proc.pid, 30)
        assert rcd is not None and procs.is_rclone_daemon(rcd)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            ensure_stopped(proc)
    assert proc.returncode == 130
