"""A copy job where many files fail for different reasons: each file is judged by its own error.

rclone keeps only its last ~100 finished transfers per job, so after a big failed job the older files' own errors
are gone and only the job's last error is left. That error belongs to another file: it must not fail the rest for
a reason that was not theirs (here: "rename the file" for files whose problem is something else). Real rclone,
real errors on a local folder: paths taken by folders (copied first), then names too long for the storage (the
job's last error).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.journal import DISCOVERED, Journal
from engine.rclone.binary import find_rclone
from engine.rclone.daemon import RcloneDaemon
from engine.storage import Storage
from engine.transfer import BatchTransfer
from tests.conftest import journal_dataset, write_tree

pytestmark = pytest.mark.posix_only(reason="paths past Linux's 4,096-byte limit")

BLOCKED, LONG = 120, 120  # failures of each kind in one job: more than rclone keeps


def _deep(root: Path, length: int) -> Path:
    """A folder whose path is ``length`` bytes or a little more."""
    path = root
    while len(str(path)) < length:
        path = path / ("d" * min(200, max(1, length - len(str(path)) - 1)))
    path.mkdir(parents=True)
    return path


def test_files_whose_own_errors_rclone_dropped_are_not_failed_for_another_files_cause(tmp_path: Path) -> None:
    long_name = "n" * 120
    # One folder, copied in name order: the blocked files first (their errors drop out), the long names last.
    files = {f"d/a{i:03d}.bin": os.urandom(100) for i in range(BLOCKED)}
    files |= {f"d/{long_name}{i:03d}.bin": os.urandom(100) for i in range(LONG)}
    src = write_tree(tmp_path / "src", files)
    storage_root = _deep(tmp_path / "storage", 4000)  # + /ds/d/<long name>: past 4,096 bytes; a short one not
    for i in range(BLOCKED):
        (storage_root / "ds" / "d" / f"a{i:03d}.bin").mkdir(parents=True)  # a folder holds the file's path

    journal = Journal(tmp_path / "journal.db")
    rec = journal_dataset(journal)
    journal.stage_scan((rel, str(src / rel), 100, (src / rel).stat().st_mtime_ns) for rel in sorted(files))
    journal.merge_scan(rec.id)
    batch = journal.files_in_state(rec.id, (DISCOVERED,), limit=len(files))
    with RcloneDaemon(find_rclone(), config_file=tmp_path / "rclone.conf", run_dir=tmp_path) as daemon:
        storage = Storage(daemon, str(storage_root), run_dir=tmp_path)
        with ThreadPoolExecutor(1) as pool:
            transfer = BatchTransfer(
                storage, journal, str(storage_root / "ds"), "xxh128", pool=pool, alt_hash="xxh128"
            )
            result = transfer.run(batch)
    journal.close()

    failed = {item.rec.rel: reason for item, reason in result.failed}
    retry = {item.rec.rel: reason for item, reason, _ in result.retry}
    assert not result.verified
    assert set(failed) | set(retry) == set(files)
    renamed = [rel for rel, reason in {**failed, **retry}.items() if "rename the file" in reason]
    longs = sorted(r for r in files if long_name in r)
    assert sorted(renamed) == longs, "a file failed for another's cause"
    # The long names failed at once, for their own reason; the others met something rclone did not recognise
    # ("partial file rename failed"): tried again a few times.
    assert sorted(failed) == longs
    assert all(
        "rename" not in retry[rel] and "rclone:" in retry[rel] for rel in files if long_name not in rel
    )
