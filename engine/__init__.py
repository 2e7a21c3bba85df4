"""DataUploader's headless engine.

Both front ends (the ``datauploader`` CLI and the tray applet) use only what this package exports: one
:class:`Engine` per process that starts, stops and pauses datasets and emits typed events, plus the data types it
speaks in. Nothing here imports a GUI toolkit, so the engine runs unattended on a server or under a service manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.version import __version__

if TYPE_CHECKING:
    from engine.catalogue import Credentials, Investigation, Session
    from engine.config import parse_duration
    from engine.core import DatasetHandle, Engine, ProfileInfo
    from engine.datasets import parse_meta, parse_meta_value
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

# Imported on first use (PEP 562), so `datauploader --version` or a status look does not pay for watchdog, the
# SciCat client or the settings writer: a run's fixed cost is part of what the benchmarks measure.
_LAZY: dict[str, tuple[str, str]] = {
    "Action": ("engine.errors", "Action"),
    "BusyError": ("engine.errors", "BusyError"),
    "Cancelled": ("engine.errors", "Cancelled"),
    "CatalogueReachable": ("engine.events", "CatalogueReachable"),
    "CatalogueUnreachable": ("engine.events", "CatalogueUnreachable"),
    "ConfigError": ("engine.errors", "ConfigError"),
    "Credentials": ("engine.catalogue", "Credentials"),
    "DataUploaderError": ("engine.errors", "DataUploaderError"),
    "DatasetFinished": ("engine.events", "DatasetFinished"),
    "DatasetHandle": ("engine.core", "DatasetHandle"),
    "DatasetSealed": ("engine.events", "DatasetSealed"),
    "DatasetSpec": ("engine.spec", "DatasetSpec"),
    "DatasetStarted": ("engine.events", "DatasetStarted"),
    "DatasetState": ("engine.model", "DatasetState"),
    "Engine": ("engine.core", "Engine"),
    "EnginePaused": ("engine.events", "EnginePaused"),
    "EngineResumed": ("engine.events", "EngineResumed"),
    "EngineSnapshot": ("engine.model", "EngineSnapshot"),
    "Event": ("engine.events", "Event"),
    "FailedFile": ("engine.model", "FailedFile"),
    "FileFailed": ("engine.events", "FileFailed"),
    "FileState": ("engine.model", "FileState"),
    "FileVerified": ("engine.events", "FileVerified"),
    "Home": ("engine.home", "Home"),
    "Investigation": ("engine.catalogue", "Investigation"),
    "LOG_FILE_ONLY": ("engine.logs", "FILE_ONLY"),
    "LoginExpired": ("engine.events", "LoginExpired"),
    "LoginExpiring": ("engine.events", "LoginExpiring"),
    "Mode": ("engine.model", "Mode"),
    "Phase": ("engine.model", "Phase"),
    "ProfileInfo": ("engine.core", "ProfileInfo"),
    "ProfileSettings": ("engine.settings_file", "ProfileSettings"),
    "ProgressUpdate": ("engine.events", "ProgressUpdate"),
    "RunReport": ("engine.model", "RunReport"),
    "STATUS_VERSION": ("engine.status", "STATUS_VERSION"),
    "Session": ("engine.catalogue", "Session"),
    "SettingsError": ("engine.settings_file", "SettingsError"),
    "StorageReachable": ("engine.events", "StorageReachable"),
    "StorageUnreachable": ("engine.events", "StorageUnreachable"),
    "StorageUnreachableError": ("engine.errors", "StorageUnreachableError"),
    "UsageError": ("engine.errors", "UsageError"),
    "__version__": ("engine.version", "__version__"),
    "parse_duration": ("engine.config", "parse_duration"),
    "parse_meta": ("engine.datasets", "parse_meta"),
    "parse_meta_value": ("engine.datasets", "parse_meta_value"),
    "read_settings": ("engine.settings_file", "read_settings"),
    "resolve_home": ("engine.home", "resolve_home"),
    "save_settings": ("engine.settings_file", "save_settings"),
    "setup_logging": ("engine.logs", "setup_logging"),
    "status_json": ("engine.status", "to_json"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'engine' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


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
    "parse_meta_value",
    "read_settings",
    "resolve_home",
    "save_settings",
    "setup_logging",
    "status_json",
]
