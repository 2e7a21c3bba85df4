"""The engine's API with no front end (issue 11): several datasets at once, pause/resume, typed events, no leaks.

Real rclone, a real WebDAV server on 127.0.0.1, real files; the engine runs in this process, as in the tray.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from engine import (
    DatasetSealed,
    DatasetSpec,
    DatasetStarted,
    Engine,
    EnginePaused,
    EngineResumed,
    Event,
    FileVerified,
    ProgressUpdate,
    StorageReachable,
    StorageUnreachable,
)
from tests.conftest import child_pids, process_alive, tree_bytes, wait_for, write_tree
from tests.servers import RcloneWebdav, toml_profile


class Recorder:
    """A subscriber that keeps every event (in arrival order) per dataset."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        with self.lock:
            self.events.append(ev)

    def kinds(self, dataset_id: int) -> list[str]:
        """Event kinds of one dataset, consecutive progress updates folded into one."""
        out: list[str] = []
        with self.lock:
            for ev in self.events:
                if getattr(ev, "dataset_id", None) != dataset_id:
                    continue
                kind = type(ev).__name__
                if not (kind == "ProgressUpdate" and out and out[-1] == kind):
                    out.append(kind)
        return out

    def of(self, kind: type[Event]) -> list[Event]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def _catalogue_paths(home: Path) -> dict[str, list[str]]:
    import sqlite3

    db = sqlite3.connect(home / "catalogue.sqlite")
    rows = db.execute(
        "SELECT d.name, f.path FROM files f JOIN datasets d ON d.pid = f.dataset_pid"
    ).fetchall()
    db.close()
    out: dict[str, list[str]] = defaultdict(list)
    for name, path in rows:
        out[name].append(path)
    return out


def _write(folder: Path, names: list[str], size: int) -> dict[str, bytes]:
    data = {n: os.urandom(size) for n in names}
    write_tree(folder, data)
    return data


def test_two_syncs_and_a_batch_with_pause_mid_transfer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with RcloneWebdav(tmp_path / "srv") as srv:
        (home / "config.toml").write_text(
            toml_profile("default", {"storage": str(tmp_path / "local")})
            + toml_profile("dav", srv.profile("raw"))
        )
        a, b, c = (tmp_path / n for n in ("a", "b", "c"))
        for d in (a, b, c):
            d.mkdir()
        batch_files = _write(c, [f"c{i}.bin" for i in range(6)], 1 << 20)
        rec = Recorder()
        with Engine(home) as engine:
            engine.subscribe(rec)
            # 1 MiB files at 2 MiB/s engine-wide: a pause lands while jobs are in flight.
            ha = engine.start_sync(DatasetSpec(paths=(str(a),), name="sync-a", settle=0.2, bwlimit="2M"))
            hb = engine.start_sync(DatasetSpec(paths=(str(b),), name="sync-b", profile="dav", settle=0.2))
            hc = engine.upload(DatasetSpec(paths=(str(c),), name="batch-c"))
            assert {h.name for h in engine.handles()} == {"sync-a", "sync-b", "batch-c"}
            wanted_a = _write(a, [f"a{i}.bin" for i in range(4)], 1 << 20)
            wanted_b = _write(b, [f"b{i}.bin" for i in range(4)], 1 << 20)
            wait_for(lambda: any(isinstance(e, FileVerified) for e in rec.events), 30, "the first file")
            engine.pause()
            assert engine.paused
            time.sleep(1.0)
            verified_during_pause = len(rec.of(FileVerified))
            # Written while paused: recorded by the watchers, uploaded after resume.
            wanted_a |= _write(a, ["while-paused-a.bin"], 1000)
            wanted_b |= _write(b, ["while-paused-b.bin"], 1000)
            time.sleep(2.0)
            assert (
                len(rec.of(FileVerified)) <= verified_during_pause + 2
            )  # at most lone files already running
            snap = engine.snapshot()
            assert snap.paused and all(d.state == "paused" for d in snap.datasets if d.running)
            engine.resume()
            report_c = hc.wait(180)
            assert report_c is not None and report_c.exit_code == 0
            local, remote = tmp_path / "local", srv.disk("raw")
            wait_for(lambda: set(wanted_a) <= set(tree_bytes(local / "sync-a")), 120, "sync-a's files")
            wait_for(lambda: set(wanted_b) <= set(tree_bytes(remote / "sync-b")), 120, "sync-b's files")
            engine.stop_sync(ha)
            engine.stop_sync(hb)
            for h in (ha, hb):
                report = h.wait(120)
                assert report is not None and report.exit_code == 0 and report.complete, report
        assert {
            k: v for k, v in tree_bytes(local / "sync-a").items() if k != "ro-crate-metadata.json"
        } == wanted_a
        assert {
            k: v for k, v in tree_bytes(remote / "sync-b").items() if k != "ro-crate-metadata.json"
        } == wanted_b
        assert {
            k: v for k, v in tree_bytes(local / "batch-c").items() if k != "ro-crate-metadata.json"
        } == batch_files
    registered = _catalogue_paths(home)
    for name, wanted in (("sync-a", wanted_a), ("sync-b", wanted_b), ("batch-c", batch_files)):
        assert sorted(registered[name]) == sorted(wanted), name  # each file registered exactly once
    assert [type(e) for e in rec.events if isinstance(e, (EnginePaused, EngineResumed))] == [
        EnginePaused,
        EngineResumed,
    ]
    for h, wanted in ((ha, wanted_a), (hb, wanted_b), (hc, batch_files)):
        kinds = [k for k in rec.kinds(h.id) if k not in ("ProgressUpdate", "FileFailed")]
        n = len(wanted)
        assert kinds == ["DatasetStarted"] + ["FileVerified"] * n + ["DatasetSealed", "DatasetFinished"], (
            h,
            kinds,
        )
        verified = [e.path for e in rec.of(FileVerified) if e.dataset_id == h.id]  # type: ignore[attr-defined]
        assert sorted(verified) == sorted(wanted)
        assert "ProgressUpdate" in rec.kinds(h.id)
    sealed = {e.name: e for e in rec.of(DatasetSealed)}  # type: ignore[attr-defined]
    assert sealed["sync-a"].verification == "xxh128" and sealed["sync-b"].verification == "size"
    assert all(isinstance(e, DatasetStarted) for e in rec.of(DatasetStarted))


