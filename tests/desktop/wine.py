"""Starting a Windows program of the frozen app under Wine from a Linux test, as a user with nothing else would.

build/windows-under-wine.sh owns the Wine prefix (Windows services kept up, the rclone shim installed) and the X
display its Wine processes use, and hands both over in the environment: ``WINEPREFIX``, ``DISPLAY`` and
``DATAUPLOADER_WINE_TRAY`` (the Linux path of the frozen ``DataUploaderTray.exe``). Wine's desktop process, which
docks tray icons into the X tray and draws their balloons, runs on the display the prefix is used from, so the
test uses that display rather than one of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

# What the frozen app must not find: the build's Python and packages, the scripts folder with rclone.exe, an
# rclone named by the environment. Inside Wine, PATH is Windows' own plus WINEPATH.
_UNREACHABLE = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "WINEPATH", "VIRTUAL_ENV")


def winpath(path: Path) -> str:
    """The Windows path of a Linux path under Wine (drive Z: is the Linux root)."""
    return str(PureWindowsPath("Z:\\", *path.resolve().parts[1:]))


@dataclass(frozen=True)
class WineApp:
    """One Windows program of the frozen app, and the prefix and display to run it in."""

    exe: Path
    prefix: Path
    display: str

    @classmethod
    def from_env(cls) -> WineApp | None:
        exe = os.environ.get("DATAUPLOADER_WINE_TRAY", "")
        if not exe:
            return None
        return cls(Path(exe), Path(os.environ["WINEPREFIX"]), os.environ["DISPLAY"])

    @property
    def process_name(self) -> str:
        """How Wine names the program's X windows (``WM_CLASS``)."""
        return self.exe.name.lower()

    def env(self, base: dict[str, str], **extra: str) -> dict[str, str]:
        """``base`` (a desktop's environment) for this program: no Python and no rclone reachable, no
        DataUploader setting from the caller, Linux PATH reduced to the system's (where ``wine`` is)."""
        env = {k: v for k, v in base.items() if k not in _UNREACHABLE and not k.startswith("DATAUPLOADER_")}
        env.update(
            PATH="/usr/bin:/bin",
            WINEPREFIX=str(self.prefix),
            DISPLAY=self.display,
            WINEDEBUG=base.get("WINEDEBUG", "-all"),
        )
        env.update(extra)
        return env

    def processes(self, name: str) -> list[tuple[int, str]]:
        """(pid, command line) of the prefix's processes whose command line mentions ``name`` (case ignored)."""
        found = []
        want = f"WINEPREFIX={self.prefix}".encode()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                if name.lower() not in cmdline.lower():
                    continue
                if want not in (p / "environ").read_bytes().split(b"\0"):
                    continue
            except OSError:  # gone, or not ours to read
                continue
            found.append((int(p.name), cmdline))
        return found
