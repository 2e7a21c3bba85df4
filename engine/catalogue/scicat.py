"""The SciCat adapter: proposals are investigations, raw datasets are datasets, origdatablocks list the files.

It speaks SciCat backend-next's REST API with ``requests`` and maps every answer to the typed errors of
:mod:`engine.catalogue.base`, so the pipeline never sees HTTP: a rejected login → :class:`AuthError` (log in
again), 403 → :class:`NotPermitted`, 400 → :class:`InvalidMetadata` (with SciCat's reasons as readable lines),
409 → :class:`Conflict`, 5xx / timeouts / refused connections → :class:`TransientError` (retry later).

What the real backend (backend-next, checked against commit 4055c96) does that shapes this adapter:

- A token it no longer accepts (expired, or its JWT secret changed) is not refused with 401: the caller becomes
  *anonymous*. Writes answer 403 "Forbidden resource", reads answer as for the public, ``/auth/whoami`` answers 200
  with an empty body; only ``/users/my/identity`` answers 401. So every 403 is checked against the identity
  route before it is reported as "not permitted", and a rejected token makes every later call read the token
  store again, so a ``datauploader login`` in another shell revives a running sync.
- ``GET /datasets/{pid}/origdatablocks`` returns at most 100 blocks and takes no filter; ``GET /origdatablocks``
  with a ``filter`` pages through all of them. The files a dataset lists are read that way, once per run, into
  an index (path → block, checksum) that every later registration keeps up to date, so a file is listed exactly
  once with its current checksum whatever happened before (a lost answer, a lost journal, a changed file).
- ``GET /datasets`` runs every string value of a ``where`` through JavaScript's ``new Date()``: "scan-001", "run
  12", "2024-001" become dates and match nothing. Values inside arrays are left alone, so every lookup uses
  ``{"$in": [value]}``.
- A 400 from ``POST /datasets`` carries ``message`` as a JSON-encoded list of class-validator errors, and
  ``isValid`` answers ``{"valid": false, "error": "a; b"}``; both are turned into readable lines.
- ``api = "v4"``: ``PATCH /api/v4/datasets/{pid}`` resets ``size``, ``packedSize`` and ``numberOfFiles`` to 0 when
  they are not sent, and ``POST``/``PATCH /api/v4/origdatablocks`` recompute the totals from the 10 newest blocks
  only; every v4 write therefore sends the true totals.
- An account in ``CREATE_DATASET_PRIVILEGED_GROUPS`` may create datasets for any group but update only those of
  its own groups: what it may not change is left as it is, with one warning, and never fails the upload.

Sessions are JWTs without a refresh token (3600 s by default), kept by :class:`engine.credentials.TokenStore`.
PIDs contain ``/`` and are URL-encoded in paths.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import requests

from engine import jwt
from engine.catalogue.base import (
    AuthError,
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
from engine.catalogue.scicat_reasons import (
    answer_reasons,
    listing,
    message_fields,
    unreachable_reason,
)
from engine.config import SciCatSettings, is_windows_folder, split_remote
from engine.credentials import TokenStore
from engine.errors import Action

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 5.0  # a token this close to its exp is treated as expired (clock skew, request time)
OFFLINE_SESSION_TTL = 60.0  # how long a session read from the token alone (server away) is reused
CONNECT_TIMEOUT = 5.0  # seconds to establish a connection; reads wait `timeout` from the profile
PROBE_TIMEOUT = 15.0  # at most this long for the health check before a login asks for a password
STORE_RECHECK = 30.0  # a running process looks for a newer login in the token store at most this often
INDEX_IDLE = 300.0  # an index unused this long is read from SciCat again (people edit datasets too)
BLOCK_PAGE_FILES = 20_000  # about this many file entries per page when reading a dataset's origdatablocks
DATA_FILE_KEYS = ("path", "size", "time", "chk", "uid", "gid", "perm", "type")  # what a block entry may hold


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _same_time(value: Any, ts: float) -> bool:
    """Whether SciCat's ISO time is ``ts`` at millisecond precision (what :func:`_iso` sends)."""
    got = _epoch(value)
    return got is not None and abs(got - ts) < 0.001


def _expired(token: str, now: float | None = None) -> bool:
    exp = jwt.expiry(token)
    return exp is not None and exp <= (time.time() if now is None else now) + EXPIRY_MARGIN


