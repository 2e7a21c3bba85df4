"""``python -m tests.fake_tray``: the real tray (tray.app.main) over the fake engine of tests/fake_engine.py."""

import sys

from tests.fake_engine import FakeEngine
from tray.app import main

sys.exit(main(engine_factory=FakeEngine))
