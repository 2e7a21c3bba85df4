"""The "start at login" switch of Settings….

On Linux this is the XDG autostart entry (``~/.config/autostart/datauploader-tray.desktop``); on Windows and
macOS it is a stub until the packaging work (installer shortcut / launch agent) provides the real thing.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY = """[Desktop Entry]
Type=Application
Name=DataUploader
Comment=Upload instrument data to facility storage
Exec={exe}
Icon=datauploader
X-GNOME-Autostart-enabled=true
"""


def _entry_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart" / "datauploader-tray.desktop"


def supported() -> bool:
    return sys.platform.startswith("linux")


def enabled() -> bool:
    return supported() and _entry_path().is_file()


def set_enabled(on: bool) -> None:
    if not supported():
        log.warning("start at login is not available on %s yet (packaging will add it)", sys.platform)
        return
    path = _entry_path()
    if on:
        exe = shutil.which("datauploader-tray") or f"{sys.executable} -m tray"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ENTRY.format(exe=exe), encoding="utf-8")
    elif path.exists():
        path.unlink()
