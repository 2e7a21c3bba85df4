"""Driving the real rclone binary: one long-lived ``rclone rcd`` per engine, spoken to over its HTTP API.

The names below are imported on first use (PEP 562): a command line starts rclone (:mod:`engine.rclone.launch`)
before it imports the HTTP client that :mod:`engine.rclone.daemon` brings.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.rclone.binary import find_rclone
    from engine.rclone.daemon import RcloneDaemon, RcloneError, RcloneStartError

_HOME = {
    "find_rclone": "engine.rclone.binary",
    "RcloneDaemon": "engine.rclone.daemon",
    "RcloneError": "engine.rclone.daemon",
    "RcloneStartError": "engine.rclone.daemon",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOME[name]), name)
    globals()[name] = value
    return value


__all__ = ["RcloneDaemon", "RcloneError", "RcloneStartError", "find_rclone"]
