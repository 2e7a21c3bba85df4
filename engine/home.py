"""Where DataUploader keeps its state.

``DATAUPLOADER_HOME`` puts everything (config, journal, catalogue, logs, default storage) in one folder, which
is what tests, portable installs and facility IT setting up a shared instrument PC want. Without it the
per-user platform folders are used so the app behaves like any other desktop application.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "datauploader"
HOME_ENV = "DATAUPLOADER_HOME"


@dataclass
class Home:
    """The resolved state folders; created on demand by :meth:`ensure`."""

    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def journal_file(self) -> Path:
        return self.data_dir / "journal.sqlite"

    @property
    def catalogue_file(self) -> Path:
        return self.data_dir / "catalogue.sqlite"

    @property
    def default_storage(self) -> Path:
        return self.data_dir / "storage"

    @property
    def run_dir(self) -> Path:
        """Scratch space: rclone file lists, locks, manifests waiting to be uploaded."""
        return self.data_dir / "run"

    def ensure(self) -> Home:
        """Create the folders, private to the user (0700): they hold the journal (every file name of every
        dataset), the catalogue, logs and possibly tokens. A folder that already existed keeps its mode, except
        the run folder, which is always ours."""
        for d in (self.config_dir, self.data_dir, self.log_dir, self.run_dir):
            private_dir(d)
        with contextlib.suppress(OSError):
            os.chmod(self.run_dir, 0o700)
        return self


def private_dir(path: Path) -> None:
    """``mkdir -p`` with mode 0700 for every folder it creates."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only the user can read it (0600) before anything is written into it. SQLite
    gives its -wal and -shm files the mode of the database file, so this covers them too."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if os.name != "nt":
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
    return path


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Home:
    """The home given explicitly, by ``DATAUPLOADER_HOME``, or the platform's per-user folders."""
    root = explicit if explicit is not None else os.environ.get(HOME_ENV)
    if root:
        base = Path(root).expanduser().resolve()
        return Home(config_dir=base, data_dir=base, log_dir=base / "logs")
    return Home(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )
