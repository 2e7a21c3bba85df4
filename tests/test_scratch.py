"""Scratch in the run folder: what a killed process left is deleted by the next one, what a living one uses is
kept (engine.scratch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.rclone.daemon import reap_orphans
from engine.scratch import owned_file, scratch_dir


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_process_scratch_is_deleted_a_living_one_kept(tmp_path: Path) -> None:
    dead = _dead_pid()
    (tmp_path / f"scratch-{dead}-abc").mkdir()
    (tmp_path / f"scratch-{dead}-abc" / "ro-crate-metadata.json").write_text("{}")
    (tmp_path / f"files-{dead}-0a1b.lst").write_bytes(b"a\0")
    mine = owned_file(tmp_path, "files", ".lst")
    mine.write_bytes(b"b\0")
    others = [tmp_path / "dataset-1.lock", tmp_path / "scratch-notapid-x"]
    for p in others:
        p.write_text("")
    with scratch_dir(tmp_path) as live:
        assert live.name.startswith(f"scratch-{os.getpid()}-")
        reap_orphans(tmp_path)  # what every start of rclone does first
        assert live.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, *(p.name for p in others)])
