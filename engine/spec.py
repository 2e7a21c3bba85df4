"""What a front end asks the engine to upload, and its validation — in one place.

The CLI's options and the tray's dataset dialog both become a :class:`DatasetSpec`; :func:`resolve_spec` checks it
against the configuration and the file system before anything starts, and every error names the field at fault
(``DataUploaderError.field``) so the dialog shows exactly the line the CLI would print, under the right entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bwlimit import valid as bwlimit_valid
from engine.config import Config, Profile, normalize_storage, parse_duration
from engine.datasets import DatasetRequest
from engine.errors import DataUploaderError, UsageError
from engine.model import Mode
from engine.names import validate_name
from engine.rules import FileRules, rules_from_options
from engine.sources import SourceRoot, resolve_roots


@dataclass
class DatasetSpec:
    """What the dataset dialog (or the CLI's options) asks for."""

    paths: tuple[str, ...]
    name: str
    investigation: str | None = None
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # typed values: see engine.datasets.parse_meta
    pi: str | None = None  # principal investigator's e-mail; None: the investigation's
    investigation_title: str | None = None  # used only when the investigation has to be created
    profile: str | None = None  # None: "default"
    mode: Mode = "sync"
    settle: float | str | None = None  # seconds or a duration ("2s"); None: the profile's
    bwlimit: str | None = None  # None: the profile's
    transfers: int | None = None  # parallel transfers per batch; None: the profile's
    storage: str | None = None  # a folder or rclone path instead of the profile's storage


@dataclass
class ResolvedSpec:
    """A spec checked against the config and the disk: everything a run needs to start."""

    spec: DatasetSpec
    profile: Profile
    request: DatasetRequest
    roots: tuple[SourceRoot, ...]
    rules: FileRules
    settle: float
    bwlimit: str | None
    transfers: int | None

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two runs the same dataset."""
        return (self.profile.name, self.request.investigation or "", self.request.name)


def _with_field(exc: DataUploaderError, name: str) -> DataUploaderError:
    if exc.field is None:
        exc.field = name
    return exc


def _clean(value: str | None) -> str | None:
    """Empty dialog entries mean "not given"."""
    return value if value and value.strip() else None


def resolve_spec(spec: DatasetSpec, config: Config) -> ResolvedSpec:
    """Check ``spec``; raise a :class:`DataUploaderError` whose ``field`` names what is wrong."""
    try:
        profile = config.profile(spec.profile)
    except DataUploaderError as exc:
        raise _with_field(exc, "profile") from None
    if _clean(spec.storage):
        assert spec.storage is not None
        profile = dataclasses.replace(profile, storage=normalize_storage(spec.storage, Path.cwd()))
    for name, value in (("name", spec.name), ("investigation", _clean(spec.investigation))):
        if value is None:
            continue
        try:
            validate_name(value, "dataset" if name == "name" else name)
        except UsageError as exc:
            raise _with_field(exc, name) from None
    request = DatasetRequest(
        name=spec.name,
        investigation=_clean(spec.investigation),
        description=_clean(spec.description),
        investigation_description=_clean(spec.investigation_description),
        meta=dict(spec.meta),
        pi=_clean(spec.pi),
        investigation_title=_clean(spec.investigation_title),
    )
    try:
        request.validated()
    except UsageError as exc:
        raise _with_field(exc, "meta") from None
    paths: Sequence[str] = [p for p in spec.paths if p and p.strip()]
    if not paths:
        raise UsageError("give a folder or file to upload", field="paths")
    try:
        roots = resolve_roots(paths)
    except UsageError as exc:
        raise _with_field(exc, "paths") from None
    settle = profile.settle
    if spec.settle is not None:
        try:
            settle = parse_duration(spec.settle, "settle time")
        except UsageError as exc:
            raise _with_field(exc, "settle") from None
    bwlimit = _clean(spec.bwlimit) or profile.bwlimit
    if bwlimit is not None and not bwlimit_valid(bwlimit):
        raise UsageError(
            f"bandwidth limit {bwlimit!r} is not valid rclone syntax (e.g. 10M, '08:00,5M 20:00,off')",
            field="bwlimit",
        )
    if spec.transfers is not None and not 1 <= spec.transfers <= 256:
        raise UsageError(f"transfers {spec.transfers} is not a number from 1 to 256", field="transfers")
    rules = rules_from_options(profile.options, f"profile '{profile.name}'")
    return ResolvedSpec(
        spec=spec,
        profile=profile,
        request=request,
        roots=tuple(roots),
        rules=rules,
        settle=settle,
        bwlimit=bwlimit.strip() if bwlimit else None,
        transfers=spec.transfers or profile.transfers,
    )
