"""Sync mode with real files written by a separate process, the real watcher, rclone and storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import DatasetSpec, Engine
from tests.conftest import Cli, ensure_stopped, journal_dataset, posix_signals, wait_for

SETTLE = "0.5"


class Sync:
    """A `datauploader sync` process, stopped like a person would (SIGINT/SIGTERM) or killed by PID."""

    def __init__(self, cli: Cli, src: Path, *args: str) -> None:
        self.cli = cli
        self.proc = cli.popen("-v", "sync", str(src), "--dataset", "ds", "--settle", SETTLE, *args)
        self.dest = cli.storage / "ds"
        wait_for(lambda: self._status_running(), 30, "sync to start watching")

    def _status_running(self) -> bool:
        assert self.proc.poll() is None, self.proc.communicate()
        sets = self.cli.status()["datasets"]
        return bool(sets) and sets[0]["progress"] is not None and sets[0]["progress"]["phase"] == "watching"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "src"
    p.mkdir()
    return p


def writer(script: str) -> subprocess.Popen[str]:
    """A separate process standing in for the instrument's acquisition software."""
    return subprocess.Popen([sys.executable, "-c", script], text=True)


@posix_signals
def test_file_written_in_chunks_is_uploaded_once_and_never_partial(cli: Cli, src: Path) -> None:
    s = Sync(cli, src)
    try:
        target = s.dest / "scan" / "detector.raw"
        # 8 chunks, one every 0.3 s (shorter than settle), then close.
        w = writer(
            f"import os,time\nos.makedirs({str(src / 'scan')!r}, exist_ok=True)\n"
            f"with open({str(src / 'scan' / 'detector.raw')!r}, 'wb') as f:\n"
            "    for i in range(8):\n        f.write(bytes([i]) * 65536); f.flush(); time.sleep(0.3)\n"
        )
        sizes = set()
        while w.poll() is None:
            if target.exists():
                sizes.add(target.stat().st_size)
            time.sleep(0.02)
        wait_for(target.exists, 10, "the complete file on storage")
        for _ in range(40):  # keep watching a little: it must not change again
            sizes.add(target.stat().st_size)
            time.sleep(0.02)
        assert sizes == {8 * 65536}, f"storage held a partial file: {sizes}"
        code, out, err = s.stop()
        assert code == 0, err
        assert "1 uploaded now" in out
        assert target.read_bytes() == (src / "scan" / "detector.raw").read_bytes()
    finally:
        s.kill()


@posix_signals
def test_500_files_at_50_per_second_all_arrive(cli: Cli, src: Path) -> None:
    s = Sync(cli, src)
    try:
        w = writer(
            "import os,time\n"
            f"d={str(src)!r}\n"
            "for i in range(500):\n"
            "    with open(os.path.join(d, f'frame_{i:04d}.tif'), 'wb') as f: f.write(os.urandom(2048))\n"
            "    time.sleep(0.02)\n"
        )
        w.wait(60)
        wait_for(lambda: len(list(s.dest.glob("frame_*.tif"))) == 500, 30, "all 500 files")
        code, out, err = s.stop()
        assert code == 0, err
        for i in range(0, 500, 37):
            name = f"frame_{i:04d}.tif"
            assert (s.dest / name).read_bytes() == (src / name).read_bytes()
        d = cli.status()["datasets"][0]
        assert d["files"]["done"] == 500 and d["state"] == "complete"
        assert (s.dest / "ro-crate-metadata.json").exists()
    finally:
        s.kill()


@posix_signals
def test_temp_then_rename_uploads_the_final_name_once(cli: Cli, src: Path) -> None:
    s = Sync(cli, src)
    try:
        w = writer(
            "import os,time\n"
            f"d={str(src)!r}\n"
            "for tmp, final in (('a.raw.tmp', 'a.raw'), ('.b.raw.inprogress', 'b.raw')):\n"
            "    with open(os.path.join(d, tmp), 'wb') as f:\n"
            "        for i in range(3): f.write(b'x' * 1000); f.flush(); time.sleep(0.2)\n"
            "    os.rename(os.path.join(d, tmp), os.path.join(d, final))\n"
        )
        w.wait(30)
        wait_for(lambda: (s.dest / "a.raw").exists() and (s.dest / "b.raw").exists(), 10, "renamed files")
        time.sleep(1.5)
        code, out, err = s.stop()
        assert code == 0, err
        names = sorted(p.name for p in s.dest.iterdir())
        assert names == ["a.raw", "b.raw", "ro-crate-metadata.json"]
        assert "2 uploaded now" in out
    finally:
        s.kill()


@posix_signals
def test_reopen_and_append_after_close_is_uploaded_again(cli: Cli, src: Path) -> None:
    s = Sync(cli, src)
    try:
        f = src / "log.dat"
        f.write_bytes(b"first part\n")
        wait_for(lambda: (s.dest / "log.dat").exists(), 10, "first version")
        with f.open("ab") as fh:
            fh.write(b"appended later\n")
        wait_for(lambda: (s.dest / "log.dat").read_bytes() == f.read_bytes(), 10, "appended version")
        code, out, err = s.stop()
        assert code == 0, err
        crate = json.loads((s.dest / "ro-crate-metadata.json").read_text())
        entry = next(e for e in crate["@graph"] if e.get("name") == "log.dat")
        assert entry["contentSize"] == len(f.read_bytes())
    finally:
        s.kill()


