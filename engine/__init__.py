"""DataUploader's headless engine.

Both front ends (the ``datauploader`` CLI and the tray applet) use only what this package exports: one
:class:`Engine` per process that starts, stops and pauses datasets and emits typed events, plus the data types it
speaks in. Nothing here imports a GUI toolkit, so the engine runs unattended on a server or under a service manager.
"""

__version__ = "0.2.0"

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
from engine.logs import setup_logging
from engine.model import DatasetState, EngineSnapshot, FailedFile, Mode, Phase, RunReport
from engine.spec import DatasetSpec
from engine.status import STATUS_VERSION
from engine.status import to_json as status_json

__all__ = [
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
    "FileVerified",
    "Home",
    "Investigation",
    "LoginExpired",
    "LoginExpiring",
    "Mode",
    "Phase",
    "ProfileInfo",
    "ProgressUpdate",
    "RunReport",
    "Session",
    "StorageReachable",
    "StorageUnreachable",
    "StorageUnreachableError",
    "UsageError",
    "__version__",
    "parse_duration",
    "parse_meta",
    "resolve_home",
    "setup_logging",
    "status_json",
]
