"""Scratch files and folders in the home's run folder, named for the process that made them.

A process that is killed (``kill -9``, a power cut, the session ending) cannot delete what it was working with:
the file lists it handed rclone, the manifest it was writing. Their names carry its pid, so the next DataUploader
process deletes what dead owners left behind (:func:`sweep`) and never what a living one still uses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.procs import pid_alive

log = logging.getLogger(__name__)

# ``<kind>-<pid>-<token><suffix>``: the kinds :func:`sweep` knows.
_KINDS = ("files", "scratch")


def owned_file(run_dir: Path, kind: str, suffix: str) -> Path:
    """A new path in ``run_dir`` for a file of this process."""
    assert kind in _KINDS
    return run_dir / f"{kind}-{os.getpid()}-{os.urandom(6).hex()}{suffix}"


@contextlib.contextmanager
def scratch_dir(run_dir: Path) -> Iterator[Path]:
    """A folder of this process in ``run_dir``, deleted when the block ends (or by :func:`sweep`, if it dies)."""
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=f"scratch-{os.getpid()}-") as tmp:
        yield Path(tmp)


def sweep(run_dir: Path) -> None:
    """Delete the scratch files and folders of processes that no longer run."""
    for kind in _KINDS:
        for entry in run_dir.glob(f"{kind}-*-*"):
            try:
                owner = int(entry.name.split("-")[1])
            except ValueError:
                continue
            if pid_alive(owner):
                continue
            log.debug("deleting %s, left by process %s", entry.name, owner)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
