"""SciCat's REST API: HTTP, the login and what SciCat's answers mean (see the package's docstring for the real
backend's behaviour that shapes it)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

from engine import jwt
from engine.catalogue.base import (
    AuthError,
    CatalogueError,
    Conflict,
    Credentials,
    InvalidMetadata,
    NotACatalogue,
    NotPermitted,
    Session,
    TransientError,
)
from engine.catalogue.scicat.reasons import answer_reasons, listing, unreachable_reason
from engine.config import SciCatSettings
from engine.credentials import TokenStore

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 5.0  # a token this close to its exp is treated as expired (clock skew, request time)
OFFLINE_SESSION_TTL = 60.0  # how long a session read from the token alone (server away) is reused
CONNECT_TIMEOUT = 5.0  # seconds to establish a connection; reads wait `timeout` from the profile
PROBE_TIMEOUT = 15.0  # at most this long for the health check before a login asks for a password
STORE_RECHECK = 30.0  # a running process looks for a newer login in the token store at most this often


def expired(token: str, now: float | None = None) -> bool:
    exp = jwt.expiry(token)
    return exp is not None and exp <= (time.time() if now is None else now) + EXPIRY_MARGIN


def _json(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


class SciCatApi:
    """SciCat's REST API as this adapter uses it: one ``requests`` session, the login (token store, the token
    SciCat stopped accepting, the session it vouches for) and every answer mapped to a typed error."""

    def __init__(self, settings: SciCatSettings, store: TokenStore, profile: str = "default") -> None:
        self.settings = settings
        self.store = store
        self.profile = profile
        self.url = settings.url
        root = self.url[:-3] if self.url.endswith(("/v3", "/v4")) else None
        self.v3 = f"{root}/v3" if root else self.url
        self._v4 = f"{root}/v4" if root else self.url
        self._key = f"scicat:{self.v3}"
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._rejected: str | None = None  # the token SciCat stopped accepting (expired, revoked)
        self._store_read_at = float("-inf")
        self._session: Session | None = None
        self._session_token: str | None = None
        self._session_offline_at: float | None = None
        self._warned: set[str] = set()

    def close(self) -> None:
        self._http.close()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def datasets_url(self) -> str:
        return f"{self._v4 if self.settings.api == 'v4' else self.v3}/datasets"

    def dataset_url(self, pid: str) -> str:
        return f"{self.datasets_url()}/{quote(pid, safe='')}"

    def blocks_url(self) -> str:
        return f"{self._v4 if self.settings.api == 'v4' else self.v3}/origdatablocks"

    def get_dataset(self, pid: str) -> dict[str, Any]:
        found = self.call("GET", self.dataset_url(pid))
        if not isinstance(found, dict):
            raise CatalogueError(f"SciCat did not return dataset {pid}")
        return found

    def warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def current_token(self) -> str:
        """The token to send: the cached one, or the store's when the cached one is missing, expired or rejected,
        and at least every STORE_RECHECK seconds (a login in another shell replaces an older token)."""
        with self._lock:
            token = self._token
            now = time.monotonic()
            if (
                token is None
                or token == self._rejected
                or expired(token)
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
        if expired(token):
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
            if fresh is None or fresh == token or expired(fresh):
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
            r = self._send("GET", f"{self.v3}/users/my/identity", token=token)
        except TransientError:
            return False
        return r.status_code == 401

    def call(
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
            token = self.current_token()
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
        url = f"{self.v3}/health"
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
            if expired(token):
                raise AuthError("the pasted token has expired; get a new one from SciCat")
        else:
            if not credentials.username or credentials.password is None:
                raise AuthError("give a user name and a password, or a token")
            route = "/auth/ldap" if self.settings.auth == "ldap" else "/auth/login"
            body = {"username": credentials.username, "password": credentials.password}
            r = self._send("POST", self.v3 + route, body=body)
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
        if token and not expired(token):
            try:  # JWTs stay valid until exp whatever the server is told; this is a courtesy
                self.call("POST", self.v3 + "/auth/logout", token=token, timeout=5)
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
        who = self.call("GET", self.v3 + "/auth/whoami", token=token) or {}
        base = self._claims_session(token)
        groups = who.get("currentGroups")
        if not isinstance(groups, list) or not who:
            ident = self.call("GET", self.v3 + "/users/my/identity", token=token, missing_ok=True) or {}
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
            token = self.current_token()
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

    def checked_session(self) -> Session:
        """The session, asked of SciCat now (not cached): for reads whose answer cannot tell a rejected login,
        since SciCat shows an anonymous caller the public records instead of an error."""
        token = self.current_token()
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

    def require_session(self) -> Session:
        session = self.session()
        if session is None:
            self.current_token()  # raises the precise AuthError (not logged in / expired / rejected)
            raise AuthError("SciCat did not accept the login")
        return session
