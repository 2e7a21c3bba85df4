"""``python -m tray``: the same as the ``datauploader-tray`` command."""

import sys

from tray.app import main

sys.exit(main())
