"""What a front end asks the engine to upload, and its validation — in one place.

The CLI's options and the tray's dataset dialog both become a :class:`DatasetSpec`; :func:`resolve_spec` checks it
against the configuration and the file system before anything starts, and every error names the field at fault
(``DataUploaderError.field``) so the dialog shows exactly the line the CLI would print, under the right entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.config import Config, Profile, parse_duration
from engine.datasets import DatasetRequest
from engine.errors import DataUploaderError, UsageError
from engine.model import Mode
from engine.names import validate_name
from engine.rules import FileRules, rules_from_options
from engine.sources import SourceRoot, resolve_roots

# rclone's --bwlimit: "off", "10M", "10M:1M" (upload:download), or a timetable "08:00,10M 20:00,off",
# "Mon-08:00,512k Sat-00:00,off"; rclone itself has the last word when the run applies it.
_RATE = r"(?:off|\d+(?:\.\d+)?[bBkKMGTP]?i?(?::\d+(?:\.\d+)?[bBkKMGTP]?i?)?)"
_BWLIMIT = re.compile(rf"^{_RATE}$|^(?:(?:[A-Za-z]{{3}}-)?\d{{1,2}}:\d\d,{_RATE}\s*)+$")


@dataclass(frozen=True)
class DatasetSpec:
    """What the dataset dialog (or the CLI's options) asks for."""

    paths: tuple[str, ...]
    name: str
    investigation: str | None = None
    description: str | None = None
    investigation_description: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None  # None: "default"
    mode: Mode = "sync"
    settle: float | str | None = None  # seconds or a duration ("2s"); None: the profile's
    bwlimit: str | None = None  # None: the profile's
    transfers: int | None = None  # parallel transfers per batch; None: the profile's


@dataclass(frozen=True)
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
    if bwlimit is not None and not _BWLIMIT.match(bwlimit.strip()):
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
