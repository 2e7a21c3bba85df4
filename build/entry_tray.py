"""Entry point of the windowed ``DataUploaderTray.exe`` (Windows): the tray applet, with no console window.

It runs ``tray.app:main`` (the tray applet, issue 12) with the command-line arguments, as ``datauploader tray``
does; ``--version`` and, until the tray exists, everything else go to the CLI, so the bundle, the installer and
the Start-menu entry can be built and tested today. A windowed program has no standard streams (PyInstaller sets
them to None) and an exception escaping here becomes a modal error box that waits for a click, so output goes to
the null device.
"""

import os
import sys

for _name in ("stdout", "stderr"):
    if getattr(sys, _name) is None:
        setattr(sys, _name, open(os.devnull, "w"))  # noqa: SIM115 - for the life of the process

args = sys.argv[1:]
try:
    if args == ["--version"]:
        raise ImportError("the version comes from the CLI")
    from tray.app import main  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from engine.cli import main

sys.exit(main(args))
