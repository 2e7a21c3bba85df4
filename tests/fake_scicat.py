"""A fake SciCat backend (``/api/v3``) for tests: a real HTTP server on 127.0.0.1 in a background thread.

It behaves like SciCat backend-next where DataUploader can tell the difference (status codes, error bodies, PIDs
with a ``/``, origdatablocks updating the dataset's ``size``/``numberOfFiles``), and it is *stricter* than the real
server in one way on purpose: every request body must pass the published pydantic model of ``scicat-sdk-py``
for its route **and** may not carry a key that model does not declare (the SDK's ``from_dict`` silently drops
such keys; the real server's ``forbidNonWhitelisted`` validation answers 400). Both checks live in one place,
:func:`check_body`, which the dispatcher runs for every route that takes a body before the route's handler is
called; handlers only ever see the validated, re-serialised body.

Usage::

    with FakeSciCat([FakeUser("alice", "pw", "alice@example.org", ("p1234",))]) as sc:
        requests.post(f"{sc.url}/auth/login", json={"username": "alice", "password": "pw"})

Test hooks: :attr:`FakeSciCat.requests` (every request: method, path, body, status), :meth:`FakeSciCat.set_down`
(503 or dropped connections, for a while or for N requests), :meth:`FakeSciCat.advance_clock` and
:meth:`FakeSciCat.revoke_all_tokens` (expire sessions), and the stores :attr:`datasets`, :attr:`proposals`,
:attr:`origdatablocks`.

Requires ``scicat-sdk-py`` (the version in :data:`SDK_PIN`, whose models match the backend's OpenAPI document).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
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
    CreateDatasetOrigDatablockDto,
    CreateDerivedDatasetObsoleteDto,
    CreateProposalDto,
    CreateRawDatasetObsoleteDto,
    CredentialsDto,
    IsValidResponse,
    OrigDatablock,
    OutputDatasetObsoleteDto,
    PartialUpdateDerivedDatasetObsoleteDto,
    PartialUpdateRawDatasetObsoleteDto,
    ProposalClass,
    ReturnedAuthLoginDto,
    ReturnedUserDto,
    UpdateOrigDatablockDto,
    UserIdentity,
)

SDK_PIN = "scicat-sdk-py==5.1.1"
API_PREFIX = "/api/v3"
DEFAULT_PID_PREFIX = "20.500.12269"

__all__ = [
    "API_PREFIX",
    "SDK_PIN",
    "SDK_VERSION",
    "ApiError",
    "FakeSciCat",
    "FakeUser",
    "RecordedRequest",
    "check_body",
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

    def __init__(self, status: int, message: str | list[str] | None = None) -> None:
        reason = self.REASONS.get(status, "Error")
        super().__init__(f"{status} {message or reason}")
        self.status = status
        if status == 401 and message is None:
            self.payload: dict[str, Any] = {"message": "Unauthorized", "statusCode": 401}
        else:
            self.payload = {
                "message": message if message is not None else reason,
                "error": reason,
                "statusCode": status,
            }


def _forbidden(message: str = "Forbidden resource") -> ApiError:
    return ApiError(403, message)


# ------------------------------------------------------------------------------------ body validation


def _unknown_keys(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of ``data`` (recursively, through nested SDK models) that ``model`` does not declare.

    Only the JSON names (aliases) count as declared: the SDK models also accept their Python field names
    (``populate_by_name``), which the real server would refuse.
    """
    declared = {(f.alias or name): f for name, f in model.model_fields.items()}
    errors: list[str] = []
    for key, value in data.items():
        info = declared.get(key)
        if info is None:
            errors.append(f"{prefix}property {key} should not exist")
        else:
            errors += _unknown_keys_in(info.annotation, value, f"{prefix}{key}.")
    return errors


def _unknown_keys_in(annotation: Any, value: Any, prefix: str) -> list[str]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unknown_keys_in(typing.get_args(annotation)[0], value, prefix)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _unknown_keys(annotation, value, prefix) if isinstance(value, dict) else []
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unknown_keys_in(candidates[0], value, prefix) if len(candidates) == 1 else []
    if origin is list and isinstance(value, list):
        (item_type,) = typing.get_args(annotation) or (Any,)
        errors: list[str] = []
        for i, item in enumerate(value):
            errors += _unknown_keys_in(item_type, item, f"{prefix}{i}.")
        return errors
    return []  # scalars and free-form dicts (scientificMetadata, ...)


