"""Logging set-up shared by the CLI and the tray: a rotating file in the home's log folder plus the console."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.home import Home, private_dir, private_file
from engine.redaction import redact


class RedactingFilter(logging.Filter):
    """Masks anything that looks like a credential (``pass=…``, ``token: …``) before it reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The log names every file of every dataset: readable by the user only (0600), rotated files included."""

    def _open(self) -> Any:
        private_file(Path(self.baseFilename))
        return super()._open()


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, after letting the CLI's progress line clear itself (a warning must not stick to its end)."""

    def __init__(self, before: Callable[[], None] | None) -> None:
        super().__init__()
        self.before = before

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):  # said on the console in other words already
            return
        if self.before is not None:
            self.before()
        super().emit(record)


FILE_ONLY = {
    "file_only": True
}  # logging `extra=` for records that belong in the log file, not on the console


def setup_logging(
    home: Home, *, verbose: int = 0, console: bool = True, before_console: Callable[[], None] | None = None
) -> None:
    """The log file (always) and, for the CLI, stderr. Frozen windowed apps have no stderr: ``console=False``."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
    redact = RedactingFilter()
    try:
        private_dir(home.log_dir)
        fileh = _PrivateRotatingFileHandler(
            home.log_dir / "datauploader.log", maxBytes=10 << 20, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:  # a home we may not write: commands that only look (status, config) still work
        unwritable: str | None = f"cannot write the log in {home.log_dir} ({exc.strerror})"
    else:
        unwritable = None
        fileh.setLevel(logging.DEBUG if verbose else logging.INFO)
        fileh.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        fileh.addFilter(redact)
        root.addHandler(fileh)
    if console and sys.stderr is not None:
        con = _ConsoleHandler(before_console)
        con.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
        con.setFormatter(logging.Formatter("datauploader: %(levelname)s: %(message)s"))
        con.addFilter(redact)
        root.addHandler(con)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if unwritable:
        logging.getLogger(__name__).info("%s; logging to the console only", unwritable)
