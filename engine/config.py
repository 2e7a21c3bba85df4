"""Configuration: named profiles in ``config.toml``.

A profile says where data goes (any rclone path) and which catalogue registers it. With no config file the
``default`` profile is the embedded default: a folder under the home and the ``local`` catalogue, so a new user
can try the tool without any server. Unknown keys are errors rather than warnings because a misspelt
``bwlimit`` on an unattended instrument PC would otherwise go unnoticed for the whole beamtime.
"""

from __future__ import annotations

import math
import os
import re
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.home import Home

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PROFILE = "default"
CATALOGUES = ("local", "scicat")
RCLONE_ENV = "DATAUPLOADER_RCLONE"

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_WINDOWS_FOLDER = re.compile(r"^(?:[A-Za-z]:\\|\\\\)")  # written the Windows way: C:\ or \\server

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)?\s*$", re.IGNORECASE
)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, what: str, *, minimum: float = 0.0) -> float:
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"5m"``, ``"2min"``, ``"12h"``, ``"2d"``.

    ``what`` names the setting the way the person wrote it (``--settle``, or ``'settle' in <file>``), so the one-line
    error points at the right place. Infinite, NaN and negative values are refused: an endless settle time would
    mean a sync that never uploads, silently."""
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ConfigError(f"{what} = {value!r} is not a duration; write e.g. 30s, 5m, 12h")
        unit = (m.group(2) or "s").lower()
        factor = _UNITS["ms"] if unit == "ms" else _UNITS[unit[0]]
        seconds = float(m.group(1)) * factor
    if not math.isfinite(seconds) or seconds < minimum:
        bound = "0 or more" if minimum == 0 else f"at least {minimum:g}"
        raise ConfigError(f"{what} = {value!r} is not a duration of {bound} seconds; write e.g. 2s, 5m")
    return seconds


DEFAULT_SETTLE = 2.0
DEFAULT_RESCAN = 60.0
DEFAULT_RETRY_FOR = 12 * 3600.0
DEFAULT_REGISTER_RETRY = 30.0
DEFAULT_WAIT_FOR_STORAGE = 120.0
DEFAULT_WEBDAV_PACER = "0ms"


@dataclass
class SciCatSettings:
    """``[profiles.X.scicat]``: where the SciCat backend is and how datasets are filled in.

    Only ``url`` is required; everything else has a default that works for a typical facility.
    """

    url: str  # the API base, e.g. "https://scicat.example.org/api/v3"
    auth: str = "local"  # login route: "local" (POST /auth/login, functional accounts) or "ldap"
    api: str = "v3"  # dataset/origdatablock routes: "v3" or "v4"
    owner_group: str | None = None  # default: the proposal's ownerGroup
    access_groups: tuple[str, ...] = ()  # default: the proposal's accessGroups
    creation_location: str | None = None  # default: "/DataUploader/<host name>"
    # The dataset's folder as the facility's archive sees it: a template over {investigation}, {dataset} and
    # {target} (= "<investigation>/<dataset>" or "<dataset>"), e.g. "/gpfs/raw/{investigation}/{dataset}"; a value
    # without placeholders is the root the target is appended to. Default: the storage path without connection
    # parameters or credentials.
    source_folder: str | None = None
    keywords: tuple[str, ...] = ()
    block_files: int = 10_000  # files per origdatablock (SciCat's limit is 10,000)
    expiry_warning: float = 1800.0  # warn this many seconds before the login token expires
    timeout: float = 60.0  # seconds to wait for one answer


@dataclass
class Profile:
    """One upload target: storage + catalogue + transfer tuning."""

    name: str
    storage: str
    catalogue: str = "local"
    rclone_config: Path | None = None
    transfers: int | None = None
    checkers: int | None = None
    bwlimit: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    scicat: SciCatSettings | None = None
    # Durations in seconds, parsed and checked when the config loads (a bad one fails every command alike).
    settle: float = DEFAULT_SETTLE  # sync: how long a file must stay unchanged before it counts as complete
    rescan: float = DEFAULT_RESCAN  # sync: interval of the reconciliation scans
    retry_for: float = DEFAULT_RETRY_FOR  # how long to keep retrying while the storage is unreachable
    register_retry: float = DEFAULT_REGISTER_RETRY  # sync: interval of retries of queued registrations
    wait_for_storage: float = (
        DEFAULT_WAIT_FOR_STORAGE  # upload: how long an unreachable storage is waited for
    )
    webdav_pacer: str = DEFAULT_WEBDAV_PACER

    @property
    def local_verify(self) -> str:
        """How a copy on a local folder is checked: ``xxh128`` or ``sha256`` (see :mod:`engine.storage`)."""
        return str(self.options.get("local_verify", LOCAL_VERIFY[0]))


@dataclass
class Config:
    """The parsed config file (or the embedded default when there is none)."""

    source: Path | None  # the file read, None when there is none (the embedded default)
    profiles: dict[str, Profile]
    rclone: Path | None = None
    path: Path | None = None  # where the config file is (or would be)

    def profile(self, name: str | None) -> Profile:
        key = name or DEFAULT_PROFILE
        try:
            return self.profiles[key]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            if self.source is None:
                raise ConfigError(
                    f"no profile '{key}': there is no config file yet; create {self.path} with a [profiles.{key}] "
                    'table (storage = "…")'
                ) from None
            raise ConfigError(
                f"no profile '{key}' in {self.source} (known profiles: {known}); add a [profiles.{key}] table"
            ) from None


def is_local_path(storage: str) -> bool:
    """True for a plain folder; False for an rclone remote (``name:path`` or ``:backend,opt=...:path``)."""
    if _WINDOWS_DRIVE.match(storage) or storage.startswith(("/", "\\", "~", ".")):
        return True
    head = storage.split("/", 1)[0]
    return ":" not in head


def split_remote(fs: str) -> tuple[str, str]:
    """An rclone path split into its remote part and its path: ``remote:bucket/x`` → (``remote:``,
    ``bucket/x``); ``:webdav,url='http://h/':base`` → (``:webdav,url='http://h/':``, ``base``); a plain folder →
    (``""``, the folder). Colons inside quoted connection parameters do not end the remote part."""
    if is_local_path(fs):
        return "", fs
    quote_char: str | None = None
    for i, c in enumerate(fs):
        if i == 0 and c == ":":
            continue  # an on-the-fly backend (":webdav,...:path")
        if quote_char:
            if c == quote_char:
                quote_char = None
        elif c in "'\"":
            quote_char = c
        elif c == ":":
            return fs[: i + 1], fs[i + 1 :]
    return "", fs


def is_windows_folder(path: str) -> bool:
    """``C:\\data`` or ``\\\\server\\share``: joined with backslashes, never prefixed with ``/``."""
    return bool(_WINDOWS_FOLDER.match(path))


def normalize_storage(storage: str, base: Path) -> str:
    """A folder becomes absolute (relative to ``base``: the config file's folder, or the working directory for
    ``--storage``); an rclone remote path is kept as written."""
    storage = storage.strip()
    return str(_resolve_path(storage, base)) if is_local_path(storage) else storage


def _expect(value: Any, kind: type | tuple[type, ...], key: str, where: Path) -> Any:
    # bool is a subclass of int; a TOML `transfers = true` is a mistake, not 1.
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' must be {_kind_name(kind)}, not a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: '{key}' must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "a table",
        list: "a list",
    }
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _resolve_path(raw: str, base: Path) -> Path:
    p = Path(os.path.expandvars(raw)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


# How a copy on a local folder is checked (profile key `local_verify`, the first is the default; see
# engine.storage for why xxh128).
LOCAL_VERIFY = ("xxh128", "sha256")

# Keys a profile may hold beyond the typed ones above; later features read them from Profile.options.
_EXTRA_KEYS: dict[str, type | tuple[type, ...]] = {
    "webdav_pacer": str,  # rclone's pacer_min_sleep for WebDAV remotes, e.g. "0ms" (default) or "10ms"
    "retry_for": (str, int, float),  # how long to keep retrying while the storage is unreachable
    "settle": (str, int, float),  # sync: seconds a file must stay unchanged before it counts as complete
    "rescan": (str, int, float),  # sync: interval of the reconciliation scan
    "poll": bool,  # sync: force (true) or forbid (false) the polling observer; default: automatic
    "include": list,  # gitignore-style patterns; when given, only matching files are uploaded
    "exclude": list,  # gitignore-style patterns added to the default excludes
    "exclude_defaults": bool,  # false drops the default excludes (*.tmp, *.part, ~$*, .~lock*, ...)
    "ready_markers": list,  # [{files = "scan_*.raw", marker = "scan_*.done"}, ...]
    "register_retry": (str, int, float),  # sync: interval of retries of queued catalogue registrations
    "wait_for_storage": (str, int, float),  # upload: how long to wait for a storage unreachable at the start
    "license": str,  # the datasets' license in the manifest: an SPDX identifier (CC-BY-4.0) or a URL
    "local_verify": str,  # how a copy on a local folder is checked: "xxh128" (default, fast) or "sha256"
}

# Duration keys of a profile and the smallest value each takes.
_DURATIONS = {"settle": 0.0, "rescan": 0.1, "retry_for": 0.0, "register_retry": 0.1, "wait_for_storage": 0.0}

_SCICAT_KEYS: dict[str, type | tuple[type, ...]] = {
    "url": str,
    "auth": str,
    "api": str,
    "owner_group": str,
    "access_groups": list,
    "creation_location": str,
    "source_folder": str,
    "keywords": list,
    "block_files": int,
    "expiry_warning": (str, int, float),
    "timeout": (int, float),
}


SOURCE_FOLDER_FIELDS = ("investigation", "dataset", "target")


def _check_source_folder(template: str, key: str, where: Path) -> None:
    """A template mistake must show when the config is read, not as a broken catalogue entry hours later."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{where}: '{key}' is not a valid template ({exc}); write e.g. \"/raw/{{investigation}}/{{dataset}}\""
        ) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in SOURCE_FOLDER_FIELDS or spec or conversion:
            raise ConfigError(
                f"{where}: '{key}' uses {{{name}}}; only {', '.join('{' + f + '}' for f in SOURCE_FOLDER_FIELDS)} "
                "may appear in it"
            )
    if not template.strip():
        raise ConfigError(f"{where}: '{key}' is empty")