def check_body(model: type[BaseModel], body: Any) -> tuple[BaseModel | None, list[str]]:
    """THE validation gate: ``body`` against SDK ``model`` plus the unknown-key check.

    Returns ``(instance, [])`` when valid, ``(None, messages)`` otherwise; messages are class-validator-like
    strings (``"property foo should not exist"``, ``"dataFileList.0.size Input should be a valid number"``).
    """
    if not isinstance(body, dict):
        return None, [f"request body must be a JSON object (validated as {model.__name__})"]
    errors = _unknown_keys(model, body)
    instance: BaseModel | None = None
    try:
        instance = model.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"])
            errors.append(f"{loc} {err['msg']}" if loc else err["msg"])
    if errors:
        return None, errors
    return instance, []


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


# ----------------------------------------------------------------------------------------- data types


@dataclass
class FakeUser:
    username: str
    password: str
    email: str
    groups: tuple[str, ...] = ()
    ingestor: bool = False  # may create proposals
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
    segments: tuple[str, ...]  # after /api/v3; "{name}" captures one (percent-decoded) segment
    handler: Callable[[_Ctx], tuple[int, Any]]
    auth: str  # "none" | "optional" | "write" (anonymous -> 403) | "user" (anonymous -> 401)
    body: type[BaseModel] | Callable[[FakeSciCat, _Ctx], type[BaseModel]] | None = None
    report_invalid: bool = False  # hand validation errors to the handler instead of answering 400
    guard: Callable[[_Ctx], None] | None = None  # role check that runs before validation (Nest guards do)


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
    body_errors: list[str] = field(default_factory=list)  # only for report_invalid routes


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- filters


