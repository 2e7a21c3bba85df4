"""Which files of a dataset to upload, and when an instrument says a file is finished.

Exclude/include patterns are gitignore-style (``pathspec``), relative to the dataset root, so an instrument's
temporary and lock files never reach the storage. Ready-marker rules serve instruments that announce completion
with a second file: ``{files = "scan_*.raw", marker = "scan_*.done"}`` uploads ``scan_001.raw`` only once
``scan_001.done`` exists next to it (each ``*`` of the marker takes what the ``*`` of ``files`` matched).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.errors import ConfigError

DEFAULT_EXCLUDES: tuple[str, ...] = ("*.tmp", "*.part", "~$*", ".~lock*", "Thumbs.db", ".DS_Store")

# A gitignore pattern that is only a name with * and ? (no slash, negation, class, escape, comment or space).
_NAME_ONLY = re.compile(r"[^/!#\\\[\]\s][^/\\\[\]\s]*")


def matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """``match_file`` of the gitignore-style ``patterns``: whether a ``/``-separated relative path is matched.

    Patterns that are names only (``*.tmp``, ``Thumbs.db``, the defaults) match a path when any of its parts
    matches, which one regular expression says for all of them at once; anything richer goes to ``pathspec``.
    The scan asks this for every file of every dataset, and the defaults alone cost pathspec ~5 µs a file and
    ~15 ms to import; ``tests/test_rules.py`` holds the two to the same answers."""
    if all(_NAME_ONLY.fullmatch(p) and "**" not in p for p in patterns):
        if not patterns:
            return lambda rel: False
        names = "|".join(re.escape(p).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") for p in patterns)
        search = re.compile(rf"(?:^|/)(?:{names})(?:/|\Z)").search
        return lambda rel: search(rel) is not None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns).match_file


@dataclass
class MarkerRule:
    """An instrument's ready marker: a file matching ``files`` is complete once its ``marker`` exists."""

    files: str
    marker: str

    def regex(self) -> re.Pattern[str]:
        parts = [re.escape(p) for p in self.files.split("*")]
        return re.compile("([^/]*)".join(parts) + r"\Z")


@dataclass
class FileRules:
    """Which files of a dataset are uploaded (include/exclude patterns), and when (ready markers)."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    markers: Sequence[MarkerRule] = ()
    default_excludes: bool = True
    _include: Callable[[str], bool] | None = field(init=False, default=None)
    _exclude: Callable[[str], bool] = field(init=False)
    _markers: list[tuple[re.Pattern[str], MarkerRule]] = field(init=False)

    def __post_init__(self) -> None:
        patterns = [*(DEFAULT_EXCLUDES if self.default_excludes else ()), *self.exclude]
        self._exclude = matcher(patterns)
        self._include = matcher(self.include) if self.include else None
        self._markers = [(m.regex(), m) for m in self.markers]

    def wanted(self, rel: str) -> bool:
        """Upload this path (include/exclude rules)? Markers are data too and are uploaded like any file."""
        if self._exclude(rel):
            return False
        return self._include is None or self._include(rel)

    def marker_for(self, rel: str) -> str | None:
        """The dataset-relative path of the marker that must exist before ``rel`` counts as complete."""
        folder, name = posixpath.split(rel)
        for regex, rule in self._markers:
            m = regex.match(name)
            if m:
                marker = rule.marker
                for group in m.groups():
                    marker = marker.replace("*", group, 1)
                return posixpath.join(folder, marker) if folder else marker
        return None


def rules_from_options(options: dict[str, object], where: str) -> FileRules:
    """Build the rules from a profile's ``include``, ``exclude``, ``exclude_defaults`` and ``ready_markers``."""

    def str_list(key: str) -> list[str]:
        value = options.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{where}: \'{key}\' must be a list of patterns, e.g. ["*.log", "scratch/"]')
        return list(value)

    markers = []
    raw = options.get("ready_markers", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'ready_markers' must be a list of tables {{files = ..., marker = ...}}")
    for entry in raw:
        if (
            not isinstance(entry, dict)
            or set(entry) != {"files", "marker"}
            or not all(isinstance(v, str) and v for v in entry.values())
        ):
            raise ConfigError(
                f"{where}: each 'ready_markers' entry needs exactly files and marker, "
                'e.g. {files = "scan_*.raw", marker = "scan_*.done"}'
            )
        if entry["marker"].count("*") > entry["files"].count("*") or "/" in entry["files"]:
            raise ConfigError(
                f"{where}: ready marker {entry['marker']!r} must use at most the '*'s of {entry['files']!r}"
            )
        markers.append(MarkerRule(files=entry["files"], marker=entry["marker"]))
    defaults = options.get("exclude_defaults", True)
    if not isinstance(defaults, bool):
        raise ConfigError(f"{where}: 'exclude_defaults' must be true or false")
    return FileRules(
        include=str_list("include"), exclude=str_list("exclude"), markers=markers, default_excludes=defaults
    )
