"""Catalogue adapters behind one interface (:mod:`engine.catalogue.base`)."""

from __future__ import annotations

from engine.catalogue.base import (
    AuthError,
    Catalogue,
    CatalogueError,
    Conflict,
    DatasetSpec,
    FileEntry,
    InvalidMetadata,
    Investigation,
    NotPermitted,
    Session,
    TransientError,
)
from engine.config import Profile
from engine.errors import ConfigError
from engine.home import Home


def open_catalogue(profile: Profile, home: Home) -> Catalogue:
    """The adapter a profile names."""
    if profile.catalogue == "local":
        from engine.catalogue.local import LocalCatalogue

        return LocalCatalogue(home.catalogue_file)
    raise ConfigError(f"catalogue '{profile.catalogue}' of profile '{profile.name}' is not available yet")


__all__ = [
    "AuthError",
    "Catalogue",
    "CatalogueError",
    "Conflict",
    "DatasetSpec",
    "FileEntry",
    "InvalidMetadata",
    "Investigation",
    "NotPermitted",
    "Session",
    "TransientError",
    "open_catalogue",
]
