"""Editing ``config.toml`` from a front end (the tray's Settings…, later the CLI) without losing the user's file.

Facility IT and scientists write comments in the config ("# beamline disk, ask Anna before changing"); a
settings dialog that rewrote the file from scratch would silently drop them. tomlkit round-trips the document,
so only the values that changed are touched and comments, order and formatting stay. Every value is checked
before anything is written, and the whole new file is then parsed exactly as the engine will read it, so a
saved config always loads; the write is atomic (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from engine.bwlimit import valid as bwlimit_valid
from engine.config import CATALOGUES, DEFAULT_PROFILE, load_config, parse_duration, parse_profile
from engine.errors import ConfigError
from engine.home import Home

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SettingsError(ConfigError):
    """A value the settings dialog must not save; ``field`` names the dialog field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)


@dataclass
class ProfileSettings:
    """The settings a front end edits for one profile (everything else in the file is left as it is)."""

    profile: str = DEFAULT_PROFILE
    storage: str = ""
    catalogue: str = "local"
    scicat_url: str | None = None
    bwlimit: str | None = None
    settle: str | None = None  # "2", "2s", "500ms"
    exclude: tuple[str, ...] = ()


def read_settings(home: Home, profile: str | None = None) -> ProfileSettings:
    """The profile as the dialog shows it; the embedded default when the file or the profile is missing."""
    name = profile or DEFAULT_PROFILE
    doc = _load_document(home.config_file)
    raw = doc.get("profiles", {}).get(name) if doc is not None else None
    if raw is None:
        storage = str(home.default_storage) if name == DEFAULT_PROFILE else ""
        return ProfileSettings(profile=name, storage=storage)
    scicat = raw.get("scicat") or {}
    settle = raw.get("settle")
    return ProfileSettings(
        profile=name,
        storage=str(raw.get("storage", "")),
        catalogue=str(raw.get("catalogue", "local")),
        scicat_url=str(scicat["url"]) if "url" in scicat else None,
        bwlimit=str(raw["bwlimit"]) if "bwlimit" in raw else None,
        settle=None if settle is None else str(settle),
        exclude=tuple(str(x) for x in raw.get("exclude", ())),
    )


def profile_names(home: Home) -> list[str]:
    doc = _load_document(home.config_file)
    names = list(doc.get("profiles", {})) if doc is not None else []
    return names if DEFAULT_PROFILE in names else [DEFAULT_PROFILE, *names]


def validate_settings(s: ProfileSettings) -> None:
    """Raise :class:`SettingsError` naming the field of the first bad value."""
    if not _PROFILE_NAME.match(s.profile):
        raise SettingsError(
            f"profile name {s.profile!r}: use letters, digits, '-', '_' or '.' (no spaces)", "profile"
        )
    if not s.storage.strip():
        raise SettingsError(
            "storage is empty: give a folder or an rclone remote path (remote:bucket/path)", "storage"
        )
    if s.catalogue not in CATALOGUES:
        raise SettingsError(f"catalogue {s.catalogue!r}: use one of {', '.join(CATALOGUES)}", "catalogue")
    if s.catalogue == "scicat":
        url = (s.scicat_url or "").strip()
        if not re.match(r"^https?://[^/\s]+", url):
            raise SettingsError(
                "the SciCat URL must start with https:// (e.g. https://scicat.example.org/api/v3)",
                "scicat_url",
            )
    if s.bwlimit and not bwlimit_valid(s.bwlimit):
        raise SettingsError(
            f"bandwidth limit {s.bwlimit!r} is not rclone's syntax; write e.g. 10M, off, or a timetable "
            'like "08:00,10M 20:00,off"',
            "bwlimit",
        )
    if s.settle:
        try:
            if parse_duration(s.settle, "settle time") <= 0:
                raise SettingsError("settle time must be more than 0", "settle")
        except ConfigError as exc:
            if isinstance(exc, SettingsError):
                raise
            raise SettingsError(f"{exc}".replace("settle time = ", "settle time "), "settle") from None
    for pattern in s.exclude:
        if not pattern.strip() or "\n" in pattern:
            raise SettingsError(
                "exclude patterns: one gitignore-style pattern per line, none empty", "exclude"
            )


def save_settings(home: Home, s: ProfileSettings) -> Path:
    """Validate, merge into the existing document (comments and order kept) and write atomically."""
    validate_settings(s)
    path = home.config_file
    doc = _load_document(path) or tomlkit.document()
    profiles = doc.get("profiles")
    if profiles is None:
        profiles = tomlkit.table(is_super_table=True)
        doc["profiles"] = profiles
    table = profiles.get(s.profile)
    if table is None:
        table = tomlkit.table()
        profiles[s.profile] = table
    _set(table, "storage", s.storage.strip())
    _set(table, "catalogue", s.catalogue)
    _set(table, "bwlimit", (s.bwlimit or "").strip() or None)
    _set(table, "settle", _settle_value(s.settle))
    _set(table, "exclude", list(s.exclude) or None)
    if s.catalogue == "scicat":
        scicat = table.get("scicat")
        if scicat is None:
            scicat = tomlkit.table()
            table["scicat"] = scicat
        scicat["url"] = (s.scicat_url or "").strip()
    text = tomlkit.dumps(doc)
    _check_loads(text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    load_config(home)  # the saved file loads exactly as the engine will load it
    return path


def _settle_value(settle: str | None) -> Any:
    if not settle or not settle.strip():
        return None
    text = settle.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def _set(table: Table | Any, key: str, value: Any) -> None:
    if value is None:
        if key in table:
            del table[key]
    elif table.get(key) != value:
        table[key] = value


def _load_document(path: Path) -> tomlkit.TOMLDocument | None:
    if not path.exists():
        return None
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _check_loads(text: str, path: Path) -> None:
    """Parse the new document as :func:`engine.config.load_config` would, before it replaces the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - tomlkit wrote it
        raise SettingsError(f"{path}: would not be valid TOML: {exc}") from None
    for name, raw in data.get("profiles", {}).items():
        try:
            parse_profile(name, raw, path, path.parent)
        except ConfigError as exc:
            field = None
            msg = str(exc)
            for key, fld in (
                ("scicat", "scicat_url"),
                ("storage", "storage"),
                ("bwlimit", "bwlimit"),
                ("settle", "settle"),
                ("exclude", "exclude"),
                ("catalogue", "catalogue"),
            ):
                if f".{key}" in msg or f"'{key}" in msg:
                    field = fld
                    break
            raise SettingsError(msg, field) from None
