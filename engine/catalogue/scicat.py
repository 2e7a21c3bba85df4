"""The SciCat adapter: proposals are investigations, raw datasets are datasets, origdatablocks list the files.

It speaks SciCat backend-next's REST API with ``requests`` and maps every answer to the typed errors of
:mod:`engine.catalogue.base`, so the pipeline never sees HTTP: 401 → :class:`AuthError` (log in again), 403 →
:class:`NotPermitted`, 400 → :class:`InvalidMetadata` (with the fields SciCat named), 409 → :class:`Conflict`,
5xx / timeouts / refused connections → :class:`TransientError` (retry later).

Sessions are JWTs without a refresh token (3600 s by default). The token is kept by
:class:`engine.credentials.TokenStore`; when the server answers 401 or the token's ``exp`` has passed, the store is
read again before giving up, so a ``datauploader login`` in another shell revives a running sync.

Behaviour of the real backend this relies on: login answers 201 with ``access_token``; writing without a token is
403 (not 401); a dataset in a group the user is not in is 403; origdatablock bodies may not carry ``datasetId``/
``ownerGroup``/``accessGroups`` (400); a dataset's size and numberOfFiles are recomputed from its origdatablocks;
PIDs contain ``/`` and are URL-encoded in paths.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
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
    DatasetSpec,
    FileEntry,
    InvalidMetadata,
    Investigation,
    NotPermitted,
    Session,
    TransientError,
)
from engine.config import SciCatSettings
from engine.credentials import TokenStore

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 5.0  # a token this close to its exp is treated as expired (clock skew, request time)
OFFLINE_SESSION_TTL = 60.0  # how long a session read from the token alone (server away) is reused


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _expired(token: str, now: float | None = None) -> bool:
    exp = jwt.expiry(token)
    return exp is not None and exp <= (time.time() if now is None else now) + EXPIRY_MARGIN


def _messages(r: requests.Response) -> list[str]:
    try:
        payload = r.json()
    except ValueError:
        return []
    message = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(message, list):
        return [str(m) for m in message]
    return [str(message)] if message else []


def _fields(messages: Sequence[str]) -> list[str]:
    """Field names from class-validator / pydantic style messages ("property foo should not exist",
    "dataFileList.0.size must be a number") — what the user has to fix."""
    fields: list[str] = []
    for m in messages:
        words = m.split()
        if len(words) >= 2 and words[0] == "property":
            name = words[1]
        elif words:
            name = words[0]
        else:
            continue
        if name not in fields:
            fields.append(name)
    return fields


def _chunks(items: Sequence[FileEntry], n: int) -> Iterator[Sequence[FileEntry]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


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
        self._session: Session | None = None
        self._session_token: str | None = None
        self._session_offline_at: float | None = None
        self._proposals: dict[str, dict[str, Any] | None] = {}

    def close(self) -> None:
        self._http.close()

    # -- HTTP ------------------------------------------------------------------------------------------------

    @property
    def login_hint(self) -> str:
        option = "" if self.profile == "default" else f" --profile {self.profile}"
        return f"run `datauploader login{option}`"

    def _datasets_url(self) -> str:
        return f"{self._v4 if self.settings.api == 'v4' else self._v3}/datasets"

    def _dataset_url(self, pid: str) -> str:
        return f"{self._datasets_url()}/{quote(pid, safe='')}"

    def _current_token(self) -> str:
        """The token to send: the cached one, or the store's when the cached one is missing or expired."""
        with self._lock:
            token = self._token
            if token is None or _expired(token):
                token = self._token = self.store.get(self._key)
        if token is None:
            raise AuthError(f"not logged in to SciCat at {self.url}; {self.login_hint}")
        if _expired(token):
            exp = jwt.expiry(token) or 0.0
            raise AuthError(
                f"the SciCat login expired at {time.strftime('%H:%M', time.localtime(exp))}; {self.login_hint}"
            )
        return token

    def _reload_token(self, rejected: str) -> str | None:
        """After a 401: a newer token in the store (a login in another shell) is worth one more try."""
        fresh = self.store.get(self._key)
        if fresh is None or fresh == rejected or _expired(fresh):
            return None
        with self._lock:
            self._token = fresh
        return fresh

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
        while True:
            headers = {"Accept": "application/json"}
            if auth and token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                r = self._http.request(
                    method,
                    url,
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=timeout or self.settings.timeout,
                )
            except requests.RequestException as exc:
                raise TransientError(
                    f"SciCat at {self.url} is not reachable ({type(exc).__name__})"
                ) from None
            if r.status_code == 401 and auth and not pinned and token is not None:
                fresh = self._reload_token(token)
                if fresh is not None:
                    token = fresh
                    continue
                with self._lock:  # the server ended this session: session() must not vouch for it any more
                    if self._session_token == token:
                        self._session = self._session_token = None
            return self._answer(r, missing_ok)

    def _answer(self, r: requests.Response, missing_ok: bool) -> Any:
        status = r.status_code
        if 200 <= status < 300:
            if not r.content:
                return None
            try:
                return r.json()
            except ValueError:
                raise TransientError(
                    f"SciCat at {self.url} answered {status} with something that is not JSON"
                ) from None
        if status == 404 and missing_ok:
            return None
        messages = _messages(r)
        text = "; ".join(messages) or r.reason or str(status)
        if status == 401:
            raise AuthError(
                f"SciCat did not accept the login (session expired or revoked); {self.login_hint}"
            )
        if status == 403:
            raise NotPermitted(f"SciCat: not permitted ({text})")
        if status in (400, 422):
            raise InvalidMetadata(f"SciCat refused the request: {text}", _fields(messages))
        if status == 409:
            raise Conflict(f"SciCat: conflict ({text})")
        if status in (408, 425, 429) or status >= 500:
            raise TransientError(f"SciCat at {self.url} answered {status} {r.reason or ''}".rstrip())
        raise CatalogueError(f"SciCat answered {status}: {text}")

    # -- login -----------------------------------------------------------------------------------------------

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
            try:
                answer = self._call("POST", self._v3 + route, body=body, auth=False)
            except AuthError:
                raise AuthError(
                    f"SciCat at {self.url} refused user '{credentials.username}' ({self.settings.auth} login): "
                    "wrong user name or password"
                ) from None
            token = str((answer or {}).get("access_token") or (answer or {}).get("id") or "")
            if not token:
                raise CatalogueError("SciCat's login answer holds no access_token")
        try:
            session = self._fetch_session(token)
        except AuthError:
            raise AuthError(f"SciCat at {self.url} did not accept the token") from None
        self.store.set(self._key, token)
        with self._lock:
            self._token = token
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
        return Session(user=str(user), email=str(email) if email else None, expires=jwt.expiry(token))

    def _fetch_session(self, token: str) -> Session:
        who = self._call("GET", self._v3 + "/auth/whoami", token=token) or {}
        base = self._claims_session(token)
        groups = who.get("currentGroups")
        if not isinstance(groups, list):
            ident = self._call("GET", self._v3 + "/users/my/identity", token=token, missing_ok=True) or {}
            groups = (ident.get("profile") or {}).get("accessGroups") or []
        return Session(
            user=str(who.get("username") or base.user),
            email=str(who.get("email") or base.email or "") or None,
            groups=tuple(str(g) for g in groups),
            expires=base.expires,
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
            return None
        except TransientError:
            # The server is away: the token still tells who and until when; groups come when it is back.
            session, offline = self._claims_session(token), time.monotonic()
        with self._lock:
            self._session, self._session_token, self._session_offline_at = session, token, offline
        return session

    def _require_session(self) -> Session:
        session = self.session()
        if session is None:
            self._current_token()  # raises the precise AuthError (not logged in / expired)
            raise AuthError(f"SciCat did not accept the login; {self.login_hint}")
        return session

    # -- investigations = proposals ----------------------------------------------------------------------------

    @staticmethod
    def _investigation(p: dict[str, Any]) -> Investigation:
        return Investigation(id=str(p["proposalId"]), title=p.get("title"), description=p.get("abstract"))

    def _proposal(self, proposal_id: str) -> dict[str, Any] | None:
        if proposal_id in self._proposals:
            return self._proposals[proposal_id]
        try:
            found = self._call("GET", f"{self._v3}/proposals/{quote(proposal_id, safe='')}", missing_ok=True)
        except NotPermitted:
            raise NotPermitted(
                f"investigation '{proposal_id}' exists in SciCat but your account has no access to it; "
                "pick one of yours (datauploader investigations)"
            ) from None
        proposal = found if isinstance(found, dict) and found.get("proposalId") else None
        if proposal is not None:
            self._proposals[proposal_id] = proposal
        return proposal

    def list_investigations(self) -> list[Investigation]:
        session = self._require_session()
        params: dict[str, str] = {}
        flt: dict[str, Any] = {"limits": {"limit": 1000, "skip": 0}}
        if session.groups:
            groups = list(session.groups)
            flt["where"] = {"$or": [{"ownerGroup": {"$in": groups}}, {"accessGroups": {"$in": groups}}]}
        params["filters"] = json.dumps(flt)
        found = self._call("GET", f"{self._v3}/proposals", params=params) or []
        return sorted((self._investigation(p) for p in found if p.get("proposalId")), key=lambda i: i.id)

    def get_investigation(self, investigation_id: str) -> Investigation | None:
        p = self._proposal(investigation_id)
        return self._investigation(p) if p else None

    def create_investigation(self, investigation: Investigation) -> Investigation:
        session = self._require_session()
        if not session.email:
            raise InvalidMetadata(
                "your SciCat account has no e-mail address, which a proposal needs", ["email"]
            )
        body: dict[str, Any] = {
            "proposalId": investigation.id,
            "ownerGroup": self._default_group(investigation.id, session),
            "title": investigation.title or investigation.id,
            "email": session.email,
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
                "create proposals; pick an existing one (datauploader investigations)"
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
        if self.settings.source_folder and spec.target:
            return f"{self.settings.source_folder.rstrip('/')}/{spec.target}"
        return spec.location

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
        pi = (proposal or {}).get("pi_email") or (proposal or {}).get("email") or session.email
        meta: dict[str, Any] = dict(spec.meta)
        if (
            spec.investigation_description
            and (proposal or {}).get("abstract") != spec.investigation_description
        ):
            meta.setdefault("investigation_description", spec.investigation_description)
        body: dict[str, Any] = {
            "type": "raw",
            "datasetName": spec.name,
            "ownerGroup": owner_group,
            "owner": session.user,
            "ownerEmail": session.email,
            "contactEmail": session.email,
            "principalInvestigator": pi,
            "sourceFolder": self._source_folder(spec),
            "creationTime": _iso(spec.created or time.time()),
            "creationLocation": self.settings.creation_location or f"/DataUploader/{socket.gethostname()}",
        }
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
            body["principalInvestigators"] = [body.pop("principalInvestigator")]
            if "proposalId" in body:
                body["proposalIds"] = [body.pop("proposalId")]
        return body

    def validate_dataset(self, spec: DatasetSpec) -> None:
        # Membership of the owner group is left to the server (privileged accounts may create datasets for any
        # group); its 403 comes from create_dataset, which also runs before anything is transferred.
        body = self._dataset_body(spec)
        answer = self._call("POST", f"{self._datasets_url()}/isValid", body=body) or {}
        if not answer.get("valid", False):
            reasons = [str(r) for r in answer.get("reason") or []]
            raise InvalidMetadata(
                f"SciCat would refuse the dataset's metadata: {'; '.join(reasons) or 'no reason given'}",
                _fields(reasons),
            )

    def find_dataset(self, spec: DatasetSpec) -> str | None:
        where: dict[str, Any] = {"datasetName": spec.name, "sourceFolder": self._source_folder(spec)}
        if spec.investigation:
            where["proposalIds" if self.settings.api == "v4" else "proposalId"] = spec.investigation
        flt = json.dumps({"where": where, "limits": {"limit": 1, "skip": 0}})
        found = self._call("GET", self._datasets_url(), params={"filter": flt}) or []
        return str(found[0]["pid"]) if found else None

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
            raise NotPermitted(
                f"SciCat refused to create dataset '{spec.name}' owned by group '{body['ownerGroup']}' ({exc}); "
                f"the account must be in that group: pick an investigation of yours or set owner_group in "
                f"[profiles.{self.profile}.scicat]"
            ) from None
        return str(created["pid"])

    def update_dataset(self, dataset_id: str, spec: DatasetSpec) -> None:
        body = self._dataset_body(spec)
        patch = {k: body[k] for k in ("description", "scientificMetadata", "keywords") if k in body}
        if patch:
            self._call("PATCH", self._dataset_url(dataset_id), body=patch)

    # -- files -------------------------------------------------------------------------------------------------

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
        """One origdatablock per ``block_files`` entries. SciCat blocks are append-only: a changed file that is
        registered again appears in a new block, next to its old version."""
        for chunk in _chunks(entries, self.settings.block_files):
            body = self._block_body(dataset_id, chunk)
            if self.settings.api == "v4":
                self._call("POST", f"{self._v4}/origdatablocks", body=body)
            else:
                self._call("POST", f"{self._dataset_url(dataset_id)}/origdatablocks", body=body)

    def _blocks(self, dataset_id: str) -> list[dict[str, Any]]:
        if self.settings.api == "v4":
            flt = json.dumps({"where": {"datasetId": dataset_id}, "limits": {"limit": 100_000, "skip": 0}})
            found = self._call("GET", f"{self._v4}/origdatablocks", params={"filter": flt})
        else:
            found = self._call("GET", f"{self._dataset_url(dataset_id)}/origdatablocks")
        return [b for b in found or [] if isinstance(b, dict)]

    def registered(self, dataset_id: str, entries: Sequence[FileEntry]) -> set[str]:
        have = {
            (f.get("path"), f.get("chk"))
            for block in self._blocks(dataset_id)
            for f in block.get("dataFileList") or []
            if isinstance(f, dict)
        }
        return {e.path for e in entries if (e.path, e.sha256) in have}

    def finalise(self, dataset_id: str, *, end_time: float) -> None:
        self._call("PATCH", self._dataset_url(dataset_id), body={"endTime": _iso(end_time)})
        # Archivable only once every file is listed — where the facility created it non-archivable and lets
        # the owner change that; the server's default is archivable, so usually there is nothing to do.
        dataset = self._call("GET", self._dataset_url(dataset_id)) or {}
        lifecycle = dataset.get("datasetlifecycle")
        if isinstance(lifecycle, dict) and lifecycle.get("archivable") is False:
            try:
                self._call(
                    "PATCH",
                    self._dataset_url(dataset_id),
                    body={"datasetlifecycle": {**lifecycle, "archivable": True}},
                )
            except (NotPermitted, InvalidMetadata) as exc:
                log.info("dataset %s left non-archivable: %s", dataset_id, exc)
