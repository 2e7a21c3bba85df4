"""Driving the real rclone binary: one long-lived ``rclone rcd`` per engine, spoken to over its HTTP API."""

from engine.rclone.binary import find_rclone
from engine.rclone.daemon import RcloneDaemon, RcloneError, RcloneStartError

__all__ = ["RcloneDaemon", "RcloneError", "RcloneStartError", "find_rclone"]
