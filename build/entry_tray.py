"""Entry point of the windowed ``DataUploaderTray.exe`` (Windows): the tray applet, with no console window.

The tray applet provides ``tray.app:main`` (issue 12). Until it exists this executable runs the CLI with the
same arguments, so the bundle, the installer and the Start-menu entry can be built and tested today. A windowed
program has no standard streams (PyInstaller sets them to None), and an exception escaping here becomes a modal
error box that waits for a click, so output goes to the null device instead.
"""

import os
import sys

for _name in ("stdout", "stderr"):
    if getattr(sys, _name) is None:
        setattr(sys, _name, open(os.devnull, "w"))  # noqa: SIM115 - for the life of the process

try:
    from tray.app import main  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # the tray applet is not there yet: behave as the CLI
    from engine.cli import main

sys.exit(main())
