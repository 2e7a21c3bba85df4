"""Exception types that carry the process exit code the CLI should use, and what the person should do.

A scientist reads these messages in a terminal or a tray notification, so each one is a single line that says what
is wrong. What to *do* about it is an :class:`Action` rather than words, because each front end says it its own way:
the CLI prints the command to run (``datauploader login --profile beamline``), the tray points at its menu
("Log in…"). ``field`` names the part of a dataset's description at fault, so a dialog can show the message under it.
"""

from __future__ import annotations

from enum import Enum


class Action(str, Enum):
    """What a person should do about an error or event."""

    NONE = "none"
    LOG_IN = "log in"
    PICK_INVESTIGATION = "pick an investigation"
    RUN_AGAIN = "run again"
    MOVE_FOREIGN_FILE = "move the other file away"
    FIX_SETTINGS = "fix the settings"
    FREE_SPACE = "free space on the storage"
    REPAIR = "repair the journal"


class DataUploaderError(Exception):
    """Base class; ``exit_code`` is what the CLI returns, ``action`` what to do, ``field`` the input at fault."""

    exit_code = 1
    action = Action.NONE

    def __init__(self, message: str, *, field: str | None = None, action: Action | None = None) -> None:
        super().__init__(message)
        self.field = field
        if action is not None:
            self.action = action


class UsageError(DataUploaderError):
    """Bad arguments, bad configuration or unusable storage: nothing was transferred."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file or a profile in it is invalid."""

    action = Action.FIX_SETTINGS


class StorageError(UsageError):
    """The storage of a profile cannot be used (unknown remote, not writable, ...)."""

    action = Action.FIX_SETTINGS


class BusyError(UsageError):
    """Another DataUploader process (or run) is already working on the same dataset."""


class StorageUnreachableError(DataUploaderError):
    """The storage did not answer (network, server down, rclone restarting): worth waiting for, not a usage error.
    Exit code 1: nothing is wrong with the command, run it again when the storage is back."""

    action = Action.RUN_AGAIN


class Cancelled(DataUploaderError):
    """The run was stopped on request before it finished (Ctrl-C, Quit now, ``stop_sync(finish=False)``); the
    journal is consistent and the next run resumes."""

    exit_code = 130
    action = Action.RUN_AGAIN