def _get_path(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
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
            ok = any(isinstance(v, str) and re.search(str(arg), v, flags) for v in values)
        elif op == "$options":
            ok = True
        else:
            raise ApiError(400, [f"fake SciCat: unsupported filter operator {op!r}"])
        if not ok:
            return False
    return True


def _apply_filter(records: Iterable[dict[str, Any]], raw_filter: str | None) -> list[dict[str, Any]]:
    """Loopback-style ``filter``: ``where`` (equality, $in/inq, $regex, $and/$or, dotted keys), ``limits``
    (``limit``, ``skip``, ``order`` as ``"field:asc|desc"``) and ``fields``."""
    result = list(records)
    if not raw_filter:
        return result
    try:
        flt = json.loads(raw_filter)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"Invalid filter: {exc}") from None
    if not isinstance(flt, dict):
        raise ApiError(400, "Invalid filter: not an object")
    where = flt.get("where") or {}
    if not isinstance(where, dict):
        raise ApiError(400, "Invalid filter: where is not an object")
    result = [r for r in result if _matches(r, where)]
    limits: dict[str, Any] = flt["limits"] if isinstance(flt.get("limits"), dict) else flt
    order = limits.get("order")
    for spec in reversed([order] if isinstance(order, str) else (order or [])):
        name, _, direction = str(spec).replace(" ", ":").partition(":")

        def sort_key(record: dict[str, Any], name: str = name) -> tuple[bool, str]:
            value = _get_path(record, name)
            return value is None, str(value)

        result.sort(key=sort_key, reverse=direction.lower() == "desc")
    skip = int(limits.get("skip") or 0)
    limit = limits.get("limit")
    result = result[skip:] if limit in (None, 0) else result[skip : skip + int(limit)]
    fields = flt.get("fields")
    if isinstance(fields, list) and fields:
        result = [{k: r[k] for k in fields if k in r} for r in result]
    return result


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
    ) -> None:
        self.users: dict[str, FakeUser] = {u.username: u for u in users}
        self.token_lifetime = token_lifetime
        self.ldap_enabled = ldap_enabled
        self.pid_prefix = pid_prefix
        self.max_body_bytes = max_body_bytes
        self.host = host
        self.datasets: dict[str, dict[str, Any]] = {}  # pid -> dataset
        self.proposals: dict[str, dict[str, Any]] = {}  # proposalId -> proposal
        self.origdatablocks: dict[str, dict[str, Any]] = {}  # _id -> block
        self.lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self._clock_offset = 0.0
        self._requests: list[RecordedRequest] = []
        self._down_mode: str | None = None
        self._down_until: float | None = None
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

    # -------------------------------------------------------------------------------------- test hooks

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
        """Every token issued so far becomes invalid (401), as after a change of the server's JWT secret."""
        with self.lock:
            self._secret = secrets.token_bytes(32)

    expire_all_tokens = revoke_all_tokens

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock (token expiry, timestamps) forward without sleeping."""
        with self.lock:
            self._clock_offset += seconds

    def now(self) -> float:
        return time.time() + self._clock_offset

    def set_down(self, mode: str = "503", *, seconds: float | None = None, count: int | None = None) -> None:
        """Catalogue down: ``"503"`` answers 503 (an HTML proxy page), ``"drop"`` closes the connection
        without an answer. For ``seconds`` (wall clock) and/or the next ``count`` requests; neither = until
        :meth:`set_up`."""
        if mode not in ("503", "drop"):
            raise ValueError("mode must be '503' or 'drop'")
        with self.lock:
            self._down_mode = mode
            self._down_until = None if seconds is None else time.monotonic() + seconds
            self._down_count = count

    def set_up(self) -> None:
        with self.lock:
            self._down_mode = self._down_until = self._down_count = None

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
            return [copy.deepcopy(b) for b in self.origdatablocks.values() if b["datasetId"] == pid]

    # ----------------------------------------------------------------------------------- internals

    def _take_down_mode(self) -> str | None:
        with self.lock:
            if self._down_mode is None:
                return None
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
        """(user, strategy) for a valid token, (None, None) for none; ApiError(401) for a bad/expired one."""
        if not header:
            return None, None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401)
        with self.lock:
            secret = self._secret
        try:
            payload = read_jwt(token.strip(), secret)
        except ValueError:
            raise ApiError(401) from None
        exp = payload.get("exp")
        if not isinstance(exp, (int, float)) or self.now() >= exp:
            raise ApiError(401)
        user = self.users.get(str(payload.get("username")))
        if user is None or user.id != payload.get("_id"):
            raise ApiError(401)
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
            ctx = _Ctx(self, method, parts.path, params, query, raw_body=body)
            if route.auth != "none":
                ctx.user, ctx.auth_strategy = self._authenticate(headers.get("authorization"))
                username = ctx.user.username if ctx.user else None
                if ctx.user is None and route.auth == "write":
                    raise _forbidden()
                if ctx.user is None and route.auth == "user":
                    raise ApiError(401)
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
            instance, errors = check_body(model, {} if body is None else body)
        except ApiError as err:  # the model selector refused (e.g. unknown dataset type)
            if not (route.report_invalid and err.status == 400):
                raise
            message = err.payload["message"]
            instance, errors = None, message if isinstance(message, list) else [message]
        if instance is None:
            if not route.report_invalid:
                raise ApiError(400, errors)
            ctx.body_errors = errors
            return
        ctx.model = instance
        ctx.body = _dump(instance, only_sent=True)

    def _route(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
            raw_segments = [s for s in path[len(API_PREFIX) :].split("/") if s != ""]
            segments = [unquote(s) for s in raw_segments]
            for route in self._routes:
                if route.method != method or len(route.segments) != len(segments):
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
        ) -> _Route:
            segments = tuple(s for s in path.split("/") if s)
            return _Route(method, segments, handler, auth, body, report_invalid, guard)

        # Literal routes before parametrised ones of the same shape.
        return [
            r("POST", "auth/login", _login("local"), "none", CredentialsDto),
            r("POST", "users/login", _login("local"), "none", CredentialsDto),
            r("POST", "auth/ldap", _login("ldap"), "none", CredentialsDto),
            r("GET", "auth/whoami", _whoami, "user"),
            r("POST", "auth/logout", _logout, "user"),
            r("GET", "users/my/self", _my_self, "user"),
            r("GET", "users/my/identity", _my_identity, "user"),
            r("GET", "users/{id}/userIdentity", _user_identity, "user"),
            r("GET", "proposals", _list_proposals, "optional"),
            r("POST", "proposals", _create_proposal, "write", CreateProposalDto, guard=_ingestors_only),
            r("GET", "proposals/{pid}", _get_proposal, "optional"),
            r("POST", "datasets/isValid", _dataset_is_valid, "write", _create_dataset_model, True),
            r("GET", "datasets/findOne", _find_one_dataset, "optional"),
            r("GET", "datasets", _list_datasets, "optional"),
            r("POST", "datasets", _create_dataset, "write", _create_dataset_model),
            r("GET", "datasets/{pid}", _get_dataset, "optional"),
            r("PATCH", "datasets/{pid}", _patch_dataset, "write", _patch_dataset_model),
            r("GET", "datasets/{pid}/origdatablocks", _list_blocks, "optional"),
            r("POST", "datasets/{pid}/origdatablocks", _create_block, "write", CreateDatasetOrigDatablockDto),
            r("PATCH", "datasets/{pid}/origdatablocks/{oid}", _patch_block, "write", UpdateOrigDatablockDto),
            r("DELETE", "datasets/{pid}/origdatablocks/{oid}", _delete_block, "write"),
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

    def _recompute(self, pid: str) -> None:
        blocks = [b for b in self.origdatablocks.values() if b["datasetId"] == pid]
        dataset = self.datasets[pid]
        dataset["size"] = sum(b["size"] for b in blocks)
        dataset["numberOfFiles"] = sum(len(b["dataFileList"]) for b in blocks)


# --------------------------------------------------------------------------------------- permissions


def _in_groups(user: FakeUser | None, record: dict[str, Any]) -> bool:
    if user is None:
        return False
    groups = set(user.groups)
    return record.get("ownerGroup") in groups or bool(groups & set(record.get("accessGroups") or ()))


def _can_read(user: FakeUser | None, record: dict[str, Any]) -> bool:
    if record.get("isPublished") or _in_groups(user, record):
        return True
    return user is not None and bool({user.username, user.email} & set(record.get("sharedWith") or ()))


def _can_write(user: FakeUser | None, record: dict[str, Any]) -> bool:
    return user is not None and record.get("ownerGroup") in user.groups


def _dataset_for(ctx: _Ctx, write: bool = False) -> dict[str, Any]:
    dataset = ctx.fake.datasets.get(ctx.params["pid"])
    if dataset is None:
        raise ApiError(404, f"Dataset with pid {ctx.params['pid']} not found")
    if not (_can_write if write else _can_read)(ctx.user, dataset):
        raise _forbidden(f"Unauthorized access to dataset {ctx.params['pid']}")
    return dataset


# ------------------------------------------------------------------------------------------- handlers


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
    assert user is not None
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
    with ctx.fake.lock:
        visible = [copy.deepcopy(p) for p in ctx.fake.proposals.values() if _can_read(ctx.user, p)]
    return 200, _apply_filter(visible, ctx.query.get("filters") or ctx.query.get("filter"))


def _get_proposal(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        proposal = ctx.fake.proposals.get(ctx.params["pid"])
        if proposal is None:
            raise ApiError(404, f"Proposal {ctx.params['pid']} not found")
        if not _can_read(ctx.user, proposal):
            raise _forbidden()
        return 200, copy.deepcopy(proposal)


def _ingestors_only(ctx: _Ctx) -> None:
    if ctx.user is None or not ctx.user.ingestor:
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
        dataset = fake.datasets.get(ctx.params["pid"])
    if dataset is None:
        raise ApiError(404, f"Dataset with pid {ctx.params['pid']} not found")
    return _PATCH_MODELS[dataset["type"]]


def _dataset_is_valid(ctx: _Ctx) -> tuple[int, Any]:
    answer = {"valid": not ctx.body_errors, "reason": ctx.body_errors}
    return 200, _check_output(IsValidResponse, answer)


def _create_dataset(ctx: _Ctx) -> tuple[int, Any]:
    user, model, fake = ctx.user, ctx.model, ctx.fake
    assert user is not None and model is not None
    body = _dump(model)
    if body["ownerGroup"] not in user.groups:
        raise _forbidden("Unauthorized to create this dataset.")
    with fake.lock:
        pid = body.get("pid") or f"{fake.pid_prefix}/{uuid.uuid4()}"
        if pid in fake.datasets:
            raise ApiError(409, f"Dataset with pid {pid} already exists")
        stamp = _iso(fake.now())
        dataset = {
            "accessGroups": [],
            "version": "v3",
            **body,
            "pid": pid,
            "createdBy": user.username,
            "updatedBy": user.username,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        _check_output(OutputDatasetObsoleteDto, dataset)
        fake.datasets[pid] = dataset
        return 201, copy.deepcopy(dataset)


def _list_datasets(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        visible = [copy.deepcopy(d) for d in ctx.fake.datasets.values() if _can_read(ctx.user, d)]
    return 200, _apply_filter(visible, ctx.query.get("filter"))


def _find_one_dataset(ctx: _Ctx) -> tuple[int, Any]:
    status, found = _list_datasets(ctx)
    return status, found[0] if found else None


def _get_dataset(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        return 200, copy.deepcopy(_dataset_for(ctx))


def _patch_dataset(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    with ctx.fake.lock:
        dataset = _dataset_for(ctx, write=True)
        if "ownerGroup" in ctx.body and ctx.body["ownerGroup"] not in ctx.user.groups:
            raise _forbidden()
        updated = {**dataset, **ctx.body, "updatedBy": ctx.user.username, "updatedAt": _iso(ctx.fake.now())}
        try:  # e.g. a null sent for a field the stored dataset must keep
            _check_output(OutputDatasetObsoleteDto, updated)
        except ValidationError as exc:
            raise ApiError(
                400, [f"{'.'.join(map(str, e['loc']))} {e['msg']}" for e in exc.errors()]
            ) from None
        dataset.clear()
        dataset.update(updated)
        return 200, copy.deepcopy(dataset)


def _list_blocks(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        _dataset_for(ctx)
        return 200, ctx.fake.blocks_of(ctx.params["pid"])


def _create_block(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None and ctx.model is not None
    fake = ctx.fake
    with fake.lock:
        dataset = _dataset_for(ctx, write=True)
        stamp = _iso(fake.now())
        block = {
            "_id": str(uuid.uuid4()),
            "datasetId": dataset["pid"],
            "ownerGroup": dataset["ownerGroup"],
            "accessGroups": list(dataset.get("accessGroups") or []),
            "isPublished": False,
            **({"instrumentGroup": dataset["instrumentGroup"]} if dataset.get("instrumentGroup") else {}),
            **_dump(ctx.model),
            "createdBy": ctx.user.username,
            "updatedBy": ctx.user.username,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        _check_output(OrigDatablock, block)
        fake.origdatablocks[block["_id"]] = block
        fake._recompute(dataset["pid"])
        return 201, copy.deepcopy(block)


def _block_for(ctx: _Ctx) -> dict[str, Any]:
    block = ctx.fake.origdatablocks.get(ctx.params["oid"])
    if block is None or block["datasetId"] != ctx.params["pid"]:
        raise ApiError(404, f"OrigDatablock {ctx.params['oid']} not found")
    return block


def _patch_block(ctx: _Ctx) -> tuple[int, Any]:
    assert ctx.user is not None
    with ctx.fake.lock:
        _dataset_for(ctx, write=True)
        block = _block_for(ctx)
        block.update(ctx.body, updatedBy=ctx.user.username, updatedAt=_iso(ctx.fake.now()))
        _check_output(OrigDatablock, block)
        ctx.fake._recompute(ctx.params["pid"])
        return 200, copy.deepcopy(block)


def _delete_block(ctx: _Ctx) -> tuple[int, Any]:
    with ctx.fake.lock:
        _dataset_for(ctx, write=True)
        block = _block_for(ctx)
        del ctx.fake.origdatablocks[block["_id"]]
        ctx.fake._recompute(ctx.params["pid"])
        return 200, copy.deepcopy(block)


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
