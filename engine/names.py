"""Validation of the names that become folders on the facility storage.

Dataset and investigation names are path components on storage that other people browse and that the catalogue
records, so anything that could escape the dataset folder or render badly (separators, ``..``, control
characters) is refused before a byte moves.
"""

from __future__ import annotations

import unicodedata

from engine.errors import UsageError

RESERVED_FILES = frozenset({"ro-crate-metadata.json"})
"""Names at a dataset's root that DataUploader writes itself; a source file may not take them."""

_MAX_NAME = 200


def validate_name(value: str, what: str) -> str:
    """Return ``value`` if it is usable as one path component, else raise :class:`UsageError`."""
    option = f"--{what}"
    if not value or not value.strip():
        raise UsageError(f"{what} name is empty; give a name with {option} NAME")
    if value != value.strip():
        raise UsageError(f"{what} name {value!r} starts or ends with a space; remove it")
    if value in (".", ".."):
        raise UsageError(f"{what} name {value!r} is not allowed; choose a real name")
    if "/" in value or "\\" in value:
        raise UsageError(f"{what} name {value!r} contains '/' or '\\'; use '-' or '_' instead")
    if ".." in value:
        raise UsageError(f"{what} name {value!r} contains '..'; choose a name without it")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise UsageError(f"{what} name {value!r} contains a control character; remove it")
    if ":" in value:
        # rclone and Windows both read "x:" as a remote or drive.
        raise UsageError(f"{what} name {value!r} contains ':'; use '-' or '_' instead")
    if len(value) > _MAX_NAME:
        raise UsageError(f"{what} name is longer than {_MAX_NAME} characters; shorten it")
    return value
