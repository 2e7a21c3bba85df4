"""A fake SciCat backend (``/api/v3`` and ``/api/v4``) for tests: a real HTTP server on 127.0.0.1 in a thread.

It behaves like SciCat backend-next (checked against commit 4055c96) wherever DataUploader can tell the
difference, quirks included:

- **Tokens**: a token the server does not accept (expired, signed with an old secret) makes the caller
  *anonymous*, it is never refused with 401: writes answer 403 "Forbidden resource", reads answer what the public
  may see, ``/auth/whoami`` answers 200 with an empty body, and only the ``/users/...`` routes answer 401.
- **Groups** (the backend's environment): ``admin_groups`` (read and write anything), ``privileged_groups``
  (``CREATE_DATASET_PRIVILEGED_GROUPS``: create datasets and origdatablocks for any group, but read and update
  only their own groups' datasets), ``proposal_groups`` (create and read every proposal; ``FakeUser.ingestor`` is
  the same), ``lifecycle_groups`` (read every dataset), ``delete_groups``. Everyone may create datasets of their
  own groups (``CREATE_DATASET_GROUPS=#all``).
- **Filters**: ``GET /api/v3/datasets`` (and ``findOne``, ``count``) turn every string value of ``where`` that
  JavaScript's ``new Date()`` accepts ("scan-001", "run 12", "2024-001", "20261") into a date, which matches no
  string (:func:`js_date_like` approximates V8's parser); values inside arrays are left alone. v3 ``proposalId`` and
  friends are mapped to the stored ``proposalIds`` arrays.
- **origdatablocks**: ``GET /api/v3/datasets/{pid}/origdatablocks`` answers at most 100 blocks and takes no filter;
  ``GET /api/v3/origdatablocks?filter=`` pages through them all (default limit 100). v3 dataset routes keep the
  dataset's ``size``/``numberOfFiles`` by arithmetic (``+=`` on POST, ``- old + new`` on PATCH, using the block's
  ``size`` as sent); v3 top-level routes recompute them from the first 100 blocks; v4 routes from the 10 newest.
- **v4**: ``PATCH /api/v4/datasets/{pid}`` resets ``size``, ``packedSize`` and ``numberOfFiles`` to 0 unless they
  are sent (the update DTO's defaults); v4 lists default to 10 items.
- **Validation**: every request body must pass the published pydantic model of ``scicat-sdk-py`` for its route
  *and* may not carry a key that model does not declare (the real server's ``forbidNonWhitelisted``). Both checks
  live in :func:`check_body`, run by the dispatcher before any handler. A 400 from the v3 dataset routes carries
  ``message`` as a JSON-encoded list of class-validator errors (``{"property", "constraints", "children"}``);
  ``isValid`` answers ``{"valid": false, "error": "a; b"}`` (v4: ``{"valid": ...}`` only).
- **Defaults**: a new dataset gets ``datasetlifecycle`` (with an ``_id`` the update DTO refuses), ``version``,
  zero totals, and ``[null]`` for the id arrays a v3 body did not set; ``scientificMetadata`` quantities
  (``{"value", "unit"}``) get ``valueSI``/``unitSI``.

Usage::

    with FakeSciCat([FakeUser("alice", "pw", "alice@example.org", ("p1234",))]) as sc:
        requests.post(f"{sc.url}/auth/login", json={"username": "alice", "password": "pw"})

Test hooks: :attr:`FakeSciCat.requests` (every request: method, path, body, status), :meth:`FakeSciCat.set_down`
(503 or dropped connections, for a while or for N requests), :meth:`FakeSciCat.advance_clock` and
:meth:`FakeSciCat.revoke_all_tokens` (expire sessions), and the stores :attr:`datasets` (v3 view),
:attr:`proposals`, :attr:`origdatablocks`.

Requires ``scicat-sdk-py`` (the version in :data:`SDK_PIN`, whose models match the backend's OpenAPI document).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ValidationError
from scicat_sdk_py import __version__ as SDK_VERSION
from scicat_sdk_py.models import (
    CreateDatasetDto,
    CreateDatasetOrigDatablockDto,
    CreateDerivedDatasetObsoleteDto,
    CreateOrigDatablockDto,
    CreateProposalDto,
    CreateRawDatasetObsoleteDto,
    CredentialsDto,
    OrigDatablock,
    OutputDatasetObsoleteDto,
    PartialUpdateDatasetDto,
    PartialUpdateDerivedDatasetObsoleteDto,
    PartialUpdateOrigDatablockDto,
    PartialUpdateRawDatasetObsoleteDto,
    ProposalClass,
    ReturnedAuthLoginDto,
    ReturnedUserDto,
    UpdateOrigDatablockDto,
    UserIdentity,
)

SDK_PIN = "scicat-sdk-py==5.1.1"
API_PREFIX = "/api/v3"
API_V4_PREFIX = "/api/v4"
DEFAULT_PID_PREFIX = "20.500.12269"
V3_BLOCK_LIMIT = 100  # GET /datasets/{pid}/origdatablocks, and what v3 top-level routes total
V4_DEFAULT_LIMIT = 10  # v4 lists without limits, and what v4 origdatablock routes total

__all__ = [
    "API_PREFIX",
    "API_V4_PREFIX",
    "SDK_PIN",
    "SDK_VERSION",
    "ApiError",
    "FakeSciCat",
    "FakeUser",
    "RecordedRequest",
    "check_body",
    "js_date_like",
    "make_jwt",
    "read_jwt",
]


# --------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An HTTP error answered in NestJS's shape: ``{"message": ..., "error": ..., "statusCode": ...}``."""

    REASONS: typing.ClassVar[dict[int, str]] = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        413: "Payload Too Large",
    }

    def __init__(self, status: int, message: str | list[str] | None = None, *, payload: Any = None) -> None:
        reason = self.REASONS.get(status, "Error")
        super().__init__(f"{status} {message or reason}")
        self.status = status
        if payload is not None:
            self.payload: dict[str, Any] = payload
        elif status == 401 and message is None:
            self.payload = {"message": "Unauthorized", "statusCode": 401}
        else:
            self.payload = {
                "message": message if message is not None else reason,
                "error": reason,
                "statusCode": status,
            }


def _forbidden(message: str = "Forbidden resource") -> ApiError:
    return ApiError(403, message)


# ------------------------------------------------------------------------------------ body validation


@dataclass(frozen=True)
class Problem:
    """One validation failure: where (JSON path), which rule, and the class-validator-like message."""

    loc: tuple[str, ...]
    rule: str
    message: str

    def text(self) -> str:
        head = ".".join(self.loc[:-1])
        return f"{head}.{self.message}" if head else self.message


def _unknown_keys(model: type[BaseModel], data: dict[str, Any], loc: tuple[str, ...] = ()) -> list[Problem]:
    """Every key of ``data`` (recursively, through nested SDK models) that ``model`` does not declare.

    Only the JSON names (aliases) count as declared: the SDK models also accept their Python field names
    (``populate_by_name``), which the real server would refuse.
    """
    declared = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems: list[Problem] = []
    for key, value in data.items():
        info = declared.get(key)
        if info is None:
            problems.append(Problem((*loc, key), "whitelistValidation", f"property {key} should not exist"))
        else:
            problems += _unknown_keys_in(info.annotation, value, (*loc, key))
    return problems


def _unknown_keys_in(annotation: Any, value: Any, loc: tuple[str, ...]) -> list[Problem]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unknown_keys_in(typing.get_args(annotation)[0], value, loc)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _unknown_keys(annotation, value, loc) if isinstance(value, dict) else []
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unknown_keys_in(candidates[0], value, loc) if len(candidates) == 1 else []
    if origin is list and isinstance(value, list):
        (item_type,) = typing.get_args(annotation) or (Any,)
        problems: list[Problem] = []
        for i, item in enumerate(value):
            problems += _unknown_keys_in(item_type, item, (*loc, str(i)))
        return problems
    return []  # scalars and free-form dicts (scientificMetadata, ...)


