"""One uploader per dataset (and one tray per user): the operating system's lock, freed however its holder ends."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine.locks import try_lock
from tests.conftest import Cli, wait_for, write_tree

_HOLD = """
import sys, time
from pathlib import Path
from engine.locks import try_lock
lock = try_lock(Path(sys.argv[1]))
print("held" if lock else "busy", flush=True)
time.sleep(60)
"""


def test_a_second_holder_in_the_same_process_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first = try_lock(path)
    assert first is not None and first.held
    assert try_lock(path) is None
    first.release()
    assert not first.held
    first.release()  # twice is harmless
    with try_lock(path) as again:  # type: ignore[union-attr]
        assert again.held
    assert try_lock(path) is not None


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert try_lock(path) is None
    finally:
        holder.kill()
        holder.wait(10)
    lock = try_lock(path)  # no stale lock file to clean up after a crash
    assert lock is not None
    lock.release()


def test_the_same_dataset_twice_at_once_is_refused_plainly(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {f"f{i}.bin": b"x" * (1 << 20) for i in range(6)})
    first = cli.popen("upload", str(src), "--dataset", "ds", "--bwlimit", "1M")
    try:
        wait_for(
            lambda: bool(list(cli.home.glob("run/dataset-*.lock"))) and _uploading(cli), 60, "first upload"
        )
        second = cli("upload", str(src), "--dataset", "ds")
        assert second.code == 2, second.err
        assert "being uploaded by another DataUploader process" in second.err
        assert len(second.err.strip().splitlines()) == 1
        other = cli("upload", str(src), "--dataset", "other")  # another dataset is not held up
        assert other.code == 0, other.err
    finally:
        first.terminate()
        first.communicate(timeout=60)
    time.sleep(0.1)
    done = cli("upload", str(src), "--dataset", "ds")  # the stopped run's lock went with it
    assert done.code == 0, done.err


def _uploading(cli: Cli) -> bool:
    sets = cli.status()["datasets"]
    return any(d["name"] == "ds" and d["state"] == "uploading" for d in sets)