def _parse_scicat(raw: Any, key_prefix: str, where: Path) -> SciCatSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{key_prefix}' must be a table ([{key_prefix}])")
    for k in raw:
        if k not in _SCICAT_KEYS:
            raise ConfigError(
                f"{where}: unknown key '{key_prefix}.{k}' (allowed: {', '.join(sorted(_SCICAT_KEYS))})"
            )
    values = {k: _expect(v, _SCICAT_KEYS[k], f"{key_prefix}.{k}", where) for k, v in raw.items()}
    url = values.get("url")
    if url is None:
        raise ConfigError(
            f"{where}: '{key_prefix}.url' is missing (e.g. \"https://scicat.example.org/api/v3\")"
        )
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{where}: '{key_prefix}.url' must start with https:// (or http://), not {url!r}")
    for k, choices in (("auth", ("local", "ldap")), ("api", ("v3", "v4"))):
        if k in values and values[k] not in choices:
            raise ConfigError(
                f"{where}: '{key_prefix}.{k}' is {values[k]!r}; use one of: {', '.join(choices)}"
            )
    for k in ("access_groups", "keywords"):
        if k in values:
            if not all(isinstance(x, str) and x for x in values[k]):
                raise ConfigError(f"{where}: '{key_prefix}.{k}' must be a list of non-empty strings")
            values[k] = tuple(values[k])
    if "block_files" in values and not 1 <= values["block_files"] <= 10_000:
        raise ConfigError(f"{where}: '{key_prefix}.block_files' must be between 1 and 10000")
    if "expiry_warning" in values:
        values["expiry_warning"] = parse_duration(
            values["expiry_warning"], f"{where}: '{key_prefix}.expiry_warning'"
        )
    if "source_folder" in values:
        _check_source_folder(values["source_folder"], f"{key_prefix}.source_folder", where)
    if "timeout" in values and values["timeout"] <= 0:
        raise ConfigError(f"{where}: '{key_prefix}.timeout' must be more than 0 seconds")
    values["url"] = url.rstrip("/")
    return SciCatSettings(**values)