def _json(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _chunks(items: Sequence[FileEntry], n: int) -> Iterator[Sequence[FileEntry]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def storage_path(fs: str) -> str:
    """The path part of an rclone path, without remote name, connection parameters or credentials:
    ``/data/x`` → ``/data/x``; ``remote:bucket/x`` → ``/bucket/x``; ``:webdav,url='http://h/':base/x`` →
    ``/base/x``. It is what an archive system can make sense of; the connection string is not."""
    remote, path = split_remote(fs)
    if not remote or is_windows_folder(path):
        return path
    return "/" + path.lstrip("/")


def _same_value(have: Any, want: MetaValue) -> bool:
    """A metadata value already holds what we would write. A quantity is compared by value and unit only:
    SciCat adds ``valueSI``/``unitSI`` itself."""
    if isinstance(want, dict):
        return (
            isinstance(have, dict)
            and have.get("value") == want.get("value")
            and have.get("unit") == want.get("unit")
        )
    return type(have) is type(want) and bool(have == want)


@dataclass
class _Index:
    """What a dataset's origdatablocks list: path → (block id, checksum, size), and the true totals."""

    entries: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    size: int = 0
    files: int = 0
    used: float = field(default_factory=time.monotonic)

    def add(self, block_id: str, files: Sequence[dict[str, Any]], block_size: int) -> None:
        for f in files:
            path = str(f.get("path"))
            self.entries[path] = (block_id, str(f.get("chk") or ""), int(f.get("size") or 0))
        self.size += block_size
        self.files += len(files)


class SciCatCatalogue:
    name = "scicat"
    needs_login = True

    def __init__(self, settings: SciCatSettings, store: TokenStore, profile: str = "default") -> None:
        self.settings = settings
        self.store = store
        self.profile = profile
        self.url = settings.url
        root = self.url[:-3] if self.url.endswith(("/v3", "/v4")) else None
        self._v3 = f"{root}/v3" if root else self.url
        self._v4 = f"{root}/v4" if root else self.url
        self._key = f"scicat:{self._v3}"
        self.expiry_warning = settings.expiry_warning
        # Unknown until tried: ordinary SciCat users may not create proposals; a 403 turns this off.
        self.can_create_investigations = True
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._rejected: str | None = None  # the token SciCat stopped accepting (expired, revoked)
        self._store_read_at = float("-inf")
        self._session: Session | None = None
        self._session_token: str | None = None
        self._session_offline_at: float | None = None
        self._proposals: dict[str, dict[str, Any] | None] = {}
        self._indexes: dict[str, _Index] = {}
        self._warned: set[str] = set()

    def close(self) -> None:
        self._http.close()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _datasets_url(self) -> str:
        return f"{self._v4 if self.settings.api == 'v4' else self._v3}/datasets"

    def _dataset_url(self, pid: str) -> str:
        return f"{self._datasets_url()}/{quote(pid, safe='')}"

    def _blocks_url(self) -> str:
        return f"{self._v4 if self.settings.api == 'v4' else self._v3}/origdatablocks"

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _current_token(self) -> str:
        """The token to send: the cached one, or the store's when the cached one is missing, expired or rejected,
        and at least every STORE_RECHECK seconds (a login in another shell replaces an older token)."""
        with self._lock:
            token = self._token
            now = time.monotonic()
            if (
                token is None
                or token == self._rejected
                or _expired(token)
                or now - self._store_read_at >= STORE_RECHECK
            ):
                self._store_read_at = now
                stored = self.store.get(self._key)
                if stored:
                    token = self._token = stored
            rejected = token is not None and token == self._rejected
        if token is None:
            raise AuthError(f"not logged in to SciCat at {self.url}")
        if rejected:
            raise AuthError(
                f"SciCat at {self.url} no longer accepts the login (it expired or was revoked): log in again"
            )
        if _expired(token):
            exp = jwt.expiry(token) or 0.0
            raise AuthError(f"the SciCat login expired at {time.strftime('%H:%M', time.localtime(exp))}")
        return token

    def _reject(self, token: str) -> str | None:
        """SciCat no longer accepts ``token``: forget it, and return a newer token from the store (a login in
        another shell) worth one more try, if there is one."""
        fresh = self.store.get(self._key)
        with self._lock:
            self._rejected = token
            self._store_read_at = time.monotonic()
            if self._session_token == token:  # session() must not vouch for it any more
                self._session = self._session_token = None
            if fresh is None or fresh == token or _expired(fresh):
                return None
            self._token = fresh
            return fresh

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """One HTTP request; a connection that fails is a TransientError that says why."""
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        read = timeout or self.settings.timeout
        try:
            return self._http.request(
                method, url, json=body, params=params, headers=headers, timeout=(CONNECT_TIMEOUT, read)
            )
        except requests.RequestException as exc:
            raise TransientError(
                f"SciCat at {self.url} is not reachable: {unreachable_reason(exc, url, CONNECT_TIMEOUT, read)}"
            ) from None

    def _anonymous(self, token: str) -> bool:
        """Whether SciCat treats ``token`` as no login at all (its identity route is the one that says so)."""
        try:
            r = self._send("GET", f"{self._v3}/users/my/identity", token=token)
        except TransientError:
            return False
        return r.status_code == 401

    def _call(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        auth: bool = True,
        token: str | None = None,
        missing_ok: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """One request; the answer's JSON, or a typed error. ``token`` pins the token (login checks it)."""
        pinned = token is not None
        if auth and token is None:
            token = self._current_token()
        retried = False
        while True:
            r = self._send(
                method, url, body=body, params=params, token=token if auth else None, timeout=timeout
            )
            if (
                auth
                and not pinned
                and token is not None
                and (r.status_code == 401 or (r.status_code == 403 and self._anonymous(token)))
            ):
                fresh = self._reject(token)
                if fresh is not None and not retried:
                    token, retried = fresh, True
                    continue
                raise AuthError(
                    f"SciCat at {self.url} no longer accepts the login (it expired or was revoked): log in again"
                )
            return self._answer(r, missing_ok)

    def _answer(self, r: requests.Response, missing_ok: bool) -> Any:
        status = r.status_code
        if 200 <= status < 300:
            if not r.content:
                return None
            payload = _json(r)
            if payload is None:
                raise TransientError(
                    f"SciCat at {self.url} answered {status} with something that is not JSON"
                )
            return payload
        if status == 404 and missing_ok:
            return None
        lines, fields = answer_reasons(_json(r))
        text = "; ".join(lines) or r.reason or str(status)
        if status == 401:
            raise AuthError("SciCat did not accept the login (session expired or revoked)")
        if status == 403:
            raise NotPermitted(f"SciCat: not permitted ({text})")
        if status in (400, 422):
            raise InvalidMetadata(f"SciCat refused the request:{listing(lines)}", fields)
        if status == 409:
            raise Conflict(f"SciCat: conflict ({text})")
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(f"SciCat at {self.url} answered {status} {r.reason or ''}".rstrip())
        raise CatalogueError(f"SciCat answered {status}: {text}")

    # -- login -----------------------------------------------------------------------------------------------

    def _not_scicat(self, r: requests.Response, what: str) -> NotACatalogue:
        kind = (r.headers.get("Content-Type") or "no content type").split(";")[0]
        hint = ""
        if r.status_code in (401, 403, 407):
            hint = "; it asks for a login of its own (a proxy or another service?)"
        return NotACatalogue(
            f"{self.url} does not answer like a SciCat API: {what} answered {r.status_code} ({kind}){hint}. "
            f"Check url in [profiles.{self.profile}.scicat]: it is SciCat's API base, e.g. "
            "https://scicat.example.org/api/v3"
        )

    def probe(self) -> None:
        """Ask SciCat's health route (no login needed) whether this is a working SciCat, briefly."""
        url = f"{self._v3}/health"
        read = min(self.settings.timeout, PROBE_TIMEOUT)
        r = self._send("GET", url, timeout=read)
        payload = _json(r)
        if isinstance(payload, dict) and "status" in payload and r.status_code in (200, 503):
            if r.status_code != 200 or payload.get("status") != "ok":
                raise TransientError(
                    f"SciCat at {self.url} answers but is not healthy ({payload.get('status')}: "
                    f"{json.dumps(payload.get('error') or payload.get('details') or {})})"
                )
            return
        if r.status_code == 404 and isinstance(payload, dict) and payload.get("statusCode") == 404:
            return  # a SciCat without the health route answers with its own (NestJS) JSON 404
        if r.status_code >= 500:  # a proxy's error page while SciCat behind it is down
            raise TransientError(
                f"SciCat at {self.url} is not available: GET /health answered {r.status_code}"
            )
        raise self._not_scicat(r, "GET /health")

    def login(self, credentials: Credentials) -> Session:
        if credentials.token:
            token = credentials.token.strip()
            if token.lower().startswith("bearer "):
                token = token[7:].strip()
            try:
                jwt.claims(token)
            except ValueError:
                raise AuthError("the pasted token is not a JWT; copy the whole token from SciCat") from None
            if _expired(token):
                raise AuthError("the pasted token has expired; get a new one from SciCat")
        else:
            if not credentials.username or credentials.password is None:
                raise AuthError("give a user name and a password, or a token")
            route = "/auth/ldap" if self.settings.auth == "ldap" else "/auth/login"
            body = {"username": credentials.username, "password": credentials.password}
            r = self._send("POST", self._v3 + route, body=body)
            payload = _json(r)
            if r.status_code == 401:
                if not (isinstance(payload, dict) and payload.get("statusCode") == 401):
                    raise self._not_scicat(r, f"POST {route}")
                raise AuthError(
                    f"SciCat at {self.url} refused user '{credentials.username}' ({self.settings.auth} login): "
                    "wrong user name or password"
                )
            if r.status_code == 404:
                if self.settings.auth == "ldap" and isinstance(payload, dict) and "statusCode" in payload:
                    raise AuthError(
                        f'SciCat at {self.url} has no LDAP login; set auth = "local" in '
                        f"[profiles.{self.profile}.scicat], or paste a token with --token-stdin"
                    )
                raise self._not_scicat(r, f"POST {route}")
            if 200 <= r.status_code < 300 and not isinstance(payload, dict):
                raise self._not_scicat(r, f"POST {route}")
            answer = self._answer(r, False)
            token = str((answer or {}).get("access_token") or (answer or {}).get("id") or "")
            if not token:
                raise NotACatalogue(f"{self.url} answered the login without an access_token: is it SciCat?")
        try:
            session = self._fetch_session(token)
        except AuthError:
            raise AuthError(f"SciCat at {self.url} did not accept the token") from None
        self.store.set(self._key, token)
        with self._lock:
            self._token = token
            self._rejected = None
            self._store_read_at = time.monotonic()
            self._session, self._session_token, self._session_offline_at = session, token, None
        return session

    def logout(self) -> None:
        token = self.store.get(self._key)
        if token and not _expired(token):
            try:  # JWTs stay valid until exp whatever the server is told; this is a courtesy
                self._call("POST", self._v3 + "/auth/logout", token=token, timeout=5)
            except CatalogueError as exc:
                log.debug("logout call failed: %s", exc)
        self.store.delete(self._key)
        with self._lock:
            self._token = self._session = self._session_token = None

    def _claims_session(self, token: str) -> Session:
        c = jwt.claims(token)
        user = c.get("username") or c.get("preferred_username") or c.get("name") or c.get("sub") or "?"
        email = c.get("email")
        return Session(
            user=str(user),
            email=str(email) if email else None,
            expires=jwt.expiry(token),
            functional=c.get("authStrategy") == "local",
        )

    def _fetch_session(self, token: str) -> Session:
        # An anonymous token gets 200 with an empty body here; the identity route then answers 401.
        who = self._call("GET", self._v3 + "/auth/whoami", token=token) or {}
        base = self._claims_session(token)
        groups = who.get("currentGroups")
        if not isinstance(groups, list) or not who:
            ident = self._call("GET", self._v3 + "/users/my/identity", token=token, missing_ok=True) or {}
            groups = (ident.get("profile") or {}).get("accessGroups") or []
        strategy = who.get("authStrategy")
        return Session(
            user=str(who.get("username") or base.user),
            email=str(who.get("email") or base.email or "") or None,
            groups=tuple(str(g) for g in groups),
            expires=base.expires,
            # SciCat's "local" accounts are the facility's functional accounts (admin, ingestor, ...);
            # people log in through LDAP or OIDC.
            functional=strategy == "local" if strategy else base.functional,
        )

    def session(self) -> Session | None:
        try:
            token = self._current_token()
        except AuthError:
            return None
        with self._lock:
            if self._session is not None and self._session_token == token:
                offline_at = self._session_offline_at
                if offline_at is None or time.monotonic() - offline_at < OFFLINE_SESSION_TTL:
                    return self._session
        offline: float | None = None
        try:
            session = self._fetch_session(token)
        except AuthError:
            with self._lock:
                self._rejected = token
            return None
        except TransientError:
            # The server is away: the token still tells who and until when; groups come when it is back.
            session, offline = self._claims_session(token), time.monotonic()
        with self._lock:
            self._session, self._session_token, self._session_offline_at = session, token, offline
        return session

    def _checked_session(self) -> Session:
        """The session, asked of SciCat now (not cached): for reads whose answer cannot tell a rejected login,
        since SciCat shows an anonymous caller the public records instead of an error."""
        token = self._current_token()
        try:
            session = self._fetch_session(token)
        except AuthError:
            fresh = self._reject(token)
            if fresh is None:
                raise AuthError(
                    f"SciCat at {self.url} no longer accepts the login (it expired or was revoked): log in again"
                ) from None
            token, session = fresh, self._fetch_session(fresh)
        with self._lock:
            self._session, self._session_token, self._session_offline_at = session, token, None
        return session

    def _require_session(self) -> Session:
        session = self.session()
        if session is None:
            self._current_token()  # raises the precise AuthError (not logged in / expired / rejected)
            raise AuthError("SciCat did not accept the login")
        return session

    # -- investigations = proposals ----------------------------------------------------------------------------

    @staticmethod
    def _investigation(p: dict[str, Any]) -> Investigation:
        return Investigation(
            id=str(p["proposalId"]), title=p.get("title"), description=p.get("abstract"), pi=p.get("pi_email")
        )

    def _proposal(self, proposal_id: str) -> dict[str, Any] | None:
        if proposal_id in self._proposals:
            return self._proposals[proposal_id]
        try:
            found = self._call("GET", f"{self._v3}/proposals/{quote(proposal_id, safe='')}", missing_ok=True)
        except NotPermitted:
            raise NotPermitted(
                f"investigation '{proposal_id}' exists in SciCat but your account has no access to it",
                field="investigation",
                action=Action.PICK_INVESTIGATION,
            ) from None
        proposal = found if isinstance(found, dict) and found.get("proposalId") else None
        if proposal is not None:
            self._proposals[proposal_id] = proposal
        return proposal

    def list_investigations(self) -> list[Investigation]:
        """Every proposal the account may read: SciCat itself limits the list (an admin or functional account
        sees all, a person those of their groups), so no filter of ours hides any."""
        self._checked_session()
        found: list[dict[str, Any]] = []
        page = 500
        while True:
            flt = {"limits": {"limit": page, "skip": len(found), "order": "proposalId:asc"}}
            batch = self._call("GET", f"{self._v3}/proposals", params={"filters": json.dumps(flt)}) or []
            found += [p for p in batch if isinstance(p, dict)]
            if len(batch) < page:
                break
        unique = {str(p["proposalId"]): p for p in found if p.get("proposalId")}
        return [self._investigation(unique[k]) for k in sorted(unique)]

    def get_investigation(self, investigation_id: str) -> Investigation | None:
        p = self._proposal(investigation_id)
        return self._investigation(p) if p else None

    def create_investigation(self, investigation: Investigation) -> Investigation:
        session = self._require_session()
        if not investigation.title or not investigation.pi:
            # A proposal needs a title and its proposer's e-mail; DataUploader never makes them up (the account's
            # own e-mail and the id are not what the facility's records should show).
            raise InvalidMetadata(
                f"investigation '{investigation.id}' does not exist in SciCat; to create it (with an account that "
                "may create proposals) give its title and PI (--investigation-title TEXT --pi EMAIL)",
                [f for f, v in (("title", investigation.title), ("pi_email", investigation.pi)) if not v],
                field="investigation_title" if not investigation.title else "pi",
                action=Action.PICK_INVESTIGATION,
            )
        body: dict[str, Any] = {
            "proposalId": investigation.id,
            "ownerGroup": self._default_group(investigation.id, session),
            "title": investigation.title,
            "email": investigation.pi,
            "pi_email": investigation.pi,
        }
        if investigation.description:
            body["abstract"] = investigation.description
        if self.settings.access_groups:
            body["accessGroups"] = list(self.settings.access_groups)
        try:
            created = self._call("POST", f"{self._v3}/proposals", body=body)
        except NotPermitted:
            self.can_create_investigations = False
            raise NotPermitted(
                f"investigation '{investigation.id}' does not exist in SciCat and account '{session.user}' may not "
                "create proposals",
                field="investigation",
                action=Action.PICK_INVESTIGATION,
            ) from None
        except Conflict:
            self._proposals.pop(investigation.id, None)
            created = self._proposal(investigation.id)
        if not isinstance(created, dict):
            raise CatalogueError(f"SciCat did not return the proposal '{investigation.id}'")
        self._proposals[investigation.id] = created
        return self._investigation(created)

    def _default_group(self, investigation: str | None, session: Session) -> str:
        """The group that owns what we create when the config does not say: a group of the user's named like the
        proposal, else the user's only group, else a group named like the proposal (the server decides)."""
        if self.settings.owner_group:
            return self.settings.owner_group
        if investigation and investigation in session.groups:
            return investigation
        if len(session.groups) == 1:
            return session.groups[0]
        if investigation:
            return investigation  # the usual convention: a proposal's group is named like the proposal
        raise InvalidMetadata(
            "cannot tell which group should own the dataset: give --investigation or set owner_group in "
            f"[profiles.{self.profile}.scicat] (your groups: {', '.join(session.groups) or 'none'})",
            ["ownerGroup"],
        )

    # -- datasets ----------------------------------------------------------------------------------------------

    def _source_folder(self, spec: DatasetSpec) -> str:
        """The dataset's folder as the facility's archive sees it (see ``source_folder`` in the config)."""
        template = self.settings.source_folder
        if template is None:
            return storage_path(spec.location)
        if "{" not in template:
            return f"{template.rstrip('/')}/{spec.target}"
        folder = template.format(
            investigation=spec.investigation or "", dataset=spec.name, target=spec.target
        )
        return folder[:1] + re.sub(r"/{2,}", "/", folder[1:])  # an empty {investigation} leaves no "//"

    def _meta(self, spec: DatasetSpec, proposal: dict[str, Any] | None) -> dict[str, MetaValue]:
        meta: dict[str, MetaValue] = dict(spec.meta)
        if (
            spec.investigation_description
            and (proposal or {}).get("abstract") != spec.investigation_description
        ):
            meta.setdefault("investigation_description", spec.investigation_description)
        return meta

    def _pi(self, spec: DatasetSpec, proposal: dict[str, Any] | None, session: Session) -> str | None:
        """Who the principal investigator is: the user's --pi, else the proposal's; a person logged in stands in
        for a dataset without either, a functional account never does."""
        pi = spec.pi or (proposal or {}).get("pi_email") or (proposal or {}).get("email")
        if pi and session.functional and pi == session.email:
            pi = None  # a proposal created by an older DataUploader with the account's own e-mail
        if not pi and not session.functional:
            pi = session.email
        return str(pi) if pi else None

    def _dataset_body(self, spec: DatasetSpec) -> dict[str, Any]:
        """The raw dataset as SciCat wants it (v3 shape; converted for v4 at the end)."""
        session = self._require_session()
        proposal = self._proposal(spec.investigation) if spec.investigation else None
        if not session.email:
            raise InvalidMetadata(
                "your SciCat account has no e-mail address, which a dataset needs (contactEmail)",
                ["contactEmail"],
            )
        owner_group = self.settings.owner_group or (proposal or {}).get("ownerGroup")
        owner_group = owner_group or self._default_group(spec.investigation, session)
        pi = self._pi(spec, proposal, session)
        if pi is None and self.settings.api != "v4":
            raise InvalidMetadata(
                "SciCat needs a principal investigator for a raw dataset and neither --pi nor the investigation "
                f"names one ('{session.user}' is a functional account, not a person): give --pi EMAIL",
                ["principalInvestigator"],
                field="pi",
            )
        meta = self._meta(spec, proposal)
        body: dict[str, Any] = {
            "type": "raw",
            "datasetName": spec.name,
            "ownerGroup": owner_group,
            "owner": session.user,
            "ownerEmail": session.email,
            "contactEmail": session.email,
            "sourceFolder": self._source_folder(spec),
            "creationTime": _iso(spec.created or time.time()),
            "creationLocation": self.settings.creation_location or f"/DataUploader/{socket.gethostname()}",
        }
        if pi:
            body["principalInvestigator"] = pi
        access = list(self.settings.access_groups) or list((proposal or {}).get("accessGroups") or [])
        if access:
            body["accessGroups"] = access
        if spec.description:
            body["description"] = spec.description
        if spec.investigation:
            body["proposalId"] = spec.investigation
        if meta:
            body["scientificMetadata"] = meta
        if self.settings.keywords:
            body["keywords"] = list(self.settings.keywords)
        if self.settings.api == "v4":
            if "principalInvestigator" in body:
                body["principalInvestigators"] = [body.pop("principalInvestigator")]
            if "proposalId" in body:
                body["proposalIds"] = [body.pop("proposalId")]
        return body

    def validate_dataset(self, spec: DatasetSpec) -> None:
        # Membership of the owner group is left to the server (privileged accounts may create datasets for any
        # group); its 403 comes from create_dataset, which also runs before anything is transferred.
        body = self._dataset_body(spec)
        try:
            answer = self._call("POST", f"{self._datasets_url()}/isValid", body=body) or {}
        except NotPermitted as exc:
            raise self._not_permitted_to_create(spec, body, exc) from None
        if not answer.get("valid", False):
            error = answer.get("error")
            reasons = [r.strip() for r in str(error).split(";") if r.strip()] if error else []
            reasons += [str(r) for r in answer.get("reason") or []]
            raise InvalidMetadata(
                f"SciCat would refuse the dataset's metadata:{listing(reasons)}", message_fields(reasons)
            )

    def find_dataset(self, spec: DatasetSpec) -> str | None:
        # Every value sits in an array: SciCat turns a plain string that JavaScript can read as a date ("scan-001",
        # "run 12", "2024-001") into a date, which then matches nothing; array items are left alone.
        where: dict[str, Any] = {
            "datasetName": {"$in": [spec.name]},
            "sourceFolder": {"$in": [self._source_folder(spec)]},
        }
        if spec.investigation:
            where["proposalIds" if self.settings.api == "v4" else "proposalId"] = {
                "$in": [spec.investigation]
            }
        flt = json.dumps({"where": where, "limits": {"limit": 2, "skip": 0}})
        found = [d for d in self._call("GET", self._datasets_url(), params={"filter": flt}) or [] if d]
        if len(found) > 1:
            log.warning(
                "SciCat lists %d datasets named '%s' in %s; registering to %s",
                len(found),
                spec.name,
                spec.investigation or "no investigation",
                found[0].get("pid"),
            )
        return str(found[0]["pid"]) if found else None

    def _not_permitted_to_create(
        self, spec: DatasetSpec, body: dict[str, Any], exc: NotPermitted
    ) -> NotPermitted:
        return NotPermitted(
            f"SciCat refused to create dataset '{spec.name}' owned by group '{body['ownerGroup']}' ({exc}); "
            f"the account must be in that group: pick an investigation of yours or set owner_group in "
            f"[profiles.{self.profile}.scicat]"
        )

    def create_dataset(self, spec: DatasetSpec) -> str:
        body = self._dataset_body(spec)
        try:
            created = self._call("POST", self._datasets_url(), body=body)
        except Conflict:
            pid = self.find_dataset(spec)
            if pid is None:
                raise
            return pid
        except NotPermitted as exc:
            raise self._not_permitted_to_create(spec, body, exc) from None
        except InvalidMetadata as exc:
            message = str(exc).replace(
                "SciCat refused the request", f"SciCat refused dataset '{spec.name}'", 1
            )
            raise InvalidMetadata(message, exc.fields) from None
        pid = str(created["pid"])
        self._indexes[pid] = _Index()  # new: it lists nothing yet, no need to ask
        return pid

    def _get_dataset(self, pid: str) -> dict[str, Any]:
        found = self._call("GET", self._dataset_url(pid))
        if not isinstance(found, dict):
            raise CatalogueError(f"SciCat did not return dataset {pid}")
        return found

    def _patch_dataset(self, pid: str, patch: dict[str, Any], current: dict[str, Any]) -> None:
        if self.settings.api == "v4":
            # v4's update DTO defaults these to 0: whatever is not sent is reset. Send the true values.
            index = self._index_for(pid, current)
            patch = {
                **patch,
                "size": index.size,
                "numberOfFiles": index.files,
                "packedSize": int(current.get("packedSize") or 0),
            }
        self._call("PATCH", self._dataset_url(pid), body=patch)

    def update_dataset(self, dataset_id: str, spec: DatasetSpec, changes: DatasetChanges | None) -> None:
        """Write only what the user changed (or, for a dataset found again, what it lacks), merged into what SciCat
        holds: curators' edits stay, and an unchanged re-run writes nothing."""
        try:
            current = self._get_dataset(dataset_id)
        except NotPermitted as exc:
            self._warn_once(
                f"update:{dataset_id}",
                "SciCat does not let this account read or update dataset %s (%s); its description and metadata "
                "were left as they are",
                dataset_id,
                exc,
            )
            return
        proposal = self._proposal(spec.investigation) if spec.investigation else None
        wanted = self._meta(spec, proposal)
        have = current.get("scientificMetadata")
        have_meta: dict[str, Any] = have if isinstance(have, dict) else {}
        patch: dict[str, Any] = {}
        if changes is None:
            if spec.description and not current.get("description"):
                patch["description"] = spec.description
            keys = {k for k in wanted if k not in have_meta}
            missing = [k for k in self.settings.keywords if k not in (current.get("keywords") or [])]
            if missing:
                patch["keywords"] = [*(current.get("keywords") or []), *missing]
        else:
            if (
                changes.description
                and spec.description is not None
                and spec.description != current.get("description")
            ):
                patch["description"] = spec.description
            keys = set(changes.meta)
            if changes.investigation_description:
                keys.add("investigation_description")
            if changes.pi and spec.pi:
                now_pi = current.get("principalInvestigators") or [current.get("principalInvestigator")]
                if spec.pi not in now_pi:
                    if self.settings.api == "v4":
                        patch["principalInvestigators"] = [spec.pi]
                    else:
                        patch["principalInvestigator"] = spec.pi
        updates = {k: wanted[k] for k in keys if k in wanted and not _same_value(have_meta.get(k), wanted[k])}
        if updates:
            patch["scientificMetadata"] = {**have_meta, **updates}
        if not patch:
            return
        try:
            self._patch_dataset(dataset_id, patch, current)
        except NotPermitted as exc:
            self._warn_once(
                f"update:{dataset_id}",
                "SciCat does not let this account update dataset %s (%s); the changed %s was not applied",
                dataset_id,
                exc,
                ", ".join(sorted(patch)),
            )

    # -- files -------------------------------------------------------------------------------------------------

    def _blocks(self, dataset_id: str) -> Iterator[dict[str, Any]]:
        """Every origdatablock of the dataset, paged through the filterable route (the dataset's own route stops
        at 100 blocks). Pages are sized to hold about BLOCK_PAGE_FILES file entries."""
        skip, limit = 0, 20
        while True:
            limits: dict[str, Any] = {"limit": limit, "skip": skip}
            if self.settings.api == "v4":
                limits["sort"] = {"_id": "asc"}
            else:
                limits["order"] = "_id:asc"
            flt = json.dumps({"where": {"datasetId": dataset_id}, "limits": limits})
            found = self._call("GET", self._blocks_url(), params={"filter": flt}) or []
            page = [b for b in found if isinstance(b, dict)]
            yield from page
            if len(page) < limit:
                return
            skip += len(page)
            per_block = max(1, sum(len(b.get("dataFileList") or []) for b in page) // len(page))
            limit = max(1, min(1000, BLOCK_PAGE_FILES // per_block))

    def _index_for(self, dataset_id: str, current: dict[str, Any] | None = None) -> _Index:
        """What the dataset lists, read from SciCat once per run. Reading the dataset first makes sure the login
        is still accepted: an anonymous caller would be shown no blocks at all, not an error."""
        index = self._indexes.get(dataset_id)
        if index is not None and time.monotonic() - index.used < INDEX_IDLE:
            index.used = time.monotonic()
            return index
        if current is None:
            self._get_dataset(dataset_id)
        index = _Index()
        for block in self._blocks(dataset_id):
            files = [f for f in block.get("dataFileList") or [] if isinstance(f, dict)]
            index.add(str(block.get("_id")), files, int(block.get("size") or 0))
        self._indexes[dataset_id] = index
        return index

    def _block_body(self, dataset_id: str, entries: Sequence[FileEntry]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "size": sum(e.size for e in entries),
            "chkAlg": "sha256",
            "dataFileList": [
                {"path": e.path, "size": e.size, "time": _iso(e.mtime), "chk": e.sha256} for e in entries
            ],
        }
        if self.settings.api == "v4":
            body["datasetId"] = dataset_id  # v4 blocks are top-level; v3 takes the pid from the path and
            # refuses a datasetId in the body
        return body

    def append_files(self, dataset_id: str, entries: Sequence[FileEntry]) -> None:
        """New paths go into new origdatablocks of at most ``block_files`` files; a path SciCat lists with
        another checksum (a file changed at the source) is replaced inside its block; a path listed with the
        same checksum is left alone. The dataset's size and numberOfFiles stay the sum of what is listed."""
        index = self._index_for(dataset_id)
        new: list[FileEntry] = []
        stale: list[FileEntry] = []
        for e in entries:
            have = index.entries.get(e.path)
            if have is None:
                new.append(e)
            elif have[1] != e.sha256 or have[2] != e.size:
                stale.append(e)
        try:
            for chunk in _chunks(new, self.settings.block_files):
                body = self._block_body(dataset_id, chunk)
                if self.settings.api == "v4":
                    block = self._call("POST", self._blocks_url(), body=body)
                else:
                    block = self._call("POST", f"{self._dataset_url(dataset_id)}/origdatablocks", body=body)
                index.add(str((block or {}).get("_id")), body["dataFileList"], body["size"])
            if stale:
                self._replace(dataset_id, index, stale)
            if self.settings.api == "v4" and (new or stale):
                self._fix_totals(dataset_id, index)
        except BaseException:
            # The outcome of the failed call is unknown (it may have been stored): read it all again next time.
            self._indexes.pop(dataset_id, None)
            raise

    def _block_url(self, dataset_id: str, block_id: str) -> str:
        if self.settings.api == "v4":
            return f"{self._blocks_url()}/{quote(block_id, safe='')}"
        return f"{self._dataset_url(dataset_id)}/origdatablocks/{quote(block_id, safe='')}"

    def _replace(self, dataset_id: str, index: _Index, stale: Sequence[FileEntry]) -> None:
        """Rewrite each block that lists an old version of a path with the new size, time and checksum."""
        by_block: dict[str, dict[str, FileEntry]] = {}
        for e in stale:
            by_block.setdefault(index.entries[e.path][0], {})[e.path] = e
        relist: list[FileEntry] = []
        for block_id, fresh in by_block.items():
            block = self._call("GET", f"{self._blocks_url()}/{quote(block_id, safe='')}")
            if not isinstance(block, dict):
                raise CatalogueError(f"SciCat did not return origdatablock {block_id}")
            old_files = [f for f in block.get("dataFileList") or [] if isinstance(f, dict)]
            ours = (block.get("chkAlg") or "sha256") == "sha256"
            files: list[dict[str, Any]] = []
            for f in old_files:
                entry = fresh.get(str(f.get("path")))
                if entry is None:
                    files.append({k: f[k] for k in DATA_FILE_KEYS if k in f})
                elif ours:
                    files.append(
                        {
                            "path": entry.path,
                            "size": entry.size,
                            "time": _iso(entry.mtime),
                            "chk": entry.sha256,
                        }
                    )
                    fresh.pop(entry.path)  # a path listed twice keeps one entry
            if not ours:
                # Another tool's block, with another checksum algorithm: the old entries leave it and the new
                # versions get a block of their own.
                relist += fresh.values()
                if not files:
                    log.warning(
                        "origdatablock %s of dataset %s lists only old versions of changed files and cannot be "
                        "emptied; they stay listed next to the new versions",
                        block_id,
                        dataset_id,
                    )
                    for path in fresh:
                        index.entries.pop(path, None)
                    continue
            size = sum(int(f.get("size") or 0) for f in files)
            body = {"size": size, "chkAlg": block.get("chkAlg") or "sha256", "dataFileList": files}
            self._call("PATCH", self._block_url(dataset_id, block_id), body=body)
            index.size += size - int(block.get("size") or 0)
            index.files += len(files) - len(old_files)
            for path in fresh:
                index.entries.pop(path, None)
            for f in files:
                index.entries[str(f["path"])] = (block_id, str(f.get("chk") or ""), int(f.get("size") or 0))
        if relist:
            self.append_files(dataset_id, relist)

    def _fix_totals(self, dataset_id: str, index: _Index) -> None:
        current = self._get_dataset(dataset_id)
        if current.get("size") != index.size or current.get("numberOfFiles") != index.files:
            self._patch_dataset(dataset_id, {}, current)

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        self._indexes.pop(
            dataset_id, None
        )  # asked after an unknown outcome: what SciCat has now, not what we knew
        index = self._index_for(dataset_id)
        return {e.path for e in entries if (index.entries.get(e.path) or ("", "", -1))[1] == e.sha256}

    def finalise(self, dataset_id: str, *, start_time: float, end_time: float) -> None:
        """Set creationTime and endTime to when the data was taken, if they say otherwise. Nothing else: the
        lifecycle (archivable, …) belongs to the facility's archive managers."""
        try:
            current = self._get_dataset(dataset_id)
            patch: dict[str, Any] = {}
            if not _same_time(current.get("creationTime"), start_time):
                patch["creationTime"] = _iso(start_time)
            if not _same_time(current.get("endTime"), end_time):
                patch["endTime"] = _iso(end_time)
            if patch:
                self._patch_dataset(dataset_id, patch, current)
        except NotPermitted as exc:
            # A privileged creator may create datasets for any group but update only its own groups' ones.
            self._warn_once(
                f"finalise:{dataset_id}",
                "SciCat does not let this account update dataset %s (%s): its creationTime/endTime stay as set "
                "when it was created; every file is registered",
                dataset_id,
                exc,
            )