def check_problems(model: type[BaseModel], body: Any) -> tuple[BaseModel | None, list[Problem]]:
    """:func:`check_body` with structured problems (for the class-validator error format)."""
    if not isinstance(body, dict):
        return None, [Problem((), "isObject", f"request body must be a JSON object ({model.__name__})")]
    problems = _unknown_keys(model, body)
    instance: BaseModel | None = None
    try:
        instance = model.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(str(part) for part in err["loc"])
            leaf = loc[-1] if loc else ""
            problems.append(Problem(loc, str(err["type"]), f"{leaf} {err['msg']}".strip()))
    if problems:
        return None, problems
    return instance, []


def check_body(model: type[BaseModel], body: Any) -> tuple[BaseModel | None, list[str]]:
    """THE validation gate: ``body`` against SDK ``model`` plus the unknown-key check.

    Returns ``(instance, [])`` when valid, ``(None, messages)`` otherwise; messages are class-validator-like
    strings (``"property foo should not exist"``, ``"dataFileList.0.size Input should be a valid number"``).
    """
    instance, problems = check_problems(model, body)
    return instance, [p.text() for p in problems]


def class_validator_errors(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """Problems as class-validator's ValidationError tree (value and target left out, as the backend does)."""
    roots: list[dict[str, Any]] = []

    def node(siblings: list[dict[str, Any]], prop: str) -> dict[str, Any]:
        for n in siblings:
            if n["property"] == prop:
                return n
        n = {"property": prop, "children": []}
        siblings.append(n)
        return n

    for p in problems:
        siblings, current = roots, None
        for part in p.loc or ("",):
            current = node(siblings, part)
            siblings = current["children"]
        assert current is not None
        current.setdefault("constraints", {})[p.rule] = p.message
    return roots


def _obsolete_400(problems: list[Problem]) -> ApiError:
    """The v3 dataset routes' own validation answer: ``message`` is a JSON string, not a list."""
    return ApiError(400, payload={"status": 400, "message": json.dumps(class_validator_errors(problems))})


def _dump(instance: BaseModel, *, only_sent: bool = False) -> dict[str, Any]:
    """JSON-ready dict by alias; with ``only_sent`` just the keys the client sent (explicit nulls kept)."""
    if only_sent:
        return instance.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return instance.model_dump(mode="json", by_alias=True, exclude_none=True)


def _check_output(model: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    """Self-check that what the fake answers parses with the SDK's output model (a failure is a bug here)."""
    model.model_validate(payload)
    return payload


# ------------------------------------------------------------------------------------------------ JWT


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT (stdlib only)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    return f"{header}.{body}.{_b64(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


def read_jwt(token: str, secret: bytes | None = None) -> dict[str, Any]:
    """The payload of ``token``; with ``secret`` the signature is verified (ValueError if wrong or malformed)."""
    try:
        header, body, signature = token.split(".")
        if secret is not None:
            expected = hmac.new(secret, f"{header}.{body}".encode("ascii"), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                raise ValueError("bad signature")
            if json.loads(_unb64(header)).get("alg") != "HS256":
                raise ValueError("bad alg")
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid token: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("invalid token: payload is not an object")
    return payload


# ------------------------------------------------------------------------------ JavaScript's Date()

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ZONES = ("ut", "utc", "gmt", "z", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt")
_ISO_DATE = re.compile(
    r"^(?:[+-]\d{6}|\d{4})(?:-(\d\d)(?:-(\d\d))?)?"
    r"(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?)?$"
)


def _js_tokens(text: str) -> list[tuple[str, Any]]:
    """V8's date tokenizer, roughly: numbers, words (runs of characters from 'A' up, which includes '_', '[',
    '~' and all non-ASCII), the symbols : - + . ), whitespace, skipped (parentheses), and anything else."""
    tokens: list[tuple[str, Any]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isascii() and c.isdigit():
            j = i
            while j < len(text) and text[j].isascii() and text[j].isdigit():
                j += 1
            tokens.append(("num", int(text[i:j])))
            i = j
        elif c in ":-+.)":
            tokens.append(("sym", c))
            i += 1
        elif c.isspace():
            while i < len(text) and text[i].isspace():
                i += 1
            tokens.append(("ws", None))
        elif c >= "A":
            j = i
            while j < len(text) and text[j] >= "A" and not text[j].isspace():
                j += 1
            tokens.append(("word", text[i:j].lower()))
            i = j
        elif c == "(":
            depth = 0
            while i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
                if depth == 0:
                    break
            tokens.append(("other", None))
        else:
            tokens.append(("other", c))
            i += 1
    return tokens


def js_date_like(text: str) -> bool:
    """Whether ``new Date(text)`` in Node (V8) is a valid date. An approximation of V8's ISO and legacy parsers,
    checked against Node for the kinds of names people give datasets and proposals; it errs towards "a date"
    only where V8 does."""
    iso = _ISO_DATE.match(text)
    if iso:
        month, day = iso.group(1), iso.group(2)
        if (month is None or 1 <= int(month) <= 12) and (day is None or 1 <= int(day) <= 31):
            return True
    tokens = _js_tokens(text)
    day: list[int] = []
    named_month = False
    has_time = False
    has_number = False
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("end", None)
        if kind == "num":
            has_number = True
            after = tokens[i + 2] if i + 2 < len(tokens) else ("end", None)
            if nxt == ("sym", ":") and value < 24:  # a time, h:m[:s[.ms]]; "h:" then no minute leaves "h:"
                if has_time:
                    return False
                has_time = True
                i += 2
                if after[0] == "num" and after[1] < 60:
                    i += 1
                    while (
                        i + 1 < len(tokens)
                        and tokens[i][0] == "sym"
                        and tokens[i][1] in ":."
                        and tokens[i + 1][0] == "num"
                    ):
                        i += 2
                continue
            if nxt == ("sym", ":") and not 1000 <= value <= 9999:
                return False  # "32:1", "100:5": neither a time nor a date to V8
            day.append(value)
            if len(day) > 3:
                return False
            if nxt in (("sym", "-"), ("sym", ".")):
                i += 1
        elif kind == "word":
            if value[:3] in _MONTHS:
                named_month = True
                if nxt == ("sym", "-"):
                    i += 1
            elif (value in _ZONES and has_number) or (value in ("am", "pm") and has_time):
                pass
            else:  # a word of no meaning: only allowed before the first number, and not glued to it
                if has_number or nxt[0] == "num":
                    return False
        elif kind == "sym" and value in "+-)" and has_number and not has_time:
            return False
        i += 1
    if not day:
        return False
    if named_month:  # the month is named: the numbers are a day (1..31) and a year
        if len(day) > 2:
            return False
        dd = day[0] if 1 <= day[0] <= 31 or len(day) == 1 else day[1]
        return len(day) == 1 or 1 <= dd <= 31
    comp = day + [1] * (3 - len(day))
    if not 1 <= comp[0] <= 31:
        year, month, dd = comp
    else:
        month, dd, year = comp
    return (
        1 <= month <= 12
        and 1 <= dd <= 31
        and year + (2000 if year < 50 else 1900 if year < 100 else 0) <= 275760
    )


@dataclass(frozen=True)
class _JsDate:
    """A where value the backend turned into a date: it equals no string."""

    text: str


def _where_pipe(value: Any) -> Any:
    """backend-next's WherePipe: every string that is the value of an object key and that ``new Date()`` accepts
    becomes a date. Items of arrays are left alone (``{"$in": ["scan-001"]}`` stays a string)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            v = _where_pipe(v) if isinstance(v, dict) else v
            if isinstance(v, list):
                v = [_where_pipe(x) if isinstance(x, dict) else x for x in v]
            elif isinstance(v, str) and js_date_like(v):
                v = _JsDate(v)
            out[{"inq": "$in", "nin": "$nin", "and": "$and", "or": "$or"}.get(k, k)] = v
        return out
    return value


# ----------------------------------------------------------------------------------------- data types


@dataclass
class FakeUser:
    username: str
    password: str
    email: str
    groups: tuple[str, ...] = ()
    ingestor: bool = False  # may create proposals (as a member of PROPOSAL_GROUPS)
    strategies: tuple[str, ...] = ("local", "ldap")  # which login routes accept this user
    display_name: str | None = None

    @property
    def id(self) -> str:  # stable Mongo-ObjectId-looking id
        return hashlib.sha1(self.username.encode()).hexdigest()[:24]


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw path as sent (percent-encoding kept), without the query
    query: dict[str, str]
    body: Any  # parsed JSON, raw text if not JSON, None if empty
    status: int | None  # None: the connection was dropped
    username: str | None = None  # the authenticated user, if any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def decoded_path(self) -> str:
        return unquote(self.path)


@dataclass
class _Route:
    method: str
    segments: tuple[str, ...]  # after /api/vN; "{name}" captures one (percent-decoded) segment
    handler: Callable[[_Ctx], tuple[int, Any]]
    auth: str  # "none" | "optional" | "write" (anonymous -> 403) | "user" (anonymous -> 401)
    body: type[BaseModel] | Callable[[FakeSciCat, _Ctx], type[BaseModel]] | None = None
    report_invalid: bool = False  # hand validation errors to the handler instead of answering 400
    guard: Callable[[_Ctx], None] | None = None  # role check that runs before validation (Nest guards do)
    version: str = "v3"
    obsolete_errors: bool = False  # answer 400 in the v3 dataset routes' JSON-string format


@dataclass
class _Ctx:
    fake: FakeSciCat
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    user: FakeUser | None = None
    auth_strategy: str | None = None
    raw_body: Any = None
    model: BaseModel | None = None  # set only by the dispatcher, from check_body
    body: dict[str, Any] = field(default_factory=dict)  # keys the client sent, validated
    problems: list[Problem] = field(default_factory=list)  # only for report_invalid routes
    version: str = "v3"

    @property
    def body_errors(self) -> list[str]:
        return [p.text() for p in self.problems]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- filters


def _get_path(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if isinstance(value, list):
            value = [v.get(part) for v in value if isinstance(v, dict)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _matches(record: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, cond in where.items():
        if key in ("$and", "and"):
            if not all(_matches(record, sub) for sub in cond):
                return False
            continue
        if key in ("$or", "or"):
            if not any(_matches(record, sub) for sub in cond):
                return False
            continue
        if not _cond(_get_path(record, key), cond):
            return False
    return True


def _cond(value: Any, cond: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(cond, dict):
        return value == cond or cond in values
    for op, arg in cond.items():
        if op in ("$eq", "eq"):
            ok = value == arg or arg in values
        elif op in ("$ne", "neq"):
            ok = value != arg and arg not in values
        elif op in ("$in", "inq"):
            ok = any(v in arg for v in values)
        elif op in ("$nin", "nin"):
            ok = not any(v in arg for v in values)
        elif op == "$exists":
            ok = (value is not None) == bool(arg)
        elif op in ("$regex", "regexp", "like"):
            flags = re.IGNORECASE if "i" in str(cond.get("$options", "")) else 0
            ok = isinstance(arg, str) and any(isinstance(v, str) and re.search(arg, v, flags) for v in values)
        elif op == "$options":
            ok = True
        else:
            raise ApiError(400, [f"fake SciCat: unsupported filter operator {op!r}"])
        if not ok:
            return False
    return True


def _parse_filter(raw_filter: str | None) -> dict[str, Any]:
    if not raw_filter:
        return {}
    try:
        flt = json.loads(raw_filter)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"Invalid filter: {exc}") from None
    if not isinstance(flt, dict):
        raise ApiError(400, "Invalid filter: not an object")
    if not isinstance(flt.get("where") or {}, dict):
        raise ApiError(400, "Invalid filter: where is not an object")
    return flt


def _sort(records: list[dict[str, Any]], name: str, descending: bool) -> None:
    def sort_key(record: dict[str, Any]) -> tuple[bool, str]:
        value = _get_path(record, name)
        return value is None, str(value)

    records.sort(key=sort_key, reverse=descending)


def _apply_filter(
    records: Iterable[dict[str, Any]],
    flt: dict[str, Any],
    *,
    default_limit: int | None = None,
    v4: bool = False,
) -> list[dict[str, Any]]:
    """Loopback-style filter: ``where`` (equality, $in/inq, $regex, $and/$or, dotted keys), ``limits`` (v3:
    ``limit``, ``skip``, ``order`` as ``"field:asc|desc"``; v4: ``sort`` as ``{field: "asc"}``) and ``fields``."""
    result = [r for r in records if _matches(r, flt.get("where") or {})]
    limits: dict[str, Any] = flt["limits"] if isinstance(flt.get("limits"), dict) else flt
    if v4 and not isinstance(flt.get("limits"), dict):  # v4 without limits: the 10 newest
        limits = {"limit": V4_DEFAULT_LIMIT, "skip": 0, "sort": {"createdAt": "desc"}}
    sort = limits.get("sort")
    for name, direction in reversed(list(sort.items()) if isinstance(sort, dict) else []):
        _sort(result, name, str(direction).lower() == "desc")
    order = limits.get("order")
    for spec in reversed([order] if isinstance(order, str) else (order or [])):
        name, _, direction = str(spec).replace(" ", ":").partition(":")
        _sort(result, name, direction.lower() == "desc")
    skip = int(limits.get("skip") or 0)
    limit = limits.get("limit")
    if limit in (None, 0):
        limit = default_limit
    result = result[skip:] if limit is None else result[skip : skip + int(limit)]
    fields = flt.get("fields")
    if isinstance(fields, list) and fields:
        result = [{k: r[k] for k in fields if k in r} for r in result]
    return result


_OBSOLETE_IDS = {
    "proposalId": "proposalIds",
    "sampleId": "sampleIds",
    "instrumentId": "instrumentIds",
    "principalInvestigator": "principalInvestigators",
}


def _v3_where(where: dict[str, Any]) -> dict[str, Any]:
    """v3 filters name the old single-id fields; the stored dataset has the arrays."""
    return {_OBSOLETE_IDS.get(k, k): v for k, v in where.items()}


# ------------------------------------------------------------------------------------- quantities

_SI = {
    "mm": ("m", 1e-3),
    "cm": ("m", 1e-2),
    "um": ("m", 1e-6),
    "nm": ("m", 1e-9),
    "km": ("m", 1e3),
    "K": ("K", 1),
}


def _with_si(meta: Any) -> Any:
    """backend-next's FormatPhysicalQuantitiesInterceptor: a ``{"value", "unit"}`` gains ``valueSI``/``unitSI``."""
    if not isinstance(meta, dict):
        return meta
    out: dict[str, Any] = {}
    for key, item in meta.items():
        if isinstance(item, dict) and isinstance(item.get("value"), (int, float)) and item.get("unit"):
            unit, factor = _SI.get(str(item["unit"]), (str(item["unit"]), 1))
            out[key] = {**item, "valueSI": item["value"] * factor, "unitSI": unit}
        elif isinstance(item, dict):
            out[key] = _with_si(item)
        else:
            out[key] = item
    return out


# ----------------------------------------------------------------------------------------------- server


class FakeSciCat:
    """The fake backend. Thread-safe; all state is in memory and guarded by one lock."""

    def __init__(
        self,
        users: Iterable[FakeUser] = (),
        *,
        token_lifetime: float = 3600,
        ldap_enabled: bool = True,
        pid_prefix: str = DEFAULT_PID_PREFIX,
        max_body_bytes: int = 16 * 1024 * 1024,
        host: str = "127.0.0.1",
        admin_groups: Iterable[str] = ("admin",),
        privileged_groups: Iterable[str] = (),
        proposal_groups: Iterable[str] = ("proposalingestor",),
        lifecycle_groups: Iterable[str] = ("archivemanager",),
        delete_groups: Iterable[str] = (),
    ) -> None:
        self.users: dict[str, FakeUser] = {u.username: u for u in users}
        self.token_lifetime = token_lifetime
        self.ldap_enabled = ldap_enabled
        self.pid_prefix = pid_prefix
        self.max_body_bytes = max_body_bytes
        self.host = host
        self.admin_groups = set(admin_groups)
        self.privileged_groups = set(privileged_groups)
        self.proposal_groups = set(proposal_groups)
        self.lifecycle_groups = set(lifecycle_groups)
        self.delete_groups = set(delete_groups)
        self._datasets: dict[str, dict[str, Any]] = {}  # pid -> dataset, stored in the current (v4) schema
        self.proposals: dict[str, dict[str, Any]] = {}  # proposalId -> proposal
        self.origdatablocks: dict[str, dict[str, Any]] = {}  # _id -> block
        self.lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self._clock_offset = 0.0
        self._seq = itertools.count()
        self._requests: list[RecordedRequest] = []
        self._down_mode: str | None = None
        self._down_until: float | None = None
        self._down_seconds: float | None = None
        self._down_count: int | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()

    # ----------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeSciCat:
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer((self.host, 0), _Handler)
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-scicat", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeSciCat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeSciCat is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no API prefix)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/api/v3``."""
        return self.base_url + API_PREFIX

    @property
    def url_v4(self) -> str:
        return self.base_url + API_V4_PREFIX

    # -------------------------------------------------------------------------------------- test hooks

    @property
    def datasets(self) -> dict[str, dict[str, Any]]:
        """Every dataset as the v3 API shows it (a copy)."""
        with self.lock:
            return {pid: _obsolete(d) for pid, d in self._datasets.items()}

    def dataset(self, pid: str) -> dict[str, Any]:
        """One dataset as stored (the current schema, a copy)."""
        with self.lock:
            return copy.deepcopy(self._datasets[pid])

    def edit_dataset(self, pid: str, **fields: Any) -> None:
        """Change a stored dataset as a curator would in SciCat's web interface."""
        with self.lock:
            self._datasets[pid].update(copy.deepcopy(fields))

    def add_user(self, user: FakeUser) -> FakeUser:
        with self.lock:
            self.users[user.username] = user
        return user

    def add_proposal(
        self,
        proposal_id: str,
        owner_group: str,
        *,
        title: str = "A proposal",
        email: str = "pi@example.org",
        created_by: str = "proposalIngestor",
        **fields: Any,
    ) -> dict[str, Any]:
        """Seed a proposal (validated against CreateProposalDto like a POSTed one)."""
        body = {
            "proposalId": proposal_id,
            "ownerGroup": owner_group,
            "title": title,
            "email": email,
            **fields,
        }
        instance, errors = check_body(CreateProposalDto, body)
        if instance is None:
            raise ValueError(f"invalid seed proposal: {errors}")
        with self.lock:
            return copy.deepcopy(self._store_proposal(_dump(instance), created_by))

    def token_for(self, username: str, lifetime: float | None = None, strategy: str = "local") -> str:
        """A valid JWT for ``username`` without going through login."""
        return self._issue_token(self.users[username], strategy, lifetime)[0]

    def auth_header(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(username)}"}

    def revoke_all_tokens(self) -> None:
        """Every token issued so far stops being accepted (its caller is anonymous from now on), as after a
        change of the server's JWT secret."""
        with self.lock:
            self._secret = secrets.token_bytes(32)

    expire_all_tokens = revoke_all_tokens

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock (token expiry, timestamps) forward without sleeping."""
        with self.lock:
            self._clock_offset += seconds

    def now(self) -> float:
        return time.time() + self._clock_offset

    def set_down(
        self,
        mode: str = "503",
        *,
        seconds: float | None = None,
        count: int | None = None,
        from_first_request: bool = False,
    ) -> None:
        """Catalogue down: ``"503"`` answers 503 (an HTML proxy page), ``"drop"`` closes the connection
        without an answer. For ``seconds`` (wall clock; with ``from_first_request``, counted from the first
        request that meets the outage, so a slow-starting client still meets it) and/or the next ``count``
        requests; neither = until :meth:`set_up`."""
        if mode not in ("503", "drop"):
            raise ValueError("mode must be '503' or 'drop'")
        with self.lock:
            self._down_mode = mode
            self._down_seconds = seconds if from_first_request else None
            self._down_until = None if seconds is None or from_first_request else time.monotonic() + seconds
            self._down_count = count

    def set_up(self) -> None:
        with self.lock:
            self._down_mode = self._down_until = self._down_count = self._down_seconds = None

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order of their answers."""
        with self.lock:
            return list(self._requests)

    def requests_for(self, method: str | None = None, path_contains: str = "") -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and path_contains in r.decoded_path
        ]

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def blocks_of(self, pid: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(b) for b in self._blocks(pid)]

    # ----------------------------------------------------------------------------------- roles

    def is_admin(self, user: FakeUser | None) -> bool:
        return user is not None and bool(self.admin_groups & set(user.groups))

    def is_privileged(self, user: FakeUser | None) -> bool:
        return user is not None and bool(self.privileged_groups & set(user.groups))

    def may_create_proposals(self, user: FakeUser | None) -> bool:
        return user is not None and (
            self.is_admin(user) or user.ingestor or bool(self.proposal_groups & set(user.groups))
        )

    def can_read(self, user: FakeUser | None, record: dict[str, Any]) -> bool:
        if record.get("isPublished") or (
            user is not None and (self.is_admin(user) or bool(self.lifecycle_groups & set(user.groups)))
        ):
            return True
        if _in_groups(user, record):
            return True
        return user is not None and bool({user.username, user.email} & set(record.get("sharedWith") or ()))

    def can_write(self, user: FakeUser | None, record: dict[str, Any]) -> bool:
        """Update a dataset (or its blocks): admins anything, everyone else (privileged creators too) only
        their own groups' datasets."""
        return user is not None and (self.is_admin(user) or record.get("ownerGroup") in user.groups)

    def can_create_in(self, user: FakeUser | None, owner_group: Any) -> bool:
        return user is not None and (
            self.is_admin(user) or self.is_privileged(user) or owner_group in user.groups
        )

    # ----------------------------------------------------------------------------------- internals

    def _take_down_mode(self) -> str | None:
        with self.lock:
            if self._down_mode is None:
                return None
            if self._down_seconds is not None:  # the outage's clock starts now
                self._down_until, self._down_seconds = time.monotonic() + self._down_seconds, None
            if self._down_until is not None and time.monotonic() >= self._down_until:
                self.set_up()
                return None
            if self._down_count is not None:
                if self._down_count <= 0:
                    self.set_up()
                    return None
                self._down_count -= 1
            return self._down_mode

    def _record(self, rec: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(rec)

    def _issue_token(self, user: FakeUser, strategy: str, lifetime: float | None = None) -> tuple[str, float]:
        lifetime = self.token_lifetime if lifetime is None else lifetime
        now = self.now()
        payload = {
            "_id": user.id,
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "authStrategy": strategy,
            "iat": int(now),
            "exp": math.ceil(now + lifetime),
        }
        with self.lock:
            return make_jwt(payload, self._secret), now

    def _authenticate(self, header: str | None) -> tuple[FakeUser | None, str | None]:
        """(user, strategy) for a valid token; (None, None) for none *and for one the server does not accept*
        (bad signature, expired, unknown user): backend-next's JWT guard lets such a caller through anonymous."""
        if not header:
            return None, None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, None
        with self.lock:
            secret = self._secret
        try:
            payload = read_jwt(token.strip(), secret)
        except ValueError:
            return None, None
        exp = payload.get("exp")
        if not isinstance(exp, (int, float)) or self.now() >= exp:
            return None, None
        user = self.users.get(str(payload.get("username")))
        if user is None or user.id != payload.get("_id"):
            return None, None
        return user, str(payload.get("authStrategy") or "local")

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, Any, Any, str | None]:
        """Answer one request: (status, JSON payload or None, parsed request body, username).

        Order as on the real server: body size and JSON syntax, route, authentication/guard, body validation
        (:meth:`_validate`), then the handler's own permission checks.
        """
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body: Any = None
        username: str | None = None
        try:
            if len(raw_body) > self.max_body_bytes:
                raise ApiError(413, "request entity too large")
            if raw_body:
                try:
                    body = json.loads(raw_body)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    body = raw_body.decode("utf-8", "replace")
                    raise ApiError(400, f"Unexpected token in JSON: {exc}") from None
            route, params = self._route(method, parts.path)
            ctx = _Ctx(self, method, parts.path, params, query, raw_body=body, version=route.version)
            if route.auth != "none":
                ctx.user, ctx.auth_strategy = self._authenticate(headers.get("authorization"))
                username = ctx.user.username if ctx.user else None
                if ctx.user is None and route.auth == "write":
                    raise _forbidden()
                if ctx.user is None and route.auth == "user":
                    raise ApiError(401, "Unauthenticated")
            if route.guard is not None:
                route.guard(ctx)
            if route.body is not None:
                self._validate(route, ctx, body)
            status, payload = route.handler(ctx)
            return status, payload, body, username
        except ApiError as err:
            return err.status, err.payload, body, username

    def _validate(self, route: _Route, ctx: _Ctx, body: Any) -> None:
        """Run :func:`check_body` for a route that declares a body model. The only place that sets ctx.model
        and ctx.body, so no handler can see a body that skipped the SDK model or the unknown-key check."""
        try:
            model = route.body if isinstance(route.body, type) else route.body(self, ctx)  # type: ignore[misc]
            instance, problems = check_problems(model, {} if body is None else body)
        except ApiError as err:  # the model selector refused (e.g. unknown dataset type)
            if not (route.report_invalid and err.status == 400):
                raise
            message = err.payload["message"]
            instance = None
            problems = [
                Problem((), "isEnum", m) for m in (message if isinstance(message, list) else [message])
            ]
        if instance is None:
            if route.report_invalid:
                ctx.problems = problems
                return
            if route.obsolete_errors:
                raise _obsolete_400(problems)
            raise ApiError(400, [p.text() for p in problems])
        ctx.model = instance
        ctx.body = _dump(instance, only_sent=True)

    def _route(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        for prefix, version in ((API_PREFIX, "v3"), (API_V4_PREFIX, "v4")):
            if not (path.startswith(prefix + "/") or path == prefix):
                continue
            raw_segments = [s for s in path[len(prefix) :].split("/") if s != ""]
            segments = [unquote(s) for s in raw_segments]
            for route in self._routes:
                if route.version != version or route.method != method or len(route.segments) != len(segments):
                    continue
                params: dict[str, str] = {}
                for spec, value in zip(route.segments, segments, strict=True):
                    if spec.startswith("{"):
                        params[spec[1:-1]] = value
                    elif spec != value:
                        break
                else:
                    return route, params
        raise ApiError(404, f"Cannot {method} {path}")

    def _build_routes(self) -> list[_Route]:
        def r(
            method: str,
            path: str,
            handler: Callable[[_Ctx], tuple[int, Any]],
            auth: str,
            body: Any = None,
            report_invalid: bool = False,
            guard: Callable[[_Ctx], None] | None = None,
            *,
            version: str = "v3",
            obsolete_errors: bool = False,
        ) -> _Route:
            segments = tuple(s for s in path.split("/") if s)
            return _Route(
                method, segments, handler, auth, body, report_invalid, guard, version, obsolete_errors
            )

        # Literal routes before parametrised ones of the same shape.
        return [
            r("GET", "health", _health, "none"),
            r("POST", "auth/login", _login("local"), "none", CredentialsDto),
            r("POST", "users/login", _login("local"), "none", CredentialsDto),
            r("POST", "auth/ldap", _login("ldap"), "none", CredentialsDto),
            r("GET", "auth/whoami", _whoami, "optional"),
            r("POST", "auth/logout", _logout, "optional"),
            r("GET", "users/my/self", _my_self, "user"),
            r("GET", "users/my/identity", _my_identity, "user"),
            r("GET", "users/{id}/userIdentity", _user_identity, "user"),
            r("GET", "proposals", _list_proposals, "optional"),
            r(
                "POST",
                "proposals",
                _create_proposal,
                "write",
                CreateProposalDto,
                guard=_proposal_creators_only,
            ),
            r("GET", "proposals/{pid}", _get_proposal, "optional"),
            r("POST", "datasets/isValid", _dataset_is_valid, "write", _create_dataset_model, True),
            r("GET", "datasets/findOne", _find_one_dataset, "optional"),
            r("GET", "datasets/count", _count_datasets, "optional"),
            r("GET", "datasets", _list_datasets, "optional"),
            r("POST", "datasets", _create_dataset, "write", _create_dataset_model, obsolete_errors=True),
            r("GET", "datasets/{pid}", _get_dataset, "optional"),
            r("PATCH", "datasets/{pid}", _patch_dataset, "write", _patch_dataset_model, obsolete_errors=True),
            r("GET", "datasets/{pid}/origdatablocks/count", _count_blocks, "optional"),
            r("GET", "datasets/{pid}/origdatablocks", _list_dataset_blocks, "optional"),
            r("POST", "datasets/{pid}/origdatablocks", _create_block, "write", CreateDatasetOrigDatablockDto),
            r("PATCH", "datasets/{pid}/origdatablocks/{oid}", _patch_block, "write", UpdateOrigDatablockDto),
            r("DELETE", "datasets/{pid}/origdatablocks/{oid}", _delete_block, "write"),
            r("GET", "origdatablocks", _list_blocks, "optional"),
            r("POST", "origdatablocks", _create_top_block, "write", CreateOrigDatablockDto),
            r("GET", "origdatablocks/{oid}", _get_block, "optional"),
            r("PATCH", "origdatablocks/{oid}", _patch_top_block, "write", PartialUpdateOrigDatablockDto),
            # v4
            r("POST", "datasets/isValid", _dataset_is_valid, "write", CreateDatasetDto, True, version="v4"),
            r("GET", "datasets", _list_datasets, "optional", version="v4"),
            r("POST", "datasets", _create_dataset, "write", CreateDatasetDto, version="v4"),
            r("GET", "datasets/{pid}", _get_dataset, "optional", version="v4"),
            r("PATCH", "datasets/{pid}", _patch_dataset, "write", PartialUpdateDatasetDto, version="v4"),
            r("GET", "origdatablocks", _list_blocks, "optional", version="v4"),
            r("POST", "origdatablocks", _create_top_block, "write", CreateOrigDatablockDto, version="v4"),
            r("GET", "origdatablocks/{oid}", _get_block, "optional", version="v4"),
            r(
                "PATCH",
                "origdatablocks/{oid}",
                _patch_top_block,
                "write",
                PartialUpdateOrigDatablockDto,
                version="v4",
            ),
        ]

    # ------------------------------------------------------------------------------ state helpers

    def _store_proposal(self, body: dict[str, Any], created_by: str) -> dict[str, Any]:
        if body["proposalId"] in self.proposals:
            raise ApiError(409, f"Proposal with proposalId {body['proposalId']} already exists")
        stamp = _iso(self.now())
        proposal = {
            "accessGroups": [],
            "isPublished": False,
            "type": "Default Proposal",
            "parentProposalId": None,
            **body,
            "createdBy": created_by,
            "updatedBy": created_by,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        for period in proposal.get("MeasurementPeriodList") or []:
            period.setdefault("_id", uuid.uuid4().hex[:24])
            period.setdefault("comment", "")
        _check_output(ProposalClass, proposal)
        self.proposals[proposal["proposalId"]] = proposal
        return proposal

    def _blocks(self, pid: str) -> list[dict[str, Any]]:
        """A dataset's blocks in the order they were created (the database's natural order)."""
        return sorted(
            (b for b in self.origdatablocks.values() if b["datasetId"] == pid), key=lambda b: b["_seq"]
        )

    def _recompute(self, pid: str, newest: int | None = None, first: int | None = None) -> None:
        """Set the dataset's totals from its blocks, as the top-level block routes do: v3 from the first 100
        blocks (the list's default limit), v4 from the 10 newest."""
        blocks = self._blocks(pid)
        if newest is not None:
            blocks = blocks[-newest:]
        if first is not None:
            blocks = blocks[:first]
        dataset = self._datasets[pid]
        dataset["size"] = sum(b["size"] for b in blocks)
        dataset["numberOfFiles"] = sum(len(b["dataFileList"]) for b in blocks)

    def _new_block(self, dataset: dict[str, Any], body: dict[str, Any], user: FakeUser) -> dict[str, Any]:
        stamp = _iso(self.now())
        block = {
            "_id": str(uuid.uuid4()),
            "datasetId": dataset["pid"],
            "ownerGroup": dataset["ownerGroup"],
            "accessGroups": list(dataset.get("accessGroups") or []),
            "isPublished": False,
            **({"instrumentGroup": dataset["instrumentGroup"]} if dataset.get("instrumentGroup") else {}),
            **{k: v for k, v in body.items() if k not in ("datasetId", "ownerGroup", "accessGroups")},
            "createdBy": user.username,
            "updatedBy": user.username,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        _check_output(OrigDatablock, block)
        block["_seq"] = next(self._seq)
        self.origdatablocks[block["_id"]] = block
        return block


def _in_groups(user: FakeUser | None, record: dict[str, Any]) -> bool:
    if user is None:
        return False
    groups = set(user.groups)
    return record.get("ownerGroup") in groups or bool(groups & set(record.get("accessGroups") or ()))


def _public_block(block: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in block.items() if k != "_seq"}


def _obsolete(dataset: dict[str, Any]) -> dict[str, Any]:
    """The v3 view of a stored dataset: the arrays plus their first item under the old single names."""
    out = copy.deepcopy(dataset)
    for single, plural in _OBSOLETE_IDS.items():
        values = out.get(plural)
        if isinstance(values, list) and values:
            out[single] = values[0]
    return out


def _dataset_for(ctx: _Ctx, write: bool = False) -> dict[str, Any]:
    dataset = ctx.fake._datasets.get(ctx.params["pid"])
    if dataset is None:
        raise ApiError(404, f"Dataset with pid {ctx.params['pid']} not found")
    fake = ctx.fake
    allowed = fake.can_write(ctx.user, dataset) if write else fake.can_read(ctx.user, dataset)
    if not allowed:
        raise _forbidden(f"Unauthorized access to dataset {ctx.params['pid']}")
    return dataset


def _show(ctx: _Ctx, dataset: dict[str, Any]) -> dict[str, Any]:
    if ctx.version == "v4":
        return copy.deepcopy(dataset)
    return _check_output(OutputDatasetObsoleteDto, _obsolete(dataset))


# ------------------------------------------------------------------------------------------- handlers


def _health(ctx: _Ctx) -> tuple[int, Any]:
    up = {"mongodb": {"status": "up"}}
    return 200, {"status": "ok", "info": up, "error": {}, "details": up}


def _login(strategy: str) -> Callable[[_Ctx], tuple[int, Any]]:
    def handler(ctx: _Ctx) -> tuple[int, Any]:
        fake = ctx.fake
        if strategy == "ldap" and not fake.ldap_enabled:
            raise ApiError(404, f"Cannot POST {ctx.path}")
        user = fake.users.get(ctx.body["username"])
        if (
            user is None
            or strategy not in user.strategies
            or not hmac.compare_digest(user.password.encode(), ctx.body["password"].encode())
        ):
            raise ApiError(401)
        token, created = fake._issue_token(user, strategy)
        return 201, _check_output(
            ReturnedAuthLoginDto,
            {
                "access_token": token,
                "id": token,
                "expires_in": fake.token_lifetime,
                "ttl": fake.token_lifetime,
                "created": _iso(created),
                "userId": user.id,
                "user": _returned_user(user, strategy),
            },
        )

    return handler


def _returned_user(user: FakeUser, strategy: str | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "_id": user.id,
        "username": user.username,
        "email": user.email,
        "authStrategy": strategy or "local",
        "emailVerified": True,
        "realm": "",
    }


def _whoami(ctx: _Ctx) -> tuple[int, Any]:
    user = ctx.user
    if user is None:
        return 200, None  # anonymous (no token, or one the server does not accept): an empty 200
    return 200, {
        "_id": user.id,
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "authStrategy": ctx.auth_strategy,
        "currentGroups": list(user.groups),
    }


def _logout(ctx: _Ctx) -> tuple[int, Any]:
    return 200, {"logout": "successful"}  # JWTs are stateless: the token stays valid, as on the real backend


def _my_self(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    return 200, _check_output(ReturnedUserDto, _returned_user(ctx.user, ctx.auth_strategy))


def _identity(user: FakeUser, strategy: str | None, now: float) -> dict[str, Any]:
    return _check_output(
        UserIdentity,
        {
            "authStrategy": strategy or "local",
            "created": _iso(now),
            "modified": _iso(now),
            "credentials": {},
            "externalId": user.username,
            "provider": strategy or "local",
            "userId": user.id,
            "profile": {
                "displayName": user.display_name or user.username,
                "email": user.email,
                "username": user.username,
                "id": user.id,
                "emails": [{"value": user.email}],
                "accessGroups": list(user.groups),
                "thumbnailPhoto": "",
            },
        },
    )


def _my_identity(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    return 200, _identity(ctx.user, ctx.auth_strategy, ctx.fake.now())


def _user_identity(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    if ctx.params["id"] != ctx.user.id:
        raise _forbidden()
    return 200, _identity(ctx.user, ctx.auth_strategy, ctx.fake.now())


def _list_proposals(ctx: _Ctx) -> tuple[int, Any]:
    fake = ctx.fake
    with fake.lock:
        everything = fake.may_create_proposals(ctx.user)  # admins and proposal groups read every proposal
        visible = [
            copy.deepcopy(p) for p in fake.proposals.values() if everything or fake.can_read(ctx.user, p)
        ]
    flt = _parse_filter(ctx.query.get("filters") or ctx.query.get("filter"))
    return 200, _apply_filter(visible, flt, default_limit=100)


def _get_proposal(ctx: _Ctx) -> tuple[int, Any]:
    fake = ctx.fake
    with fake.lock:
        proposal = fake.proposals.get(ctx.params["pid"])
        if proposal is None:
            raise ApiError(404, f"Proposal {ctx.params['pid']} not found")
        if not (fake.may_create_proposals(ctx.user) or fake.can_read(ctx.user, proposal)):
            raise _forbidden()
        return 200, copy.deepcopy(proposal)


def _proposal_creators_only(ctx: _Ctx) -> None:
    if not ctx.fake.may_create_proposals(ctx.user):
        raise _forbidden()


def _create_proposal(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None and ctx.model is not None
    with ctx.fake.lock:
        return 201, copy.deepcopy(ctx.fake._store_proposal(_dump(ctx.model), ctx.user.username))


_DATASET_MODELS: dict[str, type[BaseModel]] = {
    "raw": CreateRawDatasetObsoleteDto,
    "derived": CreateDerivedDatasetObsoleteDto,
}
_PATCH_MODELS: dict[str, type[BaseModel]] = {
    "raw": PartialUpdateRawDatasetObsoleteDto,
    "derived": PartialUpdateDerivedDatasetObsoleteDto,
}


def _create_dataset_model(fake: FakeSciCat, ctx: _Ctx) -> type[BaseModel]:
    body = ctx.raw_body
    kind = body.get("type") if isinstance(body, dict) else None
    if kind not in _DATASET_MODELS:
        raise ApiError(400, ["type must be one of the following values: raw, derived"])
    return _DATASET_MODELS[kind]


def _patch_dataset_model(fake: FakeSciCat, ctx: _Ctx) -> type[BaseModel]:
    with fake.lock:
        dataset = fake._datasets.get(ctx.params["pid"])
    if dataset is None:
        raise ApiError(404, f"Dataset with pid {ctx.params['pid']} not found")
    return _PATCH_MODELS[dataset["type"]]


def _dataset_is_valid(ctx: _Ctx) -> tuple[int, Any]:
    body = ctx.raw_body if isinstance(ctx.raw_body, dict) else {}
    if not ctx.fake.can_create_in(ctx.user, body.get("ownerGroup")):
        raise _forbidden("Unauthorized to create this dataset")
    # backend-next validates here without its whitelist options: unknown keys pass (POST /datasets refuses them),
    # and only the top-level rules' messages are joined into one string.
    problems = [p for p in ctx.problems if p.rule != "whitelistValidation" and len(p.loc) <= 1]
    if ctx.version == "v4":
        return 200, {"valid": not problems}
    if problems:
        return 200, {"valid": False, "error": "; ".join(p.message for p in problems)}
    return 200, {"valid": True}


def _current_schema(body: dict[str, Any]) -> dict[str, Any]:
    """A v3 body in the stored schema; v3 raw bodies get ``[null]`` for every id array they leave out (the
    backend's DTO instance has those properties, undefined)."""
    out = {k: v for k, v in body.items() if k not in _OBSOLETE_IDS}
    for single, plural in _OBSOLETE_IDS.items():
        if single == "principalInvestigator" or body.get("type", "raw") == "raw" or single in body:
            out[plural] = [body.get(single)]
    return out


def _lifecycle(now: float) -> dict[str, Any]:
    return {
        "archivable": True,
        "retrievable": False,
        "publishable": False,
        "dateOfDiskPurging": _iso(now),
        "archiveRetentionTime": _iso(now + 10 * 365 * 86400),
        "dateOfPublishing": _iso(now + 3 * 365 * 86400),
        "publishedOn": _iso(now),
        "isOnCentralDisk": True,
        "archiveStatusMessage": "datasetCreated",
        "retrieveStatusMessage": "",
        "archiveReturnMessage": {},
        "retrieveReturnMessage": {},
        "retrieveIntegrityCheck": False,
        "_id": uuid.uuid4().hex[:24],
    }


def _create_dataset(ctx: _Ctx) -> tuple[int, Any]:
    user, model, fake = ctx.user, ctx.model, ctx.fake
    assert user is not None and model is not None
    body = _dump(model)
    if not fake.can_create_in(user, body["ownerGroup"]):
        raise _forbidden("Unauthorized to create this dataset")
    with fake.lock:
        pid = body.get("pid") or f"{fake.pid_prefix}/{uuid.uuid4()}"
        if pid in fake._datasets:
            raise ApiError(409, f"A dataset with pid {pid} already exists!")
        now = fake.now()
        stamp = _iso(now)
        stored = body if ctx.version == "v4" else _current_schema(body)
        dataset = {
            "accessGroups": [],
            "size": 0,
            "packedSize": 0,
            "numberOfFiles": 0,
            "numberOfFilesArchived": 0,
            "isPublished": False,
            "keywords": [],
            "sharedWith": [],
            "techniques": [],
            "relationships": [],
            "scientificMetadata": {},
            "datasetlifecycle": _lifecycle(now),
            **stored,
            "version": ctx.version,
            "pid": pid,
            "createdBy": user.username,
            "updatedBy": user.username,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        dataset["scientificMetadata"] = _with_si(dataset["scientificMetadata"])
        fake._datasets[pid] = dataset
        return 201, _show(ctx, dataset)


def _visible_datasets(ctx: _Ctx) -> list[dict[str, Any]]:
    fake = ctx.fake
    with fake.lock:
        return [copy.deepcopy(d) for d in fake._datasets.values() if fake.can_read(ctx.user, d)]


def _dataset_filter(ctx: _Ctx) -> dict[str, Any]:
    flt = _parse_filter(ctx.query.get("filter"))
    if ctx.version == "v3":  # backend-next's FilterPipe (dates!) and the obsolete field names
        flt["where"] = _v3_where(_where_pipe(flt.get("where") or {}))
    return flt


def _list_datasets(ctx: _Ctx) -> tuple[int, Any]:
    found = _apply_filter(
        _visible_datasets(ctx), _dataset_filter(ctx), default_limit=100, v4=ctx.version == "v4"
    )
    return 200, [_show(ctx, d) for d in found]


def _find_one_dataset(ctx: _Ctx) -> tuple[int, Any]:
    found = _apply_filter(_visible_datasets(ctx), _dataset_filter(ctx), default_limit=1)
    return 200, _show(ctx, found[0]) if found else None


def _count_datasets(ctx: _Ctx) -> tuple[int, Any]:
    flt = _dataset_filter(ctx)
    return 200, {"count": len([d for d in _visible_datasets(ctx) if _matches(d, flt.get("where") or {})])}


def _get_dataset(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        return 200, _show(ctx, _dataset_for(ctx))


def _patch_dataset(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    fake = ctx.fake
    with fake.lock:
        dataset = fake._datasets.get(ctx.params["pid"])
        if dataset is None:
            raise ApiError(404, f"Dataset with pid {ctx.params['pid']} not found")
        if not fake.can_write(ctx.user, dataset):
            raise _forbidden("Unauthorized to update this dataset")
        if "ownerGroup" in ctx.body and not fake.can_create_in(ctx.user, ctx.body["ownerGroup"]):
            raise _forbidden()
        changes = dict(ctx.body)
        if ctx.version == "v3":
            changes = {k: v for k, v in changes.items() if k not in _OBSOLETE_IDS}
            for single, plural in _OBSOLETE_IDS.items():
                if single in ctx.body:
                    changes[plural] = [ctx.body[single]]
        else:  # the v4 update DTO's property defaults: what is not sent is reset
            for key in ("size", "packedSize", "numberOfFiles"):
                changes.setdefault(key, 0)
        if "scientificMetadata" in changes:
            changes["scientificMetadata"] = _with_si(changes["scientificMetadata"])
        updated = {**dataset, **changes, "updatedBy": ctx.user.username, "updatedAt": _iso(fake.now())}
        if ctx.version == "v3":
            try:  # e.g. a null sent for a field the stored dataset must keep
                _check_output(OutputDatasetObsoleteDto, _obsolete(updated))
            except ValidationError as exc:
                raise ApiError(
                    400, [f"{'.'.join(map(str, e['loc']))} {e['msg']}" for e in exc.errors()]
                ) from None
        dataset.clear()
        dataset.update(updated)
        return 200, _show(ctx, dataset)


def _count_blocks(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        _dataset_for(ctx)
        return 200, {"count": len(ctx.fake._blocks(ctx.params["pid"]))}


def _list_dataset_blocks(ctx: _Ctx) -> tuple[int, Any]:
    """At most 100 blocks, no filter: the backend calls its list with no limits."""
    with ctx.fake.lock:
        _dataset_for(ctx)
        return 200, [_public_block(b) for b in ctx.fake._blocks(ctx.params["pid"])[:V3_BLOCK_LIMIT]]


def _may_add_blocks(ctx: _Ctx, dataset: dict[str, Any]) -> None:
    fake = ctx.fake
    if not (fake.is_admin(ctx.user) or fake.is_privileged(ctx.user) or fake.can_write(ctx.user, dataset)):
        raise _forbidden("Unauthorized access")


def _create_block(ctx: _Ctx) -> tuple[int, Any]:
    """v3 ``POST /datasets/{pid}/origdatablocks``: the totals are updated by arithmetic."""
    assert ctx.user is not None and ctx.model is not None
    fake = ctx.fake
    with fake.lock:
        dataset = fake._datasets.get(ctx.params["pid"])
        if dataset is None:
            raise ApiError(404, f"Dataset with pid {ctx.params['pid']} not found")
        _may_add_blocks(ctx, dataset)
        block = fake._new_block(dataset, _dump(ctx.model), ctx.user)
        dataset["size"] = dataset.get("size", 0) + block["size"]
        dataset["numberOfFiles"] = dataset.get("numberOfFiles", 0) + len(block["dataFileList"])
        return 201, _public_block(block)


def _block_for(ctx: _Ctx, write: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    fake = ctx.fake
    block = fake.origdatablocks.get(ctx.params["oid"])
    if block is None or ("pid" in ctx.params and block["datasetId"] != ctx.params["pid"]):
        raise ApiError(404, f"OrigDatablock {ctx.params['oid']} not found")
    dataset = fake._datasets[block["datasetId"]]
    allowed = fake.can_write(ctx.user, dataset) if write else fake.can_read(ctx.user, dataset)
    if not allowed:
        raise _forbidden("Unauthorized access")
    return block, dataset


def _patch_block(ctx: _Ctx) -> tuple[int, Any]:
    """v3 ``PATCH /datasets/{pid}/origdatablocks/{oid}``: totals ``- old + new``."""
    assert ctx.user is not None
    with ctx.fake.lock:
        block, dataset = _block_for(ctx, write=True)
        old_size, old_files = block["size"], len(block["dataFileList"])
        block.update(ctx.body, updatedBy=ctx.user.username, updatedAt=_iso(ctx.fake.now()))
        _check_output(OrigDatablock, _public_block(block))
        dataset["size"] = dataset.get("size", 0) - old_size + block["size"]
        dataset["numberOfFiles"] = dataset.get("numberOfFiles", 0) - old_files + len(block["dataFileList"])
        return 200, _public_block(block)


def _delete_block(ctx: _Ctx) -> tuple[int, Any]:
    fake = ctx.fake
    with fake.lock:
        if ctx.user is None or not (fake.delete_groups & set(ctx.user.groups)):
            raise _forbidden()
        block, dataset = _block_for(ctx, write=True)
        del fake.origdatablocks[block["_id"]]
        dataset["size"] = dataset.get("size", 0) - block["size"]
        dataset["numberOfFiles"] = dataset.get("numberOfFiles", 0) - len(block["dataFileList"])
        return 200, _public_block(block)


def _list_blocks(ctx: _Ctx) -> tuple[int, Any]:
    """``GET /origdatablocks?filter=``: plain JSON (no date conversion); v3 default limit 100, v4 the 10 newest."""
    fake = ctx.fake
    with fake.lock:
        visible = [
            _public_block(b)
            for b in sorted(fake.origdatablocks.values(), key=lambda b: b["_seq"])
            if fake.can_read(ctx.user, fake._datasets.get(b["datasetId"]) or b)
        ]
    flt = _parse_filter(ctx.query.get("filter"))
    v4 = ctx.version == "v4"
    return 200, _apply_filter(visible, flt, default_limit=V4_DEFAULT_LIMIT if v4 else V3_BLOCK_LIMIT, v4=v4)


def _get_block(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        block, _ = _block_for(ctx)
        return 200, _public_block(block)


def _totals_after_top_level_write(ctx: _Ctx, pid: str) -> None:
    if ctx.version == "v4":
        ctx.fake._recompute(pid, newest=V4_DEFAULT_LIMIT)
    else:
        ctx.fake._recompute(pid, first=V3_BLOCK_LIMIT)


def _create_top_block(ctx: _Ctx) -> tuple[int, Any]:
    """``POST /origdatablocks`` (v3 and v4): totals recomputed from 100 (v3) or the 10 newest (v4) blocks."""
    assert ctx.user is not None and ctx.model is not None
    fake = ctx.fake
    body = _dump(ctx.model)
    with fake.lock:
        dataset = fake._datasets.get(body["datasetId"])
        if dataset is None:
            raise ApiError(404, f"Dataset with pid {body['datasetId']} not found")
        _may_add_blocks(ctx, dataset)
        block = fake._new_block(dataset, body, ctx.user)
        _totals_after_top_level_write(ctx, dataset["pid"])
        return 201, _public_block(block)


def _patch_top_block(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    with ctx.fake.lock:
        block, dataset = _block_for(ctx, write=True)
        block.update(ctx.body, updatedBy=ctx.user.username, updatedAt=_iso(ctx.fake.now()))
        _check_output(OrigDatablock, _public_block(block))
        _totals_after_top_level_write(ctx, dataset["pid"])
        return 200, _public_block(block)


# ---------------------------------------------------------------------------------------- HTTP layer

_HTML_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeSciCat"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        fake: FakeSciCat = self.server.fake  # type: ignore[attr-defined]
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        target = self.path
        path, _, qs = target.partition("?")
        query = {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        down = fake._take_down_mode()
        if down is not None:
            try:
                body: Any = json.loads(raw) if raw else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = raw.decode("utf-8", "replace")
            if down == "drop":
                fake._record(RecordedRequest(self.command, path, query, body, None, headers=headers))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            fake._record(RecordedRequest(self.command, path, query, body, 503, headers=headers))
            self._send(503, _HTML_503, "text/html")
            return
        try:
            status, payload, body, username = fake.dispatch(self.command, target, headers, raw)
        except Exception as exc:  # a bug in the fake: answer like Nest does, and keep it visible in the log
            status, payload, body, username = (
                500,
                {"statusCode": 500, "message": f"Internal server error: {type(exc).__name__}: {exc}"},
                None,
                None,
            )
        fake._record(RecordedRequest(self.command, path, query, body, status, username, headers))
        data = b"" if payload is None else json.dumps(payload).encode()
        self._send(status, data, "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
