"""Start the tray at login: an XDG autostart entry on Linux, the per-user ``Run`` registry key on Windows.

Both are per-user switches that need no administrator, survive updates of the app (they name the executable, not
a copy of it) and are what the desktop's own "startup applications" settings show, so a user can also turn it
off there. The registry is reached through a small :class:`RunKey` interface so the Windows logic is tested on
Linux with an in-memory key and under Wine with the real registry.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

ENTRY_NAME = "DataUploader"
# The same entry the tray's Settings switch writes, so both see one state.
DESKTOP_FILE = "datauploader-tray.desktop"
RUN_KEY_PATH = r"Software\Microsoft\Windows\CurrentVersion\Run"
# The frozen Windows app's no-console executable, which starts the tray. Not "DataUploader.exe": Windows file
# names ignore case, so that would be the same file as the console "datauploader.exe".
WINDOWED_EXE = "DataUploaderTray.exe"


@dataclass
class AutostartStatus:
    """Whether the tray starts at login, where that is recorded and which command it runs."""

    enabled: bool
    where: str
    command: str | None = None


def launch_command() -> list[str]:
    """The command that starts the tray at login, for this installation.

    Frozen on Windows: the windowed ``DataUploaderTray.exe`` beside us (no console window at every login). Frozen
    elsewhere: our own executable with ``tray``. From a Python installation: this interpreter with ``-m engine
    tray`` (``pythonw.exe`` on Windows when it is there, for the same reason).
    """
    exe = Path(sys.executable)
    if getattr(sys, "frozen", False):
        windowed = exe.with_name(WINDOWED_EXE)
        if sys.platform == "win32" and windowed.is_file():
            return [str(windowed)]
        return [str(exe), "tray"]
    if sys.platform == "win32":
        pythonw = exe.with_name("pythonw.exe")
        if pythonw.is_file():
            exe = pythonw
    return [str(exe), "-m", "engine", "tray"]


# --- Linux and other XDG desktops -----------------------------------------------------------------------------

_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def desktop_exec(argv: Sequence[str]) -> str:
    """``argv`` as a desktop entry ``Exec=`` value (Desktop Entry Specification, "The Exec key").

    Arguments with reserved characters are double-quoted with ``"`,$,\\`` backslash-escaped inside; then, because
    ``Exec`` is a string value, every backslash is escaped once more, and ``%`` is doubled (field codes).
    """
    words = []
    for arg in argv:
        if arg and not (set(arg) & _EXEC_RESERVED):
            word = arg
        else:
            inner = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
            word = f'"{inner}"'
        words.append(word.replace("\\", "\\\\").replace("%", "%%"))
    return " ".join(words)


class XdgAutostart:
    """``$XDG_CONFIG_HOME/autostart/datauploader.desktop`` (freedesktop.org Desktop Application Autostart)."""

    def __init__(self, config_home: Path | None = None) -> None:
        base = config_home or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        self.path = base / "autostart" / DESKTOP_FILE

    def enable(self, argv: Sequence[str]) -> AutostartStatus:
        exec_line = desktop_exec(argv)
        text = (
            "[Desktop Entry]\n"
            "Type=Application\n"
            f"Name={ENTRY_NAME}\n"
            "Comment=Upload instrument data to facility storage (tray applet)\n"
            f"Exec={exec_line}\n"
            "Icon=datauploader\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n"
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        log.info("start at login: wrote %s", self.path)
        return self.status()

    def disable(self) -> AutostartStatus:
        try:
            self.path.unlink()
            log.info("start at login: removed %s", self.path)
        except FileNotFoundError:
            pass
        return self.status()

    def status(self) -> AutostartStatus:
        where = str(self.path)
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return AutostartStatus(False, where)
        keys = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
        # A desktop's settings panel may switch an entry off without deleting it.
        off = keys.get("Hidden", "").lower() == "true" or keys.get("X-GNOME-Autostart-enabled") == "false"
        return AutostartStatus(not off, where, keys.get("Exec"))


# --- Windows ---------------------------------------------------------------------------------------------------


class RunKey(Protocol):
    """One registry key's string values: just what autostart needs, so tests can substitute the registry."""

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


def _winreg() -> Any:
    """The :mod:`winreg` module; imported on use, as it exists only on Windows (and typed loosely for mypy on
    other systems, where its stubs are empty)."""
    return importlib.import_module("winreg")


class WinregRunKey:
    """``HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` through :mod:`winreg`."""

    def __init__(self, path: str = RUN_KEY_PATH) -> None:
        self.path = path

    def get(self, name: str) -> str | None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.path) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        winreg = _winreg()
        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, self.path, 0, winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.path, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass


class RegistryAutostart:
    """A value named ``DataUploader`` under the per-user ``Run`` key, holding the command line."""

    def __init__(self, key: RunKey | None = None) -> None:
        self.key = key or WinregRunKey()

    @property
    def where(self) -> str:
        return f"HKEY_CURRENT_USER\\{RUN_KEY_PATH}\\{ENTRY_NAME}"

    def enable(self, argv: Sequence[str]) -> AutostartStatus:
        self.key.set(ENTRY_NAME, subprocess.list2cmdline(list(argv)))
        log.info("start at login: set %s", self.where)
        return self.status()

    def disable(self) -> AutostartStatus:
        self.key.delete(ENTRY_NAME)
        log.info("start at login: removed %s", self.where)
        return self.status()

    def status(self) -> AutostartStatus:
        value = self.key.get(ENTRY_NAME)
        return AutostartStatus(value is not None, self.where, value)


# --- the switch the CLI and the tray's Settings use -----------------------------------------------------------


def backend(platform: str | None = None) -> XdgAutostart | RegistryAutostart:
    """The autostart mechanism of this OS (``platform`` as in ``sys.platform``; macOS is not supported)."""
    platform = platform or sys.platform
    if platform == "win32":
        return RegistryAutostart()
    return XdgAutostart()


def enable(argv: Sequence[str] | None = None) -> AutostartStatus:
    """Start the tray at login from now on (``argv``: the command; default :func:`launch_command`)."""
    return backend().enable(list(argv) if argv else launch_command())


def disable() -> AutostartStatus:
    """Stop starting the tray at login (nothing happens when it was off)."""
    return backend().disable()


def status() -> AutostartStatus:
    return backend().status()
