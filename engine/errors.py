"""Exception types that carry the process exit code the CLI should use.

A scientist reads these messages in a terminal or a tray notification, so each one is a single line that
says what is wrong and what to do about it.
"""

from __future__ import annotations


class DataUploaderError(Exception):
    """Base class; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(DataUploaderError):
    """Bad arguments, bad configuration or unusable storage: nothing was transferred."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file or a profile in it is invalid."""


class StorageError(UsageError):
    """The storage of a profile cannot be used (unknown remote, not writable, ...)."""


class BusyError(UsageError):
    """Another DataUploader process is already working on the same dataset."""


class StorageUnreachable(DataUploaderError):
    """The storage did not answer (network, server down, rclone restarting): worth waiting for, not a usage error.
    Exit code 1: nothing is wrong with the command, run it again when the storage is back."""