def parse_profile(name: str, raw: Any, where: Path, base: Path) -> Profile:
    key_prefix = f"profiles.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{key_prefix}' must be a table ([{key_prefix}])")
    storage = raw.get("storage")
    if storage is None:
        raise ConfigError(f"{where}: '{key_prefix}.storage' is missing (a folder or an rclone remote path)")
    _expect(storage, str, f"{key_prefix}.storage", where)
    if not storage.strip():
        raise ConfigError(f"{where}: '{key_prefix}.storage' is empty")
    storage = normalize_storage(storage, base)
    catalogue = _expect(raw.get("catalogue", "local"), str, f"{key_prefix}.catalogue", where)
    if catalogue not in CATALOGUES:
        raise ConfigError(
            f"{where}: '{key_prefix}.catalogue' is '{catalogue}'; use one of: {', '.join(CATALOGUES)}"
        )
    rclone_config = raw.get("rclone_config")
    rc_path = None
    if rclone_config is not None:
        rc_path = _resolve_path(_expect(rclone_config, str, f"{key_prefix}.rclone_config", where), base)
        if not rc_path.is_file():
            raise ConfigError(f"{where}: '{key_prefix}.rclone_config' file {rc_path} does not exist")
    transfers = raw.get("transfers")
    checkers = raw.get("checkers")
    for k, v in (("transfers", transfers), ("checkers", checkers)):
        if v is not None and (_expect(v, int, f"{key_prefix}.{k}", where) < 1 or v > 256):
            raise ConfigError(f"{where}: '{key_prefix}.{k}' must be between 1 and 256")
    bwlimit = raw.get("bwlimit")
    if bwlimit is not None:
        _expect(bwlimit, str, f"{key_prefix}.bwlimit", where)
    options: dict[str, Any] = {}
    known = {
        "storage",
        "catalogue",
        "rclone_config",
        "transfers",
        "checkers",
        "bwlimit",
        "scicat",
        *_EXTRA_KEYS,
    }
    for k, v in raw.items():
        if k not in known:
            raise ConfigError(
                f"{where}: unknown key '{key_prefix}.{k}' (allowed: {', '.join(sorted(known))})"
            )
        if k in _EXTRA_KEYS:
            options[k] = _expect(v, _EXTRA_KEYS[k], f"{key_prefix}.{k}", where)
    from engine.rules import rules_from_options

    rules_from_options(options, f"{where}: profile '{name}'")  # validate now: a bad rule is a config error
    durations = {
        k: parse_duration(options[k], f"{where}: '{key_prefix}.{k}'", minimum=low)
        for k, low in _DURATIONS.items()
        if k in options
    }
    pacer = options.get("webdav_pacer", DEFAULT_WEBDAV_PACER)
    parse_duration(pacer, f"{where}: '{key_prefix}.webdav_pacer'")
    if options.get("local_verify", LOCAL_VERIFY[0]) not in LOCAL_VERIFY:
        raise ConfigError(
            f"{where}: '{key_prefix}.local_verify' must be " + " or ".join(f'"{v}"' for v in LOCAL_VERIFY)
        )
    scicat = _parse_scicat(raw["scicat"], f"{key_prefix}.scicat", where) if "scicat" in raw else None
    if catalogue == "scicat" and scicat is None:
        raise ConfigError(
            f"{where}: profile '{name}' uses catalogue 'scicat' but has no [{key_prefix}.scicat] table with its url"
        )
    return Profile(
        name=name,
        storage=storage,
        catalogue=catalogue,
        rclone_config=rc_path,
        transfers=transfers,
        checkers=checkers,
        bwlimit=bwlimit,
        options=options,
        scicat=scicat,
        webdav_pacer=pacer,
        **durations,
    )


def default_profile(home: Home) -> Profile:
    """The embedded default: a folder under the home, the local catalogue, no server anywhere."""
    return Profile(name=DEFAULT_PROFILE, storage=str(home.default_storage), catalogue="local")


def load_config(home: Home) -> Config:
    """Read ``config.toml`` from the home; raise :class:`ConfigError` with a one-line reason if it is bad."""
    path = home.config_file
    if not path.exists():
        return Config(source=None, profiles={DEFAULT_PROFILE: default_profile(home)}, path=path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    base = path.parent
    for k in data:
        if k not in ("profiles", "rclone"):
            raise ConfigError(f"{path}: unknown top-level key '{k}' (allowed: profiles, rclone)")
    rclone = None
    if "rclone" in data:
        rclone = _resolve_path(_expect(data["rclone"], str, "rclone", path), base)
    raw_profiles = _expect(data.get("profiles", {}), dict, "profiles", path)
    profiles = {name: parse_profile(name, raw, path, base) for name, raw in raw_profiles.items()}
    profiles.setdefault(DEFAULT_PROFILE, default_profile(home))
    return Config(source=path, profiles=profiles, rclone=rclone, path=path)