def test_a_subscriber_that_names_event_types_gets_only_those(tmp_path: Path) -> None:
    """The CLI subscribes to progress only: a batch of many files must not hand it one event per file."""
    src = tmp_path / "src"
    _write(src, [f"f{i}.dat" for i in range(30)], 100)
    every, sealed = Recorder(), Recorder()
    with Engine(tmp_path / "home") as engine:
        engine.subscribe(every)
        engine.subscribe(sealed, (DatasetSealed,))
        report = engine.upload(DatasetSpec(paths=(str(src),), name="ds")).wait(120)
    assert report is not None and report.exit_code == 0
    assert len(every.of(FileVerified)) == 30
    assert [type(e) for e in sealed.events] == [DatasetSealed]


def test_storage_killed_and_restarted_during_a_sync(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    with RcloneWebdav(tmp_path / "srv") as srv:
        (home / "config.toml").write_text(toml_profile("default", srv.profile("raw")))
        rec = Recorder()
        with Engine(home) as engine:
            engine.subscribe(rec)
            h = engine.start_sync(DatasetSpec(paths=(str(src),), name="ds", settle=0.2))
            wanted = _write(src, ["before.dat"], 1000)
            wait_for(lambda: srv.disk("raw", "ds", "before.dat").exists(), 30, "before.dat")
            srv.stop()
            wanted |= _write(src, [f"during-{i}.dat" for i in range(5)], 1000)
            wait_for(lambda: bool(rec.of(StorageUnreachable)), 60, "a storage-unreachable event")
            srv.start()
            wait_for(lambda: bool(rec.of(StorageReachable)), 120, "a storage-reachable event")
            wait_for(lambda: set(wanted) <= set(tree_bytes(srv.disk("raw", "ds"))), 60, "every file")
            engine.stop_sync(h)
            report = h.wait(60)
        assert report is not None and report.exit_code == 0
        got = tree_bytes(srv.disk("raw", "ds"))
        got.pop("ro-crate-metadata.json")
        assert got == wanted
    kinds = [k for k in rec.kinds(h.id) if k in ("StorageUnreachable", "StorageReachable")]
    assert kinds == ["StorageUnreachable", "StorageReachable"]


def test_a_slow_or_raising_subscriber_does_not_hold_up_transfers(tmp_path: Path) -> None:
    """A subscriber that sleeps on every event and raises on progress: the upload ends, successfully, while that
    subscriber is still far behind (its 800 file events alone would keep it busy for 40 s). No timing ratio: an
    engine that waited for its subscribers could not finish before the subscriber had seen most events."""
    src = write_tree(tmp_path / "src", {f"d{i % 5}/f{i}.bin": os.urandom(10_000) for i in range(800)})
    seen: list[Event] = []

    def slow_and_broken(ev: Event) -> None:
        seen.append(ev)
        time.sleep(0.05)
        if isinstance(ev, ProgressUpdate):
            raise RuntimeError("a subscriber with a bug")

    with Engine(tmp_path / "home") as engine:
        unsubscribe = engine.subscribe(slow_and_broken)
        report = engine.upload(DatasetSpec(paths=(str(src),), name="ds")).wait(300)
        behind = sum(isinstance(e, FileVerified) for e in seen)
        assert report is not None and report.exit_code == 0 and report.files_done == 800, report
        assert behind < 400, f"the subscriber had seen {behind} of 800 file events when the upload ended"
        threading.Thread(target=unsubscribe, daemon=True).start()  # its backlog drains on its own


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.posix_only(
    reason="counts file descriptors and child processes in Linux /proc (Wine shows Linux's)"
)
def test_ten_start_stop_cycles_leave_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = tmp_path / "src"
    src.mkdir()
    threads, fds = threading.active_count(), _fds()
    with Engine(home) as engine:
        for i in range(10):
            h = engine.start_sync(DatasetSpec(paths=(str(src),), name=f"cycle-{i}", settle=0.1))
            _write(src, [f"f{i}.dat"], 100)
            wait_for(lambda i=i: (home / "storage" / f"cycle-{i}" / f"f{i}.dat").exists(), 30, f"cycle {i}")
            engine.stop_sync(h, finish=i % 2 == 0)  # both ways of stopping
            h_report = None
            try:
                h_report = h.wait(60)
            except Exception as exc:  # finish=False ends as Cancelled
                assert "stopped" in str(exc)
            assert h.done and (h_report is None or h_report.exit_code == 0)
        daemons = child_pids(os.getpid())
        assert len(daemons) == 1, daemons  # one shared rclone daemon for all runs
        assert threading.active_count() <= threads + 8, [t.name for t in threading.enumerate()]
    wait_for(lambda: not any(process_alive(p) for p in daemons), 10, "the daemon to stop with the engine")
    wait_for(lambda: threading.active_count() <= threads + 1, 10, "threads to end")
    assert _fds() <= fds + 2
