"""Catalogue adapters behind one interface (:mod:`engine.catalogue.base`)."""

from __future__ import annotations

from engine.catalogue.base import (
    AuthError,
    Catalogue,
    CatalogueError,
    Conflict,
    Credentials,
    DatasetChanges,
    DatasetSpec,
    FileEntry,
    InvalidMetadata,
    Investigation,
    MetaValue,
    NotACatalogue,
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
    if profile.catalogue == "scicat" and profile.scicat is not None:
        from engine.catalogue.scicat import SciCatCatalogue
        from engine.credentials import TokenStore

        return SciCatCatalogue(profile.scicat, TokenStore(home.data_dir), profile.name)
    raise ConfigError(f"catalogue '{profile.catalogue}' of profile '{profile.name}' is not available yet")


def require_session(catalogue: Catalogue, profile: str) -> Session | None:
    """Refuse to start an upload for a catalogue that needs a login when there is no valid session (exit 2):
    better now than after hours of transfer with nothing registered."""
    if not catalogue.needs_login:
        return None
    session = catalogue.session()
    if session is None:
        raise AuthError(
            f"not logged in to the {catalogue.name} catalogue of profile '{profile}' (or the login expired)"
        )
    return session


__all__ = [
    "AuthError",
    "Catalogue",
    "CatalogueError",
    "Conflict",
    "Credentials",
    "DatasetChanges",
    "DatasetSpec",
    "FileEntry",
    "InvalidMetadata",
    "Investigation",
    "MetaValue",
    "NotACatalogue",
    "NotPermitted",
    "Session",
    "TransientError",
    "open_catalogue",
    "require_session",
]
