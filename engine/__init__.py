"""DataUploader's headless engine.

Both front ends (the ``datauploader`` CLI and the tray applet) use only what this package exports: one
:class:`Engine` per process that starts, stops and pauses datasets and emits typed events, plus the data types it
speaks in. Nothing here imports a GUI toolkit, so the engine runs unattended on a server or under a service manager.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from engine.version import __version__

# A library's manners: until the front end sets up logging (which the CLI does only after rclone may have started
# and spoken), engine records go nowhere rather than to Python's last-resort stderr handler.
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from engine.autostart import AutostartStatus
    from engine.autostart import disable as autostart_off
    from engine.autostart import enable as autostart_on
    from engine.autostart import status as autostart_status
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
    from engine.home import HOME_ENV, Home, resolve_home
    from engine.locks import HeldLock, try_lock
    from engine.logs import FILE_ONLY as LOG_FILE_ONLY
    from engine.logs import setup_logging
    from engine.model import DatasetState, EngineSnapshot, FailedFile, FileState, Mode, Phase, RunReport
    from engine.rclone.launch import start_early as start_rclone_early
    from engine.rclone.launch import stop_unadopted as stop_rclone_early
    from engine.service import InstallResult, ServiceSpec, task_scheduler_command
    from engine.service import install as service_install
    from engine.service import installed as services_installed
    from engine.service import uninstall as service_uninstall
    from engine.service import unit_text as service_unit
    from engine.settings_file import ProfileSettings, SettingsError, read_settings, save_settings
    from engine.spec import DatasetSpec
    from engine.status import STATUS_VERSION
    from engine.status import to_json as status_json

# Imported on first use (PEP 562), so `datauploader --version` or a status look does not pay for watchdog, the
# SciCat client or the settings writer: a run's fixed cost is part of what the benchmarks measure.
_LAZY: dict[str, tuple[str, str]] = {
    # Start at login and service mode (the CLI's `autostart` / `service`, the tray's Settings).
    "AutostartStatus": ("engine.autostart", "AutostartStatus"),
    "autostart_on": ("engine.autostart", "enable"),
    "autostart_off": ("engine.autostart", "disable"),
    "autostart_status": ("engine.autostart", "status"),
    "HOME_ENV": ("engine.home", "HOME_ENV"),
    "InstallResult": ("engine.service", "InstallResult"),
    "ServiceSpec": ("engine.service", "ServiceSpec"),
    "service_install": ("engine.service", "install"),
    "service_uninstall": ("engine.service", "uninstall"),
    "service_unit": ("engine.service", "unit_text"),
    "services_installed": ("engine.service", "installed"),
    "task_scheduler_command": ("engine.service", "task_scheduler_command"),
    "try_lock": ("engine.locks", "try_lock"),
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
    "HeldLock": ("engine.locks", "HeldLock"),
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
    "start_rclone_early": ("engine.rclone.launch", "start_early"),
    "stop_rclone_early": ("engine.rclone.launch", "stop_unadopted"),
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
    "HOME_ENV",
    "LOG_FILE_ONLY",
    "STATUS_VERSION",
    "Action",
    "AutostartStatus",
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
    "HeldLock",
    "Home",
    "InstallResult",
    "Investigation",
    "LoginExpired",
    "LoginExpiring",
    "Mode",
    "Phase",
    "ProfileInfo",
    "ProfileSettings",
    "ProgressUpdate",
    "RunReport",
    "ServiceSpec",
    "Session",
    "SettingsError",
    "StorageReachable",
    "StorageUnreachable",
    "StorageUnreachableError",
    "UsageError",
    "__version__",
    "autostart_off",
    "autostart_on",
    "autostart_status",
    "parse_duration",
    "parse_meta",
    "parse_meta_value",
    "read_settings",
    "resolve_home",
    "save_settings",
    "service_install",
    "service_uninstall",
    "service_unit",
    "services_installed",
    "setup_logging",
    "start_rclone_early",
    "status_json",
    "stop_rclone_early",
    "task_scheduler_command",
    "try_lock",
]