@posix_signals
def test_exclude_and_ready_marker_rules(cli: Cli, src: Path) -> None:
    cli.write_config(
        '[profiles.default]\nstorage = "storage"\nexclude = ["scratch/"]\n'
        'ready_markers = [{files = "scan_*.raw", marker = "scan_*.done"}]\n'
    )
    s = Sync(cli, src)
    try:
        (src / "scratch").mkdir()
        (src / "scratch" / "junk.bin").write_bytes(b"junk")
        (src / "~$report.docx").write_bytes(b"lock")
        (src / "scan_001.raw").write_bytes(b"data 1")
        (src / "other.txt").write_bytes(b"other")
        wait_for(lambda: (s.dest / "other.txt").exists(), 10, "other.txt")
        time.sleep(1.5)
        assert not (s.dest / "scan_001.raw").exists(), "uploaded before its marker"
        (src / "scan_001.done").write_bytes(b"")
        wait_for(lambda: (s.dest / "scan_001.raw").exists(), 10, "scan_001.raw after its marker")
        code, out, err = s.stop()
        assert code == 0, err
        names = sorted(p.relative_to(s.dest).as_posix() for p in s.dest.rglob("*") if p.is_file())
        assert names == ["other.txt", "ro-crate-metadata.json", "scan_001.done", "scan_001.raw"]
    finally:
        s.kill()


@posix_signals
def test_restart_catches_up_on_files_written_while_stopped(cli: Cli, src: Path) -> None:
    (src / "before.dat").write_bytes(b"before")
    s = Sync(cli, src)
    wait_for(lambda: (s.dest / "before.dat").exists(), 10, "before.dat")
    assert s.stop()[0] == 0
    (src / "while_stopped.dat").write_bytes(b"written while DataUploader was not running")
    (src / "before.dat").write_bytes(b"before, changed")
    s = Sync(cli, src)
    try:
        wait_for(lambda: (s.dest / "while_stopped.dat").exists(), 10, "catch-up")
        wait_for(lambda: (s.dest / "before.dat").read_bytes() == b"before, changed", 10, "changed file")
        assert s.stop()[0] == 0
    finally:
        s.kill()


@posix_signals
def test_sigterm_drains_files_in_flight_and_seals(cli: Cli, src: Path) -> None:
    s = Sync(cli, src, "--bwlimit", "1M")
    try:
        for i in range(4):
            (src / f"big_{i}.bin").write_bytes(os.urandom(1 << 20))
        # Stop while they are being uploaded (4 MiB at 1 MiB/s).
        wait_for(
            lambda: cli.status()["datasets"][0]["files"]["by_state"].get("uploading", 0) > 0, 15, "uploads"
        )
        code, out, err = s.stop(signal.SIGTERM)
        assert code == 0, err
        for i in range(4):
            assert (s.dest / f"big_{i}.bin").read_bytes() == (src / f"big_{i}.bin").read_bytes()
        d = cli.status()["datasets"][0]
        assert d["state"] == "complete" and d["files"]["done"] == 4
        assert (s.dest / "ro-crate-metadata.json").exists()
    finally:
        s.kill()


@posix_signals
def test_second_sigint_aborts_quickly_and_the_next_run_resumes(cli: Cli, src: Path) -> None:
    s = Sync(cli, src, "--bwlimit", "512k")
    try:
        for i in range(4):
            (src / f"big_{i}.bin").write_bytes(os.urandom(1 << 20))
        wait_for(
            lambda: cli.status()["datasets"][0]["files"]["by_state"].get("uploading", 0) > 0, 15, "uploads"
        )
        s.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        t = time.monotonic()
        code, out, err = s.stop(signal.SIGINT, timeout=30)
        assert code == 130, err
        assert time.monotonic() - t < 10
    finally:
        s.kill()
    r = cli("upload", str(src), "--dataset", "ds")
    assert r.code == 0, r.err
    for i in range(4):
        assert (s.dest / f"big_{i}.bin").read_bytes() == (src / f"big_{i}.bin").read_bytes()


def test_reconciliation_finds_a_file_whose_event_was_lost(tmp_path: Path, src: Path) -> None:
    home_dir = tmp_path / "home"
    home_dir.mkdir()
    (home_dir / "config.toml").write_text('[profiles.default]\nstorage = "storage"\nrescan = 1\n')
    threads_before = threading.active_count()
    with Engine(
        home_dir,
        event_filter=lambda path, kind: "hidden" not in path,  # the OS "drops" these events
    ) as engine:
        handle = engine.start_sync(DatasetSpec(paths=(str(src),), name="ds", settle=0.3))
        try:
            time.sleep(1.0)
            (src / "seen.dat").write_bytes(b"seen")
            (src / "hidden.dat").write_bytes(b"no event for me")
            dest = home_dir / "storage" / "ds"
            wait_for(lambda: (dest / "hidden.dat").exists(), 15, "reconciliation to find hidden.dat")
            assert (dest / "seen.dat").exists()
        finally:
            engine.stop_sync(handle)
        report = handle.wait(60)
    assert report is not None and report.files_done == 2
    assert threading.active_count() <= threads_before + 2


