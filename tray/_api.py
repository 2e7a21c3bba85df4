"""The one place the tray imports the engine's public API (issue 11) from.

Until the real ``Engine`` is exported by ``engine``, the names come from the lead's draft, kept in
``tests/engine_api_draft.py`` (the tests' fake engine implements it). When ``engine`` exports them this module
switches by itself; then delete the fallback and the draft.
"""

from __future__ import annotations

try:
    from engine import (  # type: ignore[attr-defined]
        Action,
        CatalogueReachable,
        CatalogueUnreachable,
        Credentials,
        DatasetFinished,
        DatasetHandle,
        DatasetSealed,
        DatasetSpec,
        DatasetStarted,
        DatasetState,
        DataUploaderError,
        Engine,
        EnginePaused,
        EngineResumed,
        EngineSnapshot,
        Event,
        FailedFile,
        FileFailed,
        FileVerified,
        Investigation,
        LoginExpired,
        LoginExpiring,
        Phase,
        ProfileInfo,
        ProgressUpdate,
        RunReport,
        Session,
        StorageReachable,
        StorageUnreachable,
    )

    DRAFT = False
except ImportError:  # the real Engine is not on this branch yet
    from tests.engine_api_draft import (  # type: ignore[assignment]
        Action,
        CatalogueReachable,
        CatalogueUnreachable,
        Credentials,
        DatasetFinished,
        DatasetHandle,
        DatasetSealed,
        DatasetSpec,
        DatasetStarted,
        DatasetState,
        DataUploaderError,
        Engine,
        EnginePaused,
        EngineResumed,
        EngineSnapshot,
        Event,
        FailedFile,
        FileFailed,
        FileVerified,
        Investigation,
        LoginExpired,
        LoginExpiring,
        Phase,
        ProfileInfo,
        ProgressUpdate,
        RunReport,
        Session,
        StorageReachable,
        StorageUnreachable,
    )

    DRAFT = True

__all__ = [
    "DRAFT",
    "Action",
    "CatalogueReachable",
    "CatalogueUnreachable",
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
    "Investigation",
    "LoginExpired",
    "LoginExpiring",
    "Phase",
    "ProfileInfo",
    "ProgressUpdate",
    "RunReport",
    "Session",
    "StorageReachable",
    "StorageUnreachable",
]
