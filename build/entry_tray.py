"""Entry point of the windowed ``DataUploaderTray.exe`` (Windows): the tray applet, with no console window.

The tray applet provides ``tray.app:main`` (issue 12). Until it exists this executable runs the CLI with the
same arguments, so the bundle, the installer and the Start-menu entry can be built and tested today.
"""

import importlib.util
import sys

if importlib.util.find_spec("tray.app") is not None:
    from tray.app import main  # type: ignore[import-not-found,unused-ignore]

    sys.exit(main())
else:
    from engine.cli import main as cli_main

    sys.exit(cli_main())
