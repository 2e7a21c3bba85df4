"""kill -9 of ``sync`` while an instrument still writes, then sync started again while the writer goes on.

The writer keeps each file open and pauses 1.6 s between chunks — longer than ``--settle 1``. The first sync
knows from inotify that the file was never closed; a restarted one has lost that evidence and must not upload
the file until its writer is done (issue 9, defect 1). A monitor thread lists the storage every 50 ms: no file
may ever be there under its final name at any size but its final one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import Cli, ensure_stopped, wait_for
from tests.faults import procs
from tests.faults.checks import assert_complete, no_traceback, partial_files, tail
from tests.faults.procs import Reaper
from tests.faults.trials import Trial, trials

N_TRIALS = trials(1)
FILES, CHUNKS, CHUNK, PAUSE = 2, 3, 200_000, 1.6
FINAL = CHUNKS * CHUNK

WRITER = """
import os, sys, time
folder, files, chunks, chunk, pause = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
for i in range(files):
    with open(os.path.join(folder, f"acq_{i}.raw"), "wb") as f:
        for c in range(chunks):
            f.write(os.urandom(chunk)); f.flush()
            print(f"acq_{i}.raw chunk {c}", flush=True)
            if c < chunks - 1:
                time.sleep(pause)
    time.sleep(0.3)
"""


class StorageMonitor(threading.Thread):
    """Lists ``dest`` every 50 ms and remembers every (name, size) seen under a final name."""

    def __init__(self, dest: Path) -> None:
        super().__init__(name="storage-monitor", daemon=True)
        self.dest = dest
        self.seen: set[tuple[str, int]] = set()
        self.polls = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            self.polls += 1
            try:
                entries = list(os.scandir(self.dest))
            except FileNotFoundError:
                continue
            for e in entries:
                if e.name.endswith(".partial") or not e.name.endswith(".raw"):
                    continue  # rclone's temporary name: not the final name
                try:
                    self.seen.add((e.name, e.stat().st_size))
                except FileNotFoundError:
                    continue

    def wrong_sizes(self) -> list[tuple[str, int]]:
        return sorted((n, s) for n, s in self.seen if s != FINAL)


def _sync(cli: Cli, src: Path) -> subprocess.Popen[str]:
    return cli.popen("-v", "sync", str(src), "--dataset", "ds", "--settle", "1")


def _watching(cli: Cli, proc: subprocess.Popen[str]) -> bool:
    assert proc.poll() is None, proc.communicate()
    sets = cli.status()["datasets"]
    return bool(sets) and (sets[0]["progress"] or {}).get("phase") == "watching"


def one_trial(t: Trial, cli: Cli, src: Path, reaper: Reaper) -> None:
    dest = cli.storage / "ds"
    monitor = StorageMonitor(dest)
    started: list[subprocess.Popen[str]] = []
    try:
        monitor.start()
        first = _sync(cli, src)
        started.append(first)
        wait_for(lambda: _watching(cli, first), 30, "the first sync to watch")
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(src), str(FILES), str(CHUNKS), str(CHUNK), str(PAUSE)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(writer)
        assert writer.stdout is not None
        t.note(f"sync pid {first.pid} watching; writer pid {writer.pid} started")
        writer.stdout.readline()  # the first chunk of acq_0.raw is written
        moment = t.rng.uniform(0.2, 1.2 * PAUSE)
        time.sleep(moment)
        reaper.add(next(iter(procs.rclone_children(first.pid)), None))
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        t.note(f"sync killed {moment:.3f} s after the writer's first chunk")
        second = _sync(cli, src)
        started.append(second)
        t.note(f"sync started again, pid {second.pid}")
        writer.communicate(timeout=60)
        t.note("the writer closed its last file")
        wait_for(
            lambda: (
                all((dest / f"acq_{i}.raw").is_file() for i in range(FILES))
                and all((dest / f"acq_{i}.raw").stat().st_size == FINAL for i in range(FILES))
            ),
            30,
            "every file on storage at its final size",
        )
        time.sleep(0.5)
        second.send_signal(signal.SIGINT)
        out, err = second.communicate(timeout=60)
        t.note(f"second sync stopped: exit {second.returncode}; storage listed {monitor.polls} times")
    finally:
        monitor.halt.set()
        monitor.join()
        for p in started:
            ensure_stopped(p)
    no_traceback(out, err)
    assert not monitor.wrong_sizes(), f"storage held unfinished files (name, size): {monitor.wrong_sizes()}"
    assert second.returncode == 0, f"exit {second.returncode}:\n{tail(out + err)}"
    assert not partial_files(dest)
    assert_complete(cli, "ds", dest, src, FILES)


def test_kill_sync_while_writer_pauses_then_restart(tmp_path: Path, reaper: Reaper) -> None:
    failed: list[str] = []
    for trial in range(N_TRIALS):
        cli = Cli(tmp_path / f"trial-{trial}" / "home")
        reaper.add_home(cli.home)
        src = tmp_path / f"trial-{trial}" / "src"
        src.mkdir(parents=True)
        t = Trial("kill-sync-open-writer", trial)
        try:
            with t.running():
                one_trial(t, cli, src, reaper)
        except AssertionError as exc:
            failed.append(f"{t}\n  -> {exc}")
        reaper.reap()
    assert not failed, f"{len(failed)} of {N_TRIALS} trials failed:\n" + "\n".join(failed)
