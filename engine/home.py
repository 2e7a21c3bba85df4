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


@dataclass(frozen=True)
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
        for d in (self.config_dir, self.data_dir, self.log_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        # The run folder holds file lists naming the user's data and lock files; keep it private.
        with contextlib.suppress(OSError):
            os.chmod(self.run_dir, 0o700)
        return self


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