class StorageMonitor:
    """Polls the storage folder every 50 ms and records every size each file was seen at."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.seen: dict[str, set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if not self.dest.exists():
                continue
            for p in self.dest.rglob("*"):
                try:
                    if p.is_file():
                        self.seen.setdefault(p.name, set()).add(p.stat().st_size)
                except OSError:
                    continue

    def stop(self) -> dict[str, set[int]]:
        self._stop.set()
        self._thread.join()
        return self.seen


@posix_signals
def test_restart_never_uploads_a_file_another_process_still_writes(cli: Cli, src: Path) -> None:
    """Issue 9, defect 1: after kill -9 and a restart, the close-after-write evidence is gone; a writer that pauses
    longer than the settle time with the file open must still not have a partial file uploaded."""
    chunk, chunks = 64 * 1024, 4
    w = writer(
        "import os,time\n"
        f"d={str(src)!r}\n"
        "for n in range(3):\n"
        "    with open(os.path.join(d, f'frame_{n}.raw'), 'wb') as f:\n"
        f"        for i in range({chunks}):\n"
        f"            f.write(bytes([i]) * {chunk}); f.flush(); time.sleep(1.6)\n"
    )
    monitor = StorageMonitor(cli.storage / "ds")
    s = Sync(cli, src, "--settle", "1")
    try:
        wait_for(lambda: (src / "frame_0.raw").exists(), 10, "the writer to start")
        time.sleep(2.0)
        s.kill()  # kill -9: the next run starts with no close events for the open file
        s = Sync(cli, src, "--settle", "1")
        assert w.wait(60) == 0
        final = {f"frame_{n}.raw" for n in range(3)}
        wait_for(lambda: final <= set(monitor.seen), 20, "all frames on storage")
        time.sleep(1.0)
        code, out, err = s.stop()
        assert code == 0, err
    finally:
        s.kill()
        ensure_stopped(w)
        seen = monitor.stop()
    for name in final:
        assert seen[name] == {chunk * chunks}, f"storage held {name} at sizes {sorted(seen[name])}"
        assert (cli.storage / "ds" / name).read_bytes() == (src / name).read_bytes()


@posix_signals
def test_counts_are_files_not_attempts(cli: Cli, src: Path) -> None:
    """Issue 9, defect 9: a file uploaded twice (changed after its first upload) is one file in the summary."""
    s = Sync(cli, src)
    try:
        f = src / "a.dat"
        f.write_bytes(b"first")
        wait_for(lambda: (s.dest / "a.dat").exists(), 10, "first version")
        f.write_bytes(b"second, longer")
        wait_for(lambda: (s.dest / "a.dat").read_bytes() == b"second, longer", 10, "second version")
        (src / "b.dat").write_bytes(b"b")
        wait_for(lambda: (s.dest / "b.dat").exists(), 10, "b.dat")
        code, out, err = s.stop()
    finally:
        s.kill()
    assert code == 0, err
    assert "2/2 files registered" in out and "2 uploaded now (15 B" in out, out


@posix_signals
def test_sync_stopped_before_any_file_exits_0(cli: Cli, src: Path) -> None:
    s = Sync(cli, src)
    try:
        code, out, err = s.stop()
    finally:
        s.kill()
    assert code == 0, (out, err)
    assert "0/0 files registered" in out and "FAILED" not in out


def test_files_that_arrive_during_a_pass_go_in_batches_sized_for_them(tmp_path: Path) -> None:
    """A burst reaches the uploader in waves (the settle tracker declares files complete as it sees them): a pass
    that began with a handful must not carry the rest of the burst in batches of the minimum size."""
    from types import SimpleNamespace

    from engine.journal import Journal
    from engine.uploader import LANES, MIN_BATCH_FILES, DatasetUploader

    with Journal(tmp_path / "journal.sqlite") as journal:
        rec = journal_dataset(journal)

        def arrive(first: int, n: int) -> None:
            journal.stage_scan((f"f{i:05d}", f"/src/f{i:05d}", 1000, 1) for i in range(first + n))
            journal.merge_scan(rec.id)

        arrive(0, 150)  # the first wave
        batches = DatasetUploader._batches(SimpleNamespace(journal=journal, rec=rec))  # type: ignore[arg-type]
        first = next(batches)
        arrive(150, 2000)  # the rest of the burst, while the first batch is under way
        sizes = [len(first)] + [len(b) for b in batches]
    assert sum(sizes) == 2150 and sizes[0] == MIN_BATCH_FILES
    assert sizes[1] == (2000 + 50) // LANES > MIN_BATCH_FILES, sizes
