"""DataUploader's headless engine.

Both front ends (the ``datauploader`` CLI and the tray applet) use only what this package exports: one
:class:`Engine` per process that starts, stops and pauses datasets and emits typed events, plus the data types it
speaks in. Nothing here imports a GUI toolkit, so the engine runs unattended on a server or under a service manager.
"""

from engine.catalogue import Credentials, Investigation, Session
from engine.config import parse_duration
from engine.core import DatasetHandle, Engine, ProfileInfo
from engine.datasets import parse_meta
from engine.errors import (
    Action,
    BusyError,
    Cancelled,
    ConfigError,
    DataUploaderError,
    StorageUnreachableError,
    UsageError,
)
from engine.events import (
    CatalogueReachable,
    CatalogueUnreachable,
    DatasetFinished,
    DatasetSealed,
    DatasetStarted,
    EnginePaused,
    EngineResumed,
    Event,
    FileFailed,
    FileVerified,
    LoginExpired,
    LoginExpiring,
    ProgressUpdate,
    StorageReachable,
    StorageUnreachable,
)
from engine.home import Home, resolve_home
from engine.logs import FILE_ONLY as LOG_FILE_ONLY
from engine.logs import setup_logging
from engine.model import DatasetState, EngineSnapshot, FailedFile, FileState, Mode, Phase, RunReport
from engine.settings_file import ProfileSettings, SettingsError, read_settings, save_settings
from engine.spec import DatasetSpec
from engine.status import STATUS_VERSION
from engine.status import to_json as status_json
from engine.version import __version__

__all__ = [
    "LOG_FILE_ONLY",
    "STATUS_VERSION",
    "Action",
    "BusyError",
    "Cancelled",
    "CatalogueReachable",
    "CatalogueUnreachable",
    "ConfigError",
    "Credentials",
    "DataUploaderError",
    "DatasetFinished",
    "DatasetHandle",
    "DatasetSealed",
    "DatasetSpec",
    "DatasetStarted",
    "DatasetState",
    "Engine",
    "EnginePaused",
    "EngineResumed",
    "EngineSnapshot",
    "Event",
    "FailedFile",
    "FileFailed",
    "FileState",
    "FileVerified",
    "Home",
    "Investigation",
    "LoginExpired",
    "LoginExpiring",
    "Mode",
    "Phase",
    "ProfileInfo",
    "ProfileSettings",
    "ProgressUpdate",
    "RunReport",
    "Session",
    "SettingsError",
    "StorageReachable",
    "StorageUnreachable",
    "StorageUnreachableError",
    "UsageError",
    "__version__",
    "parse_duration",
    "parse_meta",
    "read_settings",
    "resolve_home",
    "save_settings",
    "setup_logging",
    "status_json",
]
